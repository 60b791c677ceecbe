/**
 * Process entry: load the configuration, build the app, listen; close the app on SIGTERM/SIGINT,
 * reload services and models on SIGHUP.
 * The only file that reads process.env or exits the process.
 */
import { buildApp } from './app.js';
import { AUTH_DISABLED_WARNING } from './http/auth.js';
import { loadConfig } from './config.js';
import { CdsError } from './errors.js';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const app = await buildApp(config);
  // Said by the server process only, so that test apps (built with authentication off) stay quiet.
  if (config.authDisabled) app.log.error({ setting: 'CDS_AUTH_DISABLED' }, AUTH_DISABLED_WARNING);
  const shutdown = async (signal: string) => {
    app.log.info({ signal }, 'shutting down');
    await app.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  // Reload cds-services/ and models/; a refused reload is logged and the running set keeps serving.
  process.on('SIGHUP', () => void app.reloadDefinitions().catch(() => undefined));
  await app.listen({ host: config.host, port: config.port });
}

main().catch((error: unknown) => {
  const code = error instanceof CdsError ? `${error.code}: ` : '';
  process.stderr.write(`Start-up failed: ${code}${(error as Error).message}\n`);
  process.exit(1);
});

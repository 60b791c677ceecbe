/**
 * Process entry: load the configuration, build the app, listen; close the app on SIGTERM/SIGINT,
 * reload services and models on SIGHUP. With `CDS_WORKERS` above 1 this process becomes the primary of
 * a cluster (`ops/cluster.ts`) and each worker runs this same file.
 * The only file that reads process.env or exits the process.
 */
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { buildApp } from './app.js';
import { loadPseudonymKey } from './audit/pseudonym.js';
import { AUTH_DISABLED_WARNING } from './http/auth.js';
import { type Config, loadConfig } from './config.js';
import { CdsError } from './errors.js';
import { loggerOptions } from './logger.js';
import { runPrimary, workerMetrics, workerReplayCache } from './ops/cluster.js';
import { applyHeapGrowth } from './ops/heap-growth.js';

function primary(config: Readonly<Config>): void {
  // Found or created once here, so that workers starting together never race to create it.
  if (!config.databaseUrl) loadPseudonymKey(config);
  const log = pino(loggerOptions(config)).child({ role: 'primary' });
  // Every worker must check the links the others sign: without a configured key, one for this set.
  const env: Record<string, string> = config.explanationKey
    ? {}
    : { CDS_EXPLANATION_KEY: randomBytes(32).toString('hex') };
  const supervisor = runPrimary({
    workers: config.workers,
    env,
    // With SQLite the primary keeps the replay cache (one machine); PostgreSQL keeps it for every machine.
    ...(config.databaseUrl ? {} : { replay: { maxEntries: config.jtiCacheMaxEntries } }),
    log: { info: (fields, msg) => log.info(fields, msg), error: (fields, msg) => log.error(fields, msg) },
    exit: (code) => process.exit(code),
  });
  process.on('SIGTERM', () => supervisor.stop('SIGTERM'));
  process.on('SIGINT', () => supervisor.stop('SIGINT'));
  process.on('SIGHUP', () => supervisor.reload());
}

async function main(): Promise<void> {
  // Before the app is built: bounds resident memory under sustained load (README, "Memory").
  applyHeapGrowth(process.execArgv, process.env.NODE_OPTIONS);
  const config = loadConfig(process.env);
  if (config.workers > 1 && cluster.isPrimary) {
    primary(config);
    return;
  }
  // Written beside the build by `npm run build` (dist/fhirpath-trees.json), from dist/src/main.js.
  const parseTreesFile = fileURLToPath(new URL('../fhirpath-trees.json', import.meta.url));
  const app = await buildApp(config, {
    parseTreesFile,
    ...(cluster.isWorker
      ? {
          clusterMetrics: workerMetrics,
          // On SQLite: the replay cache the primary keeps for every worker.
          ...(config.databaseUrl ? {} : { clusterReplay: workerReplayCache() }),
        }
      : {}),
  });
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

/**
 * CLI: starts the local FHIR R4 sandbox on 127.0.0.1, loaded with generated patients or a folder of
 * bundles, and runs until interrupted.
 *
 *   npm run sandbox -- [--port 8090] [--patients 20 --seed 42 [--now 2026-01-01] | --bundles <folder>]
 *                      [--token <bearer>] [--page-size <n>] [--cors-origins <list>|none]
 *
 * Prints the base URL, the resources loaded per type and an example patient id. Bad arguments print the
 * reason and the usage to stderr and exit with code 2; a folder that cannot be loaded or a port that
 * cannot be bound exits with 1.
 */
import { statSync } from 'node:fs';
import { parseNow } from '../synthetic/generate.js';
import { countByType, type LoadedResources, loadBundleFolder, loadGenerated } from './load.js';
import { type StartedFhirServer, startFhirServer } from './server.js';
import { invokedDirectly, parseOptions, UsageError } from '../usage.js';

export const DEFAULT_PORT = 8090;
export const DEFAULT_PATIENTS = 20;
export const DEFAULT_SEED = 42;
export const MAX_PATIENTS = 10_000;

export const USAGE = `Usage: sandbox [--port <n>] [--patients <n> --seed <integer> [--now <date>] | --bundles <folder>]
               [--token <bearer>] [--page-size <n>] [--cors-origins <list>|none]

Starts a read-only FHIR R4 server on 127.0.0.1 for trying the CDS services locally.

Options:
  --port <n>          TCP port on 127.0.0.1, 0 for any free one (default ${DEFAULT_PORT})
  --patients <n>      generated synthetic patients, 1 to ${MAX_PATIENTS} (default ${DEFAULT_PATIENTS})
  --seed <integer>    seed of the generator (default ${DEFAULT_SEED})
  --now <date>        "current" time of the generator: YYYY-MM-DD or ISO 8601 with a zone (default today)
  --bundles <folder>  serve every *.json Bundle of this folder instead (e.g. ../shared/synthea)
  --token <bearer>    require "Authorization: Bearer <bearer>" on every request (default: no auth)
  --page-size <n>     default page size of searches without _count (default: all matches on one page)
  --cors-origins <l>  browser origins allowed to read answers (CORS), comma-separated
                      (e.g. https://sandbox.cds-hooks.org,http://localhost:8080), * for any (default),
                      none for no CORS header
  -h, --help          show this help
`;

export type Source =
  { kind: 'generated'; patients: number; seed: number; now: Date } | { kind: 'bundles'; folder: string };

export interface SandboxArgs {
  port: number;
  source: Source;
  token?: string;
  pageSize?: number;
  /** CORS origins; empty: none. */
  corsOrigins: string[];
}

export const DEFAULT_CORS_ORIGINS = ['*'];

const OPTIONS = {
  port: { type: 'string' },
  patients: { type: 'string' },
  seed: { type: 'string' },
  now: { type: 'string' },
  bundles: { type: 'string' },
  token: { type: 'string' },
  'page-size': { type: 'string' },
  'cors-origins': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function integer(name: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^-?\d+$/.test(text) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max} (got "${text}")`);
  }
  return n;
}

/** `--cors-origins`: `*`, `none`, or a comma list of `http(s)://host[:port]` origins. */
function parseCorsOrigins(text: string | undefined): string[] {
  if (text === undefined) return [...DEFAULT_CORS_ORIGINS];
  if (text === 'none') return [];
  if (text === '*') return ['*'];
  const origins = text.split(',').map((s) => s.trim());
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !/^https?:$/.test(parsed.protocol) || parsed.origin !== origin) {
      throw new UsageError(
        `--cors-origins: "${origin}" is not an origin (scheme://host[:port], no path or trailing slash)`,
      );
    }
  }
  return origins;
}

/**
 * Parses and validates the command line (without `node` and the script path); `today` is used when
 * `--now` is absent (its UTC midnight).
 *
 * @throws UsageError with a one-line message naming the bad option.
 */
export function parseSandboxArgs(argv: readonly string[], today: Date): SandboxArgs | 'help' {
  const values = parseOptions(argv, OPTIONS);
  if (values.help === true) return 'help';
  const text = (name: keyof typeof OPTIONS) => values[name] as string | undefined;

  const port = text('port') === undefined ? DEFAULT_PORT : integer('port', text('port')!, 0, 65_535);
  let source: Source;
  if (text('bundles') !== undefined) {
    for (const name of ['patients', 'seed', 'now'] as const) {
      if (text(name) !== undefined) throw new UsageError(`--bundles and --${name} cannot be used together`);
    }
    const folder = text('bundles')!;
    let isFolder = false;
    try {
      isFolder = statSync(folder).isDirectory();
    } catch {
      throw new UsageError(`--bundles: folder "${folder}" does not exist`);
    }
    if (!isFolder) throw new UsageError(`--bundles: "${folder}" is not a folder`);
    source = { kind: 'bundles', folder };
  } else {
    const patients =
      text('patients') === undefined
        ? DEFAULT_PATIENTS
        : integer('patients', text('patients')!, 1, MAX_PATIENTS);
    const seed =
      text('seed') === undefined
        ? DEFAULT_SEED
        : integer('seed', text('seed')!, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
    let now = new Date(Date.UTC(today.getUTCFullYear(), today.getUTCMonth(), today.getUTCDate()));
    if (text('now') !== undefined) {
      const parsed = parseNow(text('now')!);
      if (!parsed) throw new UsageError(`--now must be YYYY-MM-DD or an ISO 8601 date-time with a time zone`);
      now = parsed;
    }
    source = { kind: 'generated', patients, seed, now };
  }
  const token = text('token');
  if (token !== undefined && !/^[\x21-\x7e]+$/.test(token)) {
    throw new UsageError('--token must be printable ASCII without spaces');
  }
  const pageSize =
    text('page-size') === undefined ? undefined : integer('page-size', text('page-size')!, 1, 100_000);
  const corsOrigins = parseCorsOrigins(text('cors-origins'));
  return {
    port,
    source,
    corsOrigins,
    ...(token === undefined ? {} : { token }),
    ...(pageSize === undefined ? {} : { pageSize }),
  };
}

export interface SandboxIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** The current date, used only when `--now` is absent. */
  today: Date;
}

export interface SandboxRun {
  /** 0 started (or help shown), 1 load or listen error, 2 bad arguments. */
  code: number;
  /** The running sandbox when `code` is 0 and it started. */
  server?: StartedFhirServer;
}

/** Parses the arguments, loads the resources, starts the sandbox and prints how to use it. */
export async function run(argv: readonly string[], io: SandboxIo): Promise<SandboxRun> {
  let args: SandboxArgs | 'help';
  try {
    args = parseSandboxArgs(argv, io.today);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`sandbox: ${error.message}\n\n${USAGE}`);
    return { code: 2 };
  }
  if (args === 'help') {
    io.stdout(USAGE);
    return { code: 0 };
  }
  const { source } = args;
  let loaded: LoadedResources;
  let origin: string;
  try {
    if (source.kind === 'generated') {
      loaded = loadGenerated(source.patients, source.seed, source.now);
      origin = `${source.patients} generated patients (seed ${source.seed}, now ${source.now.toISOString()})`;
    } else {
      loaded = await loadBundleFolder(source.folder);
      origin = `${loaded.files} bundle files in ${source.folder}`;
    }
  } catch (error) {
    io.stderr(
      `sandbox: cannot load ${source.kind === 'bundles' ? source.folder : 'patients'}: ${(error as Error).message}\n`,
    );
    return { code: 1 };
  }
  let server: StartedFhirServer;
  try {
    server = await startFhirServer({
      resources: loaded.resources,
      port: args.port,
      ...(args.token === undefined ? {} : { token: args.token }),
      ...(args.pageSize === undefined ? {} : { pageSize: args.pageSize }),
      corsOrigins: args.corsOrigins,
    });
  } catch (error) {
    io.stderr(`sandbox: cannot listen on 127.0.0.1:${args.port}: ${(error as Error).message}\n`);
    return { code: 1 };
  }

  const counts = countByType(loaded.resources);
  const example = loaded.resources.find((r) => r.resourceType === 'Patient')?.id;
  const auth = args.token === undefined ? '' : ` -H 'Authorization: Bearer <token>'`;
  const lines = [
    `FHIR R4 sandbox: ${server.url}`,
    `loaded ${loaded.resources.length} resources from ${origin}` +
      (loaded.duplicates > 0 ? ` (${loaded.duplicates} repeated resources kept once)` : ''),
    ...counts.map(([type, n]) => `  ${type.padEnd(28)} ${n}`),
    example === undefined ? 'no Patient loaded' : `example patient id: ${example}`,
    ...(example === undefined
      ? []
      : [
          `  curl${auth} ${server.url}/Patient/${example}`,
          `  curl${auth} '${server.url}/Observation?patient=${example}&_sort=-date&_count=5'`,
        ]),
    `capabilities: ${server.url}/metadata`,
    args.token === undefined
      ? 'no authentication (use --token to require a bearer token)'
      : 'bearer token required',
    args.corsOrigins.length === 0
      ? 'CORS: off (browser clients cannot read answers)'
      : `CORS: browser origins allowed: ${args.corsOrigins.join(', ')}; POST <Type>/_search accepted`,
    'Ctrl-C to stop',
  ];
  io.stdout(`${lines.join('\n')}\n`);
  return { code: 0, server };
}

if (invokedDirectly(import.meta.url)) {
  const { code, server } = await run(process.argv.slice(2), {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
    today: new Date(),
  });
  process.exitCode = code;
  if (server) {
    const stop = () => void server.close();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
}

export { UsageError };

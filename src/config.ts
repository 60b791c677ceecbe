/**
 * The one configuration object: built once at start-up from environment variables and an optional
 * YAML/JSON file, validated and coerced by its JSON Schema, deep-frozen, then passed down as an
 * argument. Nothing else in the code reads `process.env`.
 *
 * Every key `fooBarMs` can be set with the variable `CDS_FOO_BAR_MS`; the file named by
 * `CDS_CONFIG_FILE` holds the same keys in camelCase. Environment variables win over the file.
 */
import { readFileSync } from 'node:fs';
import type { FromSchema } from 'json-schema-to-ts';
import { parse as parseYaml } from 'yaml';
import * as generated from './generated/config.js';
import { compileEgress } from './prefetch/egress.js';
import { generatedValidator } from './validators.js';

export const CONFIG_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    host: { type: 'string', default: '127.0.0.1', description: 'Interface to listen on' },
    port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
    // Service processes sharing the port (one per core: see README "Every core used"); 1 runs no cluster.
    workers: { type: 'integer', minimum: 1, maximum: 64, default: 1 },
    logLevel: {
      type: 'string',
      enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
    },
    servicesDir: { type: 'string', default: 'cds-services', description: 'Folder of service YAML files' },
    modelsDir: {
      type: 'string',
      default: 'models',
      description: 'Folder of models: <id>/<version>/ with manifest.yaml, the ONNX file and the model card',
    },
    // Kept outside the models folder (and writable by other people): when set, start-up and reload refuse
    // any model version whose id, version and sha256 are not listed in it.
    approvedModelsFile: {
      type: 'string',
      minLength: 1,
      description: 'YAML/JSON list of approved models ({ id, version, sha256 })',
    },
    profilesDir: { type: 'string', default: 'fhir-profiles' },
    // Optional FHIR terminology server (src/terminology/remote.ts): value sets are expanded there
    // ($expand), cached for the TTL; the bundled expansions answer whenever it has not (offline default).
    // A value set it will not expand (too costly) has each call's codes checked with $validate-code,
    // all within terminologyValidateMs, before the rules run: that wait is on the call's path,
    // so it stays well under the ~500 ms CDS Hooks asks for.
    terminologyUrl: {
      type: 'string',
      pattern: '^https?://[^?#\\s]+$',
      description: 'Base URL of a FHIR terminology server expanding the value sets (optional)',
    },
    terminologyTimeoutMs: { type: 'integer', minimum: 1, default: 2000 },
    terminologyValidateMs: { type: 'integer', minimum: 1, maximum: 5000, default: 300 },
    terminologyCacheTtlS: { type: 'integer', minimum: 1, default: 3600 },
    dataDir: { type: 'string', default: 'data', description: 'Embedded store folder' },
    // Prefetch bundles of a few thousand resources weigh a few MB. A body costs about 14 MB of heap per
    // MiB while its call runs (npm run bench:memory: 8 MiB → 146 MB, 16 MiB → 244 MB at the peak), so
    // 6 MiB (about 85 MB) leaves room for other calls under the 256 MB heap the README recommends.
    bodyLimitBytes: { type: 'integer', minimum: 1024, default: 6 * 1024 * 1024 },
    // Bounded memory (src/http/load-shedding.ts): beyond either, 503 with Retry-After. 12 MiB of bodies
    // in flight is about 170 MB of heap: with the ~40 MB the service keeps, under a 256 MB old generation.
    maxRequestsInFlight: { type: 'integer', minimum: 1, default: 64 },
    maxBytesInFlight: { type: 'integer', minimum: 1024, default: 12 * 1024 * 1024 },
    // CDS Hooks asks for answers "on the order of 500 ms": a slow FHIR server must not hold the card
    // back much longer than that, and the fetches of all missing keys run in parallel.
    fhirFetchTimeoutMs: { type: 'integer', minimum: 1, default: 2500 },
    fhirFetchMaxBytes: { type: 'integer', minimum: 1024, default: 8 * 1024 * 1024 },
    fhirFetchMaxPages: { type: 'integer', minimum: 1, default: 5 },
    // The spec says fhirServer MUST be https with production data; plain http is only accepted for
    // loopback addresses unless this is set (local sandboxes).
    fhirServerAllowHttp: { type: 'boolean', default: false },
    // Egress control with authentication disabled (with it, each trusted issuer lists its own): the FHIR
    // base URLs or hosts a request may name as fhirServer, and the networks beyond the public internet
    // (loopback, private) they may be in. Empty: no fallback fetch.
    fhirServerAllowlist: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    fhirAllowedNetworks: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    // Bearer tokens, not cookies, authenticate callers, so a wildcard origin exposes nothing to CSRF;
    // a site may still list the origins of its CDS clients.
    corsOrigins: { type: 'array', items: { type: 'string', minLength: 1 }, default: ['*'] },
    defaultLanguage: { type: 'string', enum: ['en', 'fr'], default: 'en' },
    // Client authentication (CDS Hooks 2.0 §"Trusting CDS Clients"; see src/auth/).
    // Off only by this explicit switch, for local development; start-up then says so loudly.
    authDisabled: { type: 'boolean', default: false },
    // The base URL clients call (the external https URL behind a TLS-terminating proxy): a token's aud
    // must equal it followed by the path called. No query or fragment.
    publicUrl: { type: 'string', pattern: '^https?://[^?#\\s]+$' },
    trustedIssuersFile: {
      type: 'string',
      minLength: 1,
      description: 'JSON or YAML list of trusted CDS clients',
    },
    // Clocks of EHR and service drift by seconds; a minute absorbs that without stretching a token's life.
    jwtClockSkewS: { type: 'integer', minimum: 0, maximum: 300, default: 60 },
    // CDS Hooks tokens are minted per call; the reference client gives them 5 minutes (exp = iat + 300).
    jwtMaxLifetimeS: { type: 'integer', minimum: 1, maximum: 3600, default: 300 },
    // A JWT with a few claims and an RS512 signature is under 1 KiB; 8 KiB leaves room for large kids and
    // jku URLs while refusing an oversized header before any parsing.
    jwtMaxBytes: { type: 'integer', minimum: 1024, maximum: 16384, default: 8192 },
    // A JWKS fetch sits on the request path of a call that should answer in about 500 ms.
    jwksTimeoutMs: { type: 'integer', minimum: 1, default: 2000 },
    // After a fetch, an unknown kid triggers no new fetch for this long (rotation is rare; floods are not).
    jwksCooldownMs: { type: 'integer', minimum: 0, default: 30_000 },
    // Keys are refetched at least this often, so a revoked key stops working within ten minutes.
    jwksMaxAgeMs: { type: 'integer', minimum: 0, default: 600_000 },
    // Token ids remembered by the in-memory replay cache (about 200 bytes each). An id is kept for the
    // token lifetime plus the skew (6 minutes), so 100 000 covers about 270 calls a second. Full, the
    // cache refuses tokens rather than forget one that could be replayed.
    jtiCacheMaxEntries: { type: 'integer', minimum: 1, default: 100_000 },
    // Per client (the authenticated issuer, else the IP address) and per instance: 3000 a minute is 50 a
    // second, far above what one EHR's clinicians trigger, low enough to stop a runaway client.
    rateLimitMax: { type: 'integer', minimum: 1, default: 3000 },
    rateLimitWindowMs: { type: 'integer', minimum: 1000, default: 60_000 },
    // Serve HTTPS directly when both are set (PEM files); otherwise terminate TLS in a proxy in front.
    tlsKeyFile: { type: 'string', minLength: 1 },
    tlsCertFile: { type: 'string', minLength: 1 },
    // Audit store: PostgreSQL when set (read from DATABASE_URL, the usual name), else SQLite in dataDir.
    databaseUrl: { type: 'string', pattern: '^postgres(ql)?://' },
    // HMAC-SHA256 key for patient pseudonyms; required with databaseUrl (every instance needs the same
    // key), else generated once into <dataDir>/pseudonym.key.
    auditPseudonymKey: { type: 'string', minLength: 32 },
    // Audit records held while the store cannot take them (policy `queue`); beyond, calls answer 503.
    auditQueueMax: { type: 'integer', minimum: 1, default: 10_000 },
    // What a call gets when its audit record cannot be written now: `queue` answers it and holds the
    // record (up to auditQueueMax); `refuse` answers 503. No card is ever shown unaudited-and-unqueued.
    auditFailPolicy: { type: 'string', enum: ['queue', 'refuse'], default: 'queue' },
    // A second folder (another disk) where held records are also written, durably: they survive a restart.
    auditSpillDir: { type: 'string', minLength: 1 },
    // Age in days beyond which `npm run audit:archive` archives and removes audit records.
    auditRetentionDays: { type: 'integer', minimum: 1, default: 3650 },
    // Seconds a 503 (store unavailable) tells the client to wait before retrying (Retry-After).
    storeRetryAfterS: { type: 'integer', minimum: 1, maximum: 3600, default: 5 },
    // Bearer token of the governance team for /analytics; the endpoints answer 404 when unset.
    analyticsToken: { type: 'string', minLength: 32 },
    // Folder of the local validation reports (JSON written by `npm run evaluate -- --out`), listed on the
    // governance page behind analyticsToken; unset: the page lists none.
    reportsDir: { type: 'string', minLength: 1 },
    // Small-cell suppression of the reports: no figure describes fewer patients than this. 10 is a common
    // floor of statistical disclosure control for health data; a stored report built with less is not served.
    reportMinCell: { type: 'integer', minimum: 1, default: 10 },
    // Bearer token for GET /metrics; unset, the metrics are open to whoever reaches the interface.
    metricsToken: { type: 'string', minLength: 32 },
    // Bearer token for POST /admin/reload; unset, the route answers 404 (reload by SIGHUP only).
    adminToken: { type: 'string', minLength: 32 },
    // HMAC-SHA256 key signing the links to explanation pages; every instance needs the same key. Unset: a
    // random key per process, so links die with a restart and only work on the instance that made them.
    explanationKey: { type: 'string', minLength: 32 },
    // An explanation page is for the visit the card was shown in: a day covers it, then the link expires.
    explanationTtlS: { type: 'integer', minimum: 60, maximum: 604_800, default: 86_400 },
    // Explanations kept in memory per instance (a few KB each; 10 000 is tens of MB). Beyond, the oldest go.
    explanationMaxEntries: { type: 'integer', minimum: 1, default: 10_000 },
  },
} as const;

/**
 * The configuration, derived from CONFIG_SCHEMA (the one source of truth): a setting with a default is
 * always present, one without may be absent.
 */
export type Config = FromSchema<typeof CONFIG_SCHEMA>;

type Env = Record<string, string | undefined>;

/** Settings read from a conventional variable name rather than `CDS_<KEY>`. */
const ENV_ALIASES: Readonly<Record<string, string>> = { databaseUrl: 'DATABASE_URL' };

/** `fhirFetchTimeoutMs` → `CDS_FHIR_FETCH_TIMEOUT_MS`; `databaseUrl` → `DATABASE_URL`. */
export function envName(key: string): string {
  return ENV_ALIASES[key] ?? `CDS_${key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`;
}

function fromEnv(env: Env): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(CONFIG_SCHEMA.properties)) {
    const raw = env[envName(key)];
    if (raw === undefined || raw === '') continue;
    out[key] =
      schema.type === 'array'
        ? raw
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean)
        : raw;
  }
  return out;
}

function fromFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new Error(`Cannot read configuration file ${path}: ${(error as Error).message}`);
  }
  const parsed: unknown = parseYaml(text);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error(`Configuration file ${path} must hold a mapping of settings`);
  }
  return parsed as Record<string, unknown>;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

// CONFIG_SCHEMA compiled by `npm run schemas` with ajv's draft-07 class and { useDefaults: true,
// coerceTypes: true, allErrors: true }: it fills in defaults and coerces the environment's strings.
const validate = generatedValidator<Config>(generated.config);

/**
 * The checks across settings, so that start-up stops here, before anything is opened, rather than
 * half-way through building the app.
 * @returns the message of the first problem, or null
 */
function crossFieldProblem(config: Config): string | null {
  if ((config.tlsKeyFile === undefined) !== (config.tlsCertFile === undefined)) {
    return 'Invalid configuration: tlsKeyFile (CDS_TLS_KEY_FILE) and tlsCertFile (CDS_TLS_CERT_FILE) go together';
  }
  // Several instances share PostgreSQL: each generating its own key would scatter one patient's events
  // under several pseudonyms (audit/pseudonym.ts).
  if (config.databaseUrl !== undefined && config.auditPseudonymKey === undefined) {
    return 'auditPseudonymKey (CDS_AUDIT_PSEUDONYM_KEY) must be set when DATABASE_URL is: every instance must pseudonymise patients with the same key';
  }
  try {
    compileEgress('settings', config.fhirServerAllowlist, config.fhirAllowedNetworks);
  } catch (error) {
    return `Invalid configuration: fhirServerAllowlist (CDS_FHIR_SERVER_ALLOWLIST) / fhirAllowedNetworks (CDS_FHIR_ALLOWED_NETWORKS): ${(error as Error).message}`;
  }
  if (!config.authDisabled) {
    const missing = [
      config.publicUrl ? null : 'CDS_PUBLIC_URL (the base URL clients call, checked against the JWT aud)',
      config.trustedIssuersFile ? null : 'CDS_TRUSTED_ISSUERS_FILE (the CDS clients to trust)',
    ].filter((m) => m !== null);
    if (missing.length > 0) {
      return (
        `Client authentication is on but ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not set. ` +
        'Set CDS_AUTH_DISABLED=true to run without authentication, for local development only.'
      );
    }
  }
  return null;
}

/**
 * Reads the settings one by one (each validated and coerced by the schema, defaults applied) without the
 * checks across settings that only the server's start-up needs: for tools that read a few settings,
 * such as the store's (`npm run audit:verify`).
 * @param env environment variables (pass `process.env` from an entry point only)
 * @returns a validated, frozen Config
 * @throws Error naming each invalid setting and the variable that sets it
 */
export function loadSettings(env: Env = {}, overrides: Partial<Config> = {}): Readonly<Config> {
  return deepFreeze(parse(env, overrides));
}

/**
 * Builds the configuration of the server.
 * @param env environment variables (pass `process.env` from `main.ts` only)
 * @param overrides values that win over both (tests)
 * @returns a validated, frozen Config whose settings also agree with each other (TLS key and
 *   certificate together; a pseudonym key with PostgreSQL; with authentication on, the public URL and
 *   the trusted issuers file)
 * @throws Error naming each invalid setting and the variable that sets it, or the settings that disagree
 */
export function loadConfig(env: Env = {}, overrides: Partial<Config> = {}): Readonly<Config> {
  const config = parse(env, overrides);
  const problem = crossFieldProblem(config);
  if (problem !== null) throw new Error(problem);
  return deepFreeze(config);
}

function parse(env: Env, overrides: Partial<Config>): Config {
  const file = env.CDS_CONFIG_FILE ? fromFile(env.CDS_CONFIG_FILE) : {};
  const candidate: Record<string, unknown> = structuredClone({ ...file, ...fromEnv(env), ...overrides });
  if (!validate(candidate)) {
    const problems = (validate.errors ?? []).map((e) => {
      const key =
        e.instancePath.split('/')[1] ?? (e.params as { additionalProperty?: string }).additionalProperty;
      return key ? `${key} (${envName(key)}) ${e.message}` : `${e.message}`;
    });
    throw new Error(`Invalid configuration: ${problems.join('; ')}`);
  }
  return candidate;
}

/**
 * buildApp(config, overrides): builds the dependencies (logger, service registry, FHIR fetcher, clock,
 * uuid source, JWT replay cache, audit trail), creates the Fastify app (HTTPS when configured),
 * registers CORS, the hardened edge, client authentication, the error handlers and the routes. It never
 * listens: `main.ts` does, tests use `app.inject()`.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { maxHeaderSize } from 'node:http';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { DestinationStream } from 'pino';
import { loadTrustedIssuers, type TrustedIssuer } from './auth/issuers.js';
import type { CdsClient } from './auth/verify.js';
import { createDegradingReplayCache, createMemoryReplayCache, type ReplayCache } from './auth/replay.js';
import type { Config } from './config.js';
import { createLinkSigner } from './explanation-pages/link.js';
import { createExplanations } from './explanation-pages/publish.js';
import { createExplanationStore } from './explanation-pages/store.js';
import { clientAuthentication } from './http/auth.js';
import { deferredChildLogger } from './http/child-logger.js';
import { httpsOptions, KEEP_ALIVE_TIMEOUT_MS, registerEdge } from './http/edge.js';
import { registerErrorHandlers } from './http/error-handler.js';
import { registerLoadShedding } from './http/load-shedding.js';
import { clientErrorHandler, frameworkErrors, MAX_PARAM_LENGTH } from './http/raw-errors.js';
import { registerOps } from './http/ops.js';
import { registerRoutes } from './http/routes.js';
import { loggerOptions } from './logger.js';
import type { MetricsDeps } from './ops/metrics.js';
import { createRemoteTerminology } from './terminology/remote.js';
import { parseJsonBody } from './request/json-body.js';
import { compileEgress, type Resolver } from './prefetch/egress.js';
import { createFhirFetch } from './prefetch/fhir-fetch.js';
import { createFhirPath, type FhirPath } from './rules/fhirpath.js';
import { parseStoredTrees, type ParseTreesRead } from './rules/parse-trees.js';
import {
  type CheckedDefinitions,
  checkDefinitions,
  createLiveSet,
  type DefinitionDirs,
  type LiveSet,
  openDefinitions,
} from './ops/live-set.js';
import { type AuditTrail, openAuditTrail } from './audit/audit-trail.js';
import type { AuditWriterLog } from './audit/audit-writer.js';
import { releaseModels } from './scoring/load.js';
import type { AuditStore } from './audit/store.js';
import { createSqliteWorker, type SqliteWorker } from './audit/worker-store.js';

export interface AppOverrides {
  /** The network, for the fallback FHIR fetch (tests point it at a loopback server or a fake). */
  fetch?: typeof globalThis.fetch;
  /** Host name resolution for the egress check of the fallback fetch (tests map names without a DNS). */
  resolveHost?: Resolver;
  /** The clock (tests freeze it). */
  now?: () => Date;
  uuid?: () => string;
  /** Where log lines go (tests capture them to check redaction). */
  logStream?: DestinationStream;
  /** The JWT replay cache; default: in memory, for one instance. */
  replayCache?: ReplayCache;
  /** The audit store (tests inject one that fails); else the configuration's. Closed with the app. */
  store?: AuditStore;
  /**
   * The worker thread the SQLite audit store runs in, owned by the caller (the tests share one per
   * process: starting one is slow under their TypeScript loader); else the app's own, closed with it.
   */
  sqliteWorker?: SqliteWorker;
  /** First delay before writing queued audit records again (tests shorten it). */
  auditRetryMs?: number;
  /**
   * Set in a cluster worker (`ops/cluster.ts`): `/metrics` then answers for every worker, and the JWT
   * replay cache is shared by the workers (the primary's, {@link clusterReplay}, else the audit store's).
   */
  clusterMetrics?: MetricsDeps['cluster'];
  /**
   * Set in a cluster worker on the SQLite store: the replay cache the primary keeps for every worker
   * (`ops/cluster.ts`), used instead of the store's.
   */
  clusterReplay?: ReplayCache;
  /**
   * The FHIRPath parse trees stored with the build (`rules/parse-trees.ts`; `main.ts` names
   * dist/fhirpath-trees.json): the bundled sources are not parsed at start-up. Without: all are.
   */
  parseTreesFile?: string;
  /** More routes served inside the authenticated /cds-services scope (tests add some to check it). */
  cdsRoutes?: readonly FastifyPluginAsync[];
}

/**
 * Opens the resources of a checked start-up: the models' ONNX sessions, the SQLite worker (unless the
 * caller owns one), then the audit trail (store, writer). If one cannot be opened, those already open
 * are closed before the error is thrown.
 */
async function openResources(
  dirs: DefinitionDirs,
  config: Readonly<Config>,
  checked: CheckedDefinitions,
  fhirpath: FhirPath,
  log: AuditWriterLog,
  overrides: AppOverrides,
): Promise<{ live: LiveSet; audit: AuditTrail; ownWorker: SqliteWorker | undefined }> {
  const definitions = await openDefinitions(checked);
  const ownWorker = overrides.sqliteWorker ? undefined : createSqliteWorker();
  try {
    const audit = await openAuditTrail(config, {
      log,
      worker: overrides.sqliteWorker ?? ownWorker!,
      ...(overrides.store ? { store: overrides.store } : {}),
      ...(overrides.auditRetryMs === undefined ? {} : { retryInitialMs: overrides.auditRetryMs }),
    });
    // Swappable as a whole by a reload (src/ops/): routes always see the current set.
    return { live: createLiveSet(definitions, dirs, fhirpath), audit, ownWorker };
  } catch (error) {
    await ownWorker?.close();
    await releaseModels(definitions.models);
    throw error;
  }
}

/** The parse trees of a file written by the build, or why none are used (`rules/parse-trees.ts`). */
function readParseTrees(file: string): ParseTreesRead {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return { reason: code === 'ENOENT' ? 'absent' : `unreadable: ${(error as Error).message}` };
  }
  return parseStoredTrees(text);
}

/**
 * Each client's egress policy for the fallback fetch: its trusted issuer entry's, or with authentication
 * off the settings'. A client without an entry (none exists: the scope refuses it) may fetch nothing.
 */
function egressFor(config: Readonly<Config>, issuers: readonly TrustedIssuer[]) {
  const none = compileEgress('none');
  const unauthenticated = compileEgress(
    'auth-disabled',
    config.fhirServerAllowlist,
    config.fhirAllowedNetworks,
  );
  const byIss = new Map(issuers.map((i) => [i.iss, i.egress ?? none]));
  return (client: CdsClient | null) =>
    client === null ? (config.authDisabled ? unauthenticated : none) : (byIss.get(client.iss) ?? none);
}

/**
 * Builds the application.
 * @throws CdsError CDS_ERR_DEFINITION_INVALID / CDS_ERR_MODEL_INVALID when a service definition, a value
 *   set or a model is invalid; Error when a TLS file or the trusted issuers file cannot be read or the
 *   audit store cannot be opened. Nothing is left open.
 */
export async function buildApp(
  config: Readonly<Config>,
  overrides: AppOverrides = {},
): Promise<FastifyInstance> {
  // Start-up is all-or-nothing: every file is read and checked first (TLS key and certificate, trusted
  // issuers, models and their ONNX files' sha256, value sets, service definitions; the settings were
  // checked by loadConfig), and only then are resources opened (ONNX sessions, the audit store and its
  // worker); those already open are closed if a later one fails.
  const https = httpsOptions(config);
  const issuers =
    config.authDisabled || config.trustedIssuersFile === undefined
      ? []
      : loadTrustedIssuers(config.trustedIssuersFile);
  // The app's own FHIRPath engine: its clock slot and caches are shared with no other app. Its trees
  // are read here, for this app (a cache: any problem with the file means parsing, as without one).
  const stored =
    overrides.parseTreesFile === undefined ? undefined : readParseTrees(overrides.parseTreesFile);
  const fhirpath = createFhirPath(stored?.trees ? { trees: stored.trees } : {});
  // The optional terminology server; its warnings go to the app's log once there is one.
  const terminology =
    config.terminologyUrl === undefined
      ? undefined
      : createRemoteTerminology({
          baseUrl: config.terminologyUrl,
          timeoutMs: config.terminologyTimeoutMs,
          validateTimeoutMs: config.terminologyValidateMs,
          ttlMs: config.terminologyCacheTtlS * 1000,
          warn: (entry, message) => logOf().warn(entry, message),
          info: (entry, message) => logOf().info(entry, message),
        });
  const dirs = terminology ? { ...config, terminology } : config;
  const checked = checkDefinitions(dirs, fhirpath);
  // Without an injected transport, the fallback fetch connects to the addresses its egress check accepted.
  const fhirFetch = createFhirFetch({
    fetch: overrides.fetch,
    resolve: overrides.resolveHost,
    timeoutMs: config.fhirFetchTimeoutMs,
    maxBytes: config.fhirFetchMaxBytes,
    maxPages: config.fhirFetchMaxPages,
    allowHttp: config.fhirServerAllowHttp,
  });

  const now = overrides.now ?? (() => new Date());
  // The parser's refusals are answered before the app exists to log them: the handler finds it later.
  let logOf: () => FastifyInstance['log'] = () => {
    throw new Error('no app yet');
  };
  const app = Fastify({
    https,
    logger: loggerOptions(config, overrides.logStream),
    // Each request's child logger is made only when it writes a line (at warn, most never do).
    childLoggerFactory: deferredChildLogger,
    bodyLimit: config.bodyLimitBytes,
    // Every error body is an OperationOutcome, those of Node's HTTP parser and of the router included.
    clientErrorHandler: clientErrorHandler(() => logOf(), maxHeaderSize),
    frameworkErrors,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Requests arriving while the app closes get CDS_ERR_SHUTTING_DOWN (http/load-shedding.ts).
    return503OnClosing: false,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    // A slow or stalled client must not hold a connection forever.
    connectionTimeout: 30_000,
    requestTimeout: 30_000,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  }) as unknown as FastifyInstance;
  logOf = () => app.log;
  if (stored) {
    const { parsed, stored: found } = fhirpath.counts;
    const file = overrides.parseTreesFile;
    if (stored.trees)
      app.log.info({ file, stored: found, parsed }, 'FHIRPath parse trees read from the build');
    else
      app.log.info(
        { file, reason: stored.reason, parsed },
        'FHIRPath parse trees not used: every expression was parsed',
      );
  }
  // Start-up waits for the expansions at most the terminology timeout; it never fails for them.
  await terminology?.refresh();
  const { live, audit, ownWorker } = await openResources(dirs, config, checked, fhirpath, app.log, overrides);
  // Fastify runs onClose hooks last-registered first: the models' sessions, the audit trail, its worker.
  if (ownWorker) app.addHook('onClose', () => ownWorker.close());
  app.addHook('onClose', () => audit.close());
  app.addHook('onClose', () => live.close());
  try {
    // CDS clients send application/json; some send the FHIR media type. Both are parsed the same way
    // (`request/json-body.ts`: any __proto__ or constructor key is refused), and nothing else is
    // accepted (Fastify's built-in text/plain parser would let a string through).
    app.removeContentTypeParser(['application/json', 'text/plain']);
    // The bytes are kept on the request: the audit hashes them as received (`audit/inputs.ts`).
    app.decorateRequest('rawBody', null);
    app.addContentTypeParser(
      ['application/json', 'application/fhir+json'],
      { parseAs: 'buffer' },
      (request, body, done) => {
        try {
          request.rawBody = body as Buffer;
          done(null, parseJsonBody((body as Buffer).toString('utf8')));
        } catch (error) {
          done(error as Error, undefined);
        }
      },
    );
    // First of the hooks: a request beyond the limits is refused before anything else is done for it.
    registerLoadShedding(app, config);
    app.addHook('onSend', async (request, reply) => {
      reply.header('x-request-id', request.id);
    });
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? '*' : [...config.corsOrigins],
      methods: ['GET', 'POST', 'OPTIONS'],
      allowedHeaders: ['Content-Type', 'Authorization', 'Accept-Language'],
      maxAge: 600,
      // A bare OPTIONS (no Origin) gets an empty 204 rather than the plugin's own text/plain 400, so
      // every error body the service sends stays an OperationOutcome.
      strictPreflight: false,
    });
    // Several instances behind a load balancer share the audit database: they share the replay cache
    // too. During the store's outage, this instance's memory (logged, counted in /metrics). The workers
    // of a cluster on SQLite share the primary's memory instead (`clusterReplay`).
    const memoryReplay = createMemoryReplayCache({ maxEntries: config.jtiCacheMaxEntries, now });
    const degradingReplay =
      config.databaseUrl || (overrides.clusterMetrics && !overrides.clusterReplay)
        ? createDegradingReplayCache({
            shared: {
              claim: (key: string, expiresAt: Date) => {
                const [iss = '', jti = ''] = key.split('\u0000');
                return audit.store.rememberJti(iss, jti, expiresAt, now());
              },
            },
            memory: memoryReplay,
            log: app.log,
            // Wall time, not the (possibly frozen) request clock: this paces retries of the store.
            now: () => new Date(),
          })
        : undefined;
    const replayCache = overrides.replayCache ?? overrides.clusterReplay ?? degradingReplay ?? memoryReplay;
    await registerEdge(app, config);
    const authenticate = clientAuthentication(app, config, {
      issuers,
      replayCache,
      fetch: overrides.fetch ?? globalThis.fetch,
      now,
    });
    registerErrorHandlers(app, config.bodyLimitBytes, config.storeRetryAfterS);
    const publicUrl = config.publicUrl ?? `http://${config.host}:${config.port}`;
    // Per instance and in memory: see README "Explanation pages".
    const explanations = createExplanations({
      signer: createLinkSigner({ key: config.explanationKey, ttlS: config.explanationTtlS, now }),
      store: createExplanationStore(config.explanationMaxEntries, now),
      publicUrl,
      now,
      // A link published by another instance sharing the store; a store that does not answer: 404 page.
      shared: (uuid, nowS) =>
        audit
          .use((store) => store.findExplanation(uuid, nowS))
          .catch((error: unknown) => {
            app.log.warn({ code: (error as { code?: unknown }).code }, 'explanation store unavailable');
            return null;
          }),
    });
    const { observeCall } = registerOps(app, {
      config,
      live,
      audit,
      ...(overrides.clusterMetrics ? { clusterMetrics: overrides.clusterMetrics } : {}),
      replayDegraded: () => degradingReplay?.degradedClaims ?? 0,
      ...(terminology ? { terminology: () => terminology.stats() } : {}),
    });
    registerRoutes(app, {
      registry: live.registry,
      defaultLanguage: config.defaultLanguage,
      models: live.models,
      pipeline: {
        fhirFetch,
        egress: egressFor(config, issuers),
        now,
        uuid: overrides.uuid ?? randomUUID,
        publicUrl,
        explanations,
        audit,
        observe: observeCall,
      },
      audit,
      authenticate,
      ...(overrides.cdsRoutes ? { cdsRoutes: overrides.cdsRoutes } : {}),
      analyticsToken: config.analyticsToken,
      explanations,
      governance: {
        versions: live.versions,
        approvedModelsFile: config.approvedModelsFile,
        reportsDir: config.reportsDir,
        reportMinCell: config.reportMinCell,
      },
    });
    return app;
  } catch (error) {
    // A step after the resources were opened failed: close them (the hooks above) before giving up.
    await app.close();
    throw error;
  }
}

/**
 * The operations side of the HTTP shell: the hooks that feed the metrics (`ops/metrics.ts`),
 * `app.reloadDefinitions()` (which `POST /admin/reload` and SIGHUP in main.ts both call; a reload is
 * logged either way: what is now served, or the loader's error and that the running set is unchanged),
 * and the operations endpoints, outside `/cds-services` (no CDS client JWT):
 * - `GET /metrics`: Prometheus exposition; open, or behind `Authorization: Bearer <metricsToken>` when
 *   that is configured;
 * - `GET /health/live`: the process answers (200);
 * - `GET /health/ready`: services and models loaded, the audit store answering and taking records
 *   (not failing: `audit-writer.ts`) → 200, else 503;
 * - `POST /admin/reload`: loads cds-services/ and models/ again and swaps them in if all is valid
 *   (`Authorization: Bearer <adminToken>`); without an adminToken the route answers 404 like an unknown
 *   route.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Feedback } from '../cds-hooks.js';
import type { Config } from '../config.js';
import { CdsError } from '../errors.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import type { LiveSet, ReloadResult } from '../ops/live-set.js';
import { type CallObserver, createMetrics, type Metrics, type MetricsDeps } from '../ops/metrics.js';
import { presentedCredential } from './analytics.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Loads cds-services/ and models/ again and swaps them in when everything is valid.
     * @throws CdsError (the loader's) naming the file; the running set is unchanged
     */
    reloadDefinitions(): Promise<ReloadResult>;
  }
}

const FEEDBACK_ROUTE = '/cds-services/:id/feedback';

interface OpsRouteDeps {
  metrics: Metrics;
  live: Pick<LiveSet, 'registry' | 'models'>;
  /** Reloads and logs the outcome (the same function SIGHUP calls). */
  reload: () => Promise<ReloadResult>;
  audit: Pick<AuditTrail, 'store' | 'failing'>;
  metricsToken: string | undefined;
  adminToken: string | undefined;
}

const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();

/** Refuses the request unless it carries `Bearer <token>` (compared in constant time). */
function requireBearer(request: FastifyRequest, reply: FastifyReply, token: string): void {
  const given = presentedCredential(request.headers.authorization);
  if (given === undefined || !timingSafeEqual(digest(given), digest(token))) {
    reply.header('www-authenticate', 'Bearer realm="cds-operations"');
    throw new CdsError('CDS_ERR_OPS_UNAUTHORIZED');
  }
}

function registerOpsRoutes(app: FastifyInstance, deps: OpsRouteDeps): void {
  app.get('/metrics', async (request, reply) => {
    if (deps.metricsToken) requireBearer(request, reply, deps.metricsToken);
    const { contentType, text } = await deps.metrics.render();
    return reply.header('cache-control', 'no-store').type(contentType).send(text);
  });

  app.get('/health/live', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    return { status: 'live' };
  });

  app.get('/health/ready', async (_request, reply) => {
    reply.header('cache-control', 'no-store');
    try {
      await deps.audit.store.ping();
    } catch (error) {
      throw new CdsError('CDS_ERR_STORE_UNAVAILABLE', {}, { cause: error });
    }
    // The store may answer a ping and still refuse writes (disk full, read-only): never claim health
    // while audit records cannot be written.
    if (deps.audit.failing()) throw new CdsError('CDS_ERR_STORE_UNAVAILABLE');
    return {
      status: 'ready',
      services: deps.live.registry.services.length,
      models: deps.live.models.size,
    };
  });

  app.post('/admin/reload', async (request, reply) => {
    reply.header('cache-control', 'no-store');
    if (!deps.adminToken) {
      throw new CdsError('CDS_ERR_ROUTE_NOT_FOUND', { method: 'POST', url: '/admin/reload' });
    }
    requireBearer(request, reply, deps.adminToken);
    return { reloaded: true, ...(await deps.reload()) };
  });
}

/** The catalogue code an error body names (`issue[0].details.coding[0].code`), else "unknown". */
export function errorCodeOf(payload: string): string {
  try {
    const body = JSON.parse(payload) as { issue?: { details?: { coding?: { code?: unknown }[] } }[] };
    const found = body.issue?.[0]?.details?.coding?.[0]?.code;
    if (typeof found === 'string' && /^CDS_ERR_[A-Z_]+$/.test(found)) return found;
  } catch {
    // Not JSON: counted as unknown.
  }
  return 'unknown';
}

/** The hooks that feed the metrics from every answer. */
function registerMetricsHooks(app: FastifyInstance, metrics: Metrics): void {
  const serviceIdOf = (request: FastifyRequest) => (request.params as { id?: string } | undefined)?.id;
  app.addHook('onResponse', async (request, reply) => {
    metrics.observeAnswer({
      route: request.routeOptions.url ?? 'unmatched',
      method: request.method,
      status: reply.statusCode,
      seconds: reply.elapsedTime / 1000,
      serviceId: serviceIdOf(request),
    });
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (reply.statusCode >= 400 && typeof payload === 'string') {
      metrics.countError(errorCodeOf(payload), reply.statusCode);
    }
    return payload;
  });
  app.addHook('preSerialization', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    if (request.routeOptions.url !== FEEDBACK_ROUTE || reply.statusCode !== 200) return payload;
    const items = (request.body as { feedback: Feedback[] }).feedback;
    metrics.countFeedback(
      serviceIdOf(request),
      items.map((item) => item.outcome),
      (payload as { duplicates: number }).duplicates,
    );
    return payload;
  });
}

export interface OpsOptions {
  config: Pick<Config, 'metricsToken' | 'adminToken'>;
  live: LiveSet;
  audit: Pick<AuditTrail, 'store' | 'backlog' | 'failing'>;
  /** Claims the JWT replay cache made in memory during an outage of the shared one. */
  replayDegraded?: () => number;
  /** In a cluster worker: see `MetricsDeps.cluster`. */
  clusterMetrics?: MetricsDeps['cluster'];
  /** The terminology server's counts, when one is configured. */
  terminology?: MetricsDeps['terminology'];
}

/**
 * Registers the metrics hooks, `reloadDefinitions` and the operations routes; call it before the CDS
 * routes (the hooks must see them).
 * @returns the observer the pipeline tells about every answered call
 */
export function registerOps(app: FastifyInstance, options: OpsOptions): { observeCall: CallObserver } {
  const { config, live, audit } = options;
  const metrics = createMetrics({
    services: live.registry,
    backlog: () => audit.backlog(),
    failing: () => audit.failing(),
    replayDegraded: options.replayDegraded ?? (() => 0),
    ...(options.clusterMetrics ? { cluster: options.clusterMetrics } : {}),
    ...(options.terminology ? { terminology: options.terminology } : {}),
  });
  registerMetricsHooks(app, metrics);

  const reload = async (): Promise<ReloadResult> => {
    try {
      const result = await live.reload();
      app.log.info(
        { services: result.services, models: result.models.map((m) => `${m.id} ${m.version}`) },
        'services and models reloaded',
      );
      return result;
    } catch (error) {
      app.log.error(
        {
          code: error instanceof CdsError ? error.code : 'unexpected',
          reason: (error as Error).message,
        },
        'reload refused: the running services and models are unchanged',
      );
      throw error;
    }
  };
  app.decorate('reloadDefinitions', reload);

  registerOpsRoutes(app, {
    metrics,
    live,
    reload,
    audit,
    metricsToken: config.metricsToken,
    adminToken: config.adminToken,
  });
  return { observeCall: metrics.observeCall };
}

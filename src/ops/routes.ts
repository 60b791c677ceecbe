/**
 * Operations endpoints, outside `/cds-services` (no CDS client JWT):
 * - `GET /metrics`: Prometheus exposition; open, or behind `Authorization: Bearer <metricsToken>` when
 *   that is configured;
 * - `GET /health/live`: the process answers (200);
 * - `GET /health/ready`: services and models loaded and the audit store answering → 200, else 503;
 * - `POST /admin/reload`: loads cds-services/ and models/ again and swaps them in if all is valid
 *   (`Authorization: Bearer <adminToken>`); without an adminToken the route answers 404 like an unknown
 *   route.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CdsError } from '../errors.js';
import { presentedCredential } from '../http/analytics.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import type { LiveSet, ReloadResult } from './live-set.js';
import type { Metrics } from './metrics.js';

export interface OpsDeps {
  metrics: Metrics;
  live: Pick<LiveSet, 'registry' | 'models'>;
  /** Reloads and logs the outcome (the same function SIGHUP calls). */
  reload: () => Promise<ReloadResult>;
  audit: Pick<AuditTrail, 'store'>;
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

export function registerOpsRoutes(app: FastifyInstance, deps: OpsDeps): void {
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

/**
 * Wires the operations side into an app: metrics hooks, the health and admin routes, and
 * `app.reloadDefinitions()`, which `POST /admin/reload` and SIGHUP (main.ts) both call. A reload is
 * logged either way: what is now served, or the loader's error (file and reason) and that the running
 * set is unchanged.
 */
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { CdsError } from '../errors.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import type { LiveSet, ReloadResult } from './live-set.js';
import { type CallObserver, registerMetrics } from './metrics.js';
import { registerOpsRoutes } from './routes.js';

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Loads cds-services/ and models/ again and swaps them in when everything is valid.
     * @throws CdsError (the loader's) naming the file; the running set is unchanged
     */
    reloadDefinitions(): Promise<ReloadResult>;
  }
}

export interface OpsOptions {
  config: Pick<Config, 'metricsToken' | 'adminToken'>;
  live: LiveSet;
  audit: Pick<AuditTrail, 'store' | 'backlog'>;
}

/** Registers everything; call it before the CDS routes (the hooks must see them). */
export function registerOps(app: FastifyInstance, options: OpsOptions): { observeCall: CallObserver } {
  const { config, live, audit } = options;
  const metrics = registerMetrics(app, { services: live.registry, backlog: () => audit.backlog() });

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
  app.addHook('onClose', () => live.close());

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

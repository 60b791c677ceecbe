/**
 * The route table. The CDS Hooks endpoints (discovery, service calls, feedback) live in one
 * encapsulated plugin scope under `/cds-services`, with client authentication as that scope's
 * `onRequest` hook (`auth.ts`); the explanation pages, the model cards and the governance team's
 * analytics live outside it, with their own credentials or none.
 */
import type { FastifyInstance, FastifyPluginAsync, onRequestAsyncHookHandler } from 'fastify';
import type { AuditTrail } from '../audit/audit-trail.js';
import type { Explanations } from '../explanation-pages/publish.js';
import type { Language } from '../language.js';
import type { PipelineDeps } from '../pipeline.js';
import type { ModelRegistry } from '../scoring/load.js';
import type { Registry } from '../services/registry.js';
import { registerAnalytics } from './analytics.js';
import { CDS_PREFIX } from './auth.js';
import { notFound } from './error-handler.js';
import { registerExplanationRoutes } from './explanations.js';
import { feedbackHandler } from './feedback.js';
import { registerModelRoutes } from './models.js';
import { serviceCallHandler } from './service-call.js';

export interface RouteDeps {
  registry: Registry;
  models: ModelRegistry;
  pipeline: Omit<PipelineDeps, 'log'>;
  defaultLanguage: Language;
  audit: AuditTrail;
  /** The client authentication hook of the CDS scope; null when authentication is disabled. */
  authenticate: onRequestAsyncHookHandler | null;
  /** More routes served inside the CDS scope, so authenticated (paths relative to `/cds-services`). */
  cdsRoutes?: readonly FastifyPluginAsync[];
  /** The governance team's credential; analytics answer 404 without it. */
  analyticsToken: string | undefined;
  /** The explanation pages of model-based cards (signed links, outside /cds-services). */
  explanations: Explanations;
  /** Every model version on disk, by `modelKey(id, version)`, and the governance page's settings. */
  governance?: {
    versions: ModelRegistry;
    approvedModelsFile: string | undefined;
    reportsDir: string | undefined;
    reportMinCell: number;
  };
}

/** Marks the CDS scope and its children (decorators are inherited downwards only). */
const CDS_SCOPE = 'cdsScope';

const underCdsPrefix = (url: string) => url === CDS_PREFIX || url.startsWith(`${CDS_PREFIX}/`);

export function registerRoutes(app: FastifyInstance, deps: RouteDeps): void {
  // A /cds-services route registered anywhere else would not be authenticated: refuse it at start-up.
  app.addHook('onRoute', function (route) {
    if (underCdsPrefix(route.url) && !this.hasDecorator(CDS_SCOPE)) {
      throw new Error(`${route.url}: a CDS route must be registered inside the authenticated CDS scope`);
    }
  });
  app.register(
    async (scope) => {
      scope.decorate(CDS_SCOPE, true);
      if (deps.authenticate) scope.addHook('onRequest', deps.authenticate);
      scope.get('', async () => deps.registry.discovery);
      scope.post('/:id', serviceCallHandler(deps.registry, deps.pipeline, deps.defaultLanguage));
      scope.post('/:id/feedback', feedbackHandler(deps.registry, deps.audit, deps.pipeline.now));
      for (const routes of deps.cdsRoutes ?? []) await scope.register(routes);
      // Unknown paths under the prefix are authenticated first, like every CDS route: an
      // unauthenticated caller learns nothing about which paths exist.
      scope.setNotFoundHandler(notFound);
    },
    { prefix: CDS_PREFIX },
  );
  registerAnalytics(app, {
    audit: deps.audit,
    token: deps.analyticsToken,
    now: deps.pipeline.now,
    ...(deps.governance
      ? { governance: { ...deps.governance, models: deps.models, defaultLanguage: deps.defaultLanguage } }
      : {}),
  });
  registerModelRoutes(app, deps.models, deps.defaultLanguage);
  registerExplanationRoutes(app, {
    explanations: deps.explanations,
    models: deps.models,
    publicUrl: deps.pipeline.publicUrl,
  });
}

/**
 * The route table. CDS Hooks endpoints: discovery, service calls and feedback (authentication comes
 * with its own issue and will sit in the same scope); the governance team's analytics, outside it.
 */
import type { FastifyInstance } from 'fastify';
import type { PipelineDeps, ServiceOutcome } from '../pipeline.js';
import type { CompiledService } from '../services/load.js';
import type { ModelRegistry } from '../scoring/load.js';
import type { Registry } from '../services/registry.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import type { Explanations } from '../explanation-pages/publish.js';
import { registerAnalytics } from './analytics.js';
import { registerExplanationRoutes } from './explanations.js';
import { feedbackHandler } from './feedback.js';
import { registerModelRoutes } from './models.js';
import { serviceCallHandler } from './service-call.js';
import type { Language } from '../language.js';

export interface RouteDeps {
  registry: Registry;
  models: ModelRegistry;
  pipeline: Omit<PipelineDeps, 'log'>;
  defaultLanguage: Language;
  audit: AuditTrail;
  /** The governance team's credential; analytics answer 404 without it. */
  analyticsToken: string | undefined;
  /** Told about every answered service call (metrics). */
  observeCall?: (service: CompiledService, outcome: ServiceOutcome) => void;
  /** The explanation pages of model-based cards (signed links, outside /cds-services). */
  explanations: Explanations;
}

export function registerRoutes(app: FastifyInstance, deps: RouteDeps): void {
  app.get('/cds-services', async () => deps.registry.discovery);
  app.post<{ Params: { id: string } }>(
    '/cds-services/:id',
    serviceCallHandler(deps.registry, deps.pipeline, deps.defaultLanguage, deps.audit, deps.observeCall),
  );
  app.post<{ Params: { id: string } }>(
    '/cds-services/:id/feedback',
    feedbackHandler(deps.registry, deps.audit, deps.pipeline.now),
  );
  registerAnalytics(app, { audit: deps.audit, token: deps.analyticsToken, now: deps.pipeline.now });
  registerModelRoutes(app, deps.models);
  registerExplanationRoutes(app, {
    explanations: deps.explanations,
    models: deps.models,
    publicUrl: deps.pipeline.publicUrl,
  });
}

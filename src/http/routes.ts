/**
 * The route table. CDS Hooks endpoints: discovery and service calls (feedback and authentication
 * come with their own issues and will sit in the same scope).
 */
import type { FastifyInstance } from 'fastify';
import type { Language } from '../cards/detail.js';
import type { PipelineDeps } from '../pipeline.js';
import type { ModelRegistry } from '../models/load.js';
import type { Registry } from '../services/registry.js';
import { registerModelRoutes } from './models.js';
import { serviceCallHandler } from './service-call.js';

export interface RouteDeps {
  registry: Registry;
  models: ModelRegistry;
  pipeline: Omit<PipelineDeps, 'log'>;
  defaultLanguage: Language;
}

export function registerRoutes(app: FastifyInstance, deps: RouteDeps): void {
  app.get('/cds-services', async () => deps.registry.discovery);
  app.post<{ Params: { id: string } }>(
    '/cds-services/:id',
    serviceCallHandler(deps.registry, deps.pipeline, deps.defaultLanguage),
  );
  registerModelRoutes(app, deps.models);
}

/**
 * Model cards, public like the discovery document: `GET /models` lists the loaded models,
 * `GET /models/{id}/model-card` serves the card as markdown and `…/model-card.json` as JSON. Every
 * model-based card links here (card `source.url` and `links`), so a clinician can always see what the
 * estimate is, what it was trained on and that the bundled models are demonstrations.
 */
import type { FastifyInstance } from 'fastify';
import { CdsError } from '../errors.js';
import type { LoadedModel, ModelRegistry } from '../scoring/load.js';

function find(models: ModelRegistry, id: string): LoadedModel {
  const model = models.get(id);
  if (!model)
    throw new CdsError('CDS_ERR_ROUTE_NOT_FOUND', { method: 'GET', url: `/models/${id.slice(0, 64)}` });
  return model;
}

export function registerModelRoutes(app: FastifyInstance, models: ModelRegistry): void {
  app.get('/models', async () => ({
    models: [...models.values()].map(({ manifest: m, sha256 }) => ({
      id: m.id,
      version: m.version,
      title: m.title,
      status: m.status,
      statusText: m.statusText,
      sha256,
      modelCard: `/models/${m.id}/model-card`,
    })),
  }));
  app.get<{ Params: { id: string } }>('/models/:id/model-card', async (request, reply) => {
    const model = find(models, request.params.id);
    return reply.type('text/markdown; charset=utf-8').send(model.card.markdown);
  });
  app.get<{ Params: { id: string } }>('/models/:id/model-card.json', async (request) => {
    return find(models, request.params.id).card.json;
  });
}

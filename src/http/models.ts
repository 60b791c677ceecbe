/**
 * Model cards, public like the discovery document: `GET /models` lists the loaded models,
 * `GET /models/{id}/model-card` serves the card by content negotiation (`Accept`, or `?format=`): an
 * HTML page to a browser, markdown (also the default for `*\/*`) or JSON; `…/model-card.json` is the
 * JSON. The page's language follows `?lang=` or `Accept-Language`. Every
 * model-based card links here (card `source.url` and `links`), so a clinician can always see what the
 * estimate is, what it was trained on and that the bundled models are demonstrations.
 */
import type { FastifyInstance } from 'fastify';
import { CdsError } from '../errors.js';
import { renderModelCardPage } from '../explanation-pages/model-card-page.js';
import type { Language } from '../language.js';
import type { LoadedModel, ModelRegistry } from '../scoring/load.js';
import { PAGE_CSP } from './analytics.js';
import { pickLanguage } from './service-call.js';

type CardFormat = 'html' | 'markdown' | 'json';

const MEDIA: Record<string, CardFormat> = {
  'text/html': 'html',
  'application/xhtml+xml': 'html',
  'text/markdown': 'markdown',
  'text/plain': 'markdown',
  'application/json': 'json',
};

/**
 * The format asked for: `?format=` first, else the `Accept` type of highest quality the card exists
 * in (the first listed on a tie); `*\/*`, no header or only unknown types: markdown, as before.
 */
export function negotiateFormat(accept: string | undefined, format: string | undefined): CardFormat {
  if (format === 'html' || format === 'markdown' || format === 'json') return format;
  const ranked = (accept ?? '')
    .split(',')
    .map((part, index) => {
      const [type = '', ...params] = part.trim().toLowerCase().split(';');
      const q = Number(params.find((p) => p.trim().startsWith('q='))?.split('=')[1] ?? 1);
      return { format: MEDIA[type.trim()], q: Number.isFinite(q) ? q : 0, index };
    })
    .filter((r): r is { format: CardFormat; q: number; index: number } => r.format !== undefined && r.q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index);
  return ranked[0]?.format ?? 'markdown';
}

function find(models: ModelRegistry, id: string): LoadedModel {
  const model = models.get(id);
  if (!model)
    throw new CdsError('CDS_ERR_ROUTE_NOT_FOUND', { method: 'GET', url: `/models/${id.slice(0, 64)}` });
  return model;
}

export function registerModelRoutes(
  app: FastifyInstance,
  models: ModelRegistry,
  defaultLanguage: Language = 'en',
): void {
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
  app.get<{ Params: { id: string }; Querystring: { format?: string; lang?: string } }>(
    '/models/:id/model-card',
    async (request, reply) => {
      const model = find(models, request.params.id);
      const format = negotiateFormat(request.headers.accept, request.query.format);
      reply.header('vary', 'Accept, Accept-Language');
      if (format === 'json') return reply.type('application/json; charset=utf-8').send(model.card.json);
      const { lang: asked } = request.query;
      const lang: Language =
        asked === 'fr' || asked === 'en'
          ? asked
          : pickLanguage(request.headers['accept-language'], defaultLanguage);
      // The card in the reader's language when it exists (a French card is optional).
      const translated = lang === 'fr' && model.card.markdownFr !== undefined;
      const markdown = translated ? model.card.markdownFr! : model.card.markdown;
      if (format === 'markdown') {
        return reply
          .type('text/markdown; charset=utf-8')
          .header('content-language', translated ? 'fr' : 'en')
          .send(markdown);
      }
      const { manifest } = model;
      const page = renderModelCardPage(
        { id: manifest.id, title: manifest.title[lang], markdown, language: translated ? 'fr' : 'en' },
        lang,
      );
      return reply
        .type('text/html; charset=utf-8')
        .header('content-language', lang)
        .header('content-security-policy', PAGE_CSP)
        .send(page);
    },
  );
  app.get<{ Params: { id: string } }>('/models/:id/model-card.json', async (request) => {
    return find(models, request.params.id).card.json;
  });
}

/**
 * `GET /explanations/{uuid}?exp=…&sig=…`: the explanation page of a model-based card. Outside
 * `/cds-services`, so no client JWT: a clinician opens it from the EHR in a browser, and the signed
 * link is the credential. Anything wrong with the link (forged, expired, unknown to this instance)
 * gets the same 404 page, which says nothing about why.
 */
import type { FastifyInstance } from 'fastify';
import { modelCardUrl } from '../cards/render.js';
import type { Explanations } from '../explanation-pages/publish.js';
import { renderExplanationPage } from '../explanation-pages/page.js';
import type { ModelRegistry } from '../scoring/load.js';
import { PAGE_CSP } from './analytics.js';
import type { Language } from '../language.js';

export interface ExplanationRouteDeps {
  explanations: Explanations;
  models: ModelRegistry;
  publicUrl: string;
}

export const NOT_FOUND_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Not found / Introuvable</title></head>
<body><h1>Not found / Introuvable</h1><p>This link is not valid or has expired. / Ce lien n’est pas valide ou a expiré.</p></body></html>
`;

/**
 * The model's intended use in `lang`: from the JSON card in English; in French, the first paragraph
 * under "## Usage prévu" of the French card (none without a French card: no English on a French page).
 */
function intendedUse(models: ModelRegistry, id: string, lang: Language): string | undefined {
  const card = models.get(id)?.card;
  if (lang === 'fr') {
    const section = card?.markdownFr && /^## Usage prévu\s*\n+([^\n#][^\n]*)/m.exec(card.markdownFr);
    return section ? section[1]!.trim() : undefined;
  }
  const json = card?.json as { intendedUse?: unknown } | undefined;
  return typeof json?.intendedUse === 'string' ? json.intendedUse : undefined;
}

export function registerExplanationRoutes(app: FastifyInstance, deps: ExplanationRouteDeps): void {
  app.get<{ Params: { uuid: string }; Querystring: Record<string, unknown> }>(
    '/explanations/:uuid',
    { exposeHeadRoute: false },
    async (request, reply) => {
      reply
        .header('cache-control', 'no-store')
        .header('content-security-policy', PAGE_CSP)
        .type('text/html; charset=utf-8');
      const { uuid } = request.params;
      const { exp, sig, lang } = request.query;
      const stored = uuid.length <= 64 ? await deps.explanations.find(uuid, exp, sig) : undefined;
      const model = stored?.explanation.model;
      if (!stored || !model) return reply.code(404).send(NOT_FOUND_PAGE);
      const language: Language = lang === 'en' || lang === 'fr' ? lang : stored.language;
      const other = language === 'en' ? 'fr' : 'en';
      return renderExplanationPage({
        stored,
        language,
        intendedUse: intendedUse(deps.models, model.model.id, language),
        modelCardUrl: modelCardUrl(deps.publicUrl, model.model.id),
        otherLanguageUrl: `?exp=${String(exp)}&sig=${String(sig)}&lang=${other}`,
      });
    },
  );
}

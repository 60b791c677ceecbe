/**
 * POST /cds-services/{id}: finds the service (404), hands the body, the authenticated client and the
 * language to the pipeline (which validates, runs, audits) and answers `{ cards }`.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { HookResponse } from '../cds-hooks.js';
import { CdsError } from '../errors.js';
import type { Language } from '../language.js';
import { type PipelineDeps, runHook } from '../pipeline.js';
import type { Registry } from '../services/registry.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The JSON body's bytes as received, kept by the body parser (`app.ts`); null without a JSON body.
     * The audit hashes them (`audit/inputs.ts`).
     */
    rawBody: Buffer | null;
  }
}

/** The first of `fr` / `en` in an Accept-Language header, by preference order; else the default. */
export function pickLanguage(header: string | undefined, fallback: Language): Language {
  if (!header) return fallback;
  const ranked = header
    .split(',')
    .map((part, index) => {
      const [tag = '', ...params] = part.trim().toLowerCase().split(';');
      const q = Number(params.find((p) => p.trim().startsWith('q='))?.split('=')[1] ?? 1);
      return { lang: tag.split('-')[0], q: Number.isFinite(q) ? q : 0, index };
    })
    .filter(
      (l): l is { lang: Language; q: number; index: number } =>
        (l.lang === 'fr' || l.lang === 'en') && l.q > 0,
    )
    .sort((a, b) => b.q - a.q || a.index - b.index);
  return ranked[0]?.lang ?? fallback;
}

export function serviceCallHandler(
  registry: Registry,
  deps: Omit<PipelineDeps, 'log'>,
  defaultLanguage: Language,
) {
  return async (
    request: FastifyRequest<{ Params: { id: string } }>,
    reply: FastifyReply,
  ): Promise<HookResponse> => {
    const service = registry.get(request.params.id);
    if (!service)
      throw new CdsError('CDS_ERR_SERVICE_NOT_FOUND', { serviceId: request.params.id.slice(0, 64) });
    const language = pickLanguage(request.headers['accept-language'], defaultLanguage);
    const call = {
      service,
      body: request.body,
      rawBody: request.rawBody ?? undefined,
      client: request.cdsClient,
      language,
    };
    const outcome = await runHook(call, { ...deps, log: request.log });
    reply.header('content-language', language);
    return outcome.response;
  };
}

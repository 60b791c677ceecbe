/**
 * POST /cds-services/{id}: finds the service (404), checks the hook and its context against it (400),
 * runs the pipeline and answers `{ cards }`. The body's general shape was already validated by the
 * route schema.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type HookName, type HookRequest, type HookResponse, KNOWN_HOOKS } from '../cds-hooks.js';
import { CdsError } from '../errors.js';
import { selectionProblem } from '../orders/draft-orders.js';
import { type PipelineDeps, runService, type ServiceOutcome } from '../pipeline.js';
import type { CompiledService } from '../services/load.js';
import type { Registry } from '../services/registry.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import { contextValidatorFor, describeError, validatorFor } from './validate.js';
import type { Language } from '../language.js';

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

/** Checks the hook is known, is the service's hook, and that the context fits that hook. */
export function checkHook(service: CompiledService, body: HookRequest): void {
  if (!(KNOWN_HOOKS as readonly string[]).includes(body.hook)) {
    throw new CdsError('CDS_ERR_HOOK_UNKNOWN', { hook: body.hook.slice(0, 128) }, { expression: ['hook'] });
  }
  if (body.hook !== service.definition.hook) {
    throw new CdsError(
      'CDS_ERR_HOOK_MISMATCH',
      { serviceId: service.definition.id, expected: service.definition.hook, hook: body.hook },
      { expression: ['hook'] },
    );
  }
  const validate = contextValidatorFor(body.hook as HookName);
  if (!validate(body.context)) {
    throw new CdsError('CDS_ERR_CONTEXT_INVALID', {
      hook: body.hook,
      reason: describeError(validate.errors, 'context'),
    });
  }
  const problem = body.hook === 'order-select' ? selectionProblem(body.context) : undefined;
  if (problem) {
    throw new CdsError(
      'CDS_ERR_CONTEXT_INVALID',
      { hook: body.hook, reason: problem },
      {
        expression: ['context.selections'],
      },
    );
  }
}

export function serviceCallHandler(
  registry: Registry,
  deps: Omit<PipelineDeps, 'log'>,
  defaultLanguage: Language,
  audit: Pick<AuditTrail, 'recordServiceCall' | 'recordObjection'>,
  observe?: (service: CompiledService, outcome: ServiceOutcome) => void,
) {
  return async (
    request: FastifyRequest<{ Params: { id: string } }>,
    reply: FastifyReply,
  ): Promise<HookResponse> => {
    const start = process.hrtime.bigint();
    const at = deps.now();
    const service = registry.get(request.params.id);
    if (!service)
      throw new CdsError('CDS_ERR_SERVICE_NOT_FOUND', { serviceId: request.params.id.slice(0, 64) });
    const validate = validatorFor('HookRequest');
    if (!validate(request.body)) {
      throw new CdsError('CDS_ERR_REQUEST_INVALID', { reason: describeError(validate.errors, 'request') });
    }
    const body = request.body as HookRequest;
    checkHook(service, body);
    const log = request.log.child({ serviceId: service.definition.id, hookInstance: body.hookInstance });
    const language = pickLanguage(request.headers['accept-language'], defaultLanguage);
    const outcome = await runService(service, body, language, { ...deps, log });
    observe?.(service, outcome);
    // Written before the cards leave, so feedback on them finds them; never fails the call (the
    // writer queues when the store is down). The caller comes from authentication once it exists.
    const caller = { issuer: request.cdsClient?.iss ?? null, tenant: request.cdsClient?.tenant ?? null };
    await audit.recordServiceCall({
      service,
      request: body,
      outcome,
      caller,
      at,
      latencyMs: Number(process.hrtime.bigint() - start) / 1e6,
      models: outcome.models,
    });
    // An objection is recorded as such, with the Consent's id and no clinical data.
    if (outcome.objection) {
      await audit.recordObjection({
        service,
        request: body,
        consentId: outcome.objection.consentId,
        caller,
        at,
      });
    }
    log.info(
      {
        cards: outcome.response.cards.length,
        timings: outcome.timings,
        fetchedKeys: outcome.fetchedKeys,
        unavailableKeys: outcome.unavailableKeys,
      },
      'hook answered',
    );
    reply.header('content-language', language);
    return outcome.response;
  };
}

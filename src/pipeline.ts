/**
 * The request pipeline after authentication and validation, in order:
 * prefetch → rules → explanation + cards. Framework-free: the HTTP shell, tests and batch tools call
 * it alike. Each stage is timed under its own name, so timings in logs match the code.
 */

import type { Language } from './cards/detail.js';
import { renderCards } from './cards/render.js';
import type { HookRequest, HookResponse } from './cds-hooks.js';
import { consideredDraftOrders } from './orders/draft-orders.js';
import type { FhirFetch } from './prefetch/fhir-fetch.js';
import { resolvePrefetch } from './prefetch/resolve.js';
import { evaluateRules, type RuleErrorReport } from './rules/evaluate.js';
import type { CompiledService } from './services/load.js';
import { digestInputs, type InputsDigest } from './store/inputs.js';

export interface PipelineDeps {
  fhirFetch: FhirFetch;
  now: () => Date;
  uuid: () => string;
  /** Structured, PHI-free log calls (the request's child logger in the HTTP shell). */
  log: { warn(fields: Record<string, unknown>, message: string): void };
}

export interface StageTimings {
  prefetchMs: number;
  rulesMs: number;
  cardsMs: number;
}

export interface ServiceOutcome {
  response: HookResponse;
  timings: StageTimings;
  /** Prefetch keys fetched from fhirServer, and keys that were not available (omitted). */
  fetchedKeys: string[];
  unavailableKeys: string[];
  /** For the audit: hash of the prefetch data used and the references of its resources. */
  inputs: InputsDigest;
}

function since(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * Runs one service call.
 * @throws CdsError for a 4xx the client must see (invalid prefetch, 412 when required data is missing)
 */
export async function runService(
  service: CompiledService,
  request: HookRequest,
  language: Language,
  deps: PipelineDeps,
): Promise<ServiceOutcome> {
  const now = deps.now();

  let start = process.hrtime.bigint();
  const prefetch = await resolvePrefetch(service.prefetch, request, deps.fhirFetch);
  const prefetchMs = since(start);

  start = process.hrtime.bigint();
  const env = {
    ...prefetch.data,
    hookContext: request.context,
    draftOrders: consideredDraftOrders(request.hook, request.context),
    valueSets: service.valueSets,
  };
  const onError = ({ ruleId, error }: RuleErrorReport) =>
    deps.log.warn(
      { serviceId: service.definition.id, ruleId, error: (error as Error).name },
      'rule not evaluable',
    );
  const focuses = evaluateRules(service.rules, service.focus, env, now, onError, service.defines);
  const rulesMs = since(start);

  start = process.hrtime.bigint();
  const cards = renderCards({
    service,
    focuses,
    unavailable: prefetch.unavailable,
    context: request.context,
    language,
    now,
    uuid: deps.uuid,
  });
  const cardsMs = since(start);

  return {
    response: { cards },
    timings: { prefetchMs, rulesMs, cardsMs },
    fetchedKeys: Object.keys(prefetch.sources).filter((k) => prefetch.sources[k] === 'fetched'),
    unavailableKeys: prefetch.unavailable.map((u) => u.key),
    inputs: digestInputs(prefetch.data),
  };
}

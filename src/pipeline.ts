/**
 * The request pipeline after authentication and validation, in order:
 * prefetch → rules → models → explanation + cards → the hash of the inputs for the audit record.
 * Framework-free: the HTTP shell, tests and batch tools call it alike. Each stage is timed under its own
 * name, so timings in logs match the code.
 */

import type { Resource } from 'fhir/r4.js';
import { renderCards } from './cards/render.js';
import type { ExplanationPublisher } from './explanation-pages/publish.js';
import type { HookRequest, HookResponse } from './cds-hooks.js';
import { consideredDraftOrders } from './orders/draft-orders.js';
import type { FhirFetch } from './prefetch/fhir-fetch.js';
import { resolvePrefetch, type UnavailableData } from './prefetch/resolve.js';
import type { LoadedModel } from './scoring/load.js';
import { evaluateRules, type RuleErrorReport } from './rules/evaluate.js';
import { findObjection } from './consent/objection.js';
import { identityOf, type ModelOutcome, scoreSubjects } from './scoring/score.js';
import type { CompiledService } from './services/load.js';
import { digestInputs, type InputsDigest } from './audit/inputs.js';
import type { Language } from './language.js';

export interface PipelineDeps {
  fhirFetch: FhirFetch;
  now: () => Date;
  uuid: () => string;
  /** Base URL of this service as clients reach it (links to model cards). */
  publicUrl: string;
  /** Where the explanations of model-based cards are kept for their pages (none: no link). */
  explanations?: ExplanationPublisher;
  /** Structured, PHI-free log calls (the request's child logger in the HTTP shell). */
  log: { warn(fields: Record<string, unknown>, message: string): void };
}

export interface StageTimings {
  prefetchMs: number;
  rulesMs: number;
  modelsMs: number;
  cardsMs: number;
  /** Hashing the prefetch data for the audit record (canonical JSON + SHA-256). */
  inputsMs: number;
}

export interface ServiceOutcome {
  response: HookResponse;
  timings: StageTimings;
  /** Prefetch keys fetched from fhirServer, and keys that were not available (omitted). */
  fetchedKeys: string[];
  unavailableKeys: string[];
  /** Time taken by each model that scored (by model id): features, inference and explanation. */
  modelMs: Record<string, number>;
  /** The models run (or not run, on an objection) with their versions and file hashes. */
  models: { id: string; version: string; sha256: string }[];
  /** An active objection to algorithmic processing: no model ran. */
  objection: { consentId: string } | null;
  /** For the audit: hash of the prefetch data used and the references of its resources. */
  inputs: InputsDigest;
}

function notRunBecause(model: LoadedModel, missing: readonly UnavailableData[]): ModelOutcome {
  return {
    status: 'not-scored',
    model: identityOf(model),
    reasons: missing.map((u) => ({
      code: 'missing',
      text: { en: `${u.description.en}: not available`, fr: `${u.description.fr} : non disponible` },
    })),
    values: [],
    population: model.manifest.population,
  };
}

/** The resources of a prefetch value: a Bundle's entries, a single resource, or none. */
function resourcesIn(value: unknown): Resource[] {
  if (typeof value !== 'object' || value === null) return [];
  const v = value as { resourceType?: unknown; entry?: { resource?: Resource }[] };
  if (v.resourceType !== 'Bundle') return [value as Resource];
  return (v.entry ?? []).flatMap((e) => (e.resource ? [e.resource] : []));
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
  const objection =
    service.definition.patientObjection === undefined
      ? null
      : findObjection(
          resourcesIn(prefetch.data[service.definition.patientObjection]),
          now,
          typeof request.context.patientId === 'string' ? request.context.patientId : undefined,
        );
  const unavailable = new Map(prefetch.unavailable.map((u) => [u.key, u]));
  const modelMs: Record<string, number> = {};
  for (const model of service.models) {
    // Data that could not be fetched is not data recorded as absent: without it, or without knowing
    // whether the patient objects, the model does not run.
    const keys = [...model.manifest.requires, service.definition.patientObjection!];
    const missing = keys.filter((k) => unavailable.has(k)).map((k) => unavailable.get(k)!);
    let outcomes: ModelOutcome[];
    if (objection) outcomes = focuses.map(() => ({ status: 'objection', model: identityOf(model) }));
    else if (missing.length > 0) {
      outcomes = focuses.map(() => notRunBecause(model, missing));
    } else {
      const scoring = process.hrtime.bigint();
      outcomes = await scoreSubjects(
        model,
        focuses.map((f) => f.subject),
        env,
        now,
      );
      modelMs[model.manifest.id] = since(scoring);
    }
    focuses.forEach((focus, i) => (focus.models ??= []).push(outcomes[i]!));
  }
  const modelsMs = since(start);

  start = process.hrtime.bigint();
  const cards = renderCards({
    service,
    focuses,
    unavailable: prefetch.unavailable,
    context: request.context,
    language,
    now,
    uuid: deps.uuid,
    publicUrl: deps.publicUrl,
    explanations: deps.explanations,
  });
  const cardsMs = since(start);

  start = process.hrtime.bigint();
  const inputs = digestInputs(prefetch.data);
  const inputsMs = since(start);

  return {
    response: { cards },
    timings: { prefetchMs, rulesMs, modelsMs, cardsMs, inputsMs },
    fetchedKeys: Object.keys(prefetch.sources).filter((k) => prefetch.sources[k] === 'fetched'),
    unavailableKeys: prefetch.unavailable.map((u) => u.key),
    modelMs,
    models: service.models.map((m) => ({ id: m.manifest.id, version: m.manifest.version, sha256: m.sha256 })),
    objection,
    inputs,
  };
}

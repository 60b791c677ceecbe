/**
 * The model stage of a call: each model of the service on every focus, or not at all when the patient
 * objects to algorithmic processing (reference/clinical-codes.md §4) or when data it needs could not be
 * fetched. Returns new values: the focuses with their model outcomes, in the order of the service's
 * models.
 */
import type { Resource } from 'fhir/r4.js';
import { findObjection } from '../consent/objection.js';
import type { ScoredFocus } from '../finding.js';
import type { ResolvedPrefetch, UnavailableData } from '../prefetch/resolve.js';
import type { FocusResult } from '../rules/evaluate.js';
import type { CompiledService } from '../services/load.js';
import { timeWith } from '../timing.js';
import type { LoadedModel } from './load.js';
import { identityOf, type ModelOutcome, scoreSubjects } from './score.js';

export interface ScoredFocuses {
  focuses: ScoredFocus[];
  /** An active objection to algorithmic processing: no model ran. */
  objection: { consentId: string } | null;
  /** Time taken by each model that scored (by model id): features, inference and explanation. */
  modelMs: Record<string, number>;
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

/**
 * Runs every model of the service on the focuses.
 * @param env the FHIRPath variables the rules saw (models read their inputs with them)
 * @param patientId the patient of the call; an objection about another patient does not count
 */
export async function scoreFocuses(
  service: CompiledService,
  focuses: readonly FocusResult[],
  prefetch: ResolvedPrefetch,
  env: Readonly<Record<string, unknown>>,
  now: Date,
  patientId: string | undefined,
): Promise<ScoredFocuses> {
  const objectionKey = service.definition.patientObjection;
  const objection =
    objectionKey === undefined
      ? null
      : findObjection(resourcesIn(prefetch.data[objectionKey]), now, patientId);
  const unavailable = new Map(prefetch.unavailable.map((u) => [u.key, u]));
  const modelMs: Record<string, number> = {};
  const byModel: ModelOutcome[][] = [];
  for (const model of service.models) {
    // Data that could not be fetched is not data recorded as absent: without it, or without knowing
    // whether the patient objects, the model does not run.
    const keys = [...model.manifest.requires, objectionKey!];
    const missing = keys.filter((k) => unavailable.has(k)).map((k) => unavailable.get(k)!);
    if (objection) byModel.push(focuses.map(() => ({ status: 'objection', model: identityOf(model) })));
    else if (missing.length > 0) byModel.push(focuses.map(() => notRunBecause(model, missing)));
    else {
      const subjects = focuses.map((f) => f.subject);
      const record = (ms: number) => (modelMs[model.manifest.id] = ms);
      byModel.push(await timeWith(record, () => scoreSubjects(model, subjects, env, now)));
    }
  }
  return {
    focuses: focuses.map((focus, i) => ({ ...focus, models: byModel.map((outcomes) => outcomes[i]!) })),
    objection,
    modelMs,
  };
}

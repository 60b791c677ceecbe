/**
 * Outcome linkage (issue 19): each model estimate of the audit trail (`audit_prediction`) is matched to
 * the data recorded later for the same patient, by the same keyed pseudonym the audit uses, and given
 * the outcome the model's manifest defines (`outcomeDefinition`):
 * - 1 when the expression is true on a resource of its type dated after the estimate and no later
 *   than the horizon after it;
 * - 0 when no such resource exists and the patient has follow-up data dated after the horizon (a
 *   resource of that type, or an Encounter), so the outcome would have been seen;
 * - null otherwise (no follow-up yet, or the patient is not in the data).
 * With an `outcomeDefinition.focus` (per-lesion outcomes), an estimate whose focus key is named by one of
 * the patient's outcome resources takes its outcome from the resources about that focus only (and those
 * naming no focus); otherwise, from all of the patient's resources, as above (`focusEvidence`).
 * What leaves this step is a `LinkedPrediction`: no pseudonym, patient id, birth date or exact date,
 * the ISO week only.
 */
import type { Resource } from 'fhir/r4.js';
import type { StoredPrediction } from '../../src/audit/store.js';
import type { CompiledExpression, FhirPath } from '../../src/rules/fhirpath.js';
import type { OutcomeDefinition } from '../../src/scoring/manifest.js';
import type { LinkedPrediction } from '../../src/governance/types.js';

/** One dated fact about a patient: a resource that shows the outcome, or follow-up without it. */
export interface OutcomeEvidence {
  /** When the resource was recorded (ms since the epoch). */
  at: number;
  /** True when the resource shows the outcome; false for follow-up data without it. */
  shows: boolean;
  /** The keyed focus (lesion) the resource is about, when the definition has a `focus` and it names one. */
  focus?: string;
}

/** The instant `months` calendar months after `at` (UTC). */
export function addMonths(at: Date, months: number): Date {
  const d = new Date(at.getTime());
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  // The 31st plus one month is the last day of the next month, not the 1st of the month after.
  const last = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, last));
  return d;
}

/** The outcome rule above, for an estimate made at `at`. */
export function outcomeOf(
  at: Date,
  horizonMonths: number,
  evidence: readonly OutcomeEvidence[],
): 0 | 1 | null {
  const start = at.getTime();
  const end = addMonths(at, horizonMonths).getTime();
  if (evidence.some((e) => e.shows && e.at > start && e.at <= end)) return 1;
  if (evidence.some((e) => e.at > end)) return 0;
  return null;
}

/** An outcome definition compiled once. */
export interface CompiledOutcome {
  definition: OutcomeDefinition;
  expression: CompiledExpression;
  date: CompiledExpression;
  /** `definition.focus`, compiled: the focus identity a resource is about (with `%resources`). */
  focus?: CompiledExpression;
}

export function compileOutcome(definition: OutcomeDefinition, fhirpath: FhirPath): CompiledOutcome {
  return {
    definition,
    expression: fhirpath.compile(definition.expression, []),
    date: fhirpath.compile(definition.date, []),
    ...(definition.focus === undefined ? {} : { focus: fhirpath.compile(definition.focus, ['resources']) }),
  };
}

/**
 * The resource types a focus expression reads through `%resources.ofType(Type)`: a FHIR server is asked
 * for them too (a folder holds what it holds).
 */
export function focusResourceTypes(definition: OutcomeDefinition): string[] {
  const found = definition.focus?.matchAll(/%resources\s*\.\s*ofType\(\s*([A-Z][A-Za-z]+)\s*\)/g) ?? [];
  return [...new Set([...found].map((m) => m[1]!))];
}

/**
 * The focus identity an outcome resource is about (the first non-empty text `focus` yields), or undefined
 * without a `focus`, when it yields none, or when it cannot read the resource.
 * @param resources the patient's resources, `%resources` of the expression
 */
export function focusIdentityIn(
  resource: Resource,
  outcome: CompiledOutcome,
  resources: readonly Resource[],
  now: Date,
): string | undefined {
  if (!outcome.focus || resource.resourceType !== outcome.definition.resourceType) return undefined;
  try {
    const values = outcome.focus.evaluate(resource, { resources }, now);
    return values.find((v): v is string => typeof v === 'string' && v.trim() !== '');
  } catch {
    return undefined;
  }
}

/** How an estimate was linked: per focus (lesion), or per patient. */
export type LinkedBy = 'focus' | 'patient';

/**
 * The evidence an estimate's outcome is taken from: when the estimate has a focus key and a resource
 * of the patient names that focus, the resources about that focus and those naming none (encounters,
 * reports without a specimen site), linked per focus; otherwise every resource of the patient, linked
 * per patient (a report about another lesion then counts for this one too, as it would without
 * `focus`: the conservative side when the sites are written differently).
 */
export function focusEvidence(
  evidence: readonly OutcomeEvidence[],
  focusKey: string | undefined,
): { by: LinkedBy; evidence: readonly OutcomeEvidence[] } {
  if (focusKey !== undefined && evidence.some((e) => e.focus === focusKey))
    return { by: 'focus', evidence: evidence.filter((e) => e.focus === undefined || e.focus === focusKey) };
  return { by: 'patient', evidence };
}

function dateOf(values: unknown[]): number | undefined {
  for (const v of values) {
    const ms = typeof v === 'string' ? Date.parse(v) : NaN;
    if (!Number.isNaN(ms)) return ms;
  }
  return undefined;
}

/**
 * What one resource says about an outcome: shows it, is follow-up without it, or says nothing (another
 * type, undated, or an expression that cannot read it).
 */
export function evidenceOf(
  resource: Resource,
  outcome: CompiledOutcome,
  now: Date,
): OutcomeEvidence | undefined {
  try {
    if (resource.resourceType === 'Encounter') {
      const at = dateOf([(resource as { period?: { start?: string } }).period?.start]);
      return at === undefined ? undefined : { at, shows: false };
    }
    if (resource.resourceType !== outcome.definition.resourceType) return undefined;
    const at = dateOf(outcome.date.evaluate(resource, {}, now));
    if (at === undefined) return undefined;
    const shows = outcome.expression.evaluate(resource, {}, now).some((v) => v === true);
    return { at, shows };
  } catch {
    return undefined;
  }
}

/**
 * The evidence of one patient's resources for one outcome, each report keyed with the focus it names
 * (`focusKey`: the keyed pseudonym of the patient id and the identity, as the audit keyed the estimate's).
 */
export function patientEvidence(
  resources: readonly Resource[],
  outcome: CompiledOutcome,
  now: Date,
  focusKey: (identity: string) => string | undefined,
): OutcomeEvidence[] {
  return resources.flatMap((r) => {
    const e = evidenceOf(r, outcome, now);
    if (e === undefined) return [];
    const identity = focusIdentityIn(r, outcome, resources, now);
    const key = identity === undefined ? undefined : focusKey(identity);
    return key === undefined ? [e] : [{ ...e, focus: key }];
  });
}

/** Linked estimates per model version and mode, per focus and per patient (outcome known only). */
export interface LinkageCount {
  modelId: string;
  modelVersion: string;
  mode: 'live' | 'silent';
  byFocus: number;
  byPatient: number;
}

/** Counts how the estimates with a known outcome were linked, in first-seen order of model version and mode. */
export function linkageCounts(
  rows: readonly { prediction: StoredPrediction; outcome: 0 | 1 | null; by: LinkedBy }[],
): LinkageCount[] {
  const counts = new Map<string, LinkageCount>();
  for (const { prediction: p, outcome, by } of rows) {
    const key = `${p.model.id}@${p.model.version}|${p.mode}`;
    let c = counts.get(key);
    if (!c) {
      c = { modelId: p.model.id, modelVersion: p.model.version, mode: p.mode, byFocus: 0, byPatient: 0 };
      counts.set(key, c);
    }
    if (outcome === null) continue;
    if (by === 'focus') c.byFocus += 1;
    else c.byPatient += 1;
  }
  return [...counts.values()];
}

/** A stored estimate with its outcome, stripped of the pseudonym, the instant and the focus. */
export function linked(prediction: StoredPrediction, outcome: 0 | 1 | null): LinkedPrediction {
  return {
    serviceId: prediction.serviceId,
    modelId: prediction.model.id,
    modelVersion: prediction.model.version,
    mode: prediction.mode,
    week: prediction.week,
    risk: prediction.risk,
    band: prediction.band,
    positive: prediction.positive,
    inputs: prediction.inputs,
    subgroups: prediction.subgroups,
    outcome,
  };
}

/**
 * Outcome linkage (issue 19): each model estimate of the audit trail (`audit_prediction`) is matched to
 * the data recorded later for the same patient, by the same keyed pseudonym the audit uses, and given
 * the outcome the model's manifest defines (`outcomeDefinition`):
 * - 1 when the expression is true on a resource of its type dated after the estimate and no later
 *   than the horizon after it;
 * - 0 when no such resource exists and the patient has follow-up data dated after the horizon (a
 *   resource of that type, or an Encounter), so the outcome would have been seen;
 * - null otherwise (no follow-up yet, or the patient is not in the data).
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
}

export function compileOutcome(definition: OutcomeDefinition, fhirpath: FhirPath): CompiledOutcome {
  return {
    definition,
    expression: fhirpath.compile(definition.expression, []),
    date: fhirpath.compile(definition.date, []),
  };
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

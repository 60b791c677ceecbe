/**
 * The model estimates of a call as the audit keeps them (issue 19, local validation): for each focus and
 * each model that scored, live or silent, the risk, band, whether it reached the threshold, the top
 * factors, the values given to the model and the model card's subgroups the patient belongs to. Feature
 * values only: no resource, no birth date, no patient id (the event carries the pseudonym).
 */
import type { ScoredFocus } from '../finding.js';
import type { FeatureValue } from '../scoring/features.js';
import type { SubgroupSpec } from '../scoring/manifest.js';
import type { ModelOutcome } from '../scoring/score.js';
import type { ModelLike } from '../services/load.js';
import type { Pseudonymise } from './pseudonym.js';
import type { AuditedPrediction } from './store.js';

/**
 * An estimate as the pipeline hands it to the audit: with the identity of its focus in clear
 * (`focusIdentity`, the focus label: for a lesion, its body site), which the audit event replaces with
 * its keyed pseudonym (`focusKey`) and never stores.
 */
export interface PredictionRecord extends AuditedPrediction {
  focusIdentity?: string;
}

/**
 * The identity of a focus within a patient's record, as both sides of the outcome linkage read it: the
 * focus label of the estimate (a lesion's body site as recorded) and what the model's
 * `outcomeDefinition.focus` yields from a later resource (the body site of the histology's specimen).
 * Case and spacing do not count; an empty text is no identity.
 */
export function focusIdentityOf(text: string | undefined): string | undefined {
  const normalised = text?.trim().replace(/\s+/g, ' ').toLowerCase();
  return normalised ? normalised : undefined;
}

/**
 * The keyed pseudonym of one focus of one patient (`focusKey` of the estimate): the same HMAC as the
 * patient pseudonym, over the patient id and the focus identity, so that neither can be read from it
 * and two patients' lesions on the same site never share a key.
 */
export function focusKeyOf(
  pseudonymise: Pseudonymise,
  patientId: string,
  identity: string | undefined,
): string | undefined {
  const normalised = focusIdentityOf(identity);
  // '#' cannot occur in a FHIR id ([A-Za-z0-9-.]), so no patient pseudonym input takes this form.
  return normalised === undefined ? undefined : pseudonymise(`Patient/${patientId}#${normalised}`);
}

/** The label of a subgroup band: `<55`, `55-64`, `65+` for cuts [55, 65] (as the model cards name them). */
export function bandLabel(value: number, cuts: readonly number[]): string {
  for (let i = 0; i < cuts.length; i += 1) {
    if (value < cuts[i]!) return i === 0 ? `<${cuts[0]}` : `${cuts[i - 1]}-${cuts[i]! - 1}`;
  }
  return `${cuts[cuts.length - 1]}+`;
}

/** The subgroups of one estimate: an imputed or absent value is `not recorded`, an unnamed one `other`. */
export function subgroupsOf(
  specs: readonly SubgroupSpec[],
  values: readonly FeatureValue[],
): Record<string, string> {
  const groups: Record<string, string> = {};
  for (const spec of specs) {
    const v = values.find((f) => f.id === spec.feature);
    if (!v || v.status === 'imputed') groups[spec.id] = 'not recorded';
    else if (spec.cuts) groups[spec.id] = bandLabel(v.value, spec.cuts);
    else groups[spec.id] = spec.labels?.[String(v.value)] ?? 'other';
  }
  return groups;
}

function predictionOf(
  model: ModelLike,
  outcome: ModelOutcome,
  mode: AuditedPrediction['mode'],
  focus: Pick<ScoredFocus, 'reference' | 'label'>,
): PredictionRecord | undefined {
  if (outcome.status !== 'scored') return undefined;
  const topFactors = [...outcome.contributions]
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
    .slice(0, 5)
    .map(({ id, value, contribution }) => ({ id, value, contribution }));
  return {
    model: { id: outcome.model.id, version: outcome.model.version },
    mode,
    ...(focus.reference === undefined ? {} : { focus: focus.reference }),
    risk: outcome.probability,
    band: outcome.band.id,
    positive: outcome.aboveThreshold,
    topFactors,
    inputs: Object.fromEntries(outcome.contributions.map((c) => [c.id, c.value])),
    subgroups: subgroupsOf(model.manifest.subgroups ?? [], outcome.contributions),
    ...(focusIdentityOf(focus.label) === undefined ? {} : { focusIdentity: focusIdentityOf(focus.label) }),
  };
}

/**
 * The estimates of the focuses, in focus order then model order.
 * @param models the models the focuses' outcomes come from, in the same order (`focus.models[i]`)
 */
export function predictionsOf(
  models: readonly ModelLike[],
  focuses: readonly Pick<ScoredFocus, 'models' | 'reference' | 'label'>[],
  mode: AuditedPrediction['mode'],
): PredictionRecord[] {
  return focuses.flatMap((focus) =>
    focus.models.flatMap((outcome, i) => {
      const p = predictionOf(models[i]!, outcome, mode, focus);
      return p ? [p] : [];
    }),
  );
}

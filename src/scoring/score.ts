/**
 * Scoring and explanation. For each subject: extract the features, refuse with reasons when the
 * patient is outside the model's population, an input is missing/implausible under a `refuse`
 * policy or fewer inputs are recorded than the manifest's `minimumRecorded` asks (minimum-recorded.ts),
 * else run the model and split its margin (the log-odds of its output) into per-feature
 * contributions: the Shapley values of the margin against the model's background sample (its
 * reference row when it declares none), one convention for every model (src/explain/shapley.ts):
 * closed form for `linear`, TreeSHAP for `tree`, enumeration or a sampling estimate for `shapley`.
 *
 * Either way: baseline + Σ contributions = logit(model output), which test/scoring/score.test.ts checks.
 */
import { type Extraction, extractFeatures, type FeatureValue, type Refusal } from './features.js';
import { type LoadedModel, logit, predict } from './load.js';
import { minimumRecordedRefusals } from './minimum-recorded.js';
import type { Localized } from '../language.js';
import type { CalibratedRange } from './model-card.js';
import { type ExplanationMethod, shapleyFromCoalitions } from '../explain/shapley.js';

export interface ModelIdentity {
  id: string;
  version: string;
  sha256: string;
  title: Localized;
  status: 'demonstration' | 'validated';
  statusText: Localized;
}

export interface Contribution extends FeatureValue {
  /** On the logit scale: how much this value moved the estimate from the baseline. */
  contribution: number;
  direction: 'raises' | 'lowers' | 'neutral';
}

export interface ScoredOutcome {
  status: 'scored';
  model: ModelIdentity;
  probability: number;
  band: { id: string; label: Localized };
  /** Risk at or above the model card's threshold. */
  aboveThreshold: boolean;
  threshold: number;
  horizonMonths: number;
  outcome: Localized;
  population: Localized;
  method: 'linear' | 'shapley' | 'tree';
  /** Mean logit of the model over the background sample (or at the reference row). */
  baselineLogit: number;
  /** What the contributions are measured against: the background sample, or the reference row. */
  background: { kind: 'sample' | 'reference'; rows: number };
  /** How the Shapley values were computed; `sampling` comes with `samplingError`. */
  computation: ExplanationMethod;
  /** 95% half-width of the error of the least certain contribution (sampling estimate only). */
  samplingError?: number;
  /** Every feature, in manifest order. */
  contributions: Contribution[];
  patientSentence: Localized;
  /**
   * Set when the estimate or an input lies outside the calibrated range stated by the model card
   * (`calibratedRange`): the estimate is less reliable there, and the card says so.
   */
  beyondCalibratedRange?: BeyondCalibratedRange;
}

export interface BeyondCalibratedRange {
  /** The risk, when outside the calibrated risks. */
  risk?: { value: number; min: number; max: number };
  /** The inputs outside their calibrated range, in manifest order. */
  inputs: { id: string; label: Localized; value: number; unit: string; min: number; max: number }[];
  source: string;
}

/** Compares an estimate and its observed inputs with the model card's calibrated range. */
export function beyondCalibratedRange(
  card: unknown,
  probability: number,
  values: readonly FeatureValue[],
): BeyondCalibratedRange | undefined {
  const range = (card as { calibratedRange?: CalibratedRange } | null)?.calibratedRange;
  if (!range) return undefined;
  const outside = (v: number, r: { min: number; max: number }) => v < r.min || v > r.max;
  const risk = outside(probability, range.risk)
    ? { value: probability, min: range.risk.min, max: range.risk.max }
    : undefined;
  const inputs = values.flatMap((v) => {
    const r = range.inputs?.[v.id];
    // Only values read from the record: an imputed value is the card's own stated value.
    if (!r || v.status !== 'observed' || !outside(v.value, r)) return [];
    return [{ id: v.id, label: v.label, value: v.value, unit: v.unit, min: r.min, max: r.max }];
  });
  if (!risk && inputs.length === 0) return undefined;
  return { ...(risk ? { risk } : {}), inputs, source: range.source };
}

export interface NotScoredOutcome {
  status: 'not-scored';
  model: ModelIdentity;
  reasons: Refusal[];
  /** What was found, for the record (no contribution without a score). */
  values: FeatureValue[];
  population: Localized;
}

export interface ObjectionOutcome {
  status: 'objection';
  model: ModelIdentity;
}

export type ModelOutcome = ScoredOutcome | NotScoredOutcome | ObjectionOutcome;

type Env = Readonly<Record<string, unknown>>;

const UNREADABLE: Refusal = {
  code: 'implausible',
  text: {
    en: 'the record holds data the model cannot read',
    fr: 'le dossier contient des données que le modèle ne sait pas lire',
  },
};

export function identityOf(model: LoadedModel): ModelIdentity {
  const m = model.manifest;
  return {
    id: m.id,
    version: m.version,
    sha256: model.sha256,
    title: m.title,
    status: m.status,
    statusText: m.statusText,
  };
}

function direction(c: number): Contribution['direction'] {
  return c > 1e-9 ? 'raises' : c < -1e-9 ? 'lowers' : 'neutral';
}

function bandOf(model: LoadedModel, p: number) {
  const band = model.manifest.bands.find((b) => b.below === undefined || p < b.below)!;
  return { id: band.id, label: band.label };
}

function percent(p: number): string {
  return p < 0.01 ? '<1%' : `${Math.round(p * 100)}%`;
}

function sentence(model: LoadedModel, p: number): Localized {
  const m = model.manifest;
  const fill = (text: string, horizon: string) =>
    text.replaceAll('{risk}', percent(p)).replaceAll('{horizon}', horizon);
  return {
    en: fill(m.patientSentence.en, `${m.horizonMonths} months`),
    fr: fill(m.patientSentence.fr, `${m.horizonMonths} mois`),
  };
}

/**
 * Scores each subject (one batched inference for all of them, plus one per explained subject for
 * Shapley models).
 */
export async function scoreSubjects(
  model: LoadedModel,
  subjects: readonly unknown[],
  env: Env,
  now: Date,
): Promise<ModelOutcome[]> {
  const m = model.manifest;
  const identity = identityOf(model);
  const extractions: Extraction[] = subjects.map((s) => {
    try {
      const extraction = extractFeatures(model.features, model.guards, s, env, now);
      // Outside the population the inputs do not matter (features.ts); otherwise every reason is given.
      if (extraction.refusals.some((r) => r.code === 'out-of-population')) return extraction;
      // No minimum, or none short: the extraction itself, not a copy.
      if (m.minimumRecorded === undefined) return extraction;
      const short = minimumRecordedRefusals(m.minimumRecorded, m.features, extraction.values);
      return short.length === 0
        ? extraction
        : { ...extraction, refusals: [...extraction.refusals, ...short] };
    } catch {
      // Malformed data a FHIRPath comparison cannot handle (e.g. a birthDate given as a dateTime).
      return { values: [], refusals: [UNREADABLE] };
    }
  });
  const scorable = extractions.map((e, index) => ({ e, index })).filter(({ e }) => e.refusals.length === 0);
  // float32 is what the model sees: explanations are computed on the same rounded values.
  const rows = scorable.map(({ e }) => e.values.map((v) => Math.fround(v.value)));
  const probabilities = rows.length > 0 ? await predict(model, rows) : new Float64Array(0);
  const outcomes: ModelOutcome[] = extractions.map((e) => ({
    status: 'not-scored',
    model: identity,
    reasons: e.refusals,
    values: e.values,
    population: m.population,
  }));
  for (let k = 0; k < scorable.length; k += 1) {
    const { e, index } = scorable[k]!;
    const x = rows[k]!;
    const p = probabilities[k]!;
    const explained = await model.explainer.explain(x, async (r) =>
      Float64Array.from(await predict(model, r), logit),
    );
    const phi = explained.phi;
    outcomes[index] = {
      status: 'scored',
      model: identity,
      probability: p,
      band: bandOf(model, p),
      aboveThreshold: p >= m.threshold,
      threshold: m.threshold,
      horizonMonths: m.horizonMonths,
      outcome: m.outcome,
      population: m.population,
      method: m.explanation.method,
      baselineLogit: explained.baseline,
      background: { kind: m.background ? 'sample' : 'reference', rows: model.background.length },
      computation: model.explainer.method,
      ...(explained.error !== undefined ? { samplingError: explained.error } : {}),
      contributions: e.values.map((v, i) => ({
        ...v,
        contribution: phi[i]!,
        direction: direction(phi[i]!),
      })),
      patientSentence: sentence(model, p),
    };
    const beyond = beyondCalibratedRange(model.card.json, p, e.values);
    if (beyond) (outcomes[index] as ScoredOutcome).beyondCalibratedRange = beyond;
  }
  return outcomes;
}

export { percent as formatRisk, shapleyFromCoalitions };

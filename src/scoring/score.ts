/**
 * Scoring and explanation. For each subject: extract the features, refuse with reasons when the
 * patient is outside the model's population or an input is missing/implausible under a `refuse`
 * policy, else run the model and split its output into per-feature contributions on the logit scale:
 *
 * - `linear` (logistic models): contribution_i = coefficient_i × (value_i − reference_i); they sum with
 *   the baseline (the logit at the reference row) to the model's logit. The loader has checked the
 *   coefficients against the ONNX model itself.
 * - `shapley` (any model, e.g. ai.onnx.ml tree ensembles): exact Shapley values of the game
 *   v(S) = logit f(x_S, reference_rest), computed by enumerating all 2^F coalitions in one batched
 *   inference. Efficiency makes them sum exactly to logit f(x) − logit f(reference).
 *
 * Either way: baseline + Σ contributions = logit(model output), which test/models/score.test.ts checks.
 */
import { type Extraction, extractFeatures, type FeatureValue, type Refusal } from './features.js';
import { type LoadedModel, logit, predict } from './load.js';
import type { Localized } from '../language.js';

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
  method: 'linear' | 'shapley';
  /** Logit of the model at the reference row. */
  baselineLogit: number;
  /** Every feature, in manifest order. */
  contributions: Contribution[];
  patientSentence: Localized;
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

/** Shapley weights |S|!(F−|S|−1)!/F! by coalition size. */
function shapleyWeights(f: number): number[] {
  const factorial = [1];
  for (let i = 1; i <= f; i += 1) factorial.push(factorial[i - 1]! * i);
  return Array.from({ length: f }, (_, s) => (factorial[s]! * factorial[f - s - 1]!) / factorial[f]!);
}

/** Rows of every coalition: bit i of the row index set → feature i takes the patient's value. */
function coalitionRows(x: readonly number[], reference: readonly number[]): number[][] {
  const f = x.length;
  const rows: number[][] = [];
  for (let mask = 0; mask < 1 << f; mask += 1) {
    rows.push(x.map((v, i) => (mask & (1 << i) ? v : reference[i]!)));
  }
  return rows;
}

/** Exact Shapley values from the logits of every coalition (index = coalition mask). */
export function shapleyFromCoalitions(values: ArrayLike<number>, f: number): number[] {
  const weights = shapleyWeights(f);
  const phi = new Array<number>(f).fill(0);
  const size = (mask: number) => {
    let n = 0;
    for (let m = mask; m; m &= m - 1) n += 1;
    return n;
  };
  for (let mask = 0; mask < 1 << f; mask += 1) {
    const s = size(mask);
    for (let i = 0; i < f; i += 1) {
      if (mask & (1 << i)) continue;
      phi[i]! += weights[s]! * (values[mask | (1 << i)]! - values[mask]!);
    }
  }
  return phi;
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
      return extractFeatures(model.features, model.guards, s, env, now);
    } catch {
      // Malformed data a FHIRPath comparison cannot handle (e.g. a birthDate given as a dateTime).
      return { values: [], refusals: [UNREADABLE] };
    }
  });
  const scorable = extractions.map((e, index) => ({ e, index })).filter(({ e }) => e.refusals.length === 0);
  // float32 is what the model sees: explanations are computed on the same rounded values.
  const rows = scorable.map(({ e }) => e.values.map((v) => Math.fround(v.value)));
  const reference = m.features.map((f) => Math.fround(f.reference));
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
    let baselineLogit: number;
    let phi: number[];
    if (m.explanation.method === 'linear') {
      const { intercept, coefficients } = m.explanation;
      baselineLogit = reference.reduce((s, r, i) => s + coefficients[i]! * r, intercept);
      phi = x.map((v, i) => coefficients[i]! * (v - reference[i]!));
    } else {
      const coalitions = await predict(model, coalitionRows(x, reference));
      const logits = Array.from(coalitions, logit);
      baselineLogit = logits[0]!;
      phi = shapleyFromCoalitions(logits, x.length);
    }
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
      baselineLogit,
      contributions: e.values.map((v, i) => ({
        ...v,
        contribution: phi[i]!,
        direction: direction(phi[i]!),
      })),
      patientSentence: sentence(model, p),
    };
  }
  return outcomes;
}

export { percent as formatRisk };

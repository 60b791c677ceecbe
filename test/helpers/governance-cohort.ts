/**
 * A seeded cohort of linked predictions with known outcomes, for the governance report's tests: risks drawn
 * from a logistic model over two inputs, outcomes drawn from a deliberately miscalibrated truth
 * (logit P(outcome) = 0.3 + 0.8·logit(risk)), so the calibration slope and intercept are not trivially 1 and 0.
 */
import type { LinkedPrediction } from '../../src/governance/types.js';
import { createRng } from '../../tools/synthetic/random.js';

export const TRUE_INTERCEPT = 0.3;
export const TRUE_SLOPE = 0.8;

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

export interface CohortOptions {
  n: number;
  seed: number;
  modelId?: string;
  modelVersion?: string;
  mode?: 'live' | 'silent';
  threshold?: number;
  /** Shift of the first input (drift against a background drawn with 0). */
  shift?: number;
  /** Share of rows whose outcome is unknown (null). */
  unknown?: number;
}

/** Inputs as the background sample would hold them: age in years, a binary flag. */
export function drawInputs(rng: ReturnType<typeof createRng>, shift = 0): Record<string, number> {
  return { age: Math.round(rng.normal(62 + shift, 8)), female: rng.bool(0.55) ? 1 : 0 };
}

export function cohort(options: CohortOptions): LinkedPrediction[] {
  const rng = createRng(options.seed);
  const rows: LinkedPrediction[] = [];
  for (let i = 0; i < options.n; i++) {
    const inputs = drawInputs(rng, options.shift ?? 0);
    const risk = sigmoid(-2 + 0.06 * (inputs.age! - 62) + 0.4 * inputs.female! + rng.normal(0, 0.7));
    const truth = sigmoid(TRUE_INTERCEPT + TRUE_SLOPE * Math.log(risk / (1 - risk)));
    const outcome = rng.next() < (options.unknown ?? 0) ? null : rng.bool(truth) ? 1 : 0;
    rows.push({
      serviceId: 'knee-oa-progression',
      modelId: options.modelId ?? 'knee-oa-progression',
      modelVersion: options.modelVersion ?? '1.0.0',
      mode: options.mode ?? 'silent',
      week: `2026-W${String(40 + (i % 8)).padStart(2, '0')}`,
      risk,
      band: risk < 0.1 ? 'lower' : risk < 0.25 ? 'intermediate' : 'higher',
      positive: risk >= (options.threshold ?? 0.25),
      inputs,
      subgroups: { sex: inputs.female ? 'female' : 'male', ageBand: inputs.age! < 65 ? '<65' : '65+' },
      outcome,
    });
  }
  return rows;
}

/** A background sample of the same inputs (no shift). */
export function background(n: number, seed: number): Record<string, number>[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => drawInputs(rng));
}

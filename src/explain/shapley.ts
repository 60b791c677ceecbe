/**
 * One convention for every model type: a contribution is the Shapley value of the model's **margin**
 * (the log-odds of its output) in the interventional game against the background sample,
 *
 *     v(S) = (1/N) Σ_z margin(x_S, z_rest),
 *
 * so that baseline + Σ contributions = margin(x), with baseline = v(∅) = the mean margin of the sample.
 * How it is computed depends on the model, never what it means:
 * - `linear` (logistic models): exact in closed form, φ_i = w_i (x_i − mean_z z_i);
 * - `tree` (ai.onnx.ml tree ensembles): exact TreeSHAP (tree-shap.ts);
 * - any other model: exact by enumerating the 2^F coalitions × N background rows in one batched
 *   inference while that is at most {@link MAX_EXPLANATION_ROWS} rows (F ≤ 9 with 100 rows, F ≤ 16
 *   with one), else a sampling estimate: antithetic random feature orders, each background row used
 *   equally often, so that additivity still holds exactly; the 95% half-width of its largest
 *   contribution's error is returned with it (and shown on the explanation).
 */
import type { TreeExplainer } from './tree-shap.js';

/** Margins (log-odds) of the model on rows of feature values. */
export type Margins = (rows: readonly (readonly number[])[]) => Promise<Float64Array>;

export interface Contributions {
  /** Mean margin over the background sample. */
  baseline: number;
  /** One per feature, on the margin scale; baseline + Σ = margin(x). */
  phi: number[];
  /** Sampling estimate only: 95% half-width of the error of the least certain contribution. */
  error?: number;
}

export type ExplanationMethod = 'linear' | 'tree' | 'enumeration' | 'sampling';

export interface ModelExplainer {
  readonly method: ExplanationMethod;
  readonly baseline: number;
  readonly backgroundSize: number;
  /** `margins` runs the model (only enumeration and sampling call it). */
  explain(x: readonly number[], margins: Margins): Promise<Contributions>;
}

/** Most model rows one explanation may run (enumeration, or the budget of the sampling estimate). */
export const MAX_EXPLANATION_ROWS = 65_536;

/** Shapley weights |S|!(F−|S|−1)!/F! by coalition size. */
function shapleyWeights(f: number): number[] {
  const factorial = [1];
  for (let i = 1; i <= f; i += 1) factorial.push(factorial[i - 1]! * i);
  return Array.from({ length: f }, (_, s) => (factorial[s]! * factorial[f - s - 1]!) / factorial[f]!);
}

/** Exact Shapley values from the value of every coalition (index = coalition mask). */
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

/** Closed form for a logistic model: exact interventional Shapley values. */
export function linearExplainer(
  fit: { intercept: number; coefficients: readonly number[] },
  background: readonly (readonly number[])[],
): ModelExplainer {
  const F = fit.coefficients.length;
  const means = Array.from({ length: F }, (_, i) => {
    let sum = 0;
    for (const z of background) sum += z[i]!;
    return sum / background.length;
  });
  if (means.some((m) => !Number.isFinite(m)))
    throw new Error('the background of a linear model cannot hold missing values');
  const baseline = means.reduce((s, m, i) => s + fit.coefficients[i]! * m, fit.intercept);
  return {
    method: 'linear',
    baseline,
    backgroundSize: background.length,
    explain(x) {
      return Promise.resolve({ baseline, phi: x.map((v, i) => fit.coefficients[i]! * (v - means[i]!)) });
    },
  };
}

/** TreeSHAP behind the common interface. */
export function treeModelExplainer(tree: TreeExplainer): ModelExplainer {
  return {
    method: 'tree',
    baseline: tree.baseline,
    backgroundSize: tree.backgroundSize,
    explain(x) {
      const { phi } = tree.explain(x);
      return Promise.resolve({ baseline: tree.baseline, phi: Array.from(phi) });
    },
  };
}

/** A small seeded generator (mulberry32): the same patient always gets the same estimate. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Any model: exact enumeration when 2^F × N ≤ MAX_EXPLANATION_ROWS, else the sampling estimate.
 * `baseline` is the mean margin of the background, computed once at load by the caller.
 */
export function modelAgnosticExplainer(
  featureCount: number,
  background: readonly (readonly number[])[],
  baseline: number,
): ModelExplainer {
  const F = featureCount;
  const N = background.length;
  if (F <= 20 && (1 << F) * N <= MAX_EXPLANATION_ROWS) {
    return {
      method: 'enumeration',
      baseline,
      backgroundSize: N,
      async explain(x, margins) {
        const rows: number[][] = [];
        for (let mask = 0; mask < 1 << F; mask += 1) {
          for (const z of background) rows.push(z.map((v, i) => (mask & (1 << i) ? x[i]! : v)));
        }
        const m = await margins(rows);
        const values = new Float64Array(1 << F);
        for (let mask = 0; mask < 1 << F; mask += 1) {
          let sum = 0;
          for (let k = 0; k < N; k += 1) sum += m[mask * N + k]!;
          values[mask] = sum / N;
        }
        return { baseline: values[0]!, phi: shapleyFromCoalitions(values, F) };
      },
    };
  }
  // Antithetic pairs per background row; at least two pairs in all so that the error is estimable.
  const pairsPerRow = Math.max(N === 1 ? 2 : 1, Math.floor(MAX_EXPLANATION_ROWS / (N * 2 * (F + 1))));
  const pairs = pairsPerRow * N;
  return {
    method: 'sampling',
    baseline,
    backgroundSize: N,
    async explain(x, margins) {
      const next = random(0x5eed ^ F);
      const orders: number[][] = [];
      const rows: number[][] = [];
      for (let p = 0; p < pairs; p += 1) {
        const z = background[p % N]!;
        const order = Array.from({ length: F }, (_, i) => i);
        for (let i = F - 1; i > 0; i -= 1) {
          const j = Math.floor(next() * (i + 1));
          [order[i], order[j]] = [order[j]!, order[i]!];
        }
        for (const o of [order, [...order].reverse()]) {
          orders.push(o);
          const row = [...z];
          rows.push([...row]);
          for (const i of o) {
            row[i] = x[i]!;
            rows.push([...row]);
          }
        }
      }
      const m = await margins(rows);
      const sums = new Float64Array(F);
      const squares = new Float64Array(F);
      const pair = new Float64Array(F);
      let start = 0;
      for (let p = 0; p < pairs; p += 1) {
        start += m[2 * p * (F + 1)]!;
        pair.fill(0);
        for (let half = 0; half < 2; half += 1) {
          const s = 2 * p + half;
          const at = s * (F + 1);
          orders[s]!.forEach((i, step) => (pair[i]! += (m[at + step + 1]! - m[at + step]!) / 2));
        }
        for (let i = 0; i < F; i += 1) {
          sums[i]! += pair[i]!;
          squares[i]! += pair[i]! ** 2;
        }
      }
      const phi = Array.from(sums, (s) => s / pairs);
      let worst = 0;
      for (let i = 0; i < F; i += 1) {
        const variance = Math.max(0, (squares[i]! - pairs * phi[i]! ** 2) / (pairs - 1));
        worst = Math.max(worst, Math.sqrt(variance / pairs));
      }
      // Each background row is used equally often, so Σφ = margin(x) − mean margin of the sample.
      return { baseline: start / pairs, phi, error: 1.96 * worst };
    },
  };
}

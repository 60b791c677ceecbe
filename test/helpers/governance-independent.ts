/**
 * Independent computations of the governance figures, written another way than src/governance/metrics.ts,
 * for the tests to compare against: the AUC by explicit pair counting (O(n²)) and the logistic
 * recalibration by coordinate-wise bisection on its score equations (no Newton step, no matrix).
 */
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

/** ψ(x, y): 1 when the case scores above the control, ½ on a tie. */
export const pairScore = (x: number, y: number) => (x > y ? 1 : x === y ? 0.5 : 0);

export function pairCountAuc(risks: readonly number[], outcomes: readonly number[]): number {
  const pos = risks.filter((_, i) => outcomes[i] === 1);
  const neg = risks.filter((_, i) => outcomes[i] === 0);
  let sum = 0;
  for (const x of pos) for (const y of neg) sum += pairScore(x, y);
  return sum / (pos.length * neg.length);
}

/** Root of a decreasing function on [lo, hi] by bisection. */
export function bisect(f: (x: number) => number, lo: number, hi: number): number {
  for (let i = 0; i < 200; i++) {
    const mid = (lo + hi) / 2;
    if (f(mid) > 0) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

const logit = (p: number) => {
  const q = Math.min(1 - 1e-12, Math.max(1e-12, p));
  return Math.log(q / (1 - q));
};

/** Calibration-in-the-large and slope, by bisection on the score equations. */
export function bisectionRecalibration(
  risks: readonly number[],
  outcomes: readonly number[],
): { intercept: number; slope: number } {
  const lp = risks.map(logit);
  const intercept = bisect((a) => lp.reduce((s, x, i) => s + outcomes[i]! - sigmoid(a + x), 0), -10, 10);
  let a = 0;
  let b = 1;
  for (let round = 0; round < 500; round++) {
    const a2 = bisect((u) => lp.reduce((s, x, i) => s + outcomes[i]! - sigmoid(u + b * x), 0), -10, 10);
    const b2 = bisect(
      (v) => lp.reduce((s, x, i) => s + x * (outcomes[i]! - sigmoid(a2 + v * x)), 0),
      -10,
      10,
    );
    const moved = Math.abs(a2 - a) + Math.abs(b2 - b);
    a = a2;
    b = b2;
    if (moved < 1e-11) break;
  }
  return { intercept, slope: b };
}

/**
 * The statistics of the governance report (issue 19), pure functions over predicted risks and known
 * outcomes (1 = the outcome occurred within the horizon, 0 = follow-up shows it did not):
 *
 * - discrimination: the AUC as the Mann-Whitney statistic computed from midranks (ties count ½), with the
 *   **DeLong** variance (DeLong, DeLong & Clarke-Pearson, Biometrics 1988;44:837-45) from the placement
 *   values, and a Wald 95 % interval clipped to [0, 1] (as pROC's `ci.auc(method = "delong")`);
 * - calibration: observed against predicted by decile of predicted risk (rows sorted by risk, ties in input
 *   order, cut into ten groups whose sizes differ by at most one: the model cards' tables use the same
 *   cut); the calibration slope (logistic regression of the outcome on logit(risk)) and the calibration
 *   intercept, i.e. calibration-in-the-large (the same regression with logit(risk) as an offset, slope
 *   fixed at 1), both fitted by Newton-Raphson (IRLS) — the definitions the model cards use
 *   (Van Calster et al., J Clin Epidemiol 2016;74:167-76);
 * - classification at the card threshold: sensitivity, specificity, PPV and NPV with Wilson score
 *   intervals (Wilson, JASA 1927; recommended by Brown, Cai & DasGupta, Stat Sci 2001);
 * - drift: the population stability index (PSI) of a distribution against a reference sample, over the
 *   reference's deciles (Siddiqi, Credit Risk Scorecards, 2006: below 0.1 stable, 0.1-0.25 moderate
 *   shift, above 0.25 major shift).
 */

/** Two-sided 95 % normal quantile. */
export const Z95 = 1.959963984540054;

/** Risks are clamped this far from 0 and 1 before taking their logit (as the training tool does). */
const CLAMP = 1e-12;

export interface Interval {
  low: number;
  high: number;
}

export type Outcome = 0 | 1;

function checkPairs(risks: readonly number[], outcomes: readonly Outcome[]): void {
  if (risks.length !== outcomes.length)
    throw new Error(`${risks.length} risks but ${outcomes.length} outcomes`);
  risks.forEach((r, i) => {
    if (!(Number.isFinite(r) && r >= 0 && r <= 1)) throw new Error(`risk ${i} is not a probability`);
  });
}

/** Ranks 1..n of `values`, tied values sharing the mean of their ranks (midranks). */
export function midranks(values: readonly number[]): number[] {
  const order = values.map((_, i) => i).sort((a, b) => values[a]! - values[b]!);
  const ranks = new Array<number>(values.length);
  for (let start = 0; start < order.length;) {
    let end = start;
    while (end < order.length && values[order[end]!] === values[order[start]!]) end++;
    const rank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) ranks[order[k]!] = rank;
    start = end;
  }
  return ranks;
}

export interface AucEstimate {
  auc: number;
  /** DeLong standard error. */
  se: number;
  ci: Interval;
  positives: number;
  negatives: number;
}

/**
 * AUC (Mann-Whitney, midranks) with its DeLong standard error and 95 % interval.
 * @returns null when either class is absent (the AUC is undefined)
 */
export function aucDeLong(risks: readonly number[], outcomes: readonly Outcome[]): AucEstimate | null {
  checkPairs(risks, outcomes);
  const pos = risks.filter((_, i) => outcomes[i] === 1);
  const neg = risks.filter((_, i) => outcomes[i] === 0);
  const m = pos.length;
  const n = neg.length;
  if (m === 0 || n === 0) return null;
  const all = midranks([...pos, ...neg]);
  const withinPos = midranks(pos);
  const withinNeg = midranks(neg);
  // Placement values: V10 = share of negatives below a positive, V01 = share of positives above a
  // negative (ties ½ each); their means are the AUC.
  const v10 = pos.map((_, i) => (all[i]! - withinPos[i]!) / n);
  const v01 = neg.map((_, j) => 1 - (all[m + j]! - withinNeg[j]!) / m);
  const auc = v10.reduce((s, v) => s + v, 0) / m;
  const variance = (v: number[]) =>
    v.length < 2 ? 0 : v.reduce((s, x) => s + (x - auc) ** 2, 0) / (v.length - 1);
  const se = Math.sqrt(variance(v10) / m + variance(v01) / n);
  return {
    auc,
    se,
    ci: { low: Math.max(0, auc - Z95 * se), high: Math.min(1, auc + Z95 * se) },
    positives: m,
    negatives: n,
  };
}

export function logit(p: number): number {
  const q = Math.min(1 - CLAMP, Math.max(CLAMP, p));
  return Math.log(q / (1 - q));
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));

const MAX_ITERATIONS = 50;
const TOLERANCE = 1e-10;

/** Calibration-in-the-large: a in logit P(y) = a + logit(risk), by Newton. */
function interceptInTheLarge(lp: readonly number[], y: readonly Outcome[]): number | null {
  let a = 0;
  for (let it = 0; it < MAX_ITERATIONS; it++) {
    let score = 0;
    let information = 0;
    lp.forEach((x, i) => {
      const p = sigmoid(a + x);
      score += y[i]! - p;
      information += p * (1 - p);
    });
    if (information <= 0) return null;
    const step = score / information;
    a += step;
    if (Math.abs(step) < TOLERANCE) return a;
  }
  return null;
}

/** (a, b) in logit P(y) = a + b·logit(risk), by IRLS (Newton on the 2×2 information matrix). */
function recalibrationFit(lp: readonly number[], y: readonly Outcome[]): { a: number; b: number } | null {
  let a = 0;
  let b = 1;
  for (let it = 0; it < MAX_ITERATIONS; it++) {
    let g0 = 0;
    let g1 = 0;
    let h00 = 0;
    let h01 = 0;
    let h11 = 0;
    lp.forEach((x, i) => {
      const p = sigmoid(a + b * x);
      const r = y[i]! - p;
      const w = p * (1 - p);
      g0 += r;
      g1 += r * x;
      h00 += w;
      h01 += w * x;
      h11 += w * x * x;
    });
    const det = h00 * h11 - h01 * h01;
    if (!(det > 0)) return null;
    const da = (h11 * g0 - h01 * g1) / det;
    const db = (h00 * g1 - h01 * g0) / det;
    a += da;
    b += db;
    if (!Number.isFinite(a) || !Number.isFinite(b)) return null;
    if (Math.abs(da) < TOLERANCE && Math.abs(db) < TOLERANCE) return { a, b };
  }
  return null;
}

/** Whether a threshold on x separates the classes (the slope then has no finite estimate). */
function separable(x: readonly number[], y: readonly Outcome[]): boolean {
  const pos = x.filter((_, i) => y[i] === 1);
  const neg = x.filter((_, i) => y[i] === 0);
  return !(Math.min(...pos) < Math.max(...neg) && Math.min(...neg) < Math.max(...pos));
}

export interface Recalibration {
  /** Calibration slope (1 = ideal; below 1, estimates too extreme). Null when undefined or not converged. */
  slope: number | null;
  /** Calibration-in-the-large (0 = ideal; above 0, risks underestimated). */
  intercept: number | null;
}

/** Calibration slope and intercept by logistic recalibration on logit(risk) (see the header). */
export function recalibration(risks: readonly number[], outcomes: readonly Outcome[]): Recalibration {
  checkPairs(risks, outcomes);
  const events = outcomes.reduce<number>((s, y) => s + y, 0);
  if (events === 0 || events === outcomes.length) return { slope: null, intercept: null };
  const lp = risks.map(logit);
  const intercept = interceptInTheLarge(lp, outcomes);
  const fit = separable(lp, outcomes) ? null : recalibrationFit(lp, outcomes);
  return { slope: fit ? fit.b : null, intercept };
}

export interface DecileRow {
  /** 1 (lowest predicted risks) to 10. */
  decile: number;
  n: number;
  events: number;
  meanPredicted: number;
  observedRate: number;
}

/**
 * Observed against predicted by decile of predicted risk: rows sorted by risk (ties in input order) and
 * cut at floor(k·n/10); groups left empty (fewer than ten rows) are left out.
 */
export function calibrationByDecile(
  risks: readonly number[],
  outcomes: readonly Outcome[],
  groups = 10,
): DecileRow[] {
  checkPairs(risks, outcomes);
  const order = risks.map((_, i) => i).sort((a, b) => risks[a]! - risks[b]! || a - b);
  const rows: DecileRow[] = [];
  for (let g = 0; g < groups; g++) {
    const members = order.slice(
      Math.floor((g * order.length) / groups),
      Math.floor(((g + 1) * order.length) / groups),
    );
    if (members.length === 0) continue;
    const events = members.reduce((s, i) => s + outcomes[i]!, 0);
    rows.push({
      decile: g + 1,
      n: members.length,
      events,
      meanPredicted: members.reduce((s, i) => s + risks[i]!, 0) / members.length,
      observedRate: events / members.length,
    });
  }
  return rows;
}

/**
 * Wilson score interval of k successes out of n.
 * @returns null when n is 0
 */
export function wilson(k: number, n: number, z = Z95): Interval | null {
  if (n === 0) return null;
  const p = k / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  // At k = 0 and k = n the bounds are exactly 0 and 1 (the arithmetic above lands an ulp away).
  return { low: k === 0 ? 0 : centre - half, high: k === n ? 1 : centre + half };
}

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** The confusion matrix of the positive calls (the card threshold reached) against the outcomes. */
export function confusion(positive: readonly boolean[], outcomes: readonly Outcome[]): Confusion {
  const c = { tp: 0, fp: 0, tn: 0, fn: 0 };
  positive.forEach((call, i) => {
    if (outcomes[i] === 1) call ? c.tp++ : c.fn++;
    else call ? c.fp++ : c.tn++;
  });
  return c;
}

/** Floor of a bin's share in the PSI (an empty bin would make it infinite). */
export const PSI_FLOOR = 1e-4;

export interface PsiBin {
  /** Upper edge of the bin (values ≤ it and > the previous edge); null for the last; "missing" for NaN. */
  upTo: number | null | 'missing';
  expected: number;
  actual: number;
}

export interface Psi {
  psi: number;
  bins: PsiBin[];
}

/**
 * Population stability index of `actual` against `expected` (the reference sample), over bins cut at the
 * reference's deciles (distinct values only, so a binary input has two bins), plus one bin for missing
 * values (NaN) when either side has some. Shares below {@link PSI_FLOOR} count as it.
 * @returns null when either side has no value
 */
export function psi(expected: readonly number[], actual: readonly number[]): Psi | null {
  if (expected.length === 0 || actual.length === 0) return null;
  const known = expected.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  const edges = [
    ...new Set(
      [1, 2, 3, 4, 5, 6, 7, 8, 9]
        .map((k) => known[Math.ceil((k / 10) * known.length) - 1])
        .filter((v): v is number => v !== undefined),
    ),
  ];
  const binOf = (v: number) => {
    if (Number.isNaN(v)) return edges.length + 1;
    const i = edges.findIndex((edge) => v <= edge);
    return i < 0 ? edges.length : i;
  };
  const count = (values: readonly number[]) => {
    const counts = new Array<number>(edges.length + 2).fill(0);
    for (const v of values) counts[binOf(v)]!++;
    return counts;
  };
  const e = count(expected);
  const a = count(actual);
  const hasMissing = e[edges.length + 1]! + a[edges.length + 1]! > 0;
  const bins: PsiBin[] = e
    .map((ne, b) => ({
      upTo: b < edges.length ? edges[b]! : b === edges.length ? null : ('missing' as const),
      expected: ne / expected.length,
      actual: a[b]! / actual.length,
    }))
    .filter((_, b) => b <= edges.length || hasMissing);
  const value = bins.reduce((s, { expected: pe, actual: pa }) => {
    const x = Math.max(pe, PSI_FLOOR);
    const y = Math.max(pa, PSI_FLOOR);
    return s + (y - x) * Math.log(y / x);
  }, 0);
  return { psi: value, bins };
}

/** The conventional reading of a PSI value (see the header). */
export function psiLevel(value: number): 'stable' | 'moderate' | 'major' {
  return value < 0.1 ? 'stable' : value <= 0.25 ? 'moderate' : 'major';
}

/**
 * Points of the ROC curve between `groups` groups of rows sorted by decreasing risk (sizes differing by
 * at most one), from (0, 0) to (1, 1): a chart of grouped rows, so no point describes one patient (the
 * caller chooses groups large enough). The AUC is computed exactly by {@link aucDeLong}, not from these.
 * @returns null when either class is absent
 */
export function rocPoints(
  risks: readonly number[],
  outcomes: readonly Outcome[],
  groups: number,
): { fpr: number; tpr: number }[] | null {
  const m = outcomes.reduce<number>((s, y) => s + y, 0);
  const n = outcomes.length - m;
  if (m === 0 || n === 0 || groups < 1) return null;
  const order = risks.map((_, i) => i).sort((a, b) => risks[b]! - risks[a]! || a - b);
  const points = [{ fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  for (let g = 0; g < groups; g++) {
    const members = order.slice(
      Math.floor((g * order.length) / groups),
      Math.floor(((g + 1) * order.length) / groups),
    );
    for (const i of members) outcomes[i] === 1 ? tp++ : fp++;
    points.push({ fpr: fp / n, tpr: tp / m });
  }
  return points;
}

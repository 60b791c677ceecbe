/**
 * Held-out performance of a risk model: discrimination, calibration, and the confusion matrix at the
 * decision threshold, overall and per subgroup.
 *
 * Why these and in this form: a model card must let a clinician judge whether a stated risk can be taken
 * at face value (calibration slope and calibration-in-the-large, a calibration table by risk decile),
 * how well it ranks patients (AUC), and what the chosen threshold does (sensitivity, specificity, PPV,
 * NPV) — and the same in each subgroup, where models most often fail. Subgroups can be small or contain
 * a single outcome class, so every quantity that is undefined on a subset is `null`, never NaN (NaN
 * would silently become `null` in JSON anyway, and "undefined" is the honest answer).
 *
 * Contract:
 * - `scores` are predicted probabilities of the outcome (AUC alone accepts any finite scores);
 *   `labels` are 0/1, same length. Bad input throws an `Error`.
 * - AUC is the Mann–Whitney statistic with ties counted one half: exact, O(n log n).
 * - Calibration slope: coefficient of logit(p) in a logistic regression of y on logit(p); calibration
 *   intercept (calibration-in-the-large): intercept of a logistic regression of y with logit(p) as an
 *   offset. p is clamped to [1e-12, 1 − 1e-12] first. The slope is null when the logits separate the
 *   classes (its maximum-likelihood estimate is infinite) or a class is absent; the intercept is null when
 *   a class is absent.
 * - A case is positive at the threshold when score ≥ threshold.
 * - Everything runs over the rows in their given order with stable sorts, so results are reproducible.
 */
import { fitLogistic } from './logistic.js';

/** One row of a calibration table: patients grouped by quantile of predicted risk. */
export interface CalibrationBin {
  /** 1-based, in increasing order of predicted risk. */
  bin: number;
  n: number;
  meanPredicted: number;
  observedRate: number;
}

/** Confusion matrix and its ratios at one threshold (score ≥ threshold is positive). */
export interface ThresholdMetrics {
  threshold: number;
  sensitivity: number | null;
  specificity: number | null;
  ppv: number | null;
  npv: number | null;
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

/** Everything the model card reports about one set of predictions. */
export interface Evaluation {
  n: number;
  prevalence: number | null;
  auc: number | null;
  brier: number | null;
  calibrationSlope: number | null;
  calibrationIntercept: number | null;
  calibrationTable: CalibrationBin[];
  atThreshold: ThresholdMetrics;
}

/** The evaluation of one subgroup, named by its key. */
export interface SubgroupEvaluation extends Evaluation {
  group: string;
}

const CLAMP = 1e-12;

function checkPairs(
  scores: readonly number[],
  labels: readonly number[],
  what: string,
  probabilities: boolean,
): void {
  if (scores.length !== labels.length) {
    throw new Error(`${what}: ${scores.length} scores but ${labels.length} labels`);
  }
  scores.forEach((s, i) => {
    if (!Number.isFinite(s)) throw new Error(`${what}: score ${i} is not a finite number`);
    if (probabilities && !(s >= 0 && s <= 1))
      throw new Error(`${what}: score ${i} is not a probability (${s})`);
    const label = labels[i];
    if (label !== 0 && label !== 1) throw new Error(`${what}: label ${i} is ${label}, expected 0 or 1`);
  });
}

/** Indices sorted by score, ties kept in input order. */
function rankOrder(scores: readonly number[]): number[] {
  return scores.map((_, i) => i).sort((a, b) => scores[a]! - scores[b]! || a - b);
}

function count(labels: readonly number[]): { positives: number; negatives: number } {
  const positives = labels.reduce((s, y) => s + y, 0);
  return { positives, negatives: labels.length - positives };
}

/**
 * Area under the ROC curve: P(score of a random case > score of a random control), ties counting ½.
 * @returns null when either class is absent
 */
export function auc(scores: readonly number[], labels: readonly number[]): number | null {
  checkPairs(scores, labels, 'auc', false);
  const { positives, negatives } = count(labels);
  if (positives === 0 || negatives === 0) return null;
  const order = rankOrder(scores);
  let pairs = 0;
  let negativesBelow = 0;
  for (let start = 0; start < order.length;) {
    let end = start;
    let groupPositives = 0;
    while (end < order.length && scores[order[end]!] === scores[order[start]!]) {
      groupPositives += labels[order[end]!]!;
      end++;
    }
    const groupNegatives = end - start - groupPositives;
    pairs += groupPositives * negativesBelow + (groupPositives * groupNegatives) / 2;
    negativesBelow += groupNegatives;
    start = end;
  }
  return pairs / (positives * negatives);
}

function logit(p: number): number {
  const q = Math.min(1 - CLAMP, Math.max(CLAMP, p));
  return Math.log(q / (1 - q));
}

/** Whether some threshold on x separates the classes (then the logistic slope has no finite MLE). */
function separable(x: readonly number[], labels: readonly number[]): boolean {
  let minPositive = Infinity;
  let maxPositive = -Infinity;
  let minNegative = Infinity;
  let maxNegative = -Infinity;
  x.forEach((v, i) => {
    if (labels[i] === 1) {
      minPositive = Math.min(minPositive, v);
      maxPositive = Math.max(maxPositive, v);
    } else {
      minNegative = Math.min(minNegative, v);
      maxNegative = Math.max(maxNegative, v);
    }
  });
  return !(minPositive < maxNegative && minNegative < maxPositive);
}

/**
 * Calibration slope and calibration-in-the-large (see the header for the definitions).
 * @returns each quantity, or null where it is undefined on these data
 */
export function calibration(
  scores: readonly number[],
  labels: readonly number[],
): { slope: number | null; intercept: number | null } {
  checkPairs(scores, labels, 'calibration', true);
  const { positives, negatives } = count(labels);
  if (positives === 0 || negatives === 0) return { slope: null, intercept: null };
  const lp = scores.map(logit);
  const inTheLarge = fitLogistic(
    lp.map(() => []),
    labels,
    { offset: lp },
  );
  const intercept = inTheLarge.converged ? inTheLarge.intercept : null;
  if (separable(lp, labels)) return { slope: null, intercept };
  const fit = fitLogistic(
    lp.map((v) => [v]),
    labels,
  );
  return { slope: fit.converged ? fit.coefficients[0]! : null, intercept };
}

/**
 * Calibration table: the rows sorted by predicted risk (ties in input order) and cut into `bins` groups
 * of sizes differing by at most one; empty groups (fewer rows than bins) are left out.
 */
export function calibrationTable(
  scores: readonly number[],
  labels: readonly number[],
  bins = 10,
): CalibrationBin[] {
  checkPairs(scores, labels, 'calibrationTable', true);
  if (!Number.isInteger(bins) || bins < 1)
    throw new Error(`calibrationTable: bins must be a positive integer (got ${bins})`);
  const order = rankOrder(scores);
  const n = order.length;
  const table: CalibrationBin[] = [];
  for (let b = 0; b < bins; b++) {
    const members = order.slice(Math.floor((b * n) / bins), Math.floor(((b + 1) * n) / bins));
    if (members.length === 0) continue;
    const predicted = members.reduce((s, i) => s + scores[i]!, 0);
    const observed = members.reduce((s, i) => s + labels[i]!, 0);
    table.push({
      bin: table.length + 1,
      n: members.length,
      meanPredicted: predicted / members.length,
      observedRate: observed / members.length,
    });
  }
  return table;
}

const ratio = (numerator: number, denominator: number): number | null =>
  denominator === 0 ? null : numerator / denominator;

/** Confusion matrix at `threshold` (score ≥ threshold is positive) and its four ratios. */
export function atThreshold(
  scores: readonly number[],
  labels: readonly number[],
  threshold: number,
): ThresholdMetrics {
  checkPairs(scores, labels, 'atThreshold', false);
  if (!Number.isFinite(threshold))
    throw new Error(`atThreshold: threshold must be a finite number (got ${threshold})`);
  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  scores.forEach((s, i) => {
    const positive = s >= threshold;
    if (labels[i] === 1) positive ? tp++ : fn++;
    else positive ? fp++ : tn++;
  });
  return {
    threshold,
    sensitivity: ratio(tp, tp + fn),
    specificity: ratio(tn, tn + fp),
    ppv: ratio(tp, tp + fp),
    npv: ratio(tn, tn + fn),
    tp,
    fp,
    tn,
    fn,
  };
}

/** Brier score: mean squared difference between predicted probability and outcome; null when empty. */
export function brier(scores: readonly number[], labels: readonly number[]): number | null {
  checkPairs(scores, labels, 'brier', true);
  if (scores.length === 0) return null;
  return scores.reduce((s, p, i) => s + (p - labels[i]!) ** 2, 0) / scores.length;
}

/** Every metric of the model card for one set of predictions; undefined quantities are null. */
export function evaluate(
  scores: readonly number[],
  labels: readonly number[],
  threshold: number,
  bins = 10,
): Evaluation {
  checkPairs(scores, labels, 'evaluate', true);
  const { slope, intercept } = calibration(scores, labels);
  return {
    n: scores.length,
    prevalence: ratio(count(labels).positives, scores.length),
    auc: auc(scores, labels),
    brier: brier(scores, labels),
    calibrationSlope: slope,
    calibrationIntercept: intercept,
    calibrationTable: calibrationTable(scores, labels, bins),
    atThreshold: atThreshold(scores, labels, threshold),
  };
}

/**
 * {@link evaluate} within each group of rows. `keyOf` names a row's group (null or undefined leaves the
 * row out). Groups listed in `order` come first, in that order, even when empty (n = 0); the others
 * follow sorted by key (UTF-16 code units, locale-independent).
 */
export function bySubgroup<R>(
  rows: readonly R[],
  keyOf: (row: R, index: number) => string | null | undefined,
  scores: readonly number[],
  labels: readonly number[],
  threshold: number,
  order: readonly string[] = [],
): SubgroupEvaluation[] {
  if (rows.length !== scores.length)
    throw new Error(`bySubgroup: ${rows.length} rows but ${scores.length} scores`);
  checkPairs(scores, labels, 'bySubgroup', true);
  const members = new Map<string, number[]>(order.map((key) => [key, []]));
  rows.forEach((row, i) => {
    const key = keyOf(row, i);
    if (key === null || key === undefined) return;
    const list = members.get(key);
    if (list) list.push(i);
    else members.set(key, [i]);
  });
  const rest = [...members.keys()]
    .filter((key) => !order.includes(key))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return [...new Set(order), ...rest].map((group) => {
    const indices = members.get(group)!;
    const evaluation = evaluate(
      indices.map((i) => scores[i]!),
      indices.map((i) => labels[i]!),
      threshold,
    );
    return { group, ...evaluation };
  });
}

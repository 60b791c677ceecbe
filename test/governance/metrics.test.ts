/**
 * The report's statistics against independent computations on the same seeded rows: the AUC and its
 * DeLong variance by explicit pair counting (O(n²)), the calibration slope and intercept by a different
 * fitting method (coordinate-wise bisection on the score equations), the decile table by explicit ranks,
 * and Wilson intervals against published values.
 */
import t from 'tap';
import {
  aucDeLong,
  calibrationByDecile,
  confusion,
  midranks,
  type Outcome,
  psi,
  psiLevel,
  recalibration,
  rocPoints,
  wilson,
  Z95,
} from '../../src/governance/metrics.js';
import { auc as trainingAuc, calibration as trainingCalibration } from '../../tools/training/metrics.js';
import { cohort, TRUE_INTERCEPT, TRUE_SLOPE } from '../helpers/governance-cohort.js';
import { bisectionRecalibration, pairScore } from '../helpers/governance-independent.js';

const rows = cohort({ n: 3000, seed: 19 });
const risks = rows.map((r) => r.risk);
const outcomes = rows.map((r) => r.outcome as Outcome);

const psiPair = pairScore;

t.test(
  'AUC equals pair counting, and its DeLong variance the placement values counted pair by pair',
  async (t) => {
    const pos = risks.filter((_, i) => outcomes[i] === 1);
    const neg = risks.filter((_, i) => outcomes[i] === 0);
    const v10 = pos.map((x) => neg.reduce((s, y) => s + psiPair(x, y), 0) / neg.length);
    const v01 = neg.map((y) => pos.reduce((s, x) => s + psiPair(x, y), 0) / pos.length);
    const auc = v10.reduce((s, v) => s + v, 0) / pos.length;
    const s10 = v10.reduce((s, v) => s + (v - auc) ** 2, 0) / (pos.length - 1);
    const s01 = v01.reduce((s, v) => s + (v - auc) ** 2, 0) / (neg.length - 1);
    const se = Math.sqrt(s10 / pos.length + s01 / neg.length);

    const got = aucDeLong(risks, outcomes)!;
    t.ok(Math.abs(got.auc - auc) < 1e-12, `AUC ${got.auc} = ${auc}`);
    t.ok(Math.abs(got.se - se) < 1e-12, `SE ${got.se} = ${se}`);
    t.ok(Math.abs(got.ci.low - (auc - Z95 * se)) < 1e-12);
    t.ok(Math.abs(got.ci.high - (auc + Z95 * se)) < 1e-12);
    t.same([got.positives, got.negatives], [pos.length, neg.length]);
    t.ok(Math.abs(got.auc - trainingAuc(risks, outcomes)!) < 1e-12, 'and the training tool agrees');
    t.ok(got.auc > 0.6 && got.auc < 0.9, 'a model that discriminates');
  },
);

t.test('ties count one half, and a missing class leaves the AUC undefined', async (t) => {
  t.same(midranks([3, 1, 3, 2]), [3.5, 1, 3.5, 2]);
  const tied = aucDeLong([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1])!;
  // pairs (case, control): (0.5, 0.5) ½, (0.5, 0.2) 1, (0.9, 0.5) 1, (0.9, 0.2) 1 → 3.5 / 4.
  t.equal(tied.auc, 0.875);
  t.equal(aucDeLong([0.1, 0.2], [1, 1]), null);
  t.equal(aucDeLong([], []), null);
  t.throws(() => aucDeLong([1.2], [1]), /risk 0 is not a probability/);
  t.throws(() => aucDeLong([0.2], []), /1 risks but 0 outcomes/);
  const perfect = aucDeLong([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1])!;
  t.same([perfect.auc, perfect.ci.high], [1, 1], 'the interval is clipped to [0, 1]');
});

t.test('calibration slope and intercept equal a fit by another method on the same rows', async (t) => {
  const { intercept, slope: b } = bisectionRecalibration(risks, outcomes);
  const got = recalibration(risks, outcomes);
  t.ok(Math.abs(got.intercept! - intercept) < 1e-8, `intercept ${got.intercept} = ${intercept}`);
  t.ok(Math.abs(got.slope! - b) < 1e-7, `slope ${got.slope} = ${b}`);
  const training = trainingCalibration(risks, outcomes);
  t.ok(Math.abs(got.slope! - training.slope!) < 1e-7, 'the training tool agrees on the slope');
  t.ok(Math.abs(got.intercept! - training.intercept!) < 1e-7, 'and on the intercept');
  t.ok(Math.abs(got.slope! - TRUE_SLOPE) < 0.12, `the slope recovers the simulated ${TRUE_SLOPE}`);
  t.ok(got.intercept! > 0, `outcomes were drawn above the risks (intercept ${TRUE_INTERCEPT} in the truth)`);
});

t.test('calibration is undefined without both outcomes, the slope without overlap', async (t) => {
  t.same(recalibration([0.1, 0.2], [0, 0]), { slope: null, intercept: null });
  const separated = recalibration([0.1, 0.2, 0.7, 0.8], [0, 0, 1, 1]);
  t.equal(separated.slope, null);
  t.type(separated.intercept, 'number');
});

t.test('the decile table equals one recomputed from explicit ranks', async (t) => {
  const n = risks.length;
  // Rank of each row: rows of lower risk, plus earlier rows of equal risk (ties in input order).
  const rank = risks.map((r, i) => risks.filter((q, j) => q < r || (q === r && j < i)).length);
  const expected = Array.from({ length: 10 }, (_, d) => {
    const members = rank
      .map((k, i) => ({ k, i }))
      .filter(({ k }) => k >= Math.floor((d * n) / 10) && k < Math.floor(((d + 1) * n) / 10))
      .map(({ i }) => i);
    const events = members.filter((i) => outcomes[i] === 1).length;
    const sum = members.reduce((s, i) => s + risks[i]!, 0);
    return {
      decile: d + 1,
      n: members.length,
      events,
      meanPredicted: sum / members.length,
      observedRate: events / members.length,
    };
  });
  const got = calibrationByDecile(risks, outcomes);
  t.equal(got.length, 10);
  got.forEach((row, d) => {
    const e = expected[d]!;
    t.same([row.decile, row.n, row.events, row.observedRate], [e.decile, e.n, e.events, e.observedRate]);
    t.ok(Math.abs(row.meanPredicted - e.meanPredicted) < 1e-12);
  });
  t.same(
    calibrationByDecile([0.3, 0.1, 0.2], [1, 0, 0]).map((r) => [r.decile, r.n, r.events]),
    [
      [4, 1, 0],
      [7, 1, 0],
      [10, 1, 1],
    ],
    'fewer rows than deciles: the empty ones are left out',
  );
});

t.test('Wilson intervals match published values', async (t) => {
  const close = (x: number, y: number) => Math.abs(x - y) < 5e-5;
  // Newcombe, Stat Med 1998;17:857-72, table I (method 3): 81/263 → 0.2553 to 0.3662; 0/10 → 0 to 0.2775.
  const a = wilson(81, 263)!;
  t.ok(close(a.low, 0.2553) && close(a.high, 0.3662), JSON.stringify(a));
  const b = wilson(0, 10)!;
  t.ok(b.low === 0 && close(b.high, 0.2775), JSON.stringify(b));
  const c = wilson(10, 10)!;
  t.ok(close(c.low, 0.7225) && c.high === 1, JSON.stringify(c));
  t.equal(wilson(0, 0), null);
});

t.test('the confusion matrix counts the positive calls against the outcomes', async (t) => {
  t.same(confusion([true, true, false, false, true], [1, 0, 1, 0, 1]), { tp: 2, fp: 1, tn: 1, fn: 1 });
});

t.test('PSI: zero for the same distribution, the formula over the reference deciles otherwise', async (t) => {
  const reference = Array.from({ length: 100 }, (_, i) => i);
  t.equal(psi(reference, reference)!.psi, 0);
  // Edges at the reference deciles 9, 19, …, 89; every actual value lands in the last bin.
  const shifted = psi(reference, [95, 96, 97, 98])!;
  t.equal(shifted.bins.length, 10);
  t.same(shifted.bins[9], { upTo: null, expected: 0.1, actual: 1 });
  const expected = 9 * (1e-4 - 0.1) * Math.log(1e-4 / 0.1) + (1 - 0.1) * Math.log(1 / 0.1);
  t.ok(Math.abs(shifted.psi - expected) < 1e-12, `${shifted.psi} = ${expected}`);
  t.equal(psiLevel(shifted.psi), 'major');
  t.equal(psiLevel(0.05), 'stable');
  t.equal(psiLevel(0.2), 'moderate');
  // A binary input has two bins; missing values (NaN) get their own.
  const binary = psi([0, 0, 1, 1], [0, 1, 1, Number.NaN])!;
  t.same(
    binary.bins.map((b) => [b.upTo, b.expected, b.actual]),
    [
      [0, 0.5, 0.25],
      [1, 0.5, 0.5],
      [null, 0, 0],
      ['missing', 0, 0.25],
    ],
  );
  t.equal(psi([], [1]), null);
});

t.test('ROC points run from (0, 0) to (1, 1), one per group of rows', async (t) => {
  const points = rocPoints(risks, outcomes, 20)!;
  t.equal(points.length, 21);
  t.same(points[0], { fpr: 0, tpr: 0 });
  t.same(points[20], { fpr: 1, tpr: 1 });
  t.ok(points.every((p, i) => i === 0 || (p.fpr >= points[i - 1]!.fpr && p.tpr >= points[i - 1]!.tpr)));
  t.equal(rocPoints([0.2], [1], 5), null);
});

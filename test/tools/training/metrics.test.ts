import t from 'tap';
import { createRng } from '../../../tools/synthetic/random.js';
import {
  atThreshold,
  auc,
  brier,
  bySubgroup,
  calibration,
  calibrationTable,
  evaluate,
} from '../../../tools/training/metrics.js';

const close = (a: number | null, b: number, eps = 1e-12): boolean => a !== null && Math.abs(a - b) < eps;

/** A perfectly calibrated set: y ~ Bernoulli(p), p = σ(N(−1, 1.2)). */
function calibratedSet(seed: number, n: number) {
  const rng = createRng(seed);
  const scores: number[] = [];
  const labels: number[] = [];
  for (let i = 0; i < n; i++) {
    const p = 1 / (1 + Math.exp(-rng.normal(-1, 1.2)));
    scores.push(p);
    labels.push(rng.bool(p) ? 1 : 0);
  }
  return { scores, labels };
}

t.test('AUC by hand: the textbook four-point example and a case with ties', async (t) => {
  t.equal(auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
  // Positive 0.2 ties negative 0.2 (½) and loses to 0.6 (0); positive 0.6 beats 0.2 (1) and ties 0.6 (½);
  // positive 0.9 beats both (2): 4 of 6 pairs.
  t.equal(auc([0.2, 0.2, 0.6, 0.6, 0.9], [0, 1, 0, 1, 1]), 4 / 6);
  t.equal(auc([3, -1, 10], [1, 0, 1]), 1, 'any finite scores, not only probabilities');
});

t.test(
  'AUC is 1 for perfect scores, 0 for reversed ones, ½ for uninformative ones, null with one class',
  async (t) => {
    t.equal(auc([0.1, 0.2, 0.3, 0.9], [0, 0, 1, 1]), 1);
    t.equal(auc([0.9, 0.8, 0.3, 0.1], [0, 0, 1, 1]), 0);
    t.equal(auc([0.5, 0.5, 0.5, 0.5, 0.5], [0, 1, 0, 1, 1]), 0.5);
    const rng = createRng(5);
    const labels = Array.from({ length: 20000 }, () => (rng.bool(0.3) ? 1 : 0));
    const noise = auc(
      labels.map(() => rng.next()),
      labels,
    );
    t.ok(close(noise, 0.5, 0.02), `random scores: ${noise}`);
    t.equal(auc([0.1, 0.2], [1, 1]), null);
    t.equal(auc([], []), null);
  },
);

t.test('AUC handles 100,000 rows with heavy ties quickly and exactly', async (t) => {
  const rng = createRng(6);
  const scores = Array.from({ length: 100000 }, () => rng.int(0, 9) / 10);
  const labels = scores.map((s) => (rng.bool(s) ? 1 : 0));
  // Brute force over the ten distinct values.
  const pos = new Array<number>(10).fill(0);
  const neg = new Array<number>(10).fill(0);
  scores.forEach((s, i) => (labels[i] ? pos : neg)[Math.round(s * 10)]!++);
  let pairs = 0;
  for (let a = 0; a < 10; a++)
    for (let b = 0; b < 10; b++) pairs += pos[a]! * neg[b]! * (a > b ? 1 : a === b ? 0.5 : 0);
  const total = pos.reduce((s, v) => s + v, 0) * neg.reduce((s, v) => s + v, 0);
  t.equal(auc(scores, labels), pairs / total);
});

t.test('calibration by hand: two risk groups give the closed-form slope and intercept', async (t) => {
  // Predicted 0.2 → observed 1/4; predicted 0.8 → observed 3/4. The fit on two distinct logits is exact:
  // slope = (logit ¾ − logit ¼) / (logit 0.8 − logit 0.2) = ln 3 / ln 4; by symmetry the intercept is 0.
  const { slope, intercept } = calibration(
    [0.2, 0.2, 0.2, 0.2, 0.8, 0.8, 0.8, 0.8],
    [1, 0, 0, 0, 1, 1, 1, 0],
  );
  t.ok(close(slope, Math.log(3) / Math.log(4), 1e-10), `slope ${slope}`);
  t.ok(close(intercept, 0, 1e-10), `intercept ${intercept}`);
});

t.test(
  'calibration-in-the-large of a constant prediction is logit(observed) − logit(predicted)',
  async (t) => {
    const { slope, intercept } = calibration([0.25, 0.25, 0.25, 0.25], [1, 0, 1, 0]);
    t.ok(close(intercept, Math.log(3), 1e-10), `intercept ${intercept}`);
    t.equal(slope, null, 'one distinct prediction: no slope');
  },
);

t.test('a perfectly calibrated simulated set has slope ≈ 1 and intercept ≈ 0', async (t) => {
  const { scores, labels } = calibratedSet(2026, 50000);
  const { slope, intercept } = calibration(scores, labels);
  // Standard errors here are about 0.015 (slope) and 0.012 (intercept): ±0.05 is about 3 SE.
  t.ok(close(slope, 1, 0.05), `slope ${slope}`);
  t.ok(close(intercept, 0, 0.05), `intercept ${intercept}`);
  // Over-confident predictions (logits doubled) give a slope near ½.
  const doubled = scores.map((p) => 1 / (1 + ((1 - p) / p) ** 2));
  const over = calibration(doubled, labels);
  t.ok(close(over.slope, 0.5, 0.03), `slope of doubled logits ${over.slope}`);
  // Predictions shifted down by 1 on the logit scale give an intercept near +1.
  const shifted = scores.map((p) => 1 / (1 + ((1 - p) / p) * Math.E));
  t.ok(close(calibration(shifted, labels).intercept, 1, 0.05));
});

t.test('calibration is null where undefined: one class, or logits that separate the classes', async (t) => {
  t.same(calibration([0.2, 0.3], [0, 0]), { slope: null, intercept: null });
  const separated = calibration([0.1, 0.2, 0.7, 0.9], [0, 0, 1, 1]);
  t.equal(separated.slope, null);
  t.ok(separated.intercept !== null, 'the intercept still exists');
  t.equal(
    calibration([0.1, 0.5, 0.5, 0.9], [0, 0, 1, 1]).slope,
    null,
    'touching at one value is still separated',
  );
  t.ok(calibration([0.1, 0.5, 0.4, 0.9], [0, 0, 1, 1]).slope !== null, 'overlap: a finite slope');
  const clamped = calibration([0, 1, 0, 1, 0.5], [0, 1, 1, 0, 1]);
  t.ok(
    clamped.intercept !== null && Number.isFinite(clamped.intercept),
    'p = 0 and 1 are clamped, not infinite',
  );
});

t.test('calibration table: quantile bins by predicted risk, by hand', async (t) => {
  const scores = [0.95, 0.05, 0.15, 0.85, 0.25, 0.75, 0.35, 0.65, 0.45, 0.55];
  const labels = [1, 0, 0, 1, 1, 1, 0, 0, 0, 1];
  const table = calibrationTable(scores, labels, 5);
  t.equal(table.length, 5);
  const rounded = table.map((r) => ({ ...r, meanPredicted: Math.round(r.meanPredicted * 1e12) / 1e12 }));
  t.same(rounded, [
    { bin: 1, n: 2, meanPredicted: 0.1, observedRate: 0 },
    { bin: 2, n: 2, meanPredicted: 0.3, observedRate: 0.5 },
    { bin: 3, n: 2, meanPredicted: 0.5, observedRate: 0.5 },
    { bin: 4, n: 2, meanPredicted: 0.7, observedRate: 0.5 },
    { bin: 5, n: 2, meanPredicted: 0.9, observedRate: 1 },
  ]);
  t.same(
    calibrationTable([0.3, 0.1, 0.2], [1, 0, 0]).map((r) => [r.bin, r.n, r.meanPredicted]),
    [
      [1, 1, 0.1],
      [2, 1, 0.2],
      [3, 1, 0.3],
    ],
    'fewer rows than bins: empty bins are left out, numbering stays consecutive',
  );
  t.same(
    calibrationTable(
      Array.from({ length: 25 }, (_, i) => i / 25),
      new Array<number>(25).fill(0),
    ).map((r) => r.n),
    [2, 3, 2, 3, 2, 3, 2, 3, 2, 3],
    'sizes differ by at most one',
  );
  t.same(calibrationTable([], []), []);
  t.throws(
    () => calibrationTable([0.5], [1], 0),
    new Error('calibrationTable: bins must be a positive integer (got 0)'),
  );
});

t.test('threshold metrics by hand (score ≥ threshold is positive)', async (t) => {
  const scores = [0.1, 0.4, 0.35, 0.8];
  const labels = [0, 0, 1, 1];
  t.same(atThreshold(scores, labels, 0.4), {
    threshold: 0.4,
    sensitivity: 0.5,
    specificity: 0.5,
    ppv: 0.5,
    npv: 0.5,
    tp: 1,
    fp: 1,
    tn: 1,
    fn: 1,
  });
  t.same(atThreshold(scores, labels, 0.35), {
    threshold: 0.35,
    sensitivity: 1,
    specificity: 0.5,
    ppv: 2 / 3,
    npv: 1,
    tp: 2,
    fp: 1,
    tn: 1,
    fn: 0,
  });
  t.match(
    atThreshold(scores, labels, 0.9),
    { ppv: null, npv: 0.5, tp: 0, fp: 0 },
    'no predicted positive: PPV null',
  );
  t.match(atThreshold([0.2], [0], 0.5), { sensitivity: null, specificity: 1 });
  t.throws(
    () => atThreshold(scores, labels, Number.NaN),
    new Error('atThreshold: threshold must be a finite number (got NaN)'),
  );
});

t.test('Brier score by hand', async (t) => {
  t.ok(close(brier([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), (0.01 + 0.16 + 0.4225 + 0.04) / 4));
  t.equal(brier([1, 0], [1, 0]), 0);
  t.equal(brier([], []), null);
});

t.test('evaluate gathers every metric; undefined ones are null, never NaN', async (t) => {
  const e = evaluate([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], 0.4, 2);
  t.equal(e.n, 4);
  t.equal(e.prevalence, 0.5);
  t.equal(e.auc, 0.75);
  t.ok(close(e.brier, 0.158125));
  t.ok(e.calibrationSlope !== null && e.calibrationIntercept !== null);
  t.equal(e.calibrationTable.length, 2);
  t.equal(e.atThreshold.tp, 1);
  const empty = evaluate([], [], 0.5);
  t.same(empty, {
    n: 0,
    prevalence: null,
    auc: null,
    brier: null,
    calibrationSlope: null,
    calibrationIntercept: null,
    calibrationTable: [],
    atThreshold: {
      threshold: 0.5,
      sensitivity: null,
      specificity: null,
      ppv: null,
      npv: null,
      tp: 0,
      fp: 0,
      tn: 0,
      fn: 0,
    },
  });
  const oneClass = evaluate([0.2, 0.6], [0, 0], 0.5);
  t.equal(oneClass.auc, null);
  t.equal(oneClass.prevalence, 0);
  t.equal(oneClass.calibrationSlope, null);
  t.notMatch(JSON.stringify([e, empty, oneClass]), /NaN/);
});

t.test('evaluate is deterministic', async (t) => {
  const { scores, labels } = calibratedSet(9, 5000);
  t.equal(
    JSON.stringify(evaluate(scores, labels, 0.3)),
    JSON.stringify(evaluate([...scores], [...labels], 0.3)),
  );
});

t.test('bySubgroup evaluates each group; listed groups first, then the rest by key', async (t) => {
  const rows = [
    { sex: 'female', age: 50 },
    { sex: 'male', age: 70 },
    { sex: 'female', age: 72 },
    { sex: 'male', age: 40 },
    { sex: 'female', age: 66 },
    { sex: 'unknown', age: 30 },
    { sex: 'other', age: 30 },
  ];
  const scores = [0.1, 0.7, 0.6, 0.2, 0.4, 0.5, 0.3];
  const labels = [0, 1, 1, 0, 0, 1, 0];
  const bySex = bySubgroup(rows, (r) => (r.sex === 'unknown' ? null : r.sex), scores, labels, 0.5, [
    'male',
    'female',
    'intersex',
  ]);
  t.same(
    bySex.map((g) => [g.group, g.n]),
    [
      ['male', 2],
      ['female', 3],
      ['intersex', 0],
      ['other', 1],
    ],
  );
  t.equal(bySex[1]!.auc, 1, 'female: 0.6 (case) above 0.1 and 0.4');
  t.equal(bySex[1]!.atThreshold.tp, 1);
  t.equal(bySex[2]!.auc, null, 'an empty group has no AUC');
  t.equal(bySex[3]!.auc, null, 'a one-row group has no AUC');
  const byAge = bySubgroup(
    rows,
    (r, i) => (i === 0 ? undefined : r.age >= 65 ? '65+' : '<65'),
    scores,
    labels,
    0.5,
  );
  t.same(
    byAge.map((g) => [g.group, g.n]),
    [
      ['65+', 3],
      ['<65', 3],
    ],
  );
  t.throws(
    () => bySubgroup([1], () => 'a', [0.1, 0.2], [0, 1], 0.5),
    new Error('bySubgroup: 1 rows but 2 scores'),
  );
});

t.test('bad input is refused with a clear message', async (t) => {
  t.throws(() => auc([0.1], [1, 0]), new Error('auc: 1 scores but 2 labels'));
  t.throws(() => auc([Number.NaN], [1]), new Error('auc: score 0 is not a finite number'));
  t.throws(() => auc([0.5], [2]), new Error('auc: label 0 is 2, expected 0 or 1'));
  t.throws(() => brier([1.5], [1]), new Error('brier: score 0 is not a probability (1.5)'));
  t.throws(() => calibration([-0.1], [1]), new Error('calibration: score 0 is not a probability (-0.1)'));
  t.throws(() => evaluate([0.5], [0.5], 0.5), new Error('evaluate: label 0 is 0.5, expected 0 or 1'));
});

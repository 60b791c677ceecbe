import t from 'tap';
import { createRng } from '../../../tools/synthetic/random.js';
import { fitLogistic, logitOf, predictLogistic, solveSymmetric } from '../../../tools/training/logistic.js';

/** A simulated cohort whose outcome follows a known logistic model. */
function simulate(seed: number, n: number, intercept: number, coefficients: number[]) {
  const rng = createRng(seed);
  const X: number[][] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = coefficients.map((_, j) => (j % 3 === 2 ? (rng.bool(0.4) ? 1 : 0) : rng.normal(0, 1 + j / 4)));
    const eta = intercept + x.reduce((s, v, j) => s + v * coefficients[j]!, 0);
    X.push(x);
    y.push(rng.bool(1 / (1 + Math.exp(-eta))) ? 1 : 0);
  }
  return { X, y };
}

t.test(
  'a binary feature gives the closed-form answer: intercept = log-odds at 0, slope = log OR',
  async (t) => {
    // x = 0: 1 event in 4 (odds 1/3); x = 1: 3 events in 4 (odds 3) → OR = 9.
    const fit = fitLogistic([[0], [0], [0], [0], [1], [1], [1], [1]], [1, 0, 0, 0, 1, 1, 1, 0]);
    t.ok(fit.converged);
    t.ok(Math.abs(fit.intercept - Math.log(1 / 3)) < 1e-12, `intercept ${fit.intercept}`);
    t.ok(Math.abs(fit.coefficients[0]! - Math.log(9)) < 1e-12, `coefficient ${fit.coefficients[0]}`);
    t.ok(fit.iterations >= 3 && fit.iterations <= 10, `iterations ${fit.iterations}`);
    t.ok(Math.abs(predictLogistic(fit, [0]) - 0.25) < 1e-12);
    t.ok(Math.abs(predictLogistic(fit, [1]) - 0.75) < 1e-12);
  },
);

t.test('with no feature the intercept is the logit of the prevalence', async (t) => {
  const fit = fitLogistic([[], [], [], [], []], [1, 0, 0, 1, 0]);
  t.same(fit.coefficients, []);
  t.ok(Math.abs(fit.intercept - Math.log(2 / 3)) < 1e-12);
});

t.test(
  'an offset is added to every logit: intercept-only fit with offset solves Σy = Σσ(o + a)',
  async (t) => {
    const offset = [-1, 0.5, 2, -0.3, 1.1, 0];
    const y = [0, 1, 1, 0, 0, 1];
    const fit = fitLogistic(
      offset.map(() => []),
      y,
      { offset },
    );
    const expected = offset.reduce((s, o) => s + 1 / (1 + Math.exp(-(o + fit.intercept))), 0);
    t.ok(Math.abs(expected - 3) < 1e-10, `Σσ = ${expected}`);
    // Without the offset the answer is different (logit(1/2) = 0).
    t.ok(Math.abs(fit.intercept) > 0.1);
  },
);

t.test(
  'an offset fit on thousands of rows converges in a few steps (rounding noise does not stall it)',
  async (t) => {
    const rng = createRng(9);
    const offset: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < 5000; i++) {
      const eta = rng.normal(-1, 1.2);
      offset.push(eta);
      y.push(rng.bool(1 / (1 + Math.exp(-eta))) ? 1 : 0);
    }
    const fit = fitLogistic(
      offset.map(() => []),
      y,
      { offset },
    );
    t.ok(fit.converged);
    t.ok(fit.iterations <= 8, `iterations ${fit.iterations}`);
  },
);

t.test(
  'a wild first Newton step is halved until the likelihood improves, and the fit still converges',
  async (t) => {
    // At intercept 0 the first three rows have p ≈ 1 and almost no curvature: the raw Newton step is about
    // −11,000, far past the optimum, and must be cut back.
    const offset = [10, 10, 10, -10];
    const y = [0, 0, 0, 1];
    const fit = fitLogistic(
      offset.map(() => []),
      y,
      { offset },
    );
    t.ok(fit.converged);
    const expected = offset.reduce((s, o) => s + 1 / (1 + Math.exp(-(o + fit.intercept))), 0);
    t.ok(Math.abs(expected - 1) < 1e-10, `Σσ = ${expected}`);
    t.ok(fit.intercept > -30 && fit.intercept < -5, `intercept ${fit.intercept}`);
  },
);

t.test('recovers the generating coefficients of a large simulated cohort (20,000 × 12)', async (t) => {
  const truth = [0.8, -0.5, 1.2, 0.3, 0, -0.9, 0.45, 0.6, -0.7, 0.2, -0.25, 0.9];
  const { X, y } = simulate(20261122, 20000, -1.5, truth);
  const fit = fitLogistic(X, y);
  t.ok(fit.converged);
  t.ok(fit.iterations <= 12, `iterations ${fit.iterations}`);
  t.ok(Math.abs(fit.intercept + 1.5) < 0.1, `intercept ${fit.intercept}`);
  // The standard errors here are about 0.02–0.06: 0.15 is a generous but still failing-capable bound.
  fit.coefficients.forEach((c, j) => t.ok(Math.abs(c - truth[j]!) < 0.15, `β${j + 1} ${c} vs ${truth[j]}`));
});

t.test('the score equations hold at the solution (gradient ≈ 0)', async (t) => {
  const { X, y } = simulate(7, 2000, 0.3, [1, -2, 0.5]);
  const fit = fitLogistic(X, y);
  const gradient = [0, 0, 0, 0];
  X.forEach((x, i) => {
    const r = y[i]! - predictLogistic(fit, x);
    gradient[0]! += r;
    x.forEach((v, j) => (gradient[j + 1]! += r * v));
  });
  gradient.forEach((g, j) => t.ok(Math.abs(g) < 1e-8, `∂/∂β${j} = ${g}`));
});

t.test('the ridge penalty shrinks the coefficients but not the intercept', async (t) => {
  const { X, y } = simulate(11, 500, -0.4, [1.5, -1, 0.8]);
  const plain = fitLogistic(X, y);
  const ridge = fitLogistic(X, y, { l2: 50 });
  t.ok(ridge.converged);
  ridge.coefficients.forEach((c, j) => t.ok(Math.abs(c) < Math.abs(plain.coefficients[j]!), `β${j + 1}`));
  // Penalised score equations: Σ(y − p) = 0 (intercept free), Σ(y − p)xⱼ = l2·βⱼ.
  let interceptScore = 0;
  const scores = [0, 0, 0];
  X.forEach((x, i) => {
    const r = y[i]! - predictLogistic(ridge, x);
    interceptScore += r;
    x.forEach((v, j) => (scores[j]! += r * v));
  });
  t.ok(Math.abs(interceptScore) < 1e-8, `intercept score ${interceptScore}`);
  scores.forEach((s, j) => t.ok(Math.abs(s - 50 * ridge.coefficients[j]!) < 1e-8, `score ${j}`));
});

t.test('separable data without a penalty does not converge; with a penalty it does', async (t) => {
  const X = [[-2], [-1], [1], [2]];
  const y = [0, 0, 1, 1];
  const free = fitLogistic(X, y, { maxIterations: 20 });
  t.equal(free.converged, false);
  t.equal(free.iterations, 20);
  t.ok(free.coefficients[0]! > 5, 'the slope runs away');
  const ridge = fitLogistic(X, y, { l2: 1 });
  t.ok(ridge.converged);
});

t.test('same inputs give the same bits', async (t) => {
  const { X, y } = simulate(3, 3000, -1, [0.5, 0.5, -0.5, 1]);
  const a = fitLogistic(X, y, { l2: 0.1 });
  const b = fitLogistic(
    X.map((r) => [...r]),
    [...y],
    { l2: 0.1 },
  );
  t.same(a, b);
  t.equal(JSON.stringify(a), JSON.stringify(b));
});

t.test('logitOf and predictLogistic evaluate the linear predictor and the sigmoid', async (t) => {
  const model = { intercept: -1, coefficients: [2, -0.5] };
  t.equal(logitOf(model, [1, 2]), 0);
  t.equal(predictLogistic(model, [1, 2]), 0.5);
  t.ok(Math.abs(predictLogistic(model, [3, 0]) - 1 / (1 + Math.exp(-5))) < 1e-15);
  t.equal(predictLogistic(model, [-400, 0]), 0, 'large negative logits do not overflow to NaN');
  t.equal(predictLogistic(model, [400, 0]), 1);
  t.throws(() => logitOf(model, [1]), new Error('logitOf: 1 features, the model has 2'));
});

t.test('bad input is refused with a clear message', async (t) => {
  t.throws(() => fitLogistic([], []), new Error('fitLogistic: no rows'));
  t.throws(() => fitLogistic([[1]], [1, 0]), new Error('fitLogistic: 1 rows but 2 labels'));
  t.throws(
    () => fitLogistic([[1, 2], [3]], [1, 0]),
    new Error('fitLogistic: row 1 has 1 features, expected 2'),
  );
  t.throws(() => fitLogistic([[1], [2]], [1, 2]), new Error('fitLogistic: label 1 is 2, expected 0 or 1'));
  t.throws(
    () => fitLogistic([[1], [Number.NaN]], [1, 0]),
    new Error('fitLogistic: X[1][0] is not a finite number'),
  );
  t.throws(() => fitLogistic([[1]], [1], { offset: [] }), new Error('fitLogistic: 1 rows but 0 offsets'));
  t.throws(
    () => fitLogistic([[1]], [1], { offset: [Infinity] }),
    new Error('fitLogistic: offset 0 is not a finite number'),
  );
  t.throws(() => fitLogistic([[1]], [1], { l2: -1 }), new Error('fitLogistic: l2 must be ≥ 0 (got -1)'));
  t.throws(
    () => fitLogistic([[1]], [1], { maxIterations: 0 }),
    new Error('fitLogistic: maxIterations must be a positive integer (got 0)'),
  );
  t.throws(
    () => fitLogistic([[1]], [1], { tolerance: 0 }),
    new Error('fitLogistic: tolerance must be > 0 (got 0)'),
  );
});

t.test('a constant or collinear feature makes the system singular', async (t) => {
  const y = [0, 1, 0, 1, 1];
  t.throws(
    () => fitLogistic([[5], [5], [5], [5], [5]], y),
    new Error('fitLogistic: singular system: parameter 1 is constant or collinear with earlier ones'),
  );
  t.throws(
    () =>
      fitLogistic(
        [
          [1, 2],
          [2, 4],
          [3, 6],
          [4, 8],
          [0, 0],
        ],
        y,
      ),
    new Error('fitLogistic: singular system: parameter 2 is constant or collinear with earlier ones'),
  );
});

t.test('solveSymmetric solves a small positive-definite system and checks its shape', async (t) => {
  const x = solveSymmetric(new Float64Array([4, 2, 2, 3]), new Float64Array([2, 1]));
  t.ok(Math.abs(x[0]! - 0.5) < 1e-15 && Math.abs(x[1]!) < 1e-15, `x = ${x.join()}`);
  t.throws(
    () => solveSymmetric(new Float64Array(3), new Float64Array(2)),
    new Error('solveSymmetric: matrix is not 2 × 2'),
  );
  t.throws(
    () => solveSymmetric(new Float64Array([0]), new Float64Array([1])),
    /singular system: parameter 0/,
  );
});

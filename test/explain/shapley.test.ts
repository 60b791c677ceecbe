/**
 * The model-agnostic explainer against the definition of the interventional Shapley value: exact
 * enumeration equals the average over all feature orders; beyond the enumeration budget the sampling
 * estimate stays exactly additive and within its stated error of the exact values; the linear closed
 * form measures from the background mean.
 */
import t from 'tap';
import {
  linearExplainer,
  MAX_EXPLANATION_ROWS,
  modelAgnosticExplainer,
  shapleyFromCoalitions,
} from '../../src/explain/shapley.js';
import { createRng } from '../../tools/synthetic/random.js';

/**
 * A non-additive margin: pairwise and higher-order interactions (antithetic orders are exact for
 * pairwise ones only, so the three-way term makes the sampling estimate an estimate).
 */
const f = (r: readonly number[]): number =>
  0.3 * r[0]! -
  0.8 * r[1]! * r[2]! +
  Math.tanh(r[3]! + r[4]!) +
  (r.length > 7 ? 1.5 * Math.tanh(r[5]! * r[6]! * r[7]!) + Math.sin(r[8]! + r[9]! * r[10]! - r[11]!) : 0) +
  r.reduce((s, v, i) => s + (i % 3 === 0 ? 0.1 * v : 0), 0);
const margins = (rows: readonly (readonly number[])[]) => Promise.resolve(Float64Array.from(rows, f));

function exact(x: readonly number[], background: readonly (readonly number[])[]): number[] {
  const F = x.length;
  const values = Array.from({ length: 1 << F }, (_, mask) => {
    let sum = 0;
    for (const z of background) sum += f(z.map((v, i) => (mask & (1 << i) ? x[i]! : v)));
    return sum / background.length;
  });
  return shapleyFromCoalitions(values, F);
}

/** The definition: the marginal contribution averaged over all F! orders. */
function byOrders(x: readonly number[], background: readonly (readonly number[])[]): number[] {
  const F = x.length;
  const v = (members: Set<number>) =>
    background.reduce((s, z) => s + f(z.map((zv, i) => (members.has(i) ? x[i]! : zv))), 0) /
    background.length;
  const phi = new Array<number>(F).fill(0);
  let count = 0;
  const visit = (order: number[], rest: number[]) => {
    if (rest.length === 0) {
      const members = new Set<number>();
      for (const i of order) {
        const before = v(members);
        members.add(i);
        phi[i]! += v(members) - before;
      }
      count += 1;
      return;
    }
    for (const i of rest)
      visit(
        [...order, i],
        rest.filter((j) => j !== i),
      );
  };
  visit(
    [],
    Array.from({ length: F }, (_, i) => i),
  );
  return phi.map((p) => p / count);
}

const rng = createRng(31337);
const rows = (n: number, F: number) =>
  Array.from({ length: n }, () => Array.from({ length: F }, () => rng.normal(0, 1)));

t.test('enumeration against the background equals the average over all orders', async (t) => {
  const background = rows(8, 5);
  const mean = background.reduce((s, z) => s + f(z), 0) / background.length;
  const explainer = modelAgnosticExplainer(5, background, mean);
  t.equal(explainer.method, 'enumeration');
  const x = rows(1, 5)[0]!;
  const { baseline, phi, error } = await explainer.explain(x, margins);
  const expected = byOrders(x, background);
  t.ok(Math.max(...phi.map((p, i) => Math.abs(p - expected[i]!))) < 1e-12, 'same as the definition');
  t.ok(Math.abs(baseline - mean) < 1e-12, 'the baseline is the mean margin of the sample');
  t.ok(Math.abs(baseline + phi.reduce((s, p) => s + p, 0) - f(x)) < 1e-12, 'additive');
  t.equal(error, undefined, 'exact: no error stated');
});

t.test('beyond the budget: a sampling estimate, exactly additive, within its stated error', async (t) => {
  const F = 12;
  const background = rows(20, F);
  t.ok((1 << F) * background.length > MAX_EXPLANATION_ROWS, 'enumeration would exceed the budget');
  const explainer = modelAgnosticExplainer(F, background, 0);
  t.equal(explainer.method, 'sampling');
  for (let k = 0; k < 3; k += 1) {
    const x = rows(1, F)[0]!;
    const calls: number[] = [];
    const { baseline, phi, error } = await explainer.explain(x, (r) => {
      calls.push(r.length);
      return margins(r);
    });
    t.ok(calls[0]! <= MAX_EXPLANATION_ROWS, `${calls[0]} rows in one batch, within the budget`);
    const mean = background.reduce((s, z) => s + f(z), 0) / background.length;
    t.ok(Math.abs(baseline - mean) < 1e-12, 'every background row used equally often');
    t.ok(Math.abs(baseline + phi.reduce((s, p) => s + p, 0) - f(x)) < 1e-9, 'additive exactly');
    const truth = exact(x, background);
    const worst = Math.max(...phi.map((p, i) => Math.abs(p - truth[i]!)));
    t.ok(error !== undefined && error > 0 && error < 0.05, `stated 95% error ${error}`);
    t.ok(worst <= 1.5 * error!, `max |φ − exact| = ${worst} within the stated error ${error}`);
    const again = await explainer.explain(x, margins);
    t.same(again.phi, phi, 'the same patient gets the same estimate');
  }
});

t.test(
  'linear: coefficient × (value − background mean); a missing value in its background is refused',
  async (t) => {
    const explainer = linearExplainer({ intercept: -1, coefficients: [2, -0.5] }, [
      [1, 4],
      [3, 0],
    ]);
    t.equal(explainer.baseline, -1 + 2 * 2 + -0.5 * 2);
    t.same((await explainer.explain([5, 1], margins)).phi, [2 * 3, -0.5 * -1]);
    t.throws(() => linearExplainer({ intercept: 0, coefficients: [1] }, [[Number.NaN]]), /missing values/);
  },
);

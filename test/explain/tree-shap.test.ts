/**
 * TreeSHAP against two independent computations of the same interventional Shapley values:
 * - brute force: the game v(S) = mean over the background of margin(x_S, z_rest), evaluated on every
 *   coalition with the reader's own tree walk, then the Shapley formula over all 2^F coalitions;
 * - the per-pair recursion of Lundberg et al. 2020 (walking each tree with x and z together), which
 *   reaches 18+ features where 2^F coalitions are out of reach.
 * Random ensembles of depths 1–6 use every node mode ONNX defines, missing values tracking either
 * branch, NaN in the data and in the background; they are written as ONNX and read back, so the whole
 * path from the file is covered.
 */
import t from 'tap';
import { treeExplainer } from '../../src/explain/tree-shap.js';
import { shapleyFromCoalitions } from '../../src/scoring/score.js';
import { LEAF, readTreeModel, takesYes, treeMargin, type TreeModel } from '../../src/scoring/trees.js';
import { createRng, type Rng } from '../../tools/synthetic/random.js';
import { randomRawTrees, rawEnsembleToOnnx } from '../../tools/training/tree-onnx.js';

const GRID = [-2, -1, -0.5, 0, 0.5, 1, 2];

function randomRow(rng: Rng, width: number, missing = 0.1): number[] {
  return Array.from({ length: width }, () =>
    rng.next() < missing
      ? Number.NaN
      : rng.next() < 0.6
        ? GRID[rng.int(0, GRID.length - 1)]!
        : rng.normal(0, 1.5),
  );
}

function randomModel(rng: Rng, trees: number, depth: number, featureCount: number): TreeModel {
  const raw = randomRawTrees(rng, {
    trees,
    depth,
    featureCount,
    missingTrue: 0.4,
    scrambleIds: depth % 2 === 1,
  });
  const bytes = rawEnsembleToOnnx({
    op: 'classifier',
    trees: raw,
    featureCount,
    baseValues: [rng.normal(0, 1)],
    postTransform: 'LOGISTIC',
  });
  return readTreeModel(bytes, { name: 'probability', column: 1 }, featureCount);
}

/** Brute force: the value of every coalition, then exact Shapley values. */
function bruteForce(model: TreeModel, x: readonly number[], background: readonly (readonly number[])[]) {
  const F = x.length;
  const values = new Float64Array(1 << F);
  for (let mask = 0; mask < 1 << F; mask += 1) {
    let sum = 0;
    for (const z of background)
      sum += treeMargin(
        model,
        z.map((v, i) => (mask & (1 << i) ? x[i]! : v)),
      );
    values[mask] = sum / background.length;
  }
  return { baseline: values[0]!, phi: shapleyFromCoalitions(values, F) };
}

/** Lundberg et al. 2020, interventional TreeSHAP for one (x, z) pair, by recursion over each tree. */
function recursive(model: TreeModel, x: readonly number[], background: readonly (readonly number[])[]) {
  const F = x.length;
  const phi = new Array<number>(F).fill(0);
  const fact = [1];
  for (let i = 1; i <= 64; i += 1) fact.push(fact[i - 1]! * i);
  const xf = Float32Array.from(x);
  for (const row of background) {
    const zf = Float32Array.from(row);
    for (const tree of model.trees) {
      const visit = (node: number, a: Set<number>, b: Set<number>): void => {
        if (tree.mode[node] === LEAF) {
          const v = tree.value[node]! / background.length;
          const na = a.size;
          const nb = b.size;
          for (const i of a) phi[i]! += (v * fact[na - 1]! * fact[nb]!) / fact[na + nb]!;
          for (const i of b) phi[i]! -= (v * fact[na]! * fact[nb - 1]!) / fact[na + nb]!;
          return;
        }
        const k = tree.feature[node]!;
        const cx = takesYes(tree, node, xf[k]!) ? tree.yes[node]! : tree.no[node]!;
        const cz = takesYes(tree, node, zf[k]!) ? tree.yes[node]! : tree.no[node]!;
        if (cx === cz) visit(cx, a, b);
        else if (a.has(k)) visit(cx, a, b);
        else if (b.has(k)) visit(cz, a, b);
        else {
          visit(cx, new Set([...a, k]), b);
          visit(cz, a, new Set([...b, k]));
        }
      };
      visit(tree.root, new Set(), new Set());
    }
  }
  return phi;
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let worst = 0;
  for (let i = 0; i < a.length; i += 1) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
};

t.test('depths 1 to 6, every node mode, missing values: equal to brute force to 1e-6', async (t) => {
  const rng = createRng(2026);
  for (let depth = 1; depth <= 6; depth += 1) {
    const F = 7;
    const model = randomModel(rng, 8, depth, F);
    const background = Array.from({ length: 25 }, () => randomRow(rng, F));
    const explainer = treeExplainer(model, background);
    const fallback = treeExplainer(model, background, { tableBudget: 0 });
    t.equal(fallback.tableSize, 0, 'the fallback holds no table');
    let worst = 0;
    let additivity = 0;
    let fallbackWorst = 0;
    let total = 0;
    for (let k = 0; k < 6; k += 1) {
      const x = randomRow(rng, F);
      const { margin, phi } = explainer.explain(x);
      const oracle = bruteForce(model, x, background);
      worst = Math.max(worst, maxDiff(phi, oracle.phi), Math.abs(explainer.baseline - oracle.baseline));
      additivity = Math.max(
        additivity,
        Math.abs(explainer.baseline + phi.reduce((s, p) => s + p, 0) - treeMargin(model, x)),
      );
      t.ok(Math.abs(margin - treeMargin(model, x)) < 1e-12, 'the margin is the trees’ margin');
      fallbackWorst = Math.max(fallbackWorst, maxDiff(fallback.explain(x).phi, phi));
      total += phi.reduce((s, p) => s + Math.abs(p), 0);
    }
    t.ok(worst < 1e-6, `depth ${depth}: max |φ − brute force| = ${worst}`);
    t.ok(additivity < 1e-9, `depth ${depth}: baseline + Σφ = margin to ${additivity}`);
    t.ok(fallbackWorst < 1e-12, `depth ${depth}: tables and call-time shares agree (${fallbackWorst})`);
    t.ok(total > 0.01, `depth ${depth}: the contributions are not all zero (Σ|φ| = ${total.toFixed(3)})`);
  }
});

t.test('a feature tested several times on one path, and a single-row background', async (t) => {
  const rng = createRng(44);
  const model = randomModel(rng, 6, 6, 3); // 3 features, depth 6: every path repeats features
  const background = [randomRow(rng, 3, 0)];
  const explainer = treeExplainer(model, background);
  for (let k = 0; k < 10; k += 1) {
    const x = randomRow(rng, 3);
    t.ok(maxDiff(explainer.explain(x).phi, bruteForce(model, x, background).phi) < 1e-9);
  }
});

t.test('20 features: equal to the per-pair recursion to 1e-9, additive to 1e-9', async (t) => {
  const rng = createRng(18);
  const F = 20;
  const model = randomModel(rng, 30, 6, F);
  const background = Array.from({ length: 40 }, () => randomRow(rng, F));
  const explainer = treeExplainer(model, background);
  for (let k = 0; k < 5; k += 1) {
    const x = randomRow(rng, F);
    const { phi } = explainer.explain(x);
    const oracle = recursive(model, x, background);
    t.ok(maxDiff(phi, oracle) < 1e-9, `row ${k}: max |φ − recursion| = ${maxDiff(phi, oracle)}`);
    const sum = explainer.baseline + phi.reduce((s, p) => s + p, 0);
    t.ok(
      Math.abs(sum - treeMargin(model, x)) < 1e-9,
      `row ${k}: additive (${sum} vs ${treeMargin(model, x)})`,
    );
  }
});

t.test('200 features, 100 trees of depth 6, 100 background rows: the cost of a call', async (t) => {
  const rng = createRng(200);
  const F = 200;
  const model = randomModel(rng, 100, 6, F);
  const background = Array.from({ length: 100 }, () => randomRow(rng, F, 0));
  const explainer = treeExplainer(model, background);
  const rows = Array.from({ length: 50 }, () => randomRow(rng, F, 0));
  for (const x of rows) explainer.explain(x);
  const samples: number[] = [];
  for (let k = 0; k < 400; k += 1) {
    const x = rows[k % rows.length]!;
    const start = process.hrtime.bigint();
    explainer.explain(x);
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  samples.sort((a, b) => a - b);
  const median = samples[samples.length >> 1]!;
  // The budget is 2 ms for the whole model stage; tap runs files in parallel, so leave room.
  t.ok(median < 2, `median ${median.toFixed(3)} ms per explanation`);
  const x = rows[0]!;
  const oracle = recursive(model, x, background.slice(0, 100));
  t.ok(maxDiff(explainer.explain(x).phi, oracle) < 1e-9, 'and still exact at 200 features');
});

t.test('inputs the explainer refuses', async (t) => {
  const model = randomModel(createRng(1), 2, 2, 3);
  t.throws(() => treeExplainer(model, []), /empty/);
  t.throws(() => treeExplainer(model, [[1, 2]]), /2 values for 3 features/);
  t.throws(() => treeExplainer(model, [[1, 2, 3]]).explain([1]), /1 values for 3 features/);
});

/**
 * The tree reader against onnxruntime: for every layout the converters write and every node mode ONNX
 * defines (with missing values tracking either branch), link(margin) computed from the parsed trees
 * must equal onnxruntime's output on the same rows; layouts that cannot be explained are refused with
 * the reason.
 */
import t, { type Test } from 'tap';
import * as ort from 'onnxruntime-node';
import { applyLink, readTreeModel, treeMargin } from '../../src/scoring/trees.js';
import { createRng } from '../../tools/synthetic/random.js';
import { type RawEnsemble, randomRawTrees, rawEnsembleToOnnx } from '../../tools/training/tree-onnx.js';

const GRID = [-2, -1, -0.5, 0, 0.5, 1, 2];

/** Rows on the threshold grid (so equality modes are met), with NaN in one value out of ten. */
function rows(seed: number, n: number, width: number): number[][] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () =>
    Array.from({ length: width }, () =>
      rng.next() < 0.1
        ? Number.NaN
        : rng.next() < 0.6
          ? GRID[rng.int(0, GRID.length - 1)]!
          : rng.normal(0, 1.5),
    ),
  );
}

async function ortOutput(bytes: Uint8Array, data: number[][], column: number): Promise<number[]> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  const width = data[0]!.length;
  const input = new ort.Tensor('float32', Float32Array.from(data.flat()), [data.length, width]);
  const out = (await session.run({ features: input }, ['probability'])).probability!;
  await session.release();
  const columns = out.dims[1] ?? 1;
  return Array.from({ length: data.length }, (_, r) => Number(out.data[r * columns + column]));
}

async function agree(t: Test, e: RawEnsemble, column: number, seed: number, tolerance = 2e-6) {
  const bytes = rawEnsembleToOnnx(e);
  const model = readTreeModel(bytes, { name: 'probability', column }, e.featureCount);
  const data = rows(seed, 400, e.featureCount);
  const expected = await ortOutput(bytes, data, column);
  let worst = 0;
  data.forEach((x, r) => {
    worst = Math.max(worst, Math.abs(applyLink(model, treeMargin(model, x)) - expected[r]!));
  });
  t.ok(worst <= tolerance, `${model.layout}, column ${column}: max |Δ| = ${worst}`);
  return model;
}

t.test(
  'every node mode, missing values either way, depths 1 to 6: the reader equals onnxruntime',
  async (t) => {
    const rng = createRng(17);
    for (let depth = 1; depth <= 6; depth += 1) {
      const trees = randomRawTrees(rng, {
        trees: 12,
        depth,
        featureCount: 5,
        missingTrue: 0.4,
        scrambleIds: depth % 2 === 0,
      });
      await agree(
        t,
        { op: 'classifier', trees, featureCount: 5, baseValues: [0.3], postTransform: 'LOGISTIC' },
        1,
        depth,
      );
      await agree(
        t,
        { op: 'classifier', trees, featureCount: 5, baseValues: [-0.2], postTransform: 'LOGISTIC' },
        0,
        depth,
      );
    }
  },
);

t.test('the converters’ layouts', async (t) => {
  const rng = createRng(5);
  const trees = randomRawTrees(rng, { trees: 20, depth: 4, featureCount: 6, missingTrue: 0.3 });
  // XGBoost / LightGBM (onnxmltools), skl2onnx gradient boosting: one column of votes, one base value.
  await agree(
    t,
    { op: 'classifier', trees, featureCount: 6, baseValues: [-1.1], postTransform: 'LOGISTIC' },
    1,
    1,
  );
  // No base value at all.
  await agree(t, { op: 'classifier', trees, featureCount: 6, postTransform: 'LOGISTIC' }, 1, 2);
  // Double thresholds and weights.
  await agree(
    t,
    {
      op: 'classifier',
      trees,
      featureCount: 6,
      baseValues: [0.4],
      postTransform: 'LOGISTIC',
      asTensor: true,
    },
    1,
    3,
  );
  // A regressor on the margin, then a Sigmoid (and the regressor alone, on the margin scale).
  await agree(t, { op: 'regressor', trees, featureCount: 6, baseValues: [0.25], sigmoid: true }, 0, 4);
  await agree(t, { op: 'regressor', trees, featureCount: 6, baseValues: [0.25] }, 0, 5, 2e-5);
  await agree(t, { op: 'regressor', trees, featureCount: 6, aggregate: 'AVERAGE' }, 0, 6);
  // Random forest (skl2onnx): each leaf votes a probability on both classes, NONE.
  const forest = randomRawTrees(rng, { trees: 10, depth: 3, featureCount: 6 }).map((tree) => ({
    id: tree.id,
    nodes: tree.nodes.map((n) => {
      if (!('votes' in n)) return n;
      const p = 1 / (1 + Math.exp(-n.votes[0]!.weight * 4)) / 10;
      return {
        id: n.id,
        votes: [
          { id: 0, weight: 0.1 - p },
          { id: 1, weight: p },
        ],
      };
    }),
  }));
  await agree(t, { op: 'classifier', trees: forest, featureCount: 6, postTransform: 'NONE' }, 1, 7);
  await agree(t, { op: 'classifier', trees: forest, featureCount: 6, postTransform: 'NONE' }, 0, 8);
});

t.test('layouts that cannot be explained are refused with the reason', async (t) => {
  const trees = randomRawTrees(createRng(9), { trees: 3, depth: 2, featureCount: 3 });
  const read = (e: Partial<RawEnsemble>, column = 1) =>
    readTreeModel(
      rawEnsembleToOnnx({ op: 'classifier', trees, featureCount: 3, postTransform: 'LOGISTIC', ...e }),
      { name: 'probability', column },
      3,
    );
  t.throws(() => read({ classLabels: [0, 1, 2] }), /3 classes/);
  t.throws(() => read({ baseValues: [0.1, 0.2] }), /two base values/);
  t.throws(() => read({ postTransform: 'NONE' }), /winning class/);
  const both = trees.map((tree) => ({
    id: tree.id,
    nodes: tree.nodes.map((n) =>
      'votes' in n
        ? {
            id: n.id,
            votes: [
              { id: 0, weight: 1 },
              { id: 1, weight: -1 },
            ],
          }
        : n,
    ),
  }));
  t.throws(() => read({ trees: both, baseValues: [0.5, 0.5] }), /ignores base_values\[0\]/);
  t.throws(
    () =>
      readTreeModel(
        rawEnsembleToOnnx({
          op: 'regressor',
          trees,
          featureCount: 3,
          aggregate: 'AVERAGE',
          postTransform: 'LOGISTIC',
        }),
        { name: 'probability' },
        3,
      ),
    /post_transform LOGISTIC/,
  );
  t.throws(
    () =>
      readTreeModel(
        rawEnsembleToOnnx({ op: 'classifier', trees, featureCount: 3, postTransform: 'LOGISTIC' }),
        { name: 'label' },
        3,
      ),
    /label/,
  );
  t.throws(
    () =>
      readTreeModel(
        rawEnsembleToOnnx({ op: 'classifier', trees, featureCount: 3, postTransform: 'LOGISTIC' }),
        { name: 'probability', column: 1 },
        2,
      ),
    /not one of the 2 inputs/,
  );
});

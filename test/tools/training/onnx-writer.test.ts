import { createHash } from 'node:crypto';
import t from 'tap';
import * as ort from 'onnxruntime-node';
import onnxProto from 'onnx-proto';
import { createRng, type Rng } from '../../../tools/synthetic/random.js';
import { fitLogistic, predictLogistic } from '../../../tools/training/logistic.js';
import { logisticToOnnx, treeEnsembleToOnnx } from '../../../tools/training/onnx-writer.js';
import {
  predictTreeEnsemble,
  treeEnsembleMargin,
  type TreeEnsemble,
  type TreeNode,
} from '../../../tools/training/tree-ensemble.js';

const { onnx } = onnxProto;

const names = {
  inputName: 'features',
  outputName: 'probability',
  producerName: 'cds-test',
  producerVersion: '1.0.0',
};
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

async function session(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
}

function batch(rows: readonly (readonly number[])[]): ort.Tensor {
  return new ort.Tensor('float32', Float32Array.from(rows.flat()), [rows.length, rows[0]!.length]);
}

function randomRows(rng: Rng, n: number, width: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: width }, () => rng.normal(0, 2)));
}

/** A random binary tree of the given depth, nodes numbered depth-first, leaves on the log-odds scale. */
function randomTree(rng: Rng, depth: number, features: number): TreeNode[] {
  const nodes: TreeNode[] = [];
  const grow = (level: number): number => {
    const index = nodes.length;
    if (level === depth || (level > 0 && rng.bool(0.2))) {
      nodes.push({ leaf: rng.normal(0, 0.6) });
      return index;
    }
    const split = { feature: rng.int(0, features - 1), threshold: rng.normal(0, 1.5), left: 0, right: 0 };
    nodes.push(split);
    split.left = grow(level + 1);
    split.right = grow(level + 1);
    return index;
  };
  grow(0);
  return nodes;
}

t.test('a logistic model runs in onnxruntime and matches predictLogistic within 1e-6', async (t) => {
  const rng = createRng(31);
  const X = randomRows(rng, 3000, 5);
  const truth = [0.6, -0.4, 0.3, 0, -0.8];
  const y = X.map((x) =>
    rng.bool(1 / (1 + Math.exp(-(-0.7 + x.reduce((s, v, j) => s + v * truth[j]!, 0))))) ? 1 : 0,
  );
  const fit = fitLogistic(X, y);
  const s = await session(logisticToOnnx(fit, names));
  t.same(s.inputNames, ['features']);
  t.same(s.outputNames, ['probability']);
  t.match(s.inputMetadata[0], { isTensor: true, type: 'float32', shape: ['N', 5] });
  t.match(s.outputMetadata[0], { isTensor: true, type: 'float32', shape: ['N', 1] });
  const rows = randomRows(createRng(32), 500, 5);
  const out = (await s.run({ features: batch(rows) })).probability!;
  t.same(out.dims, [500, 1]);
  const data = out.data as Float32Array;
  const worst = rows.reduce((m, x, i) => Math.max(m, Math.abs(data[i]! - predictLogistic(fit, x))), 0);
  t.ok(worst < 1e-6, `max |Δp| = ${worst}`);
  await s.release();
});

t.test('a tree ensemble runs in onnxruntime and matches the hand evaluation of its trees', async (t) => {
  const rng = createRng(77);
  const ensemble: TreeEnsemble = {
    baseValue: -0.4,
    trees: Array.from({ length: 25 }, () => ({ nodes: randomTree(rng, 3, 4) })),
  };
  const s = await session(treeEnsembleToOnnx(ensemble, { ...names, featureCount: 4 }));
  t.same(s.inputNames, ['features']);
  t.same(s.outputNames, ['label', 'probability']);
  t.match(s.outputMetadata, [
    { type: 'int64', shape: ['N'] },
    { type: 'float32', shape: ['N', 2] },
  ]);
  const rows = randomRows(createRng(78), 1000, 4);
  const result = await s.run({ features: batch(rows) });
  const p = result.probability!.data as Float32Array;
  const label = result.label!.data as BigInt64Array;
  t.same(result.probability!.dims, [1000, 2]);
  let worst = 0;
  let labelMismatches = 0;
  rows.forEach((x, i) => {
    const expected = predictTreeEnsemble(ensemble, x);
    worst = Math.max(worst, Math.abs(p[2 * i + 1]! - expected), Math.abs(p[2 * i]! - (1 - expected)));
    if (label[i] !== (treeEnsembleMargin(ensemble, x) > 0 ? 1n : 0n)) labelMismatches++;
  });
  t.ok(worst < 1e-6, `max |Δp| = ${worst}`);
  t.equal(labelMismatches, 0, 'with mixed-sign leaves the label is margin > 0');
  const spread = rows.map((x) => predictTreeEnsemble(ensemble, x));
  t.ok(Math.min(...spread) < 0.2 && Math.max(...spread) > 0.8, 'the batch covers a wide range of risks');
  await s.release();
});

t.test('edge cases of tree ensembles: single leaf, unused features, all-positive leaves', async (t) => {
  const positive: TreeEnsemble = {
    trees: [
      { nodes: [{ feature: 2, threshold: 1, left: 1, right: 2 }, { leaf: 0.1 }, { leaf: 0.9 }] },
      { nodes: [{ leaf: 0.2 }] },
    ],
  };
  const s = await session(treeEnsembleToOnnx(positive, { ...names, featureCount: 3, labelName: 'y' }));
  t.same(s.outputNames, ['y', 'probability']);
  const rows = [
    [0, 0, 0],
    [0, 0, 2],
  ];
  const result = await s.run({ features: batch(rows) });
  const p = result.probability!.data as Float32Array;
  // Margins 0.3 and 1.1: the probabilities are still σ(margin) …
  t.ok(Math.abs(p[1]! - 1 / (1 + Math.exp(-0.3))) < 1e-6, `p = ${p[1]}`);
  t.ok(Math.abs(p[3]! - 1 / (1 + Math.exp(-1.1))) < 1e-6, `p = ${p[3]}`);
  t.ok(Math.abs(p[0]! + p[1]! - 1) < 1e-6);
  // … but onnxruntime's label switches to its random-forest rule (margin > 0.5) when no leaf is negative.
  t.same(Array.from(result.y!.data as BigInt64Array), [0n, 1n]);
  await s.release();
});

t.test('the same model written twice gives identical bytes, pinned by sha256', async (t) => {
  const fit = { intercept: -1.25, coefficients: [0.5, -0.75, 2] };
  const opts = { ...names, docString: 'test model', metadata: { seed: '42', model: 'demo', alpha: 'a' } };
  const a = logisticToOnnx(fit, opts);
  const b = logisticToOnnx(
    { ...fit, coefficients: [...fit.coefficients] },
    { ...opts, metadata: { alpha: 'a', model: 'demo', seed: '42' } },
  );
  t.same(Buffer.from(a), Buffer.from(b), 'metadata order does not matter');
  t.equal(sha256(a), '070f0d1e7281b8d211c77bf4cc3a654eff7f67aeef0b6d60eff94d71bba4b093');
  const ensemble: TreeEnsemble = {
    baseValue: 0.3,
    trees: [{ nodes: [{ feature: 0, threshold: 0.5, left: 1, right: 2 }, { leaf: -1 }, { leaf: 2 }] }],
  };
  const treeOpts = { ...names, featureCount: 2 };
  t.same(
    Buffer.from(treeEnsembleToOnnx(ensemble, treeOpts)),
    Buffer.from(treeEnsembleToOnnx(ensemble, treeOpts)),
  );
  t.equal(
    sha256(treeEnsembleToOnnx(ensemble, treeOpts)),
    '22833789f1c3cc816e381f64d1a108191e8001b07b3a51b2f843a46dbb267a88',
  );
  t.not(
    sha256(logisticToOnnx({ ...fit, intercept: -1.2 }, opts)),
    sha256(a),
    'a changed coefficient changes the bytes',
  );
});

t.test('the model carries ir_version 8, opset 13, producer, doc string and sorted metadata', async (t) => {
  const model = onnx.ModelProto.decode(
    logisticToOnnx(
      { intercept: 0, coefficients: [1] },
      { ...names, docString: 'doc', metadata: { b: '2', a: '1', c: '3' } },
    ),
  );
  t.equal(Number(model.irVersion), 8);
  t.same(
    model.opsetImport.map((o) => [o.domain, Number(o.version)]),
    [['', 13]],
  );
  t.equal(model.producerName, 'cds-test');
  t.equal(model.producerVersion, '1.0.0');
  t.equal(model.docString, 'doc');
  t.same(
    model.metadataProps.map((p) => [p.key, p.value]),
    [
      ['a', '1'],
      ['b', '2'],
      ['c', '3'],
    ],
  );
  t.same(
    model.graph?.node?.map((n) => n.opType),
    ['MatMul', 'Add', 'Sigmoid'],
  );
  const trees = onnx.ModelProto.decode(
    treeEnsembleToOnnx({ trees: [{ nodes: [{ leaf: 1 }] }] }, { ...names, featureCount: 1 }),
  );
  t.same(
    trees.opsetImport.map((o) => [o.domain, Number(o.version)]),
    [
      ['', 13],
      ['ai.onnx.ml', 3],
    ],
  );
  t.equal(trees.graph?.node?.[0]?.domain, 'ai.onnx.ml');
  t.equal(trees.docString, '', 'no doc string unless given');
  t.same(trees.metadataProps, []);
});

t.test('invalid models and names are refused before anything is written', async (t) => {
  t.throws(
    () => logisticToOnnx({ intercept: 0, coefficients: [] }, names),
    new Error('logisticToOnnx: the model needs at least one coefficient'),
  );
  t.throws(
    () => logisticToOnnx({ intercept: 0, coefficients: [1e39] }, names),
    new Error('coefficients[0] is not a finite float32 (got 1e+39)'),
  );
  t.throws(
    () => logisticToOnnx({ intercept: Number.NaN, coefficients: [1] }, names),
    new Error('intercept[0] is not a finite float32 (got NaN)'),
  );
  t.throws(
    () => logisticToOnnx({ intercept: 0, coefficients: [1] }, { ...names, inputName: '' }),
    new Error('tensor names must not be empty'),
  );
  t.throws(
    () => logisticToOnnx({ intercept: 0, coefficients: [1] }, { ...names, outputName: 'features' }),
    new Error("tensor name 'features' is used twice"),
  );
  t.throws(
    () => logisticToOnnx({ intercept: 0, coefficients: [1] }, { ...names, outputName: 'logit' }),
    new Error("tensor name 'logit' is used twice"),
  );
  const tree = { trees: [{ nodes: [{ leaf: 1 }] }] };
  t.throws(
    () => treeEnsembleToOnnx(tree, { ...names, featureCount: 1, labelName: 'probability' }),
    new Error("tensor name 'probability' is used twice"),
  );
  t.throws(
    () => treeEnsembleToOnnx({ trees: [] }, { ...names, featureCount: 1 }),
    new Error('the ensemble has no tree'),
  );
});

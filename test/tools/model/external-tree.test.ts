/**
 * Issue 17, acceptance: "A tree model made outside the project (another tool, another layout) with 18
 * or more features loads through a manifest written with `init`, its explanations are additive to 1e-6
 * and equal an independent interventional Shapley computation to 1e-5."
 *
 * Another tool: the ONNX files are written byte by byte by test/helpers/onnx-wire.ts (protobuf wire
 * format from onnx.proto's field numbers), not by the project's onnx-proto writers. Other layouts:
 * - the one onnxmltools writes for an XGBoost binary classifier: a TreeEnsembleClassifier with one
 *   column of votes (class_ids all 0), one base value, LOGISTIC, BRANCH_LT nodes numbered as XGBoost
 *   numbers them (breadth first), each missing value sent the way XGBoost's default direction says,
 *   a `label` output beside the probabilities;
 * - a booster exported on the raw-score scale: a TreeEnsembleRegressor (BRANCH_LEQ) followed by a
 *   Sigmoid node, one probability column.
 * Each tree draws 6 of the 24 features (XGBoost's colsample_bytree), which keeps the brute force below
 * small while every feature takes part.
 *
 * The steps are the README's (Bring your own model): init, fill the manifest and the model card, card
 * --write, validate; then the model is loaded and scored. The reference is computed here from the node
 * lists, with nothing from src/explain: for each tree and background row, the Shapley values of the game
 * v(S) = tree(x on S, z elsewhere) by enumerating every coalition of the tree's features (the others
 * are null players), averaged over the background and summed over the trees.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseDocument } from 'yaml';
import { main } from '../../../tools/model/main.js';
import { createFhirPath } from '../../../src/rules/fhirpath.js';
import { loadModels, logit } from '../../../src/scoring/load.js';
import { type ScoredOutcome, scoreSubjects } from '../../../src/scoring/score.js';
import { createRng, type Rng } from '../../../tools/synthetic/random.js';
import { tempDir } from '../../helpers/app.js';
import { attribute, ELEM, type Message, model, node, tensorInfo } from '../../helpers/onnx-wire.js';

const F = 24;
const TREES = 60;
const NOW = new Date('2026-11-22T09:30:00.000Z');
const engine = createFhirPath();

/** A node as the exporting tool numbers it. */
interface Split {
  id: number;
  feature: number;
  threshold: number;
  yes: number;
  no: number;
  missingYes: boolean;
}
interface Leaf {
  id: number;
  value: number;
}
type Node = Split | Leaf;
interface Tree {
  nodes: Node[];
  /** The features this tree may split on. */
  features: number[];
}
type Mode = 'BRANCH_LT' | 'BRANCH_LEQ';

const isLeaf = (n: Node): n is Leaf => !('feature' in n);
const GRID = [-2, -1, -0.5, 0, 0.5, 1, 2];
const round2 = (v: number) => Math.round(v * 100) / 100;

/** A depth-≤6 tree over 6 of the features, numbered breadth first (root 0), as XGBoost numbers it. */
function randomTree(rng: Rng): Tree {
  const pool = Array.from({ length: F }, (_, i) => i);
  const features: number[] = [];
  for (let k = 0; k < 6; k += 1) features.push(pool.splice(rng.int(0, pool.length - 1), 1)[0]!);
  type Shape = { leaf: number } | { feature: number; threshold: number; missingYes: boolean; kids: Shape[] };
  const grow = (depth: number): Shape =>
    depth === 6 || (depth >= 2 && rng.next() < 0.2)
      ? { leaf: round2(rng.normal(0, 0.4)) }
      : {
          feature: features[rng.int(0, features.length - 1)]!,
          threshold: rng.next() < 0.6 ? GRID[rng.int(0, GRID.length - 1)]! : round2(rng.normal(0, 1.2)),
          missingYes: rng.next() < 0.5,
          kids: [grow(depth + 1), grow(depth + 1)],
        };
  const order: Shape[] = [grow(0)];
  for (let i = 0; i < order.length; i += 1) {
    const s = order[i]!;
    if ('kids' in s) order.push(...s.kids);
  }
  const nodes = order.map((s, id): Node => {
    if ('leaf' in s) return { id, value: s.leaf };
    return {
      id,
      feature: s.feature,
      threshold: s.threshold,
      missingYes: s.missingYes,
      yes: order.indexOf(s.kids[0]!),
      no: order.indexOf(s.kids[1]!),
    };
  });
  return { nodes, features };
}

/** The exporting tool's evaluation: float32 values and thresholds, as an ONNX runtime compares them. */
function leafOf(tree: Tree, x: readonly number[], mode: Mode): Leaf {
  let n = tree.nodes[0]!;
  while (!isLeaf(n)) {
    const v = Math.fround(x[n.feature]!);
    const th = Math.fround(n.threshold);
    const yes = Number.isNaN(v) ? n.missingYes : mode === 'BRANCH_LT' ? v < th : v <= th;
    n = tree.nodes[yes ? n.yes : n.no]!;
  }
  return n;
}

interface Layout {
  name: string;
  mode: Mode;
  base: number;
  output: { name: string; column?: number };
  onnx(trees: readonly Tree[]): Uint8Array;
}

/** The nodes_* attributes of an ai.onnx.ml tree ensemble. */
function nodeAttributes(trees: readonly Tree[], mode: Mode): Message[] {
  const all = trees.flatMap((tree, t) => tree.nodes.map((n) => ({ t, n })));
  const split = (f: (s: Split) => number) => all.map(({ n }) => (isLeaf(n) ? 0 : f(n)));
  return [
    attribute('nodes_treeids', { ints: all.map(({ t }) => t) }),
    attribute('nodes_nodeids', { ints: all.map(({ n }) => n.id) }),
    attribute('nodes_featureids', { ints: split((s) => s.feature) }),
    attribute('nodes_values', { floats: split((s) => s.threshold) }),
    attribute('nodes_modes', { strings: all.map(({ n }) => (isLeaf(n) ? 'LEAF' : mode)) }),
    attribute('nodes_truenodeids', { ints: split((s) => s.yes) }),
    attribute('nodes_falsenodeids', { ints: split((s) => s.no) }),
    attribute('nodes_missing_value_tracks_true', { ints: split((s) => (s.missingYes ? 1 : 0)) }),
  ];
}

function leafAttributes(trees: readonly Tree[], prefix: 'class' | 'target'): Message[] {
  const leaves = trees.flatMap((tree, t) => tree.nodes.filter(isLeaf).map((n) => ({ t, n })));
  return [
    attribute(`${prefix}_treeids`, { ints: leaves.map(({ t }) => t) }),
    attribute(`${prefix}_nodeids`, { ints: leaves.map(({ n }) => n.id) }),
    attribute(`${prefix}_ids`, { ints: leaves.map(() => 0) }),
    attribute(`${prefix}_weights`, { floats: leaves.map(({ n }) => n.value) }),
  ];
}

const XGBOOST: Layout = {
  name: 'xgboost-classifier',
  mode: 'BRANCH_LT',
  base: -0.4,
  output: { name: 'probabilities', column: 1 },
  onnx: (trees) =>
    model({
      irVersion: 7,
      producer: { name: 'OnnxMLTools', version: '1.12.0' },
      opsets: [
        { domain: 'ai.onnx.ml', version: 1 },
        { domain: '', version: 13 },
      ],
      graph: {
        name: 'XGBClassifier',
        nodes: [
          node({
            op: 'TreeEnsembleClassifier',
            domain: 'ai.onnx.ml',
            name: 'TreeEnsembleClassifier',
            inputs: ['input'],
            outputs: ['label', 'probabilities'],
            attributes: [
              attribute('base_values', { floats: [XGBOOST.base] }),
              ...leafAttributes(trees, 'class'),
              attribute('classlabels_int64s', { ints: [0, 1] }),
              ...nodeAttributes(trees, 'BRANCH_LT'),
              attribute('post_transform', { string: 'LOGISTIC' }),
            ],
          }),
        ],
        inputs: [tensorInfo('input', ELEM.FLOAT, ['N', F])],
        outputs: [tensorInfo('label', ELEM.INT64, ['N']), tensorInfo('probabilities', ELEM.FLOAT, ['N', 2])],
      },
    }),
};

const REGRESSOR_SIGMOID: Layout = {
  name: 'regressor-sigmoid',
  mode: 'BRANCH_LEQ',
  base: 0.25,
  output: { name: 'probability' },
  onnx: (trees) =>
    model({
      irVersion: 7,
      producer: { name: 'another-exporter', version: '3.1' },
      opsets: [
        { domain: '', version: 13 },
        { domain: 'ai.onnx.ml', version: 1 },
      ],
      graph: {
        name: 'booster_raw_score',
        nodes: [
          node({
            op: 'TreeEnsembleRegressor',
            domain: 'ai.onnx.ml',
            name: 'trees',
            inputs: ['X'],
            outputs: ['raw_score'],
            attributes: [
              ...nodeAttributes(trees, 'BRANCH_LEQ'),
              ...leafAttributes(trees, 'target'),
              attribute('base_values', { floats: [REGRESSOR_SIGMOID.base] }),
              attribute('n_targets', { int: 1 }),
              attribute('aggregate_function', { string: 'SUM' }),
              attribute('post_transform', { string: 'NONE' }),
            ],
          }),
          node({ op: 'Sigmoid', name: 'link', inputs: ['raw_score'], outputs: ['probability'] }),
        ],
        inputs: [tensorInfo('X', ELEM.FLOAT, ['batch', F])],
        outputs: [tensorInfo('probability', ELEM.FLOAT, ['batch', 1])],
      },
    }),
};

/** The margin the exporting tool computes: base + the leaf values reached (float32 in the file). */
function margin(layout: Layout, trees: readonly Tree[], x: readonly number[]): number {
  return trees.reduce(
    (s, tree) => s + Math.fround(leafOf(tree, x, layout.mode).value),
    Math.fround(layout.base),
  );
}

/** Brute-force interventional Shapley values of the margin (see the file's comment). */
function bruteForceShapley(
  layout: Layout,
  trees: readonly Tree[],
  x: readonly number[],
  background: readonly (readonly number[])[],
): number[] {
  const phi = new Array<number>(F).fill(0);
  const fact = [1, 1, 2, 6, 24, 120, 720, 5040];
  for (const tree of trees) {
    const players = [...new Set(tree.nodes.filter((n): n is Split => !isLeaf(n)).map((n) => n.feature))];
    const u = players.length;
    for (const z of background) {
      const v = new Float64Array(1 << u);
      for (let s = 0; s < 1 << u; s += 1) {
        const hybrid = [...z];
        players.forEach((f, k) => {
          if (s & (1 << k)) hybrid[f] = x[f]!;
        });
        v[s] = Math.fround(leafOf(tree, hybrid, layout.mode).value);
      }
      players.forEach((f, k) => {
        for (let s = 0; s < 1 << u; s += 1) {
          if (s & (1 << k)) continue;
          let size = 0;
          for (let m = s; m; m &= m - 1) size += 1;
          const weight = (fact[size]! * fact[u - size - 1]!) / fact[u]!;
          phi[f]! += (weight * (v[s | (1 << k)]! - v[s]!)) / background.length;
        }
      });
    }
  }
  return phi;
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function row(rng: Rng, missing = 0): number[] {
  return Array.from({ length: F }, () =>
    rng.next() < missing
      ? Number.NaN
      : rng.next() < 0.4
        ? GRID[rng.int(0, GRID.length - 1)]!
        : round2(rng.normal(0, 1.5)),
  );
}

for (const [index, layout] of [XGBOOST, REGRESSOR_SIGMOID].entries()) {
  t.test(`${layout.name}: init, fill, validate, load; TreeSHAP equals brute force`, async (t) => {
    const rng = createRng(1700 + index);
    const trees = Array.from({ length: TREES }, () => randomTree(rng));
    const root = tempDir('cds-external-tree-');
    const modelsDir = join(root, 'models');
    const onnxFile = join(root, `${layout.name}.onnx`);
    writeFileSync(onnxFile, layout.onnx(trees));
    const id = `site-${layout.name}`;
    const folder = join(modelsDir, id, '1.0.0');

    // README step 2: init reads the file, recognises the trees and writes the folder.
    const init = await run(['init', '--onnx', onnxFile, '--id', id, '--models-dir', modelsDir]);
    t.equal(init.code, 0, init.err);
    t.match(
      init.out,
      new RegExp(`input "${layout.name === 'xgboost-classifier' ? 'input' : 'X'}" \\(float32, 24 columns\\)`),
    );
    t.match(
      init.out,
      layout.name === 'xgboost-classifier'
        ? /the output is a tree ensemble \(binary TreeEnsembleClassifier, one column of votes, base -0\.4\d*, LOGISTIC; 60 trees\): explanation method tree/
        : /the output is a tree ensemble \(TreeEnsembleRegressor \(SUM, base 0\.25\), then Sigmoid; 60 trees\): explanation method tree/,
    );
    const path = join(folder, 'manifest.yaml');
    const text = readFileSync(path, 'utf8');
    t.match(text, /^explanation: \{ method: tree \}$/m);
    t.match(text, /^# background: \{ file: background\.csv \}$/m);

    // README step 3: fill the manifest: every marked field, the background, the examples.
    const background = Array.from({ length: 100 }, () => row(rng, 0.05));
    const missingCell = index === 0 ? 'nan' : '';
    writeFileSync(
      join(folder, 'background.csv'),
      [
        Array.from({ length: F }, (_, i) => `v${i}`).join(','),
        // A missing value as numpy.savetxt writes it (nan), or as an empty cell.
        ...background.map((r) => r.map((v) => (Number.isNaN(v) ? missingCell : String(v))).join(',')),
      ].join('\n') + '\n',
    );
    const doc = parseDocument(text);
    doc.setIn(['title'], { en: 'Site trees (test)', fr: 'Arbres du site (test)' });
    doc.setIn(['status'], 'demonstration');
    doc.setIn(['statusText'], { en: 'Test model. Not for clinical use.', fr: 'Modèle de test.' });
    doc.setIn(['outcome'], { en: 'the event', fr: 'l’événement' });
    doc.setIn(['horizonMonths'], 12);
    doc.setIn(['population'], { en: 'anyone', fr: 'tout le monde' });
    doc.setIn(['requires'], []);
    doc.setIn(['guards'], []);
    doc.setIn(
      ['features'],
      Array.from({ length: F }, (_, i) => ({
        id: `v${i}`,
        label: { en: `Value ${i}`, fr: `Valeur ${i}` },
        kind: 'number',
        source: '%focus',
        value: `v${i}`,
        unit: '1',
        range: { min: -100, max: 100 },
        missing: { policy: 'refuse' },
        reference: 0,
      })),
    );
    doc.setIn(['background'], { file: 'background.csv' });
    const examples = Array.from({ length: 5 }, () => row(rng));
    doc.setIn(['examples'], {
      source: `${layout.name} exporter's own evaluation of its trees`,
      tolerance: 1e-5,
      rows: examples.map((input, i) => ({
        id: `row${i + 1}`,
        input,
        probability: 1 / (1 + Math.exp(-margin(layout, trees, input))),
      })),
    });
    doc.setIn(['threshold'], 0.3);
    doc.setIn(['patientSentence'], {
      en: 'About {risk} within {horizon}.',
      fr: 'Environ {risk} en {horizon}.',
    });
    writeFileSync(path, doc.toString({ lineWidth: 0 }));
    t.notOk(readFileSync(path, 'utf8').includes('<<FILL'), 'nothing left to fill in the manifest');

    // README step 4: the model card, then card --write; step 5: validate.
    const cardPath = join(folder, 'model-card.json');
    const card = JSON.parse(readFileSync(cardPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      cardPath,
      JSON.stringify({
        ...card,
        title: 'Site trees (test)',
        status: 'Test model. Not for clinical use.',
        intendedUse: 'The issue-17 acceptance test.',
        intendedUsers: 'The test suite.',
        population: { description: 'Generated rows.' },
        trainingData: { kind: 'simulated', description: 'Random trees.' },
        outcome: { description: 'The event.', horizon: '12 months' },
        metrics: {
          overall: { auc: 0.7, calibrationSlope: 1, calibrationIntercept: 0 },
          subgroups: [{ variable: 'all', group: 'all', n: 100, auc: 0.7 }],
        },
        limits: ['Random trees, not a model of anything.'],
        dates: { trained: '2026-11-01', card: '2026-11-02' },
      }),
    );
    const written = await run(['card', '--model', folder, '--write']);
    t.equal(written.code, 0, written.out);
    const valid = await run(['validate', '--model', folder]);
    t.equal(valid.code, 0, valid.out);
    t.match(valid.out, new RegExp(`${id} 1\\.0\\.0 is ready`));

    // Loaded as the service loads it, then scored and explained.
    const models = await loadModels(modelsDir, engine);
    const loaded = models.get(id)!;
    t.teardown(() => loaded.session.release());
    t.equal(loaded.explainer.method, 'tree');
    t.equal(loaded.explainer.backgroundSize, 100);
    const float32 = (r: readonly number[]) => r.map((v) => Math.fround(v));
    const bg = background.map(float32);
    const meanMargin = bg.reduce((s, z) => s + margin(layout, trees, z), 0) / bg.length;
    t.ok(
      Math.abs(loaded.explainer.baseline - meanMargin) < 1e-9,
      `baseline = the background's mean margin (${loaded.explainer.baseline - meanMargin})`,
    );
    const subjects = Array.from({ length: 8 }, () => row(rng));
    const outcomes = await scoreSubjects(
      loaded,
      subjects.map((x) => Object.fromEntries(x.map((v, i) => [`v${i}`, v]))),
      {},
      NOW,
    );
    let worstAdditive = 0;
    let worstShapley = 0;
    let nonZero = 0;
    for (const [k, outcome] of outcomes.entries()) {
      t.equal(outcome.status, 'scored', `subject ${k} scored`);
      const o = outcome as ScoredOutcome;
      t.equal(o.computation, 'tree');
      const x = float32(subjects[k]!);
      const phi = o.contributions.map((c) => c.contribution);
      const sum = phi.reduce((s, p) => s + p, o.baselineLogit);
      const m = margin(layout, trees, x);
      worstAdditive = Math.max(
        worstAdditive,
        Math.abs(sum - m),
        Math.abs(1 / (1 + Math.exp(-sum)) - o.probability),
      );
      const expected = bruteForceShapley(layout, trees, x, bg);
      worstShapley = Math.max(worstShapley, ...expected.map((e, i) => Math.abs(e - phi[i]!)));
      nonZero = Math.max(nonZero, phi.filter((p) => Math.abs(p) > 1e-3).length);
      t.ok(Math.abs(sum - logit(o.probability)) < 1e-4, `subject ${k}: logit(p) to float32 precision`);
    }
    t.ok(
      worstAdditive < 1e-6,
      `baseline + Σφ = the exporter's margin and σ of it = p (worst ${worstAdditive})`,
    );
    t.ok(worstShapley < 1e-5, `φ = brute-force interventional Shapley (worst ${worstShapley})`);
    t.ok(nonZero >= 18, `18 or more features get a contribution on some subject (${nonZero})`);
  });
}

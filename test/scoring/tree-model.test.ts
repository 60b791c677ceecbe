/**
 * A tree ensemble laid out as onnxmltools writes XGBoost models (one column of votes, a base value,
 * LOGISTIC), with 20 features and every node mode, plugged in through a manifest declaring
 * `explanation: { method: tree }` and a 100-row background: its explanations are additive and equal an
 * independent interventional Shapley computation — the per-pair recursion of Lundberg et al. 2020 run
 * on the raw node lists the file was written from, with its own evaluator, not on what the service read.
 * Then what the loader refuses: a background that does not match, a model that is not a tree
 * ensemble, trees that do not reproduce onnxruntime's output, and a forest whose output is not on
 * the log-odds scale.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { CdsError } from '../../src/errors.js';
import { formatBackground } from '../../src/scoring/background.js';
import { loadModels, logit } from '../../src/scoring/load.js';
import type { ModelManifest } from '../../src/scoring/manifest.js';
import { type ScoredOutcome, scoreSubjects } from '../../src/scoring/score.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { readTreeModel, treeMargin } from '../../src/scoring/trees.js';
import { createRng, type Rng } from '../../tools/synthetic/random.js';
import { modelCardFor } from '../helpers/model-card.js';
import {
  type RawEnsemble,
  type RawNode,
  randomRawTrees,
  rawEnsembleToOnnx,
} from '../../tools/training/tree-onnx.js';

const engine = createFhirPath();
const NOW = new Date('2026-11-22T09:30:00.000Z');
const F = 20;
const GRID = [-2, -1, -0.5, 0, 0.5, 1, 2];
const tmp = mkdtempSync(join(tmpdir(), 'cds-tree-model-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
let folders = 0;

function row(rng: Rng): number[] {
  return Array.from({ length: F }, () =>
    rng.next() < 0.5 ? GRID[rng.int(0, GRID.length - 1)]! : Math.round(rng.normal(0, 1.5) * 100) / 100,
  );
}

function manifest(sha256: string, extra: Partial<ModelManifest> = {}): ModelManifest {
  return {
    id: 'hospital-gbm',
    version: '1.0.0',
    title: { en: 'Hospital GBM', fr: 'GBM de l’hôpital' },
    status: 'demonstration',
    statusText: { en: 'Test model.', fr: 'Modèle de test.' },
    file: 'model.onnx',
    sha256,
    modelCard: { markdown: 'card.md', json: 'card.json' },
    input: { name: 'features' },
    output: { name: 'probability', column: 1 },
    outcome: { en: 'the outcome', fr: 'l’issue' },
    horizonMonths: 12,
    population: { en: 'anyone', fr: 'tout le monde' },
    requires: [],
    guards: [],
    features: Array.from({ length: F }, (_, i) => ({
      id: `v${i}`,
      label: { en: `Value ${i}`, fr: `Valeur ${i}` },
      kind: 'number' as const,
      source: '%focus',
      value: `v${i}`,
      unit: '1',
      range: { min: -100, max: 100 },
      reference: 0,
    })),
    explanation: { method: 'tree' },
    background: { file: 'background.csv' },
    bands: [
      { id: 'low', below: 0.3, label: { en: 'low', fr: 'bas' } },
      { id: 'high', label: { en: 'high', fr: 'haut' } },
    ],
    threshold: 0.5,
    patientSentence: { en: 'About {risk} within {horizon}.', fr: 'Environ {risk} en {horizon}.' },
    // The conversion check: probabilities of the raw trees' own evaluator, not of the service's reader.
    examples: {
      source: 'the raw node lists the file was written from (rawProbability)',
      tolerance: 1e-5,
      rows: EXAMPLE_ROWS.map((input, i) => ({
        id: `row${i + 1}`,
        input,
        probability: rawProbability(ENSEMBLE, input),
      })),
    },
    ...extra,
  };
}

/** Writes a model folder; returns the folder that loadModels reads. */
function folder(onnx: Uint8Array, background: string, extra: Partial<ModelManifest> = {}): string {
  folders += 1;
  const root = join(tmp, `m${folders}`);
  const dir = join(root, 'hospital-gbm');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), onnx);
  writeFileSync(join(dir, 'background.csv'), background);
  const sha = createHash('sha256').update(onnx).digest('hex');
  writeFileSync(join(dir, 'manifest.yaml'), stringify(manifest(sha, extra)));
  const card = modelCardFor('hospital-gbm', '1.0.0', sha);
  writeFileSync(join(dir, 'card.md'), card.markdown);
  writeFileSync(join(dir, 'card.json'), JSON.stringify(card.json));
  return root;
}

async function refused(t: Test, root: string, pattern: RegExp): Promise<void> {
  const error = await loadModels(root, engine).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof CdsError && error.code === 'CDS_ERR_MODEL_INVALID', 'CDS_ERR_MODEL_INVALID');
  t.match((error as Error).message, pattern);
}

/** The raw trees' own evaluator: node ids, modes and missing rules read straight from the node lists. */
function rawChild(node: RawNode, value: number): number {
  if ('votes' in node) throw new Error('a leaf has no child');
  const x = Math.fround(value);
  const t = Math.fround(node.threshold);
  if (Number.isNaN(x)) return node.missingTracksTrue || node.mode === 'BRANCH_NEQ' ? node.yes : node.no;
  const yes = {
    BRANCH_LEQ: x <= t,
    BRANCH_LT: x < t,
    BRANCH_GTE: x >= t,
    BRANCH_GT: x > t,
    BRANCH_EQ: x === t,
    BRANCH_NEQ: x !== t,
  }[node.mode];
  return yes ? node.yes : node.no;
}

/** P(class 1) of the raw ensemble: its leaves' weights summed with the base value, then the logistic. */
function rawProbability(e: RawEnsemble, x: readonly number[]): number {
  let margin = e.baseValues?.[0] ?? 0;
  for (const tree of e.trees) {
    const byId = new Map(tree.nodes.map((n) => [n.id, n]));
    let node = tree.nodes[0]!;
    while (!('votes' in node)) node = byId.get(rawChild(node, x[node.feature]!))!;
    margin += node.votes[0]!.weight;
  }
  return 1 / (1 + Math.exp(-margin));
}

/** Interventional Shapley values by the per-pair recursion (Lundberg et al. 2020) on the raw trees. */
function oracle(e: RawEnsemble, x: readonly number[], background: readonly (readonly number[])[]): number[] {
  const phi = new Array<number>(F).fill(0);
  const fact = [1];
  for (let i = 1; i <= 2 * F; i += 1) fact.push(fact[i - 1]! * i);
  for (const tree of e.trees) {
    const byId = new Map(tree.nodes.map((n) => [n.id, n]));
    for (const z of background) {
      const visit = (node: RawNode, a: Set<number>, b: Set<number>): void => {
        if ('votes' in node) {
          const v = node.votes[0]!.weight / background.length;
          for (const i of a) phi[i]! += (v * fact[a.size - 1]! * fact[b.size]!) / fact[a.size + b.size]!;
          for (const i of b) phi[i]! -= (v * fact[a.size]! * fact[b.size - 1]!) / fact[a.size + b.size]!;
          return;
        }
        const k = node.feature;
        const cx = byId.get(rawChild(node, x[k]!))!;
        const cz = byId.get(rawChild(node, z[k]!))!;
        if (cx === cz || a.has(k)) visit(cx, a, b);
        else if (b.has(k)) visit(cz, a, b);
        else {
          visit(cx, new Set([...a, k]), b);
          visit(cz, a, new Set([...b, k]));
        }
      };
      visit(tree.nodes[0]!, new Set(), new Set());
    }
  }
  return phi;
}

const rng = createRng(1720);
const ENSEMBLE: RawEnsemble = {
  op: 'classifier',
  trees: randomRawTrees(rng, { trees: 40, depth: 5, featureCount: F, missingTrue: 0.3, scrambleIds: true }),
  featureCount: F,
  baseValues: [-0.8],
  postTransform: 'LOGISTIC',
};
const BACKGROUND = Array.from({ length: 100 }, () => row(rng));
const exampleRng = createRng(4242);
const EXAMPLE_ROWS = Array.from({ length: 4 }, () => row(exampleRng));
const ids = Array.from({ length: F }, (_, i) => `v${i}`);
const TREES = readTreeModel(rawEnsembleToOnnx(ENSEMBLE), { name: 'probability', column: 1 }, F);

t.test(
  '20 features, 100-row background: additive to 1e-6, equal to the independent computation to 1e-5',
  async (t) => {
    const root = folder(rawEnsembleToOnnx(ENSEMBLE), formatBackground(ids, BACKGROUND));
    const models = await loadModels(root, engine);
    const model = models.get('hospital-gbm')!;
    t.equal(model.explainer.method, 'tree');
    t.equal(model.explainer.backgroundSize, 100);
    const rows = Array.from({ length: 12 }, () => row(rng));
    const outcomes = await scoreSubjects(
      model,
      rows.map((x) => Object.fromEntries(x.map((v, i) => [`v${i}`, v]))),
      {},
      NOW,
    );
    let spread = 0;
    for (const [k, outcome] of outcomes.entries()) {
      t.equal(outcome.status, 'scored');
      const o = outcome as ScoredOutcome;
      t.equal(o.method, 'tree');
      t.equal(o.computation, 'tree');
      t.same(o.background, { kind: 'sample', rows: 100 });
      t.notOk('samplingError' in o, 'exact: no sampling error');
      const phi = o.contributions.map((c) => c.contribution);
      const sum = phi.reduce((s, p) => s + p, o.baselineLogit);
      // Additive on the margin the trees compute, and that margin is onnxruntime's (float32) probability.
      const margin = treeMargin(TREES, rows[k]!);
      t.ok(Math.abs(sum - margin) < 1e-9, `row ${k}: baseline + Σ = margin (${sum - margin})`);
      t.ok(Math.abs(1 / (1 + Math.exp(-sum)) - o.probability) < 1e-6, `row ${k}: σ(baseline + Σ) = p`);
      t.ok(Math.abs(sum - logit(o.probability)) < 1e-4, `row ${k}: logit(p) to float32 precision`);
      const expected = oracle(ENSEMBLE, rows[k]!, BACKGROUND);
      const worst = Math.max(...expected.map((e, i) => Math.abs(e - phi[i]!)));
      t.ok(worst < 1e-5, `row ${k}: max |φ − independent| = ${worst}`);
      spread += phi.filter((p) => Math.abs(p) > 0.01).length;
    }
    t.ok(spread > 24, `the contributions are spread over many features (${spread})`);
    // The baseline is the mean margin of the background, not the margin at a reference row.
    const mean = (
      await scoreSubjects(model, [{ ...Object.fromEntries(ids.map((id) => [id, 0])) }], {}, NOW)
    )[0] as ScoredOutcome;
    t.equal(mean.baselineLogit, model.explainer.baseline);
  },
);

t.test('what the loader refuses, naming the reason', async (t) => {
  const onnx = rawEnsembleToOnnx(ENSEMBLE);
  const csv = formatBackground(ids, BACKGROUND);
  await refused(
    t,
    folder(onnx, csv.replace('v0,v1', 'v1,v0')),
    /background background\.csv: line 1: the header must name the features in manifest order/,
  );
  await refused(
    t,
    folder(onnx, `${csv}1,2,3\n`),
    /background background\.csv: line 102: 3 values for 20 features/,
  );
  await refused(
    t,
    folder(onnx, csv.replace(/\n-?\d/, '\nx')),
    /background background\.csv: line 2: "x[^"]*" is not a number \(feature v0\)/,
  );
  // A lossy export: the output rounded through float16 is no longer what the trees give.
  await refused(
    t,
    folder(rawEnsembleToOnnx({ ...ENSEMBLE, castThroughHalf: true }), csv),
    /explanation method tree: on the reference row onnxruntime gives [\d.]+ but the trees read from model\.onnx give [\d.]+ \(binary TreeEnsembleClassifier/,
  );
  // A random forest (votes on both classes, NONE): probabilities, not log-odds.
  const forest: RawEnsemble = {
    ...ENSEMBLE,
    postTransform: 'NONE',
    baseValues: undefined,
    trees: ENSEMBLE.trees.map((tree) => ({
      id: tree.id,
      nodes: tree.nodes.map((n) =>
        'votes' in n
          ? {
              id: n.id,
              votes: [
                { id: 0, weight: 0.01 },
                { id: 1, weight: 0.015 },
              ],
            }
          : n,
      ),
    })),
  };
  await refused(
    t,
    folder(rawEnsembleToOnnx(forest), csv),
    /the output is the trees' sum itself .*not a probability on the log-odds scale/,
  );
  // Votes on both classes with base values: the layout onnxruntime mis-scores.
  await refused(
    t,
    folder(rawEnsembleToOnnx({ ...forest, postTransform: 'LOGISTIC', baseValues: [0.2, 0.2] }), csv),
    /explanation method tree: votes on both classes with base values/,
  );
  // A regressor whose LOGISTIC onnxruntime ignores for one target.
  await refused(
    t,
    folder(rawEnsembleToOnnx({ ...ENSEMBLE, op: 'regressor' }), csv, { output: { name: 'probability' } }),
    /a tree regressor with post_transform LOGISTIC/,
  );
});

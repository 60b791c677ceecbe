/**
 * The benchmark's hospital-sized tree model (issue 17): a 100-tree, depth-6 ensemble over 50 features
 * with every node mode, explained by TreeSHAP against a 100-row background, written with its manifest
 * into a temporary folder that `loadModels` reads like any other.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { formatBackground } from '../../src/scoring/background.js';
import { createRng } from '../synthetic/random.js';
import {
  type RawEnsemble,
  randomRawTrees,
  rawEnsembleToOnnx,
  rawProbability,
} from '../training/tree-onnx.js';

/** A 100-tree, depth-6, 50-feature ensemble with a 100-row background, as a model folder. */
export function treeModelFolder(): string {
  const F = 50;
  const rng = createRng(17, 0);
  const ensemble: RawEnsemble = {
    op: 'classifier',
    trees: randomRawTrees(rng, { trees: 100, depth: 6, featureCount: F, missingTrue: 0.2, earlyLeaf: 0.05 }),
    featureCount: F,
    baseValues: [-1],
    postTransform: 'LOGISTIC',
  };
  const onnx = rawEnsembleToOnnx(ensemble);
  const sha256 = createHash('sha256').update(onnx).digest('hex');
  const ids = Array.from({ length: F }, (_, i) => `v${i}`);
  const row = () => ids.map(() => Math.round(rng.normal(0, 1.5) * 100) / 100);
  const root = mkdtempSync(join(tmpdir(), 'cds-bench-trees-'));
  const dir = join(root, 'bench-trees');
  mkdirSync(dir);
  writeFileSync(join(dir, 'model.onnx'), onnx);
  writeFileSync(
    join(dir, 'background.csv'),
    formatBackground(
      ids,
      Array.from({ length: 100 }, () => row()),
    ),
  );
  writeFileSync(join(dir, 'card.md'), `# Benchmark tree ensemble 1.0.0\n\nONNX sha256: \`${sha256}\`\n`);
  writeFileSync(join(dir, 'card.json'), JSON.stringify(benchCard(sha256)));
  const examples = Array.from({ length: 4 }, () => row());
  const manifest = {
    id: 'bench-trees',
    version: '1.0.0',
    title: { en: 'Benchmark trees', fr: 'Arbres de test' },
    status: 'demonstration',
    statusText: { en: 'Benchmark.', fr: 'Banc d’essai.' },
    file: 'model.onnx',
    sha256,
    modelCard: { markdown: 'card.md', json: 'card.json' },
    input: { name: 'features' },
    output: { name: 'probability', column: 1 },
    outcome: { en: 'outcome', fr: 'issue' },
    horizonMonths: 12,
    population: { en: 'anyone', fr: 'tous' },
    requires: [],
    guards: [],
    features: ids.map((id) => ({
      id,
      label: { en: id, fr: id },
      kind: 'number',
      source: '%focus',
      value: id,
      unit: '1',
      reference: 0,
    })),
    explanation: { method: 'tree' },
    examples: {
      source: 'the raw node lists the file was written from (rawProbability)',
      tolerance: 1e-5,
      rows: examples.map((input, i) => ({
        id: `row${i + 1}`,
        input,
        probability: rawProbability(ensemble, input),
      })),
    },
    background: { file: 'background.csv' },
    bands: [{ id: 'all', label: { en: 'all', fr: 'tous' } }],
    threshold: 0.5,
    patientSentence: { en: '{risk} in {horizon}.', fr: '{risk} en {horizon}.' },
  };
  writeFileSync(join(dir, 'manifest.yaml'), stringify(manifest));
  return root;
}

/** A model card with every section the loader requires (src/scoring/model-card.ts). */
function benchCard(sha256: string): Record<string, unknown> {
  return {
    id: 'bench-trees',
    version: '1.0.0',
    status: 'Benchmark model: random trees. Not for clinical use.',
    intendedUse: 'Timing the model stage.',
    intendedUsers: 'The benchmark.',
    population: { description: 'Generated rows.' },
    trainingData: { kind: 'simulated' },
    outcome: { description: 'none', horizon: '12 months' },
    metrics: { overall: { auc: 0.5, calibrationSlope: 1 }, subgroups: [{ variable: 'all', n: 100 }] },
    limits: ['Random trees, not a model of anything.'],
    dates: { trained: '2026-11-22', card: '2026-11-22' },
    onnxSha256: sha256,
  };
}

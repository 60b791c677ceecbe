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
import { randomRawTrees, rawEnsembleToOnnx } from '../training/tree-onnx.js';

/** A 100-tree, depth-6, 50-feature ensemble with a 100-row background, as a model folder. */
export function treeModelFolder(): string {
  const F = 50;
  const rng = createRng(17, 0);
  const onnx = rawEnsembleToOnnx({
    op: 'classifier',
    trees: randomRawTrees(rng, { trees: 100, depth: 6, featureCount: F, missingTrue: 0.2, earlyLeaf: 0.05 }),
    featureCount: F,
    baseValues: [-1],
    postTransform: 'LOGISTIC',
  });
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
  writeFileSync(join(dir, 'card.md'), '# Benchmark tree ensemble\n');
  writeFileSync(join(dir, 'card.json'), '{"id":"bench-trees"}');
  const manifest = {
    id: 'bench-trees',
    version: '1.0.0',
    title: { en: 'Benchmark trees', fr: 'Arbres de test' },
    status: 'demonstration',
    statusText: { en: 'Benchmark.', fr: 'Banc d’essai.' },
    file: 'model.onnx',
    sha256: createHash('sha256').update(onnx).digest('hex'),
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
    background: { file: 'background.csv' },
    bands: [{ id: 'all', label: { en: 'all', fr: 'tous' } }],
    threshold: 0.5,
    patientSentence: { en: '{risk} in {horizon}.', fr: '{risk} en {horizon}.' },
  };
  writeFileSync(join(dir, 'manifest.yaml'), stringify(manifest));
  return root;
}

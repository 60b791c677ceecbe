import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parseDocument, stringify } from 'yaml';
import { CdsError } from '../../src/errors.js';
import { loadModel, loadModels, logit, predict } from '../../src/scoring/load.js';
import type { ModelManifest } from '../../src/scoring/manifest.js';
import { type ScoredOutcome, scoreSubjects } from '../../src/scoring/score.js';
import { treeEnsembleToOnnx } from '../../tools/training/onnx-writer.js';
import { predictTreeEnsemble, type TreeEnsemble } from '../../tools/training/tree-ensemble.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { modelCardFor } from '../helpers/model-card.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const NOW = new Date('2026-11-22T09:30:00.000Z');
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

const tmp = mkdtempSync(join(tmpdir(), 'cds-models-load-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
let copies = 0;

/** A fresh `<root>/<folder>/1.0.0` copy of a bundled model; `root` is what loadModels reads. */
function copyOf(id: string, folder = id): { root: string; dir: string } {
  copies += 1;
  const root = join(tmp, `copy-${copies}`);
  const dir = join(root, folder, '1.0.0');
  mkdirSync(root);
  cpSync(join('models', id, '1.0.0'), dir, { recursive: true });
  return { root, dir };
}

/** Rewrites fields of a copied manifest (keeping the rest of the text as it is). */
function editManifest(dir: string, edit: (doc: ReturnType<typeof parseDocument>) => void): void {
  const path = join(dir, 'manifest.yaml');
  const doc = parseDocument(readFileSync(path, 'utf8'));
  edit(doc);
  writeFileSync(path, doc.toString({ lineWidth: 0 }));
}

async function expectInvalid(t: Test, loading: Promise<unknown>, start: string): Promise<void> {
  const error = await loading.then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(error instanceof CdsError, 'a CdsError');
  const e = error as CdsError;
  t.equal(e.code, 'CDS_ERR_MODEL_INVALID');
  t.equal(e.status, 500);
  t.ok(e.message.startsWith(start), `message "${e.message}" starts with "${start}"`);
}

t.test('loadModels("models", engine) loads both bundled models, one session each', async (t) => {
  const models = await loadModels('models', engine);
  t.same([...models.keys()], ['knee-oa-progression', 'melanoma-risk']);
  const widths: Record<string, number> = { 'knee-oa-progression': 9, 'melanoma-risk': 12 };
  const sessions = new Set<unknown>();
  for (const [id, model] of models) {
    const m = model.manifest;
    t.equal(m.id, id);
    t.equal(m.version, '1.0.0', `${id} version`);
    const bytes = readFileSync(join('models', id, m.version, m.file));
    t.equal(model.sha256, sha256(bytes), `${id}: sha256 of the file bytes`);
    t.equal(m.sha256, model.sha256, `${id}: the manifest states the same sha256`);
    t.equal(m.features.length, widths[id], `${id}: feature count`);
    t.same(model.session.inputNames, [m.input.name]);
    t.equal(m.input.name, 'features');
    t.same(model.session.outputNames, [m.output.name]);
    t.equal(m.output.name, 'probability');
    t.match(model.session.inputMetadata[0], { type: 'float32', shape: ['N', widths[id]] });
    t.equal(model.features.length, m.features.length, `${id}: every feature compiled`);
    t.equal(model.guards.length, m.guards.length, `${id}: every guard compiled`);
    t.match(model.card.markdown, /simulated data/);
    t.ok(model.card.markdown.includes(model.sha256), `${id}: the model card states the sha256`);
    t.equal((model.card.json as { id?: unknown }).id, id, `${id}: the JSON model card names the model`);
    sessions.add(model.session);
    // The session is warm: it answers a batch of the reference row.
    const p = await predict(
      model,
      m.features.map(() => m.features.map((f) => f.reference)),
    );
    t.equal(p.length, m.features.length);
    t.ok(p.every((v) => v > 0 && v < 1));
  }
  t.equal(sessions.size, 2, 'one session per model');
});

t.test('a missing models folder is an empty registry', async (t) => {
  const models = await loadModels(join(tmp, 'no-such-folder'), engine);
  t.equal(models.size, 0);
});

t.test('readModels reads and parses each manifest once', async (t) => {
  // Start-up parsed each manifest twice (readModels checked its folder names, readModel read it again).
  const fs = await import('node:fs');
  const reads: string[] = [];
  const { readModels } = await t.mockImport<typeof import('../../src/scoring/load.js')>(
    '../../src/scoring/load.js',
    {
      'node:fs': {
        ...fs,
        readFileSync: (...args: Parameters<typeof fs.readFileSync>) => {
          if (String(args[0]).endsWith('manifest.yaml')) reads.push(String(args[0]));
          return fs.readFileSync(...args);
        },
      },
    },
  );
  const models = readModels('models', engine);
  t.same([...models.keys()], ['knee-oa-progression@1.0.0', 'melanoma-risk@1.0.0']);
  t.same(reads, [
    join('models', 'knee-oa-progression', '1.0.0', 'manifest.yaml'),
    join('models', 'melanoma-risk', '1.0.0', 'manifest.yaml'),
  ]);
  t.equal(models.get('melanoma-risk@1.0.0')!.manifest.id, 'melanoma-risk');
});

t.test('start-up errors on a copy of a bundled model', async (t) => {
  t.test('the copy itself loads (the errors below come from the edits)', async (t) => {
    const { root } = copyOf('knee-oa-progression');
    const models = await loadModels(root, engine);
    t.same([...models.keys()], ['knee-oa-progression']);
  });

  t.test('sha256 in the manifest not matching the file', async (t) => {
    const { root, dir } = copyOf('knee-oa-progression');
    const actual = sha256(readFileSync(join(dir, 'model.onnx')));
    editManifest(dir, (doc) => doc.setIn(['sha256'], 'a'.repeat(64)));
    await expectInvalid(
      t,
      loadModels(root, engine),
      `model knee-oa-progression: model.onnx has sha256 ${actual}, the manifest says ${'a'.repeat(64)}`,
    );
  });

  t.test('the ONNX file altered by one byte (manifest unchanged)', async (t) => {
    const { dir } = copyOf('melanoma-risk');
    const path = join(dir, 'model.onnx');
    const bytes = readFileSync(path);
    bytes[bytes.length - 1]! ^= 1;
    writeFileSync(path, bytes);
    await expectInvalid(
      t,
      loadModel(dir, engine),
      `model melanoma-risk: model.onnx has sha256 ${sha256(bytes)}`,
    );
  });

  t.test('a minimumRecorded naming a feature the manifest does not have', async (t) => {
    const { dir } = copyOf('melanoma-risk');
    editManifest(dir, (doc) => doc.setIn(['minimumRecorded', 0, 'features', 6], 'sensations'));
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model melanoma-risk: minimumRecorded "checklistItems": no feature "sensations"',
    );
  });

  t.test('a minimumRecorded count above its number of features', async (t) => {
    const { dir } = copyOf('melanoma-risk');
    editManifest(dir, (doc) => doc.setIn(['minimumRecorded', 0, 'count'], 8));
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model melanoma-risk: minimumRecorded "checklistItems": count 8 is above its 7 features',
    );
  });

  t.test('an input name the ONNX model lacks', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => doc.setIn(['input', 'name'], 'x'));
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model knee-oa-progression: the ONNX model has no input "x" (it has features)',
    );
  });

  t.test('an output name the ONNX model lacks', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => doc.setIn(['output', 'name'], 'risk'));
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model knee-oa-progression: the ONNX model has no output "risk" (it has probability)',
    );
  });

  t.test('an output column the model does not have', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => doc.setIn(['output', 'column'], 1));
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model knee-oa-progression: output "probability" of shape [N, 1] has no column 1',
    );
  });

  t.test('one feature removed: the coefficient count is checked first', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => doc.deleteIn(['features', 8]));
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model knee-oa-progression: explanation has 9 coefficients for 8 features',
    );
  });

  t.test('one feature and its coefficient removed: the shape [N, F] does not match', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => {
      doc.deleteIn(['features', 8]);
      doc.deleteIn(['explanation', 'coefficients', 8]);
      const rows = (doc.getIn(['examples', 'rows']) as { items: unknown[] }).items.length;
      for (let i = 0; i < rows; i += 1) doc.deleteIn(['examples', 'rows', i, 'input', 8]);
      doc.deleteIn(['background']);
    });
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model knee-oa-progression: input "features" must have shape [N, 8], not [N, 9]',
    );
  });

  t.test('a linear coefficient changed by 0.1 no longer reproduces the model', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => {
      const c = doc.getIn(['explanation', 'coefficients', 4]) as number;
      doc.setIn(['explanation', 'coefficients', 4], c + 0.1);
    });
    await expectInvalid(
      t,
      loadModel(dir, engine),
      "model knee-oa-progression: the manifest's linear coefficients do not reproduce the model (logit",
    );
  });

  t.test('the intercept changed by 0.1 no longer reproduces the model', async (t) => {
    const { dir } = copyOf('melanoma-risk');
    editManifest(dir, (doc) => {
      const c = doc.getIn(['explanation', 'intercept']) as number;
      doc.setIn(['explanation', 'intercept'], c + 0.1);
    });
    await expectInvalid(
      t,
      loadModel(dir, engine),
      "model melanoma-risk: the manifest's linear coefficients do not reproduce the model (logit",
    );
  });

  t.test('an unknown unit on a quantity feature', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => {
      t.equal(doc.getIn(['features', 4, 'kind']), 'quantity', 'feature 4 is the pain quantity');
      doc.setIn(['features', 4, 'unit'], '[furlong]');
    });
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model knee-oa-progression: feature "pain": unit "[furlong]" is not one the service can convert to',
    );
  });

  t.test('a missing model-card file', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    rmSync(join(dir, 'model-card.md'));
    await expectInvalid(t, loadModel(dir, engine), 'model knee-oa-progression: model card: ENOENT');
  });

  t.test('a model card JSON that is not JSON', async (t) => {
    const { dir } = copyOf('melanoma-risk');
    writeFileSync(join(dir, 'model-card.json'), '{ not json');
    await expectInvalid(t, loadModel(dir, engine), 'model melanoma-risk: model card: ');
  });

  t.test('a missing ONNX file', async (t) => {
    const { dir } = copyOf('melanoma-risk');
    rmSync(join(dir, 'model.onnx'));
    await expectInvalid(t, loadModel(dir, engine), 'model melanoma-risk: cannot read model.onnx: ENOENT');
  });

  t.test('a manifest id differing from its folder', async (t) => {
    const { root } = copyOf('knee-oa-progression', 'knee-oa');
    await expectInvalid(
      t,
      loadModels(root, engine),
      'model knee-oa: manifest id "knee-oa-progression" differs from its folder',
    );
  });

  t.test('a YAML syntax error', async (t) => {
    const { root, dir } = copyOf('melanoma-risk');
    const path = join(dir, 'manifest.yaml');
    writeFileSync(path, readFileSync(path, 'utf8').replace('version: 1.0.0', 'version: [1.0.0'));
    await expectInvalid(t, loadModels(root, engine), 'model melanoma-risk 1.0.0: manifest.yaml: ');
  });

  t.test('a manifest that breaks the schema names the path', async (t) => {
    const { dir } = copyOf('melanoma-risk');
    editManifest(dir, (doc) => doc.setIn(['version'], 'one'));
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model melanoma-risk 1.0.0: manifest.yaml /version must match pattern',
    );
  });

  t.test('risk bands not increasing', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => {
      doc.setIn(['bands', 0, 'below'], 0.3);
      doc.setIn(['bands', 1, 'below'], 0.2);
    });
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model knee-oa-progression: risk bands must have increasing upper bounds, all but the last',
    );
  });

  t.test('a last band with an upper bound', async (t) => {
    const { dir } = copyOf('knee-oa-progression');
    editManifest(dir, (doc) => doc.setIn(['bands', 2, 'below'], 0.9));
    await expectInvalid(
      t,
      loadModel(dir, engine),
      'model knee-oa-progression: the last risk band must have no upper bound',
    );
  });

  t.test('a missing manifest folder is skipped, a broken one among good ones stops start-up', async (t) => {
    const { root } = copyOf('knee-oa-progression');
    mkdirSync(join(root, 'not-a-model'));
    cpSync(join('models', 'melanoma-risk'), join(root, 'melanoma-risk'), { recursive: true });
    t.same([...(await loadModels(root, engine)).keys()], ['knee-oa-progression', 'melanoma-risk']);
    renameSync(join(root, 'melanoma-risk'), join(root, 'melanoma'));
    await expectInvalid(t, loadModels(root, engine), 'model melanoma: manifest id "melanoma-risk" differs');
  });
});

// ---------------------------------------------------------------------------------------------------
// A model built by another tool: a tree ensemble (ai.onnx.ml TreeEnsembleClassifier, probabilities
// [N, 2]) plugged in through a hand-written manifest.

const ENSEMBLE: TreeEnsemble = {
  baseValue: -0.3,
  trees: [
    // x1 and x2 interact: the x2 split only matters when x1 is high.
    {
      nodes: [
        { feature: 0, threshold: 1.5, left: 1, right: 2 },
        { leaf: -0.6 },
        { feature: 1, threshold: 0.25, left: 3, right: 4 },
        { leaf: 0.2 },
        { leaf: 1.1 },
      ],
    },
    { nodes: [{ feature: 2, threshold: 5, left: 1, right: 2 }, { leaf: -0.4 }, { leaf: 0.7 }] },
    // x3 and x1 again, the other way round.
    {
      nodes: [
        { feature: 2, threshold: 8, left: 1, right: 4 },
        { feature: 0, threshold: 3, left: 2, right: 3 },
        { leaf: 0.05 },
        { leaf: -0.5 },
        { leaf: 0.9 },
      ],
    },
  ],
};
const REFERENCE = [1, 0.5, 5];

function externalManifest(sha: string): ModelManifest {
  const feature = (i: number) => ({
    id: `value${i}`,
    label: { en: `Value ${i}`, fr: `Valeur ${i}` },
    kind: 'number' as const,
    source: '%focus',
    value: `value${i}`,
    unit: '1',
    range: { min: -100, max: 100 },
    reference: REFERENCE[i - 1]!,
  });
  return {
    id: 'external-trees',
    version: '2.3.4',
    title: { en: 'External tree ensemble', fr: 'Ensemble d’arbres externe' },
    status: 'demonstration',
    statusText: { en: 'Test model.', fr: 'Modèle de test.' },
    file: 'trees.onnx',
    sha256: sha,
    modelCard: { markdown: 'card.md', json: 'card.json' },
    input: { name: 'X' },
    output: { name: 'probabilities', column: 1 },
    outcome: { en: 'the outcome', fr: 'l’issue' },
    horizonMonths: 12,
    population: { en: 'anyone', fr: 'tout le monde' },
    requires: [],
    guards: [],
    features: [feature(1), feature(2), feature(3)],
    explanation: { method: 'shapley' },
    bands: [
      { id: 'low', below: 0.3, label: { en: 'low', fr: 'bas' } },
      { id: 'high', label: { en: 'high', fr: 'haut' } },
    ],
    threshold: 0.5,
    patientSentence: { en: 'About {risk} within {horizon}.', fr: 'Environ {risk} en {horizon}.' },
    // The tool's own implementation of the ensemble gives the expected probabilities.
    examples: {
      source: 'tools/training/tree-ensemble.ts predictTreeEnsemble',
      tolerance: 1e-6,
      rows: [
        [2, 0.5, 7],
        [0, 0, 0],
        [4, -1, 9],
      ].map((input, i) => ({ id: `row${i + 1}`, input, probability: predictTreeEnsemble(ENSEMBLE, input) })),
    },
  };
}

async function externalModel() {
  const onnx = treeEnsembleToOnnx(ENSEMBLE, {
    inputName: 'X',
    outputName: 'probabilities',
    producerName: 'another-tool',
    producerVersion: '0.1',
    featureCount: 3,
  });
  const dir = join(tmp, 'external', 'external-trees');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'trees.onnx'), onnx);
  writeFileSync(join(dir, 'manifest.yaml'), stringify(externalManifest(sha256(onnx))));
  const card = modelCardFor('external-trees', '2.3.4', sha256(onnx));
  writeFileSync(join(dir, 'card.md'), card.markdown);
  writeFileSync(join(dir, 'card.json'), JSON.stringify(card.json));
  const models = await loadModels(join(tmp, 'external'), engine);
  return { onnx, model: models.get('external-trees')! };
}

/** Shapley values by their definition: the marginal logit change averaged over all 3! orders. */
async function shapleyByPermutations(
  model: Awaited<ReturnType<typeof externalModel>>['model'],
  x: readonly number[],
): Promise<number[]> {
  const f = x.length;
  const orders: number[][] = [];
  const permute = (order: number[], rest: number[]): void => {
    if (rest.length === 0) orders.push(order);
    for (const i of rest)
      permute(
        [...order, i],
        rest.filter((j) => j !== i),
      );
  };
  permute(
    [],
    Array.from({ length: f }, (_, i) => i),
  );
  const value = async (members: ReadonlySet<number>) => {
    const row = x.map((v, i) => (members.has(i) ? v : REFERENCE[i]!));
    return logit((await predict(model, [row]))[0]!);
  };
  const phi = new Array<number>(f).fill(0);
  for (const order of orders) {
    const members = new Set<number>();
    let before = await value(members);
    for (const i of order) {
      members.add(i);
      const after = await value(members);
      phi[i]! += after - before;
      before = after;
    }
  }
  return phi.map((p) => p / orders.length);
}

t.test('a tree ensemble built by another tool plugs in through a manifest', async (t) => {
  const { onnx, model } = await externalModel();
  t.ok(model, 'loaded');
  t.equal(model.sha256, sha256(onnx));
  t.equal(model.manifest.version, '2.3.4');
  t.same(model.session.outputNames, ['label', 'probabilities']);
  t.match(model.session.outputMetadata[1], { type: 'float32', shape: ['N', 2] });

  const rows = [
    [2, 0.5, 7],
    [0, 0, 0],
    [1.5, 0.25, 5],
    [4, -1, 9],
    [1.6, 0.3, 8.5],
    [-3, 10, 4.9],
  ];
  const p = await predict(model, rows);
  rows.forEach((x, i) => {
    const expected = predictTreeEnsemble(ENSEMBLE, x);
    t.ok(Math.abs(p[i]! - expected) < 1e-6, `row ${i}: ${p[i]} ≈ ${expected}`);
  });

  const subjects = rows.map(([value1, value2, value3]) => ({ value1, value2, value3 }));
  const outcomes = await scoreSubjects(model, subjects, {}, NOW);
  t.equal(outcomes.length, rows.length);
  let nonTrivial = 0;
  for (const [i, outcome] of outcomes.entries()) {
    t.equal(outcome.status, 'scored', `subject ${i} scored`);
    const o = outcome as ScoredOutcome;
    t.equal(o.method, 'shapley');
    t.equal(o.probability, p[i]);
    t.same(
      o.contributions.map((c) => c.value),
      rows[i],
    );
    t.same(
      o.contributions.map((c) => c.id),
      ['value1', 'value2', 'value3'],
    );
    const sum = o.contributions.reduce((s, c) => s + c.contribution, o.baselineLogit);
    t.ok(
      Math.abs(sum - logit(o.probability)) < 1e-9,
      `subject ${i}: baseline + Σ = ${sum}, logit(p) = ${logit(o.probability)}`,
    );
    const expected = await shapleyByPermutations(model, rows[i]!);
    const worst = Math.max(...expected.map((e, k) => Math.abs(e - o.contributions[k]!.contribution)));
    t.ok(worst < 1e-9, `subject ${i}: Shapley values equal the permutation average (max Δ ${worst})`);
    if (expected.filter((e) => Math.abs(e) > 0.05).length >= 2) nonTrivial += 1;
    for (const c of o.contributions) {
      t.equal(c.direction, c.contribution > 1e-9 ? 'raises' : c.contribution < -1e-9 ? 'lowers' : 'neutral');
    }
  }
  t.ok(nonTrivial >= 3, `${nonTrivial} subjects have two or more non-zero contributions`);
  const first = outcomes[0] as ScoredOutcome;
  t.ok(
    Math.abs(first.baselineLogit - logit(predictTreeEnsemble(ENSEMBLE, REFERENCE))) < 1e-5,
    'the baseline is the logit at the reference row',
  );
  t.equal(first.band.id, first.probability < 0.3 ? 'low' : 'high');
  t.match(first.patientSentence.en, /^About \d+% within 12 months\.$/);
  t.match(first.patientSentence.fr, /^Environ \d+% en 12 mois\.$/);

  // A subject without value2 is refused (missing policy defaults to refuse), and says which.
  const [refused] = await scoreSubjects(model, [{ value1: 2, value3: 7 }], {}, NOW);
  t.equal(refused!.status, 'not-scored');
  t.match(refused, { reasons: [{ code: 'missing', featureId: 'value2' }] });
});

t.test('the external model is refused when its manifest says another shape or output', async (t) => {
  const { onnx } = await externalModel();
  const dir = join(tmp, 'external-bad', 'external-trees');
  cpSync(join(tmp, 'external', 'external-trees'), dir, { recursive: true });
  const manifest = externalManifest(sha256(onnx));
  writeFileSync(
    join(dir, 'manifest.yaml'),
    stringify({ ...manifest, output: { name: 'probabilities', column: 2 } }),
  );
  await expectInvalid(
    t,
    loadModel(dir, engine),
    'model external-trees: output "probabilities" of shape [N, 2] has no column 2',
  );
  writeFileSync(
    join(dir, 'manifest.yaml'),
    stringify({
      ...manifest,
      features: manifest.features.slice(0, 2),
      examples: {
        ...manifest.examples,
        rows: manifest.examples.rows.map((r) => ({ ...r, input: r.input.slice(0, 2) })),
      },
    }),
  );
  await expectInvalid(
    t,
    loadModel(dir, engine),
    'model external-trees: input "X" must have shape [N, 2], not [N, 3]',
  );
});

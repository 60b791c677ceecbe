/**
 * What start-up and reload refuse about a model's files (issue 17): a reference example the ONNX file
 * does not reproduce, a tampered file whose hash was recomputed in its manifest, a hash the approved-models
 * file does not list; and what they accept: several versions side by side (the service YAML picks the
 * one that issues cards), a float64 input (given a Cast at load).
 */
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import t, { type Test } from 'tap';
import { parseDocument, stringify } from 'yaml';
import { CdsError } from '../../src/errors.js';
import { createLiveSet, loadDefinitions } from '../../src/ops/live-set.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { loadModel, modelKey, predict } from '../../src/scoring/load.js';
import type { ModelManifest } from '../../src/scoring/manifest.js';
import { logisticToOnnx, treeEnsembleToOnnx } from '../../tools/training/onnx-writer.js';
import { predictTreeEnsemble, type TreeEnsemble } from '../../tools/training/tree-ensemble.js';
import { buildTestApp, tempDir } from '../helpers/app.js';
import { modelCardFor } from '../helpers/model-card.js';

const engine = createFhirPath();
const ADMIN = 'a'.repeat(32);
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

const ENSEMBLE: TreeEnsemble = {
  baseValue: -0.3,
  trees: [
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
    {
      nodes: [
        { feature: 2, threshold: 8, left: 1, right: 4 },
        { feature: 0, threshold: 3, left: 2, right: 3 },
        { leaf: 0.05 },
        // No example reaches this leaf (x3 ≤ 8 and x1 > 3).
        { leaf: -0.5 },
        { leaf: 0.9 },
      ],
    },
  ],
};
const EXAMPLE_ROWS = [
  [2, 0.5, 7],
  [0, 0, 0],
  [4, -1, 9],
];

function treeManifest(version: string, sha: string, expected: TreeEnsemble): ModelManifest {
  const feature = (i: number) => ({
    id: `value${i}`,
    label: { en: `Value ${i}`, fr: `Valeur ${i}` },
    kind: 'number' as const,
    source: '%focus',
    value: `value${i}`,
    unit: '1',
    range: { min: -100, max: 100 },
    reference: 1,
  });
  return {
    id: 'site-trees',
    version,
    title: { en: 'Site tree ensemble', fr: 'Ensemble d’arbres du site' },
    status: 'demonstration',
    statusText: { en: 'Test model.', fr: 'Modèle de test.' },
    file: 'model.onnx',
    sha256: sha,
    modelCard: { markdown: 'model-card.md', json: 'model-card.json' },
    input: { name: 'X' },
    output: { name: 'probabilities', column: 1 },
    outcome: { en: 'the outcome', fr: 'l’issue' },
    horizonMonths: 12,
    population: { en: 'anyone', fr: 'tout le monde' },
    requires: [],
    guards: [],
    features: [feature(1), feature(2), feature(3)],
    explanation: { method: 'shapley' },
    examples: {
      source: 'tools/training/tree-ensemble.ts predictTreeEnsemble',
      tolerance: 1e-6,
      rows: EXAMPLE_ROWS.map((input, i) => ({
        id: `row${i + 1}`,
        input,
        probability: predictTreeEnsemble(expected, input),
      })),
    },
    bands: [
      { id: 'low', below: 0.3, label: { en: 'low', fr: 'bas' } },
      { id: 'high', label: { en: 'high', fr: 'haut' } },
    ],
    threshold: 0.5,
    patientSentence: { en: 'About {risk} within {horizon}.', fr: 'Environ {risk} en {horizon}.' },
  };
}

const treeOnnx = (ensemble: TreeEnsemble) =>
  treeEnsembleToOnnx(ensemble, {
    inputName: 'X',
    outputName: 'probabilities',
    producerName: 'another-tool',
    producerVersion: '0.1',
    featureCount: 3,
  });

/**
 * Writes `<modelsDir>/site-trees/<version>/` with `onnxOf` as the file, a manifest stating its sha256
 * (as someone who changed the file would recompute it) and examples from `expected`, and a card to match.
 */
function writeTreeModel(
  modelsDir: string,
  version: string,
  file: TreeEnsemble,
  expected: TreeEnsemble = file,
): { folder: string; sha: string } {
  const folder = join(modelsDir, 'site-trees', version);
  mkdirSync(folder, { recursive: true });
  const onnx = treeOnnx(file);
  const sha = sha256(onnx);
  writeFileSync(join(folder, 'model.onnx'), onnx);
  writeFileSync(join(folder, 'manifest.yaml'), stringify(treeManifest(version, sha, expected)));
  const card = modelCardFor('site-trees', version, sha);
  writeFileSync(join(folder, 'model-card.json'), JSON.stringify(card.json));
  writeFileSync(join(folder, 'model-card.md'), card.markdown);
  return { folder, sha };
}

/** A leaf the examples never reach, changed: what a tamperer or a bad retraining could do unseen. */
const TAMPERED: TreeEnsemble = {
  ...ENSEMBLE,
  trees: ENSEMBLE.trees.map((tree, i) =>
    i === 2 ? { nodes: tree.nodes.map((n, j) => (j === 3 ? { leaf: 2.5 } : n)) } : tree,
  ),
};
/** Every leaf and the base value negated: the sign flip of a wrong class-column conversion. */
const FLIPPED: TreeEnsemble = {
  baseValue: -(ENSEMBLE.baseValue ?? 0),
  trees: ENSEMBLE.trees.map((tree) => ({
    nodes: tree.nodes.map((n) => ('leaf' in n ? { leaf: -n.leaf } : n)),
  })),
};

/** The temporary folder of each copy, by its models folder. */
const roots = new Map<string, string>();
const rootOf = (dirs: { modelsDir: string }) => roots.get(dirs.modelsDir)!;

/** Copies of the bundled services and models, plus the tree model, that a test may change. */
function setUpDirs() {
  const root = tempDir('cds-integrity-');
  const servicesDir = join(root, 'cds-services');
  const modelsDir = join(root, 'models');
  cpSync('cds-services', servicesDir, { recursive: true });
  cpSync('models', modelsDir, { recursive: true });
  roots.set(modelsDir, root);
  return { servicesDir, modelsDir, profilesDir: 'fhir-profiles' };
}

function bundledApprovals(): { id: string; version: string; sha256: string }[] {
  return ['knee-oa-progression', 'melanoma-risk'].map((id) => ({
    id,
    version: '1.0.0',
    sha256: sha256(readFileSync(join('models', id, '1.0.0', 'model.onnx'))),
  }));
}

async function startError(config: Parameters<typeof buildTestApp>[0]): Promise<CdsError> {
  const error = await buildTestApp(config).then(
    async ({ app }) => {
      await app.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  if (!(error instanceof CdsError))
    throw new Error(`start-up did not fail with a CdsError: ${String(error)}`);
  return error;
}

async function reloadError(t: Test, app: Awaited<ReturnType<typeof buildTestApp>>['app']) {
  const res = await app.inject({
    method: 'POST',
    url: '/admin/reload',
    headers: { authorization: `Bearer ${ADMIN}` },
  });
  t.equal(res.statusCode, 500, 'reload refused');
  return String(res.json().issue[0].diagnostics);
}

t.test('a reference example the ONNX file does not reproduce', async (t) => {
  t.test('wrong expected probability on a bundled model: refused at start, naming the example', async (t) => {
    const dirs = setUpDirs();
    const path = join(dirs.modelsDir, 'knee-oa-progression', '1.0.0', 'manifest.yaml');
    const doc = parseDocument(readFileSync(path, 'utf8'));
    doc.setIn(['examples', 'rows', 2, 'probability'], 0.5);
    writeFileSync(path, doc.toString({ lineWidth: 0 }));
    const error = await startError(dirs);
    t.equal(error.code, 'CDS_ERR_MODEL_INVALID');
    t.match(
      error.message,
      /^model knee-oa-progression: example "heldOut3": the ONNX model gives 0\.22095\d, npm run train .* gave 0\.5 \(tolerance 0\.00001\)/,
    );
  });

  t.test('a sign-flipped conversion of a tree ensemble: refused at start and at reload', async (t) => {
    const dirs = setUpDirs();
    const { folder } = writeTreeModel(dirs.modelsDir, '1.0.0', FLIPPED, ENSEMBLE);
    const error = await startError(dirs);
    t.match(error.message, /^model site-trees: example "row1": the ONNX model gives 0\.\d+, tools\/training/);
    // The same file is refused by a running service's reload, which keeps serving the old set.
    const clean = setUpDirs();
    const { app } = await buildTestApp({ ...clean, adminToken: ADMIN });
    t.teardown(() => app.close());
    cpSync(join(dirs.modelsDir, 'site-trees'), join(clean.modelsDir, 'site-trees'), { recursive: true });
    t.match(await reloadError(t, app), /^model site-trees: example "row1"/);
    t.ok(folder);
  });

  t.test('loaded with correct examples, the flipped file gives another probability', async (t) => {
    const dirs = setUpDirs();
    const { folder } = writeTreeModel(dirs.modelsDir, '1.0.0', ENSEMBLE);
    const model = await loadModel(folder, engine);
    t.teardown(() => model.session.release());
    const p = await predict(model, EXAMPLE_ROWS);
    EXAMPLE_ROWS.forEach((x, i) => t.ok(Math.abs(p[i]! - predictTreeEnsemble(ENSEMBLE, x)) < 1e-6));
    t.ok(Math.abs(predictTreeEnsemble(FLIPPED, EXAMPLE_ROWS[0]!) - p[0]!) > 0.1, 'the flip is visible');
  });
});

t.test('a tampered file with its hash recomputed in the manifest and card', async (t) => {
  const dirs = setUpDirs();
  const { sha: good } = writeTreeModel(dirs.modelsDir, '1.0.0', ENSEMBLE);
  const approvedFile = join(rootOf(dirs), 'approved-models.yaml');
  writeFileSync(
    approvedFile,
    stringify([...bundledApprovals(), { id: 'site-trees', version: '1.0.0', sha256: good }]),
  );
  const { app } = await buildTestApp({ ...dirs, approvedModelsFile: approvedFile, adminToken: ADMIN });
  t.teardown(() => app.close());
  const models = await app.inject({ method: 'GET', url: '/models' });
  t.same(
    models.json().models.map((m: { id: string }) => m.id),
    ['knee-oa-progression', 'melanoma-risk', 'site-trees'],
    'the approved models load',
  );

  // A leaf no example reaches is changed, and the manifest and card state the new hash.
  const { sha: tampered } = writeTreeModel(dirs.modelsDir, '1.0.0', TAMPERED, ENSEMBLE);
  t.not(tampered, good);
  const message = `model site-trees: version 1.0.0, model.onnx with sha256 ${tampered} is not approved in approved-models.yaml`;
  t.equal(await reloadError(t, app), message, 'refused at reload, naming the model and the hash');
  t.equal((await startError({ ...dirs, approvedModelsFile: approvedFile })).message, message, 'and at start');

  // Without the approved list, the examples alone cannot see a change on a path they do not take.
  const loaded = await loadModel(join(dirs.modelsDir, 'site-trees', '1.0.0'), engine);
  await loaded.session.release();
  t.pass('the tampered file passes its own examples: the approved list is what catches it');
});

t.test('an unapproved hash of a bundled model is refused at start and at reload', async (t) => {
  const dirs = setUpDirs();
  const approvedFile = join(rootOf(dirs), 'approved.json');
  const approvals = bundledApprovals();
  writeFileSync(approvedFile, JSON.stringify(approvals));
  const { app } = await buildTestApp({ ...dirs, approvedModelsFile: approvedFile, adminToken: ADMIN });
  t.teardown(() => app.close());
  // The approver withdraws melanoma-risk 1.0.0: lists another hash for it.
  writeFileSync(approvedFile, JSON.stringify([approvals[0], { ...approvals[1], sha256: 'b'.repeat(64) }]));
  const message = `model melanoma-risk: version 1.0.0, model.onnx with sha256 ${approvals[1]!.sha256} is not approved in approved.json`;
  t.equal(await reloadError(t, app), message);
  t.equal((await startError({ ...dirs, approvedModelsFile: approvedFile })).message, message);
  writeFileSync(approvedFile, '[{ id: melanoma-risk }]');
  t.match(
    (await startError({ ...dirs, approvedModelsFile: approvedFile })).message,
    /^model approved list approved\.json: \/0 must have required property 'version'/,
  );
});

t.test('versions side by side: the service YAML picks the version that issues cards', async (t) => {
  const dirs = setUpDirs();
  // Version 1.1.0 of the knee model: the same file, a manifest and card saying 1.1.0.
  const v1 = join(dirs.modelsDir, 'knee-oa-progression', '1.0.0');
  const v2 = join(dirs.modelsDir, 'knee-oa-progression', '1.1.0');
  cpSync(v1, v2, { recursive: true });
  for (const name of ['manifest.yaml', 'model-card.md', 'model-card.fr.md', 'model-card.json']) {
    const path = join(v2, name);
    writeFileSync(
      path,
      readFileSync(path, 'utf8')
        .replace(/^version: 1\.0\.0$/m, 'version: 1.1.0')
        .replace(/"version": "1\.0\.0"/, '"version": "1.1.0"')
        .replace(/\| Version +\| 1\.0\.0 +\|/, '| Version | 1.1.0 |'),
    );
  }
  const live = createLiveSet(await loadDefinitions(dirs, engine), dirs, engine, { graceMs: 0 });
  t.teardown(() => live.close());
  t.same([...live.versions.keys()].sort(), [
    modelKey('knee-oa-progression', '1.0.0'),
    modelKey('knee-oa-progression', '1.1.0'),
    modelKey('melanoma-risk', '1.0.0'),
  ]);
  t.equal(live.models.get('knee-oa-progression')!.manifest.version, '1.0.0', 'the version the YAML names');
  t.equal(live.registry.get('knee-oa-progression')!.models[0]!.manifest.version, '1.0.0');
  t.ok(live.versions.get(modelKey('knee-oa-progression', '1.1.0'))!.session, '1.1.0 is open too');

  // One line of the service YAML moves the service to 1.1.0.
  const yaml = join(dirs.servicesDir, 'knee-oa-progression.yaml');
  const text = readFileSync(yaml, 'utf8');
  writeFileSync(yaml, text.replace(/(- id: knee-oa-progression\n\s+version: )1\.0\.0/, '$11.1.0'));
  await live.reload();
  t.equal(live.models.get('knee-oa-progression')!.manifest.version, '1.1.0');
  t.equal(live.registry.get('knee-oa-progression')!.models[0]!.manifest.version, '1.1.0');

  // A version not on disk names the ones that are.
  writeFileSync(yaml, text.replace(/(- id: knee-oa-progression\n\s+version: )1\.0\.0/, '$12.0.0'));
  await t.rejects(live.reload(), {
    code: 'CDS_ERR_DEFINITION_INVALID',
    message: /model "knee-oa-progression" is version 1\.0\.0, 1\.1\.0, not 2\.0\.0/,
  });

  // A version folder whose manifest says another version is refused.
  writeFileSync(yaml, text);
  const path = join(v2, 'manifest.yaml');
  writeFileSync(path, readFileSync(path, 'utf8').replace(/^version: 1\.1\.0$/m, 'version: 1.2.0'));
  await t.rejects(live.reload(), {
    message: 'model knee-oa-progression 1.1.0: manifest version "1.2.0" differs from its folder',
  });
});

t.test('two services running two versions of one model are refused', async (t) => {
  const dirs = setUpDirs();
  const v2 = join(dirs.modelsDir, 'knee-oa-progression', '1.1.0');
  cpSync(join(dirs.modelsDir, 'knee-oa-progression', '1.0.0'), v2, { recursive: true });
  for (const name of ['manifest.yaml', 'model-card.md', 'model-card.fr.md', 'model-card.json']) {
    const path = join(v2, name);
    writeFileSync(
      path,
      readFileSync(path, 'utf8')
        .replace(/^version: 1\.0\.0$/m, 'version: 1.1.0')
        .replace(/"version": "1\.0\.0"/, '"version": "1.1.0"')
        .replace(/\| Version +\| 1\.0\.0 +\|/, '| Version | 1.1.0 |'),
    );
  }
  const text = readFileSync(join(dirs.servicesDir, 'knee-oa-progression.yaml'), 'utf8');
  writeFileSync(
    join(dirs.servicesDir, 'knee-copy.yaml'),
    text
      .replace(/^id: knee-oa-progression$/m, 'id: knee-copy')
      .replace(/(- id: knee-oa-progression\n\s+version: )1\.0\.0/, '$11.1.0'),
  );
  await t.rejects(loadDefinitions(dirs, engine), {
    code: 'CDS_ERR_DEFINITION_INVALID',
    message:
      /runs model "knee-oa-progression" (1\.0\.0|1\.1\.0) while .* runs (1\.1\.0|1\.0\.0): one version of a model issues cards/,
  });
});

t.test('a float64 input gets a Cast at load: the session takes float32 rows', async (t) => {
  const dirs = setUpDirs();
  const coefficients = [0.5, -0.25, 1];
  const intercept = -0.2;
  const float32Model = logisticToOnnx(
    { intercept, coefficients },
    { inputName: 'X', outputName: 'probability', producerName: 'test', producerVersion: '1' },
  );
  // What a float64 export looks like: the input is double, a Cast feeds the float graph.
  const { onnx } = onnxProto;
  const model = onnx.ModelProto.decode(float32Model);
  const graph = model.graph!;
  graph.input![0]!.name = 'X64';
  graph.input![0]!.type!.tensorType!.elemType = onnx.TensorProto.DataType.DOUBLE;
  graph.node!.unshift({
    opType: 'Cast',
    input: ['X64'],
    output: ['X'],
    attribute: [
      { name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: onnx.TensorProto.DataType.FLOAT },
    ],
  });
  const bytes = onnx.ModelProto.encode(model).finish();
  const folder = join(dirs.modelsDir, 'site-linear', '1.0.0');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'model.onnx'), bytes);
  const sha = sha256(bytes);
  const rows = [
    [1, 2, 3],
    [0, 0, 0],
  ];
  const sigmoid = (x: number[]) =>
    1 / (1 + Math.exp(-x.reduce((s, v, i) => s + Math.fround(coefficients[i]!) * v, Math.fround(intercept))));
  const manifest: ModelManifest = {
    ...treeManifest('1.0.0', sha, ENSEMBLE),
    id: 'site-linear',
    input: { name: 'X64' },
    output: { name: 'probability' },
    explanation: {
      method: 'linear',
      intercept: Math.fround(intercept),
      coefficients: coefficients.map(Math.fround),
    },
    examples: {
      source: 'float64 logistic',
      tolerance: 1e-6,
      rows: rows.map((input, i) => ({ id: `r${i}`, input, probability: sigmoid(input) })),
    },
  };
  writeFileSync(join(folder, 'manifest.yaml'), stringify(manifest));
  const card = modelCardFor('site-linear', '1.0.0', sha);
  writeFileSync(join(folder, 'model-card.json'), JSON.stringify(card.json));
  writeFileSync(join(folder, 'model-card.md'), card.markdown);
  const loaded = await loadModel(folder, engine);
  t.teardown(() => loaded.session.release());
  t.equal(loaded.fileInputType, 'float64');
  t.match(loaded.session.inputMetadata[0], { name: 'X64', type: 'float32' });
  const p = await predict(loaded, rows);
  rows.forEach((x, i) => t.ok(Math.abs(p[i]! - sigmoid(x)) < 1e-6, `row ${i}: ${p[i]}`));
});

t.test('model cards: a missing section or a field left to fill is refused, naming it', async (t) => {
  const dirs = setUpDirs();
  const { folder, sha } = writeTreeModel(dirs.modelsDir, '1.0.0', ENSEMBLE);
  const card = modelCardFor('site-trees', '1.0.0', sha);
  const { limits: _l, ...noLimits } = card.json;
  writeFileSync(join(folder, 'model-card.json'), JSON.stringify(noLimits));
  await t.rejects(loadModel(folder, engine), {
    message: 'model site-trees: model card: model-card.json has no /limits (a required section)',
  });
  const metrics = { overall: { auc: 0.7 }, subgroups: [{ n: 1 }] };
  writeFileSync(join(folder, 'model-card.json'), JSON.stringify({ ...card.json, metrics }));
  await t.rejects(loadModel(folder, engine), {
    message:
      'model site-trees: model card: model-card.json /metrics/overall must state calibration (calibrationSlope, calibrationIntercept or calibrationTable)',
  });
  writeFileSync(
    join(folder, 'model-card.json'),
    JSON.stringify({ ...card.json, onnxSha256: 'c'.repeat(64) }),
  );
  await t.rejects(loadModel(folder, engine), {
    message: `model site-trees: model card: model-card.json states sha256 ${'c'.repeat(64)}, the file has ${sha}`,
  });
  writeFileSync(
    join(folder, 'model-card.json'),
    JSON.stringify({ ...card.json, intendedUsers: '<<FILL who>>' }),
  );
  await t.rejects(loadModel(folder, engine), {
    message: 'model site-trees: model card: a field is still to fill: <<FILL who>>',
  });
  writeFileSync(join(folder, 'model-card.json'), JSON.stringify(card.json));
  const path = join(folder, 'manifest.yaml');
  writeFileSync(path, readFileSync(path, 'utf8').replace('Test model.', "'<<FILL status>>'"));
  await t.rejects(loadModel(folder, engine), {
    message: 'model site-trees 1.0.0: manifest.yaml still has a field to fill: <<FILL status>>',
  });
});

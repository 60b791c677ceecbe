/**
 * A float64 input gets a Cast inserted at load (issue 17): the session takes float32 rows, so a
 * double-input tree ensemble compares the same float32 values the explainer reads, and its explanation
 * stays additive. The file on disk, and so its sha256, is left as exported.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import t from 'tap';
import { stringify } from 'yaml';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { float32Input } from '../../src/scoring/cast-input.js';
import { loadModel, logit, predict, SESSION_OPTIONS } from '../../src/scoring/load.js';
import type { ModelManifest } from '../../src/scoring/manifest.js';
import { type ScoredOutcome, scoreSubjects } from '../../src/scoring/score.js';
import { type RawEnsemble, rawEnsembleToOnnx } from '../../tools/training/tree-onnx.js';
import { main } from '../../tools/model/main.js';
import { tempDir } from '../helpers/app.js';
import { modelCardFor } from '../helpers/model-card.js';

const { onnx } = onnxProto;
const engine = createFhirPath();
const NOW = new Date('2026-11-22T09:30:00.000Z');
const root = tempDir('cds-cast-input-');

/** Two trees over 3 features; the first splits at 0.1, whose float32 rounding is 0.10000000149… */
const ENSEMBLE: RawEnsemble = {
  op: 'classifier',
  featureCount: 3,
  baseValues: [-0.5],
  postTransform: 'LOGISTIC',
  trees: [
    {
      id: 0,
      nodes: [
        { id: 0, mode: 'BRANCH_LEQ', feature: 0, threshold: 0.1, yes: 1, no: 2 },
        { id: 1, votes: [{ id: 0, weight: -0.8 }] },
        { id: 2, mode: 'BRANCH_LT', feature: 1, threshold: 2, yes: 3, no: 4, missingTracksTrue: true },
        { id: 3, votes: [{ id: 0, weight: 0.4 }] },
        { id: 4, votes: [{ id: 0, weight: 1.3 }] },
      ],
    },
    {
      id: 1,
      nodes: [
        { id: 0, mode: 'BRANCH_GT', feature: 2, threshold: 5, yes: 1, no: 2 },
        { id: 1, votes: [{ id: 0, weight: 0.9 }] },
        { id: 2, votes: [{ id: 0, weight: -0.3 }] },
      ],
    },
  ],
};

/** The ensemble with its input declared double (as skl2onnx writes with DoubleTensorType). */
function float64Export(dropDefaultOpset = false): Uint8Array {
  const model = onnx.ModelProto.decode(rawEnsembleToOnnx({ ...ENSEMBLE, inputName: 'X' }));
  model.graph!.input![0]!.type!.tensorType!.elemType = onnx.TensorProto.DataType.DOUBLE;
  if (dropDefaultOpset) model.opsetImport = model.opsetImport!.filter((o) => o.domain === 'ai.onnx.ml');
  return onnx.ModelProto.encode(model).finish();
}

const sigmoid = (m: number) => 1 / (1 + Math.exp(-m));
/** A value above 0.1 in float64 whose float32 rounding is 0.1's: the two paths differ on it. */
const HAIR = 0.100000002;

function writeFolder(name: string, bytes: Uint8Array): string {
  const folder = join(root, name);
  mkdirSync(folder, { recursive: true });
  const sha = createHash('sha256').update(bytes).digest('hex');
  writeFileSync(join(folder, 'model.onnx'), bytes);
  writeFileSync(join(folder, 'background.csv'), 'v0,v1,v2\n0,1,4\n0.5,3,6\n0.1,,7\n-1,2.5,5\n');
  const manifest: ModelManifest = {
    id: name,
    version: '1.0.0',
    title: { en: 'Double input', fr: 'Entrée double' },
    status: 'demonstration',
    statusText: { en: 'Test model.', fr: 'Modèle de test.' },
    file: 'model.onnx',
    sha256: sha,
    modelCard: { markdown: 'card.md', json: 'card.json' },
    input: { name: 'X' },
    output: { name: 'probability', column: 1 },
    outcome: { en: 'the outcome', fr: 'l’issue' },
    horizonMonths: 12,
    population: { en: 'anyone', fr: 'tout le monde' },
    requires: [],
    guards: [],
    features: [0, 1, 2].map((i) => ({
      id: `v${i}`,
      label: { en: `Value ${i}`, fr: `Valeur ${i}` },
      kind: 'number' as const,
      source: '%focus',
      value: `v${i}`,
      unit: '1',
      reference: 0,
    })),
    explanation: { method: 'tree' },
    background: { file: 'background.csv' },
    // The source framework's probabilities, on float32 values (what the model sees).
    examples: {
      source: 'hand-computed from the two trees',
      tolerance: 1e-6,
      rows: [
        { id: 'low', input: [0, 1, 6], probability: sigmoid(-0.5 - 0.8 + 0.9) },
        { id: 'high', input: [1, 3, 4], probability: sigmoid(-0.5 + 1.3 - 0.3) },
      ],
    },
    bands: [{ id: 'all', label: { en: 'all', fr: 'tous' } }],
    threshold: 0.5,
    patientSentence: { en: 'About {risk} within {horizon}.', fr: 'Environ {risk} en {horizon}.' },
  };
  writeFileSync(join(folder, 'manifest.yaml'), stringify(manifest));
  const card = modelCardFor(name, '1.0.0', sha);
  writeFileSync(join(folder, 'card.json'), JSON.stringify(card.json));
  writeFileSync(join(folder, 'card.md'), card.markdown);
  return folder;
}

t.test('a float32 input is left as it is', async (t) => {
  const bytes = rawEnsembleToOnnx(ENSEMBLE);
  const result = float32Input(bytes, 'features');
  t.equal(result.fileInputType, 'float32');
  t.equal(result.bytes, bytes, 'the same bytes, not a re-encoding');
});

t.test('without the Cast, the double graph and the float32 explainer part on a value', async (t) => {
  // What feeding float64 rows (the behaviour before) does: 0.100000002 > 0.1f in double, ≤ in float32.
  const session = await ort.InferenceSession.create(float64Export(), SESSION_OPTIONS);
  t.teardown(() => session.release());
  const run = async (x: number) => {
    const out = await session.run({ X: new ort.Tensor('float64', Float64Array.from([x, 1, 6]), [1, 3]) });
    return (out.probability!.data as Float32Array)[1]!;
  };
  t.ok(Math.abs((await run(HAIR)) - sigmoid(-0.5 + 0.4 + 0.9)) < 1e-6, 'double: the > 0.1 branch');
  t.ok(Math.abs((await run(Math.fround(HAIR))) - sigmoid(-0.5 - 0.8 + 0.9)) < 1e-6, 'float32: ≤ 0.1');
});

t.test('a float64 tree model loads with a Cast, scores float32 values, explains additively', async (t) => {
  const bytes = float64Export();
  const folder = writeFolder('double-trees', bytes);
  const model = await loadModel(folder, engine);
  t.teardown(() => model.session.release());
  t.equal(model.fileInputType, 'float64');
  t.match(model.session.inputMetadata[0], { name: 'X', type: 'float32' });
  t.same(readFileSync(join(folder, 'model.onnx')), Buffer.from(bytes), 'the file is not rewritten');
  t.equal(model.explainer.method, 'tree');
  const [p] = await predict(model, [[HAIR, 1, 6]]);
  t.ok(Math.abs(p! - sigmoid(-0.5 - 0.8 + 0.9)) < 1e-6, `the float32 branch (${p})`);
  const [outcome] = (await scoreSubjects(model, [{ v0: HAIR, v1: 1, v2: 6 }], {}, NOW)) as ScoredOutcome[];
  t.equal(outcome!.status, 'scored');
  const sum = outcome!.contributions.reduce((s, c) => s + c.contribution, outcome!.baselineLogit);
  // The file holds float32 weights: the margin is their sum.
  const margin = Math.fround(-0.5) + Math.fround(-0.8) + Math.fround(0.9);
  t.ok(Math.abs(sum - margin) < 1e-9, `baseline + Σ = the margin of the float32 path (${sum})`);
  t.ok(Math.abs(sum - logit(outcome!.probability)) < 1e-5, 'and the model output');
  // The model CLI says what the service does with the file.
  const out: string[] = [];
  const code = await main(['validate', '--model', folder], {
    out: (l) => out.push(l),
    err: (l) => out.push(l),
  });
  t.equal(code, 0, out.join('\n'));
  t.match(out.join('\n'), /input "X" \(float64 in the file, fed float32 through a Cast inserted at load\)/);
});

t.test('a graph importing only ai.onnx.ml gets the default opset for its Cast', async (t) => {
  const bytes = float64Export(true);
  const { bytes: cast, fileInputType } = float32Input(bytes, 'X');
  t.equal(fileInputType, 'float64');
  const model = onnx.ModelProto.decode(cast);
  t.same(
    model.opsetImport!.map((o) => [o.domain, Number(o.version)]),
    [
      ['ai.onnx.ml', 3],
      ['', 9],
    ],
  );
  const cast0 = model.graph!.node![0]!;
  t.match(cast0, { name: 'X_float64_cast', opType: 'Cast', input: ['X'], output: ['X_float64'] });
  t.same(
    cast0.attribute!.map((a) => [a.name, a.type, Number(a.i)]),
    [['to', onnx.AttributeProto.AttributeType.INT, onnx.TensorProto.DataType.DOUBLE]],
  );
  t.same(model.graph!.node![1]!.input, ['X_float64'], 'the trees read the cast input');
  const loaded = await loadModel(writeFolder('ml-only', bytes), engine);
  t.teardown(() => loaded.session.release());
  const [p] = await predict(loaded, [[1, 3, 4]]);
  t.ok(Math.abs(p! - sigmoid(-0.5 + 1.3 - 0.3)) < 1e-6);
});

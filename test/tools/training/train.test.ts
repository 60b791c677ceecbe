import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import t from 'tap';
import { parse } from 'yaml';
import { loadModel } from '../../../src/scoring/load.js';
import type { ModelManifest } from '../../../src/scoring/manifest.js';
import { createRng } from '../../../tools/synthetic/random.js';
import { main, trainModel, type TrainOptions } from '../../../tools/training/train.js';
import { createFhirPath } from '../../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const ID = 'knee-oa-progression';
const FILES = ['background.csv', 'manifest.yaml', 'model-card.json', 'model-card.md', 'model.onnx'];
const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const text = (bytes: Uint8Array | undefined): string => new TextDecoder().decode(bytes);

// Training reads the manifest it rewrites: a private copy keeps it stable while `npm run train` may run.
const tmp = mkdtempSync(join(tmpdir(), 'cds-train-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const modelsDir = join(tmp, 'models');
cpSync('models', modelsDir, { recursive: true });

const small: TrainOptions = { modelsDir, modelId: ID, seed: 7, nTrain: 300, nTest: 150 };

const first = await trainModel(small);
const again = await trainModel(small);

t.test('same seed, same sizes: byte-identical files', async (t) => {
  t.same(Object.keys(first.files).sort(), FILES);
  for (const name of FILES) {
    const a = Buffer.from(first.files[name]!);
    const b = Buffer.from(again.files[name]!);
    t.ok(a.length > 0, `${name} is not empty`);
    t.ok(a.equals(b), `${name}: identical bytes (${a.length})`);
  }
  t.equal(first.summary, again.summary);
  t.match(first.summary, /^knee-oa-progression 1\.0\.0: trained on \d+, tested on \d+ .*AUC 0\.\d{3}/);
});

t.test('another seed gives another model', async (t) => {
  const other = await trainModel({ ...small, seed: 8 });
  t.notOk(
    Buffer.from(other.files['model.onnx']!).equals(Buffer.from(first.files['model.onnx']!)),
    'model.onnx differs',
  );
  t.not(sha256(other.files['model.onnx']!), sha256(first.files['model.onnx']!));
});

t.test('the ONNX file reproduces the coefficients its manifest states', async (t) => {
  const onnx = first.files['model.onnx']!;
  const manifest = parse(text(first.files['manifest.yaml'])) as ModelManifest;
  t.equal(manifest.sha256, sha256(onnx), 'the manifest states the sha256 of the returned model.onnx');
  t.equal(manifest.explanation.method, 'linear');
  if (manifest.explanation.method !== 'linear') return;
  const { intercept, coefficients } = manifest.explanation;
  t.equal(coefficients.length, manifest.features.length);
  t.ok(
    [intercept, ...coefficients].every((c) => Math.fround(c) === c),
    'coefficients are stated as the float32 values the file holds',
  );
  t.ok(
    manifest.features.every((f) => Math.fround(f.reference) === f.reference),
    'references are float32 values too',
  );

  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1 });
  t.teardown(() => session.release());
  t.same(session.inputNames, [manifest.input.name]);
  t.same(session.outputNames, [manifest.output.name]);
  const rng = createRng(99);
  const rows = Array.from({ length: 200 }, () =>
    manifest.features.map((f) => Math.fround(f.reference + rng.normal(0, 1))),
  );
  const width = manifest.features.length;
  const data = Float32Array.from(rows.flat());
  const output = await session.run({
    [manifest.input.name]: new ort.Tensor('float32', data, [rows.length, width]),
  });
  const p = output[manifest.output.name]!.data as Float32Array;
  let worst = 0;
  rows.forEach((x, i) => {
    const z = x.reduce((s, v, j) => s + coefficients[j]! * v, intercept);
    worst = Math.max(worst, Math.abs(p[i]! - 1 / (1 + Math.exp(-z))));
  });
  t.ok(worst < 1e-6, `max |p_onnx − σ(intercept + Σ coefficient × x)| = ${worst}`);

  // And the service loads the trained folder as it is (sha256, shapes, the coefficients check).
  const folder = join(tmp, 'trained', ID);
  mkdirSync(folder, { recursive: true });
  for (const [name, bytes] of Object.entries(first.files)) writeFileSync(join(folder, name), bytes);
  const model = await loadModel(folder, engine);
  t.equal(model.sha256, manifest.sha256);
  t.same(model.manifest.explanation, manifest.explanation);
});

t.test('the model card says what the model is, with its sha256 and subgroup metrics', async (t) => {
  const markdown = text(first.files['model-card.md']);
  const sha = sha256(first.files['model.onnx']!);
  t.ok(markdown.includes('Demonstration model trained on simulated data'), 'demonstration status');
  t.ok(markdown.includes(sha), 'the sha256 of the returned model.onnx');
  t.match(markdown, /### Subgroups/);
  t.match(markdown, /\| sex +\| female /);
  t.match(markdown, /\| sex +\| male /);
  t.match(markdown, /\| ageBand +\| /);
  t.match(markdown, /seed[^\n]*\b7\b/i, 'the seed is stated');
  const json = JSON.parse(text(first.files['model-card.json'])) as Record<string, unknown>;
  t.equal(json.id, ID);
  t.ok(JSON.stringify(json).includes(sha), 'the JSON card holds the sha256');
  const variables = new Set(
    (json.metrics as { subgroups: { variable: string }[] }).subgroups.map((g) => g.variable),
  );
  t.ok(variables.has('sex') && variables.has('ageBand'), `subgroups by ${[...variables].join(', ')}`);
  t.match(markdown, /## Explanations\n\nEach factor on a card is a Shapley value/);
  t.match(markdown, /Background sample: 100 SIMULATED patients \(background\.csv\)/);
});

t.test('the background sample: 100 simulated subjects, as the model sees them', async (t) => {
  const lines = text(first.files['background.csv']).trimEnd().split('\n');
  const manifest = parse(text(first.files['manifest.yaml'])) as ModelManifest;
  t.equal(lines[0], manifest.features.map((f) => f.id).join(','), 'the header names the features');
  t.equal(lines.length, 101, 'a header and 100 rows');
  const rows = lines.slice(1).map((l) => l.split(',').map(Number));
  const column = (id: string) => rows.map((r) => r[manifest.features.findIndex((f) => f.id === id)]!);
  t.ok(
    column('kneeInjury').every((v) => v === 0 || v === 1),
    'a flag is 0 or 1, never a mean',
  );
  t.ok(
    column('age').every((v) => v >= 45 && v <= 79),
    'ages inside the population',
  );
  t.ok(
    rows.every((r) => r.every((v) => Number.isFinite(v) && v === Math.fround(v))),
    'float32 values',
  );
  // Drawn after the training and test patients: not one of them.
  const again = await trainModel({ ...small, nTest: small.nTest + 1 });
  t.not(
    text(again.files['background.csv']),
    text(first.files['background.csv']),
    'starts after the test set',
  );
});

t.test('the manifest is rewritten in place: comments and hand-edited fields stay', async (t) => {
  const written = text(first.files['manifest.yaml']);
  t.match(written, /^# Knee osteoarthritis rapid progression/);
  const before = parse(readFileSync(join(modelsDir, ID, '1.0.0', 'manifest.yaml'), 'utf8')) as ModelManifest;
  const after = parse(written) as ModelManifest;
  // A retrained model (another sha256) no longer names the hand-translated French card, which states the
  // committed model's sha256: the loader would refuse it.
  t.equal(before.modelCard.markdownFr, 'model-card.fr.md');
  t.equal(after.modelCard.markdownFr, undefined, 'the stale French card is no longer named');
  const { markdownFr: _f, ...cardBefore } = before.modelCard;
  const { sha256: _a, explanation: _b, features: fa, examples: ea, ...restAfter } = after;
  const {
    sha256: _c,
    explanation: _d,
    features: fb,
    examples: _e,
    ...restBefore
  } = {
    ...before,
    modelCard: cardBefore,
  };
  t.same(restAfter, restBefore, 'only sha256, the explanation, the references and the examples change');
  t.equal(ea.rows.length, 8, 'eight held-out rows are the reference examples');
  t.equal(ea.tolerance, 1e-5);
  t.same(
    fa.map(({ reference: _r, ...f }) => f),
    fb.map(({ reference: _r, ...f }) => f),
  );
});

t.test('main: a bad command line is refused with the usage before any training', async (t) => {
  for (const args of [['--help-me'], ['--model'], ['models'], ['--check=yes']]) {
    const out: string[] = [];
    const err: string[] = [];
    t.equal(
      await main(
        args,
        (l) => out.push(l),
        (l) => err.push(l),
      ),
      2,
      args.join(' '),
    );
    t.same(out, []);
    t.match(err.join('\n'), /^train: .+\nUsage: train \[--model <id>\] \[--check\]/);
  }
  const out: string[] = [];
  t.equal(
    await main(
      ['--help'],
      (l) => out.push(l),
      () => {},
    ),
    0,
  );
  t.match(
    out.join('\n'),
    /^Usage: train .*\n {2}--model <id> +train one model \(knee-oa-progression, melanoma-risk\)/,
  );
});

t.test('main: an unknown model or models folder fails before any training', async (t) => {
  const out: string[] = [];
  await t.rejects(
    main(
      ['--model', 'no-such-model', '--models-dir', modelsDir],
      (l) => out.push(l),
      () => {},
    ),
    /no training recipe for model "no-such-model" \(known: knee-oa-progression, melanoma-risk\)/,
  );
  await t.rejects(
    main(
      ['--check', '--model', ID, '--models-dir', join(tmp, 'nowhere')],
      (l) => out.push(l),
      () => {},
    ),
    { code: 'CDS_ERR_MODEL_INVALID' },
  );
  t.same(out, [], 'nothing printed');
});

/**
 * The README's "Bring your own model" steps, followed exactly: an ONNX file made by another tool → `model
 * init` → fill the manifest, the model card and the service snippet → `model card --write` → `model
 * validate` → the service starts with it and a hook call returns a card with the model's estimate; `model
 * explain` prints the same estimate for the patient.
 */
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseDocument } from 'yaml';
import { treeEnsembleToOnnx } from '../../../tools/training/onnx-writer.js';
import { predictTreeEnsemble, type TreeEnsemble } from '../../../tools/training/tree-ensemble.js';
import { main } from '../../../tools/model/main.js';
import { buildTestApp, NOW, tempDir } from '../../helpers/app.js';
import { patientView, searchset } from '../../helpers/hook-request.js';

const root = tempDir('cds-byom-');
const modelsDir = join(root, 'models');
const servicesDir = join(root, 'cds-services');
cpSync('cds-services', servicesDir, { recursive: true });
cpSync('models', modelsDir, { recursive: true });
const folder = join(modelsDir, 'site-risk', '1.0.0');

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

// Step 0: the hospital's model, made by another tool: 3 inputs (age, BMI, diabetes), a gradient-boosted
// tree ensemble as skl2onnx writes it (probabilities [N, 2], no ZipMap).
const ENSEMBLE: TreeEnsemble = {
  baseValue: -2,
  trees: [
    { nodes: [{ feature: 0, threshold: 60, left: 1, right: 2 }, { leaf: -0.4 }, { leaf: 0.6 }] },
    { nodes: [{ feature: 1, threshold: 30, left: 1, right: 2 }, { leaf: -0.2 }, { leaf: 0.8 }] },
    {
      nodes: [
        { feature: 2, threshold: 0.5, left: 1, right: 2 },
        { leaf: -0.1 },
        { feature: 0, threshold: 70, left: 3, right: 4 },
        { leaf: 0.5 },
        { leaf: 1.2 },
      ],
    },
  ],
};
const onnxFile = join(root, 'site-risk.onnx');
writeFileSync(
  onnxFile,
  treeEnsembleToOnnx(ENSEMBLE, {
    inputName: 'float_input',
    outputName: 'probabilities',
    producerName: 'skl2onnx',
    producerVersion: '1.17',
    featureCount: 3,
  }),
);
/** What the source framework (here the reference implementation) gives: the examples' probabilities. */
const source = (x: number[]) => predictTreeEnsemble(ENSEMBLE, x);

const DIABETES =
  "%conditions.entry.resource.ofType(Condition).where(code.coding.where(system = 'http://snomed.info/sct' and code = '44054006').exists())";
const BMI =
  "%observations.entry.resource.ofType(Observation).where(code.coding.where(system = 'http://loinc.org' and code = '39156-5').exists())";

t.test('step 1: init reads the ONNX file and writes the folder, every field to fill marked', async (t) => {
  const r = await run(['init', '--onnx', onnxFile, '--id', 'site-risk', '--models-dir', modelsDir]);
  t.equal(r.code, 0, r.err);
  t.match(r.out, /Wrote .*site-risk\/1\.0\.0\/: site-risk\.onnx, manifest\.yaml, model-card\.json/);
  t.match(r.out, /input "float_input" \(float32, 3 columns\), output "probabilities"/);
  t.match(r.out, /output "probabilities" has 2 columns: column 1 is taken as P\(outcome\)/);
  t.match(r.out, /the output is a tree ensemble \(.*; 3 trees\): explanation method tree \(exact TreeSHAP\)/);
  const manifest = readFileSync(join(folder, 'manifest.yaml'), 'utf8');
  t.match(manifest, /^explanation: \{ method: tree \}$/m);
  t.match(manifest, /^# background: \{ file: background\.csv \}$/m);
  t.match(manifest, /^input: \{ name: "float_input" \}$/m);
  t.match(manifest, /^output: \{ name: "probabilities", column: 1 \}$/m);
  t.equal(manifest.match(/- id: '<<FILL id of column/g)?.length, 3, 'one feature per column');
  // Not filled yet: validate lists every field and fails; init refuses to overwrite.
  const v = await run(['validate', '--model', folder]);
  t.equal(v.code, 1);
  t.match(v.out, /✗ manifest\.yaml line \d+: still to fill: <<FILL title in English>>/);
  t.match(v.out, /✗ model-card\.json line \d+: still to fill: <<FILL who reads it/);
  t.match(v.out, /\d+ field\(s\) to fill/);
  const again = await run(['init', '--onnx', onnxFile, '--id', 'site-risk', '--models-dir', modelsDir]);
  t.equal(again.code, 1);
  t.match(again.err, /already has a manifest \(--force overwrites it\)/);
});

t.test('step 2: fill the manifest (features, examples from the source framework, texts)', async (t) => {
  const path = join(folder, 'manifest.yaml');
  const doc = parseDocument(readFileSync(path, 'utf8'));
  doc.setIn(['title'], { en: 'Site risk (test)', fr: 'Risque du site (test)' });
  doc.setIn(['status'], 'demonstration');
  doc.setIn(['statusText'], {
    en: 'Test model. Not for clinical use.',
    fr: 'Modèle de test. Pas pour la clinique.',
  });
  doc.setIn(['outcome'], { en: 'the event', fr: 'l’événement' });
  doc.setIn(['horizonMonths'], 12);
  doc.setIn(['population'], { en: 'adults', fr: 'adultes' });
  const common = { missing: { policy: 'refuse' } };
  doc.setIn(
    ['features'],
    [
      {
        id: 'age',
        label: { en: 'Age', fr: 'Âge' },
        kind: 'age',
        source: '%patient',
        unit: 'a',
        range: { min: 18, max: 110 },
        reference: 55,
        ...common,
      },
      {
        id: 'bmi',
        label: { en: 'Body mass index', fr: 'IMC' },
        kind: 'quantity',
        source: BMI,
        unit: 'kg/m2',
        range: { min: 12, max: 70 },
        staleAfterDays: 730,
        reference: 27,
        ...common,
      },
      {
        id: 'diabetes',
        label: { en: 'Diabetes', fr: 'Diabète' },
        kind: 'flag',
        source: DIABETES,
        unit: '1',
        reference: 0.1,
      },
    ],
  );
  const rows = [
    [50, 25, 0],
    [65, 32, 1],
    [75, 28, 1],
  ];
  doc.setIn(['examples'], {
    source: 'the reference implementation (predict_proba)',
    tolerance: 1e-5,
    rows: rows.map((input, i) => ({ id: `row${i + 1}`, input, probability: source(input) })),
  });
  // The background sample the contributions are measured against (numpy.savetxt's layout; nan = missing).
  writeFileSync(
    join(folder, 'background.csv'),
    'age,bmi,diabetes\n4.5e+01,2.4e+01,0\n52,27.5,0\n58,nan,0\n61,29,1\n49,31,0\n',
  );
  doc.setIn(['background'], { file: 'background.csv' });
  doc.setIn(['threshold'], 0.3);
  doc.setIn(['patientSentence'], {
    en: 'About {risk} within {horizon}.',
    fr: 'Environ {risk} en {horizon}.',
  });
  writeFileSync(path, doc.toString({ lineWidth: 0 }));
  t.notOk(readFileSync(path, 'utf8').includes('<<FILL'), 'nothing left to fill in the manifest');
});

t.test('step 3: fill the model card, then `card --write` checks it and renders the markdown', async (t) => {
  const path = join(folder, 'model-card.json');
  const card = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const filled = {
    ...card,
    title: 'Site risk (test)',
    status: 'Test model. Not for clinical use.',
    intendedUse: 'Tests of the bring-your-own-model steps.',
    intendedUsers: 'The test suite.',
    population: { description: 'Adults.' },
    trainingData: { kind: 'simulated', description: 'Hand-made trees.' },
    outcome: { description: 'The event.', horizon: '12 months' },
    metrics: {
      overall: { auc: 0.7, calibrationSlope: 1, calibrationIntercept: 0 },
      subgroups: [{ variable: 'sex', group: 'female', n: 10, auc: 0.7 }],
    },
    limits: ['Not a real model.'],
    dates: { trained: '2026-11-01', card: '2026-11-02' },
  };
  // A section missing is named.
  const { limits: _l, ...noLimits } = filled;
  writeFileSync(path, JSON.stringify(noLimits, null, 2));
  const missing = await run(['card', '--model', folder]);
  t.equal(missing.code, 1);
  t.match(missing.out, /✗ model-card\.json has no \/limits \(a required section\)/);
  writeFileSync(path, JSON.stringify(filled, null, 2));
  const r = await run(['card', '--model', folder, '--write']);
  t.equal(r.code, 0, r.out);
  t.match(r.out, /Wrote .*model-card\.md/);
  const markdown = readFileSync(join(folder, 'model-card.md'), 'utf8');
  t.match(markdown, /^# Site risk \(test\) — model card/);
  for (const heading of [
    'Intended use',
    'Intended users',
    'Population',
    'Training data',
    'Outcome and horizon',
    'Metrics',
    'Limits',
  ])
    t.match(markdown, new RegExp(`^## ${heading}$`, 'm'), heading);
});

t.test('step 4: validate runs every start-up check and the examples', async (t) => {
  const r = await run(['validate', '--model', folder]);
  t.equal(r.code, 0, r.out);
  t.match(r.out, /✓ manifest, file sha256, FHIRPath of 3 features and 1 guards, model card sections/);
  t.match(
    r.out,
    /✓ example "row2": the reference implementation \(predict_proba\) gave 0\.\d+, the ONNX model 0\.\d+/,
  );
  t.match(r.out, /site-risk 1\.0\.0 is ready/);
});

t.test('step 5: the service snippet, filled, in cds-services/; a hook call returns a card', async (t) => {
  const snippet = readFileSync(join(folder, 'service-snippet.yaml'), 'utf8');
  const filled = snippet
    .replace("'<<FILL title shown in discovery>>'", "'Site risk (test model)'")
    .replace(
      "'<<FILL what the service does, for whom; say the model status>>'",
      "'Site risk from a test model.'",
    )
    .replace(/'<<FILL the publication[^']*'/, "'Site protocol 2026'")
    .replace("'<<FILL https://…>>'", 'https://example.org/protocol')
    .replace(
      /'<<FILL one line under 140 characters[^']*'/,
      "'Estimated {{model.risk}} risk of the event ({{model.band}})'",
    )
    .replace(/'<<FILL e\.g\. No estimate[^']*'/, "'No estimate for this patient; the card says why'")
    .replaceAll("'<<FILL the same in French>>'", "'Estimation : {{model.risk}}'");
  t.notOk(filled.includes('<<FILL'), 'nothing left to fill in the service');
  writeFileSync(join(servicesDir, 'site-risk.yaml'), filled);

  const { app } = await buildTestApp({ servicesDir, modelsDir });
  t.teardown(() => app.close());
  const patient = {
    resourceType: 'Patient' as const,
    id: 'p1',
    birthDate: '1956-05-01',
    gender: 'female' as const,
  };
  const diabetes = {
    resourceType: 'Condition',
    id: 'c1',
    subject: { reference: 'Patient/p1' },
    clinicalStatus: {
      coding: [{ system: 'http://terminology.hl7.org/CodeSystem/condition-clinical', code: 'active' }],
    },
    code: { coding: [{ system: 'http://snomed.info/sct', code: '44054006' }] },
    recordedDate: '2020-01-01',
  };
  const bmi = {
    resourceType: 'Observation',
    id: 'o1',
    status: 'final',
    subject: { reference: 'Patient/p1' },
    code: { coding: [{ system: 'http://loinc.org', code: '39156-5' }] },
    effectiveDateTime: '2026-06-01',
    valueQuantity: { value: 32, unit: 'kg/m2', system: 'http://unitsofmeasure.org', code: 'kg/m2' },
  };
  const res = await app.inject({
    method: 'POST',
    url: '/cds-services/site-risk',
    payload: patientView(
      {
        patient,
        conditions: searchset([diabetes as never]),
        observations: searchset([bmi as never]),
        consent: searchset([]),
      },
      { context: { userId: 'Practitioner/prac-1', patientId: 'p1' } },
    ),
  });
  t.equal(res.statusCode, 200, res.body);
  const cards = res.json().cards as { summary: string; source: { label: string } }[];
  t.equal(cards.length, 1);
  const expected = source([70, 32, 1]); // 70 years old on 2026-11-22
  t.equal(cards[0]!.summary, `Estimated ${Math.round(expected * 100)}% risk of the event (higher risk)`);
  t.match(cards[0]!.source.label, /Test model\. Not for clinical use\./);

  // step 6: explain prints the same estimate for the patient, factor by factor.
  const bundleFile = join(root, 'patient.json');
  writeFileSync(bundleFile, JSON.stringify(searchset([patient, diabetes, bmi] as never[])));
  const e = await run(['explain', '--model', folder, '--bundle', bundleFile, '--now', NOW.toISOString()]);
  t.equal(e.code, 0, e.err);
  t.match(
    e.out,
    new RegExp(`Estimated risk of the event within 12 months: ${Math.round(expected * 100)}% \\(higher risk`),
  );
  t.match(e.out, /↑ raises \+\d\.\d\d {2}Age: 70 a/);
  t.match(e.out, /Body mass index: 32 kg\/m2, 2026-06-01/);
  t.match(e.out, /↑ raises \+\d\.\d\d  Diabetes: recorded, 2020-01-01/);
});

t.test('init names what it cannot take: a ZipMap output, a file that is not ONNX', async (t) => {
  const bad = join(root, 'not-onnx.onnx');
  mkdirSync(join(root, 'x'), { recursive: true });
  writeFileSync(bad, 'not a model');
  const r = await run(['init', '--onnx', bad, '--id', 'bad', '--models-dir', join(root, 'x')]);
  t.equal(r.code, 1);
  t.match(r.err, /^model: onnxruntime cannot load the file/);
  const usage = await run(['init', '--id', 'x']);
  t.equal(usage.code, 2);
  t.match(usage.err, /^model: --onnx is required\nUsage: model <command>/);
  t.equal((await run(['frobnicate'])).code, 2);
  t.equal((await run(['--help'])).code, 0);
});

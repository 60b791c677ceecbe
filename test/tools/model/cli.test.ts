/**
 * The model CLI on the bundled models: validate in plain words (a wrong example with every example's
 * difference, an unapproved hash), card, and explain from a FHIR server on loopback giving the same
 * estimate as the service's card.
 */
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parseDocument, stringify } from 'yaml';
import { resourcesOf, toServerForm } from '../../../tools/synthetic/bundle.js';
import { generatePatient } from '../../../tools/synthetic/patients.js';
import { createRng } from '../../../tools/synthetic/random.js';
import { main } from '../../../tools/model/main.js';
import { buildTestApp, NOW, tempDir } from '../../helpers/app.js';
import { startFhirServer } from '../../helpers/fhir-server.js';
import { HIGH_RISK, KNEE_OA_URL, kneeOaCall } from '../../helpers/knee-oa-call.js';

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const KNEE = join('models', 'knee-oa-progression', '1.0.0');

t.test('validate: a wrong example is shown among all the examples, with what it means', async (t) => {
  const folder = join(tempDir('cds-model-cli-'), '1.0.0');
  cpSync(KNEE, folder, { recursive: true });
  const path = join(folder, 'manifest.yaml');
  const doc = parseDocument(readFileSync(path, 'utf8'));
  doc.setIn(['examples', 'rows', 1, 'probability'], 0.9);
  writeFileSync(path, doc.toString({ lineWidth: 0 }));
  const r = await run(['validate', '--model', folder]);
  t.equal(r.code, 1);
  t.equal(r.out.match(/^✓ example/gm)?.length, 7, 'seven examples pass');
  t.match(
    r.out,
    /^✗ example "heldOut2": npm run train .* gave 0\.9, the ONNX model 0\.10578\d+ \(difference 7\.9e-1/m,
  );
  t.match(r.out, /→ the ONNX file does not give what your framework gave: check the conversion/);
});

t.test('validate --approved: a hash not on the list is refused with the next step', async (t) => {
  const dir = tempDir('cds-model-cli-');
  const approved = join(dir, 'approved.yaml');
  writeFileSync(
    approved,
    stringify([{ id: 'knee-oa-progression', version: '1.0.0', sha256: 'd'.repeat(64) }]),
  );
  const r = await run(['validate', '--model', KNEE, '--approved', approved]);
  t.equal(r.code, 1);
  const sha = createHash('sha256')
    .update(readFileSync(join(KNEE, 'model.onnx')))
    .digest('hex');
  t.match(
    r.out,
    `✗ version 1.0.0, model.onnx with sha256 ${sha} is not approved in approved.yaml\n  → ask whoever keeps the approved-models file`,
  );
  writeFileSync(approved, stringify([{ id: 'knee-oa-progression', version: '1.0.0', sha256: sha }]));
  const ok = await run(['validate', '--model', KNEE, '--approved', approved]);
  t.equal(ok.code, 0, ok.out);
  t.match(ok.out, /✓ manifest, file sha256 \(approved\)/);
});

t.test('card: the bundled card holds every section and renders', async (t) => {
  const r = await run(['card', '--model', KNEE]);
  t.equal(r.code, 0);
  t.match(r.err, /✓ model-card\.json has every required section/);
  t.match(r.out, /^# Knee OA progression \(demonstration model\) — model card/);
  t.match(r.out, /\| ONNX sha256 \| `[0-9a-f]{64}` \|/);
});

t.test('explain from a FHIR server: the estimate of the service card, factor by factor', async (t) => {
  const call = kneeOaCall(HIGH_RISK);
  const resources = resourcesOf(toServerForm(generatePatient(createRng(1, 0), { ...HIGH_RISK, now: NOW })));
  const server = await startFhirServer({ resources });
  t.teardown(() => server.close());
  const r = await run([
    'explain',
    '--model',
    KNEE,
    '--fhir-server',
    server.url,
    '--patient',
    call.context.patientId,
    '--now',
    NOW.toISOString(),
  ]);
  t.equal(r.code, 0, r.err);
  t.ok(
    server.requests.every((q) => q.method === 'GET'),
    'read-only',
  );
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'POST', url: KNEE_OA_URL, payload: call });
  const risk = /estimated (\d+%) risk/.exec(res.json().cards[0].summary as string)![1]!;
  t.match(r.out, new RegExp(`Estimated risk of .* within 24 months: ${risk} \\(`));
  t.match(r.out, /↑ raises \+\d\.\d\d {2}Body mass index: 36/);
  t.match(r.out, /Sum check: reference −\d\.\d\d \+ factors/);
  const fr = await run([
    'explain',
    '--model',
    KNEE,
    '--fhir-server',
    server.url,
    '--patient',
    call.context.patientId,
    '--now',
    NOW.toISOString(),
    '--language',
    'fr',
  ]);
  t.match(fr.out, /Indice de masse corporelle/);
  const usage = await run(['explain', '--model', KNEE, '--fhir-server', server.url]);
  t.equal(usage.code, 2);
  t.match(usage.err, /--fhir-server needs --patient/);
});

/**
 * Hot reload of cds-services/ and models/ through POST /admin/reload (and the live set under it): a
 * valid change is served at once; a broken file is refused with its name, logged, and the running set
 * keeps serving; the route is hidden without adminToken and refuses a wrong token; replaced model
 * sessions are released after the grace period.
 */
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import { createLiveSet, loadDefinitions } from '../../src/ops/live-set.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { buildTestApp, tempDir } from '../helpers/app.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';

const ADMIN = 'a'.repeat(32);
const AUTH = { authorization: `Bearer ${ADMIN}` };

/** Copies of the bundled services and models that a test may change. */
function copies() {
  const root = tempDir('cds-reload-');
  const servicesDir = join(root, 'cds-services');
  const modelsDir = join(root, 'models');
  cpSync('cds-services', servicesDir, { recursive: true });
  cpSync('models', modelsDir, { recursive: true });
  return { servicesDir, modelsDir };
}

async function setUp(t: Test) {
  const dirs = copies();
  const built = await buildTestApp({ ...dirs, adminToken: ADMIN });
  t.teardown(() => built.app.close());
  return { ...built, ...dirs };
}

const ids = async (app: FastifyInstance) =>
  ((await app.inject({ method: 'GET', url: '/cds-services' })).json().services as { id: string }[]).map(
    (s) => s.id,
  );

const reload = (app: FastifyInstance, headers: Record<string, string> = AUTH) =>
  app.inject({ method: 'POST', url: '/admin/reload', headers });

const melanomaCall = (app: FastifyInstance) =>
  app.inject({
    method: 'POST',
    url: '/cds-services/melanoma-lesion-triage',
    payload: patientView({ lesions: searchset([lesion({ items: { changeSize: true } })]) }),
  });

const BUNDLED = [
  'cyproterone-meningioma-order-select',
  'cyproterone-meningioma-order-sign',
  'knee-oa-progression',
  'melanoma-lesion-triage',
  'nsaid-safety-order-select',
  'nsaid-safety-order-sign',
  'topiramate-pregnancy-prevention-order-select',
  'topiramate-pregnancy-prevention-order-sign',
  'valproate-pregnancy-prevention-order-select',
  'valproate-pregnancy-prevention-order-sign',
];

t.test('a service file added then reloaded is in discovery and answers', async (t) => {
  const { app, servicesDir, logs } = await setUp(t);
  t.same(await ids(app), BUNDLED);
  const fixture = readFileSync('test/fixtures/services/omit-demo.yaml', 'utf8');
  writeFileSync(join(servicesDir, 'added.yaml'), fixture.replace('id: omit-demo', 'id: added-service'));

  const res = await reload(app);
  t.equal(res.statusCode, 200, res.body);
  const body = res.json();
  t.equal(body.reloaded, true);
  t.same(body.services, ['added-service', ...BUNDLED]);
  t.same(
    body.models.map((m: { id: string }) => m.id),
    ['knee-oa-progression', 'melanoma-risk'],
  );
  t.same(await ids(app), body.services, 'discovery shows the new set at once');
  const call = await app.inject({
    method: 'POST',
    url: '/cds-services/added-service',
    payload: patientView({ lesions: searchset([lesion()]) }),
  });
  t.equal(call.statusCode, 200, call.body);
  t.equal((await melanomaCall(app)).statusCode, 200, 'the reloaded bundled services answer');
  const ready = await app.inject({ method: 'GET', url: '/health/ready' });
  t.same(ready.json(), { status: 'ready', services: 11, models: 2 });
  const models = await app.inject({ method: 'GET', url: '/models' });
  t.equal(models.json().models.length, 2, '/models answers from the new set');
  t.ok(logs().some((l) => l.msg === 'services and models reloaded' && l.level === 30));
});

t.test('a broken YAML file is refused with its name; the running set keeps serving', async (t) => {
  const { app, servicesDir, logs } = await setUp(t);
  writeFileSync(join(servicesDir, 'broken.yaml'), 'id: [unclosed\n');
  const res = await reload(app);
  t.equal(res.statusCode, 500);
  const issue = res.json().issue[0];
  t.equal(issue.details.coding[0].code, 'CDS_ERR_DEFINITION_INVALID');
  t.match(issue.diagnostics, /^broken\.yaml/);
  t.same(await ids(app), BUNDLED, 'discovery unchanged');
  t.equal((await melanomaCall(app)).statusCode, 200, 'the old set still answers');
  const refused = logs().find(
    (l) => l.msg === 'reload refused: the running services and models are unchanged',
  );
  t.equal(refused?.level, 50);
  t.equal(refused?.code, 'CDS_ERR_DEFINITION_INVALID');
  t.match(refused?.reason, /^broken\.yaml/);
});

t.test('a model whose sha256 does not match is refused, naming the model', async (t) => {
  const { app, modelsDir } = await setUp(t);
  const manifest = join(modelsDir, 'melanoma-risk', '1.0.0', 'manifest.yaml');
  writeFileSync(
    manifest,
    readFileSync(manifest, 'utf8').replace(/^sha256: '[0-9a-f]{64}'$/m, `sha256: '${'0'.repeat(64)}'`),
  );
  const res = await reload(app);
  t.equal(res.statusCode, 500);
  const issue = res.json().issue[0];
  t.equal(issue.details.coding[0].code, 'CDS_ERR_MODEL_INVALID');
  t.match(issue.diagnostics, /^model melanoma-risk: .*sha256/);
  t.same(await ids(app), BUNDLED);
  t.equal((await melanomaCall(app)).statusCode, 200, 'the old model still serves');
});

t.test('without adminToken the route is hidden; a wrong token is refused', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const hidden = await reload(app);
  t.equal(hidden.statusCode, 404);
  t.equal(hidden.json().issue[0].details.coding[0].code, 'CDS_ERR_ROUTE_NOT_FOUND');

  const { app: guarded } = await setUp(t);
  const none = await reload(guarded, {});
  t.equal(none.statusCode, 401);
  t.equal(none.json().issue[0].details.coding[0].code, 'CDS_ERR_OPS_UNAUTHORIZED');
  const wrong = await reload(guarded, { authorization: `Bearer ${'b'.repeat(32)}` });
  t.equal(wrong.statusCode, 401);
});

t.test('replaced model sessions are released after the grace period, not before', async (t) => {
  const dirs = { ...copies(), profilesDir: 'fhir-profiles' };
  const engine = createFhirPath();
  const first = await loadDefinitions(dirs, engine);
  const live = createLiveSet(first, dirs, engine, { graceMs: 200 });
  t.teardown(() => live.close());
  const old = first.models.get('melanoma-risk')!;
  const released: string[] = [];
  for (const model of first.models.values()) {
    const session = model.session as { release: () => Promise<void> };
    const release = session.release.bind(session);
    session.release = () => {
      released.push(model.manifest.id);
      return release();
    };
  }
  await live.reload();
  t.not(live.models.get('melanoma-risk'), old, 'the new set has its own model objects');
  t.equal(
    live.registry.get('melanoma-lesion-triage')!.models[0],
    live.models.get('melanoma-risk'),
    'services are bound to the new models',
  );
  t.same(released, [], 'nothing released at the swap (a call in flight may be scoring)');
  // The live map answers every ReadonlyMap method from the new set.
  const fresh = live.models.get('melanoma-risk')!;
  t.ok(live.models.has('melanoma-risk'));
  t.same([...live.models.keys()], ['knee-oa-progression', 'melanoma-risk']);
  t.equal(new Map(live.models.entries()).get('melanoma-risk'), fresh);
  t.equal(new Map(live.models).get('melanoma-risk'), fresh);
  const seen: string[] = [];
  live.models.forEach((_model, id) => seen.push(id));
  t.same(seen, ['knee-oa-progression', 'melanoma-risk']);
  await new Promise((resolve) => setTimeout(resolve, 400));
  t.same(released.sort(), ['knee-oa-progression', 'melanoma-risk'], 'both old sessions released');
});

t.test('reloads run one after another; a failed one does not block the next', async (t) => {
  const dirs = { ...copies(), profilesDir: 'fhir-profiles' };
  const engine = createFhirPath();
  const live = createLiveSet(await loadDefinitions(dirs, engine), dirs, engine, { graceMs: 0 });
  t.teardown(() => live.close());
  writeFileSync(join(dirs.servicesDir, 'broken.yaml'), 'id: x\n');
  const [a, b] = await Promise.allSettled([live.reload(), live.reload()]);
  t.equal(a.status, 'rejected');
  t.equal(b.status, 'rejected');
  const { rmSync } = await import('node:fs');
  rmSync(join(dirs.servicesDir, 'broken.yaml'));
  t.same((await live.reload()).services, BUNDLED);
});

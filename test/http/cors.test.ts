import t from 'tap';
import { buildTestApp } from '../helpers/app.js';

const URL = '/cds-services/melanoma-lesion-triage';
const SANDBOX = 'https://sandbox.cds-hooks.org';

const preflight = (origin: string, method = 'POST', url = URL) => ({
  method: 'OPTIONS' as const,
  url,
  headers: {
    origin,
    'access-control-request-method': method,
    'access-control-request-headers': 'content-type,authorization',
  },
});

const list = (header: string | number | string[] | undefined) =>
  String(header ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);

t.test('a preflight from the CDS Hooks sandbox is allowed by default', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject(preflight(SANDBOX));
  t.equal(res.statusCode, 204);
  t.equal(res.body, '');
  t.equal(res.headers['access-control-allow-origin'], '*');
  t.ok(list(res.headers['access-control-allow-methods']).includes('post'), 'POST allowed');
  const headers = list(res.headers['access-control-allow-headers']);
  t.ok(headers.includes('authorization'), 'authorization allowed');
  t.ok(headers.includes('content-type'), 'content-type allowed');
  t.equal(res.headers['access-control-max-age'], '600');
});

t.test('a preflight for discovery is allowed, and the actual calls carry the CORS header', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const pre = await app.inject(preflight(SANDBOX, 'GET', '/cds-services'));
  t.equal(pre.statusCode, 204);
  t.ok(list(pre.headers['access-control-allow-methods']).includes('get'));
  const discovery = await app.inject({ method: 'GET', url: '/cds-services', headers: { origin: SANDBOX } });
  t.equal(discovery.statusCode, 200);
  t.equal(discovery.headers['access-control-allow-origin'], '*');
  const error = await app.inject({
    method: 'POST',
    url: '/cds-services/unknown',
    headers: { origin: SANDBOX },
    payload: {},
  });
  t.equal(error.statusCode, 404);
  t.equal(error.headers['access-control-allow-origin'], '*', 'error answers are readable by the client too');
});

t.test('with a list of origins, only a listed origin gets an allow-origin header', async (t) => {
  const { app } = await buildTestApp({ corsOrigins: ['https://ehr.example.org'] });
  t.teardown(() => app.close());

  const foreign = await app.inject(preflight('https://evil.example.com'));
  t.notOk('access-control-allow-origin' in foreign.headers, 'foreign origin: no allow-origin');
  t.equal(foreign.headers.vary, 'Origin');

  const listed = await app.inject(preflight('https://ehr.example.org'));
  t.equal(listed.statusCode, 204);
  t.equal(listed.headers['access-control-allow-origin'], 'https://ehr.example.org');
  t.equal(listed.headers.vary, 'Origin');
  t.ok(list(listed.headers['access-control-allow-methods']).includes('post'));

  const foreignGet = await app.inject({
    method: 'GET',
    url: '/cds-services',
    headers: { origin: 'https://evil.example.com' },
  });
  t.notOk('access-control-allow-origin' in foreignGet.headers);
  const listedGet = await app.inject({
    method: 'GET',
    url: '/cds-services',
    headers: { origin: 'https://ehr.example.org' },
  });
  t.equal(listedGet.headers['access-control-allow-origin'], 'https://ehr.example.org');
});

t.test('an OPTIONS request that is not a preflight gets an empty 204, not a text/plain error', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const res = await app.inject({ method: 'OPTIONS', url: URL });
  t.equal(res.statusCode, 204);
  t.equal(res.body, '');
});

/**
 * GET /health/live and /health/ready: outside /cds-services (no CDS client JWT even with
 * authentication on), ready only while the audit store answers.
 */
import t from 'tap';
import { openStore } from '../../src/audit/store.js';
import { buildTestApp, tempDir, testSqliteWorker } from '../helpers/app.js';
import { buildAuthApp, ISSUER, jwksOf, makeKey } from '../helpers/jwt.js';

t.test('live and ready answer 200 with what is loaded', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const live = await app.inject({ method: 'GET', url: '/health/live' });
  t.equal(live.statusCode, 200);
  t.same(live.json(), { status: 'live' });
  t.equal(live.headers['cache-control'], 'no-store');
  const ready = await app.inject({ method: 'GET', url: '/health/ready' });
  t.equal(ready.statusCode, 200);
  t.same(ready.json(), { status: 'ready', services: 10, models: 2 });
});

t.test('ready is 503 while the store does not answer, and 200 again once it does', async (t) => {
  const real = await openStore({ dataDir: tempDir() }, { worker: testSqliteWorker });
  let down = false;
  const store = {
    ...real,
    ping: async () => {
      if (down) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      return real.ping();
    },
  };
  const { app } = await buildTestApp({}, { store });
  t.teardown(() => app.close());
  down = true;
  const res = await app.inject({ method: 'GET', url: '/health/ready' });
  t.equal(res.statusCode, 503);
  const issue = res.json().issue[0];
  t.equal(issue.details.coding[0].code, 'CDS_ERR_STORE_UNAVAILABLE');
  t.equal(issue.diagnostics, 'The audit store is unavailable; nothing was stored, retry later');
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200, 'still live');
  down = false;
  t.equal((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200);
});

t.test('with client authentication on, health and metrics need no CDS client JWT', async (t) => {
  const { app } = await buildAuthApp([{ iss: ISSUER, jwks: jwksOf(await makeKey('ES256')) }]);
  t.teardown(() => app.close());
  t.equal((await app.inject({ method: 'POST', url: '/cds-services/x', payload: {} })).statusCode, 401);
  for (const url of ['/health/live', '/health/ready', '/metrics']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url);
  }
});

/**
 * Which requests the authentication hook covers (every /cds-services route, including routes added to
 * the CDS scope after it, and nothing else; never a CORS preflight), what it leaves on the request, what
 * it logs, and how start-up behaves with authentication on, misconfigured, or off.
 */
import type { FastifyPluginAsync } from 'fastify';
import t from 'tap';
import { ReplayCacheFullError, type ReplayCache } from '../../src/auth/replay.js';
import { buildTestApp } from '../helpers/app.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';
import {
  bearer,
  buildAuthApp,
  DISCOVERY,
  ISSUER,
  jwksOf,
  makeKey,
  mint,
  NOW_S,
  PUBLIC_URL,
  refusals,
  SERVICE,
  writeIssuers,
} from '../helpers/jwt.js';

const key = await makeKey('ES384');
const issuers = [{ iss: ISSUER, jwks: jwksOf(key) }];

/** GET /cds-services/whoami, added to the CDS scope: the client authentication left on the request. */
const whoami: FastifyPluginAsync = async (scope) => {
  scope.get('/whoami', async (request) => ({ client: request.cdsClient }));
};

t.test('a CORS preflight needs no token', async (t) => {
  const test = await buildAuthApp(issuers);
  t.teardown(() => test.app.close());
  for (const url of [DISCOVERY, SERVICE, `${SERVICE}/feedback`]) {
    const res = await test.app.inject({
      method: 'OPTIONS',
      url,
      headers: {
        origin: 'https://sandbox.cds-hooks.org',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    t.equal(res.statusCode, 204, url);
    t.equal(res.headers['access-control-allow-origin'], '*');
  }
  t.same(refusals(test), []);
});

t.test('a route added later under /cds-services is covered, with its own aud', async (t) => {
  // A new route, registered after the hook, in its own plugin inside the CDS scope.
  const later: FastifyPluginAsync = async (scope) => {
    scope.post('/:id/later', async (request) => ({ client: request.cdsClient }));
  };
  const test = await buildAuthApp(issuers, {}, { cdsRoutes: [later] });
  t.teardown(() => test.app.close());
  const url = `${SERVICE}/later`;
  const bare = await test.app.inject({ method: 'POST', url, payload: { feedback: [] } });
  t.equal(bare.statusCode, 401);
  const misaddressed = await mint(key, { aud: SERVICE });
  t.equal(
    (await test.app.inject({ method: 'POST', url, payload: {}, headers: bearer(misaddressed) })).statusCode,
    401,
  );
  const token = await mint(key, { aud: url, tenant: 'hospital-a', sub: 'ehr-client-7' });
  const ok = await test.app.inject({ method: 'POST', url, payload: {}, headers: bearer(token) });
  t.equal(ok.statusCode, 200);
  t.same(ok.json(), { client: { iss: ISSUER, tenant: 'hospital-a', sub: 'ehr-client-7' } });
  t.same(refusals(test), ['header_missing', 'aud_mismatch']);
});

t.test('a route under /cds-services outside the CDS scope is refused at start-up', async (t) => {
  const test = await buildAuthApp(issuers);
  t.teardown(() => test.app.close());
  t.throws(() => test.app.get('/cds-services/unguarded', async () => ({})), {
    message: '/cds-services/unguarded: a CDS route must be registered inside the authenticated CDS scope',
  });
  t.throws(() => test.app.get('/cds-services', async () => ({})), { message: /^\/cds-services: / });
  t.doesNotThrow(() => test.app.get('/cds-servicesX', async () => ({})), 'a longer name is not the prefix');
});

t.test('request.cdsClient has null tenant and sub when the token has none', async (t) => {
  const test = await buildAuthApp(issuers, {}, { cdsRoutes: [whoami] });
  t.teardown(() => test.app.close());
  const res = await test.app.inject({
    method: 'GET',
    url: '/cds-services/whoami',
    headers: bearer(await mint(key, { aud: '/cds-services/whoami' })),
  });
  t.same(res.json(), { client: { iss: ISSUER, tenant: null, sub: null } });
});

t.test('HEAD, unknown paths under the prefix and disguised paths are covered too', async (t) => {
  const test = await buildAuthApp(issuers);
  t.teardown(() => test.app.close());
  t.equal((await test.app.inject({ method: 'HEAD', url: DISCOVERY })).statusCode, 401, 'HEAD');
  t.equal(
    (await test.app.inject({ method: 'GET', url: '/cds-services/a/b/c' })).statusCode,
    401,
    'unknown path',
  );
  const found = await test.app.inject({
    method: 'GET',
    url: '/cds-services/a/b/c',
    headers: bearer(await mint(key, { aud: '/cds-services/a/b/c' })),
  });
  t.equal(found.statusCode, 404, 'authenticated, the unknown path is a 404');
  // find-my-way decodes %2D to "-" before matching: the route matched is discovery, so the hook runs.
  const encoded = await test.app.inject({ method: 'GET', url: '/cds%2Dservices' });
  t.equal(encoded.statusCode, 401, 'percent-encoded path');
  t.equal(
    (await test.app.inject({ method: 'GET', url: '/other' })).statusCode,
    404,
    'outside the prefix: no token',
  );
  t.equal(
    (await test.app.inject({ method: 'GET', url: '/cds-servicesX' })).statusCode,
    404,
    'a longer name is not the prefix',
  );
});

t.test('an unauthenticated body is never parsed', async (t) => {
  const test = await buildAuthApp(issuers, { bodyLimitBytes: 1024 });
  t.teardown(() => test.app.close());
  const broken = await test.app.inject({
    method: 'POST',
    url: SERVICE,
    headers: { 'content-type': 'application/json' },
    payload: '{"hook": ',
  });
  t.equal(broken.statusCode, 401, 'not 400: the JSON was not read');
  const large = await test.app.inject({
    method: 'POST',
    url: SERVICE,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ padding: 'x'.repeat(4096) }),
  });
  t.equal(large.statusCode, 401, 'not 413');
});

t.test('publicUrl may end with a slash, and may hold a path prefix', async (t) => {
  const slash = await buildAuthApp(issuers, { publicUrl: `${PUBLIC_URL}/` });
  t.teardown(() => slash.app.close());
  t.equal(
    (await slash.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(await mint(key)) })).statusCode,
    200,
  );
  const prefixed = await buildAuthApp(issuers, { publicUrl: 'https://hospital.example.org/cds' });
  t.teardown(() => prefixed.app.close());
  const token = await mint(key, { aud: 'https://hospital.example.org/cds/cds-services' });
  t.equal(
    (await prefixed.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(token) })).statusCode,
    200,
  );
  t.equal(
    (await prefixed.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(await mint(key)) }))
      .statusCode,
    401,
  );
});

t.test('the injected replay cache is asked with iss NUL jti and exp plus the skew', async (t) => {
  const claims: [string, Date][] = [];
  const replayCache: ReplayCache = {
    claim: async (k, expiresAt) => {
      claims.push([k, expiresAt]);
      return true;
    },
  };
  const test = await buildAuthApp(issuers, { jwtClockSkewS: 30 }, { replayCache });
  t.teardown(() => test.app.close());
  const token = await mint(key, { jti: 'nonce-1', exp: 200 });
  t.equal((await test.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(token) })).statusCode, 200);
  t.same(claims, [[`${ISSUER}\u0000nonce-1`, new Date((NOW_S + 230) * 1000)]]);
});

t.test('a replay cache that fails refuses the token and logs an error, not the token', async (t) => {
  const replayCache: ReplayCache = {
    claim: async () => {
      throw new Error('database unreachable');
    },
  };
  const test = await buildAuthApp(issuers, {}, { replayCache });
  t.teardown(() => test.app.close());
  const res = await test.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(await mint(key)) });
  t.equal(res.statusCode, 401);
  const line = test.logs().find((l) => l.reason === 'replay_cache_unavailable')!;
  t.equal(line.level, 50, 'error level: the service, not the client, is at fault');
  t.equal(line.error, 'database unreachable');
  const full = await buildAuthApp(
    issuers,
    {},
    {
      replayCache: { claim: async () => Promise.reject(new ReplayCacheFullError(3)) },
    },
  );
  t.teardown(() => full.app.close());
  t.equal(
    (await full.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(await mint(key)) })).statusCode,
    401,
  );
  t.same(refusals(full), ['replay_cache_unavailable']);
});

t.test('the in-memory replay cache is bounded by jtiCacheMaxEntries', async (t) => {
  const test = await buildAuthApp(issuers, { jtiCacheMaxEntries: 2 });
  t.teardown(() => test.app.close());
  const call = async () =>
    (await test.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(await mint(key)) })).statusCode;
  t.same([await call(), await call(), await call()], [200, 200, 401]);
  t.same(refusals(test), ['replay_cache_unavailable']);
});

t.test('no token, fhirAuthorization or prefetch reaches the logs, on success or refusal', async (t) => {
  const test = await buildAuthApp(issuers);
  t.teardown(() => test.app.close());
  const FHIR_TOKEN = 'fhir-access-token-4242';
  const SITE = 'lesion-site-secret';
  const request = patientView(
    { lesions: searchset([lesion({ site: SITE, items: { changeSize: true } })]) },
    {
      fhirServer: 'https://fhir.example.org/r4',
      fhirAuthorization: {
        access_token: FHIR_TOKEN,
        token_type: 'Bearer',
        expires_in: 300,
        scope: 'patient/*.read',
        subject: 'cds-service',
      },
    },
  );
  const good = await mint(key, { aud: SERVICE });
  const wrongAud = await mint(key, { aud: DISCOVERY });
  const unknown = await mint(key, { iss: 'https://evil.example.com' });
  const ok = await test.app.inject({ method: 'POST', url: SERVICE, payload: request, headers: bearer(good) });
  t.equal(ok.statusCode, 200);
  for (const token of [good, wrongAud, unknown]) {
    t.equal(
      (await test.app.inject({ method: 'POST', url: SERVICE, payload: request, headers: bearer(token) }))
        .statusCode,
      401,
    );
  }
  t.same(refusals(test), ['jti_replayed', 'aud_mismatch', 'iss_untrusted']);
  const text = test.logText();
  for (const token of [good, wrongAud, unknown]) {
    for (const part of token.split('.')) t.notOk(text.includes(part), 'no part of a token is logged');
  }
  t.notOk(text.includes(FHIR_TOKEN));
  t.notOk(text.includes(SITE));
  t.match(text, /"iss":"https:\/\/evil\.example\.com"/, 'the claimed issuer of a refused token is logged');
  const served = test
    .logs()
    .find((l) => l.msg === 'request completed' && (l.res as { statusCode: number }).statusCode === 200)!;
  t.equal(served.iss, ISSUER, 'the request log carries the client');
  t.type(served.jti, 'string');
});

t.test('start-up with authentication on names each missing setting', async (t) => {
  await t.rejects(buildTestApp({ authDisabled: false }), {
    message: /CDS_PUBLIC_URL .* and CDS_TRUSTED_ISSUERS_FILE .* are not set\. Set CDS_AUTH_DISABLED=true/,
  });
  await t.rejects(buildTestApp({ authDisabled: false, publicUrl: PUBLIC_URL }), {
    message:
      /^Client authentication is on but CDS_TRUSTED_ISSUERS_FILE \(the CDS clients to trust\) is not set/,
  });
  const { file, cleanup } = writeIssuers(issuers);
  t.teardown(cleanup);
  await t.rejects(buildTestApp({ authDisabled: false, trustedIssuersFile: file }), {
    message: /^Client authentication is on but CDS_PUBLIC_URL \(.*\) is not set/,
  });
  await t.rejects(
    buildTestApp({ authDisabled: false, publicUrl: PUBLIC_URL, trustedIssuersFile: `${file}.missing` }),
    {
      message: /^Cannot read trusted issuers file .*issuers\.json\.missing/,
    },
  );
});

t.test('authentication off: every call passes and cdsClient is null', async (t) => {
  const test = await buildTestApp({ authDisabled: true }, { cdsRoutes: [whoami] });
  t.teardown(() => test.app.close());
  t.same((await test.app.inject({ method: 'GET', url: '/cds-services/whoami' })).json(), { client: null });
  t.equal((await test.app.inject({ method: 'GET', url: DISCOVERY })).statusCode, 200);
  t.notOk(test.logText().includes('client authentication'), 'no authentication line from the app itself');
});

t.test('authentication on: start-up lists the trusted issuers', async (t) => {
  const test = await buildAuthApp(issuers);
  t.teardown(() => test.app.close());
  const line = test.logs().find((l) => l.msg === 'client authentication on')!;
  t.same(line.issuers, [ISSUER]);
  t.equal(line.publicUrl, PUBLIC_URL);
});

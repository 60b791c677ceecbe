/**
 * The attack matrix: one short test per way a token can be wrong, each checking the bare 401 (same body
 * whatever the cause, WWW-Authenticate: Bearer) and the coded reason in the one warn log line. Valid
 * ES384 and RS384 tokens pass on discovery and on a service call.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { InjectOptions } from 'fastify';
import t, { type Test } from 'tap';
import { AUTH_FAILURE_REASONS } from '../../src/auth/verify.js';
import { CdsError, toOperationOutcome } from '../../src/errors.js';
import { patientView } from '../helpers/hook-request.js';
import {
  type AuthTestApp,
  b64url,
  bearer,
  buildAuthApp,
  claimsAt,
  DISCOVERY,
  ISSUER,
  jwksOf,
  makeKey,
  mint,
  NOW_S,
  PUBLIC_URL,
  SERVICE,
  type TestKey,
} from '../helpers/jwt.js';

const GENERIC_401 = toOperationOutcome(new CdsError('CDS_ERR_UNAUTHORIZED'));

let es384: TestKey;
let rs384: TestKey;
let stranger: TestKey;
let test: AuthTestApp;

t.before(async () => {
  es384 = await makeKey('ES384');
  rs384 = await makeKey('RS384');
  stranger = await makeKey('ES384', es384.kid); // same kid, key the service does not know
  test = await buildAuthApp([
    { iss: ISSUER, jwks: jwksOf(es384, rs384) },
    { iss: 'https://tenant-bound.example.org', jwks: jwksOf(es384), tenant: 'hospital-a' },
  ]);
});
t.teardown(() => test.app.close());

const discovery = (headers: Record<string, string>): InjectOptions => ({
  method: 'GET',
  url: DISCOVERY,
  headers,
});
const serviceCall = (headers: Record<string, string>): InjectOptions => ({
  method: 'POST',
  url: SERVICE,
  headers,
  payload: patientView({ lesions: null }),
});

/** Sends the request; checks the bare 401 and that exactly one refusal was logged, with `reason`. */
async function refused(t: Test, request: InjectOptions, reason: string) {
  const before = test.logs().length;
  const res = await test.app.inject(request);
  t.equal(res.statusCode, 401, 'status 401');
  t.equal(res.headers['www-authenticate'], 'Bearer');
  t.same(res.json(), GENERIC_401, 'the same generic body for every failure');
  const lines = test.logs().slice(before);
  const refusal = lines.filter((l) => String(l.msg).startsWith('client authentication'));
  t.equal(refusal.length, 1, 'one refusal line');
  t.equal(refusal[0]?.reason, reason, `reason ${reason}`);
  t.equal(refusal[0]?.level, 40, 'logged at warn');
}

const rawToken = (header: object, payload: object, signature = '') =>
  `${b64url(header)}.${b64url(payload)}.${signature}`;

t.test('valid ES384 and RS384 tokens pass on discovery and on a service call', async (t) => {
  for (const key of [es384, rs384]) {
    const d = await test.app.inject(discovery(bearer(await mint(key))));
    t.equal(d.statusCode, 200, `${key.alg} discovery`);
    t.ok(Array.isArray(d.json().services));
    const s = await test.app.inject(serviceCall(bearer(await mint(key, { aud: SERVICE }))));
    t.equal(s.statusCode, 200, `${key.alg} service call`);
    t.ok(Array.isArray(s.json().cards));
  }
});

t.test('missing Authorization header', (t) => refused(t, discovery({}), 'header_missing'));

t.test('a scheme other than Bearer', async (t) => {
  await refused(t, discovery({ authorization: `Basic ${b64url('user:password')}` }), 'scheme_not_bearer');
  await refused(t, discovery({ authorization: await mint(es384) }), 'scheme_not_bearer');
});

t.test('a malformed token', async (t) => {
  await refused(t, discovery(bearer('not-a-jwt')), 'token_malformed');
  await refused(t, discovery(bearer('a.b.c')), 'token_malformed');
  await refused(t, discovery({ authorization: 'Bearer ' }), 'token_malformed');
  await refused(t, discovery({ authorization: 'Bearer a b' }), 'token_malformed');
});

t.test('a bad signature', async (t) => {
  const [h, p] = (await mint(es384)).split('.');
  const [, , s] = (await mint(es384, { jti: 'other' })).split('.');
  await refused(t, discovery(bearer(`${h}.${p}.${s}`)), 'signature_invalid');
});

t.test('a token signed by a key the issuer does not have, under a known kid', async (t) => {
  await refused(t, discovery(bearer(await mint(stranger))), 'signature_invalid');
});

t.test('an unknown kid', async (t) => {
  await refused(t, discovery(bearer(await mint(es384, { header: { kid: 'nobody' } }))), 'key_unknown');
});

t.test('a kid is required', async (t) => {
  const token = rawToken({ alg: 'ES384', typ: 'JWT' }, claimsAt());
  await refused(t, discovery(bearer(token)), 'kid_missing');
});

t.test('an unknown issuer', async (t) => {
  await refused(
    t,
    discovery(bearer(await mint(es384, { iss: 'https://evil.example.com' }))),
    'iss_untrusted',
  );
});

t.test('no issuer', async (t) => {
  const { iss: _iss, ...claims } = claimsAt();
  await refused(t, discovery(bearer(rawToken({ alg: 'ES384', kid: es384.kid }, claims))), 'iss_missing');
});

t.test('wrong aud: another server, the discovery URL on a service, a prefix or a query', async (t) => {
  await refused(
    t,
    discovery(bearer(await mint(es384, { aud: 'https://other.example.org/cds-services' }))),
    'aud_mismatch',
  );
  await refused(t, serviceCall(bearer(await mint(es384, { aud: DISCOVERY }))), 'aud_mismatch');
  await refused(t, discovery(bearer(await mint(es384, { aud: SERVICE }))), 'aud_mismatch');
  await refused(t, discovery(bearer(await mint(es384, { aud: PUBLIC_URL }))), 'aud_mismatch');
  await refused(t, discovery(bearer(await mint(es384, { aud: `${DISCOVERY}/` }))), 'aud_mismatch');
  const http = `http://cds.example.org${DISCOVERY}`;
  await refused(t, discovery(bearer(await mint(es384, { aud: http }))), 'aud_mismatch');
});

t.test('aud is the path without the query string, and may be an array holding it', async (t) => {
  const res = await test.app.inject({ ...discovery(bearer(await mint(es384))), url: `${DISCOVERY}?x=1` });
  t.equal(res.statusCode, 200);
  const array = await mint(es384, { aud: ['https://other.example.org', DISCOVERY] });
  t.equal((await test.app.inject(discovery(bearer(array)))).statusCode, 200);
});

t.test('an expired token, also within the lifetime bound', async (t) => {
  await refused(t, discovery(bearer(await mint(es384, { iat: -400, exp: -100 }))), 'jwt_expired');
});

t.test('exp is allowed the clock skew, and no more', async (t) => {
  const within = await mint(es384, { iat: -330, exp: -30 });
  t.equal((await test.app.inject(discovery(bearer(within)))).statusCode, 200, '30 s late: within 60 s skew');
  await refused(t, discovery(bearer(await mint(es384, { iat: -360, exp: -60 }))), 'jwt_expired');
});

t.test('iat in the future beyond the skew', async (t) => {
  await refused(t, discovery(bearer(await mint(es384, { iat: 120, exp: 400 }))), 'iat_in_future');
  const skewed = await mint(es384, { iat: 30, exp: 300 });
  t.equal((await test.app.inject(discovery(bearer(skewed)))).statusCode, 200, '30 s ahead is tolerated');
});

t.test('a lifetime longer than 5 minutes', async (t) => {
  await refused(t, discovery(bearer(await mint(es384, { iat: 0, exp: 301 }))), 'lifetime_too_long');
  await refused(t, discovery(bearer(await mint(es384, { iat: 0, exp: 86_400 }))), 'lifetime_too_long');
});

t.test('an iat older than the lifetime bound, whatever exp says', async (t) => {
  await refused(t, discovery(bearer(await mint(es384, { iat: -400, exp: 100 }))), 'iat_too_old');
});

t.test('missing exp, iat or jti', async (t) => {
  await refused(t, discovery(bearer(await mint(es384, { exp: null }))), 'exp_missing');
  await refused(t, discovery(bearer(await mint(es384, { iat: null }))), 'iat_missing');
  await refused(t, discovery(bearer(await mint(es384, { jti: null }))), 'jti_missing');
  await refused(t, discovery(bearer(await mint(es384, { jti: '' }))), 'jti_missing');
});

t.test('a not-before in the future is honoured', async (t) => {
  await refused(t, discovery(bearer(await mint(es384, { claims: { nbf: NOW_S + 120 } }))), 'nbf_in_future');
});

t.test('a replayed jti: the first use passes, the second is refused', async (t) => {
  const token = await mint(es384);
  t.equal((await test.app.inject(discovery(bearer(token)))).statusCode, 200, 'first use');
  await refused(t, discovery(bearer(token)), 'jti_replayed');
  const same = await mint(rs384, {
    jti: JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti,
  });
  await refused(t, discovery(bearer(same)), 'jti_replayed');
});

t.test('a refused token does not use up its jti', async (t) => {
  const jti = randomUUID();
  await refused(t, serviceCall(bearer(await mint(es384, { jti, aud: DISCOVERY }))), 'aud_mismatch');
  t.equal(
    (await test.app.inject(serviceCall(bearer(await mint(es384, { jti, aud: SERVICE }))))).statusCode,
    200,
  );
});

t.test('the same jti from two issuers is two tokens', async (t) => {
  const jti = randomUUID();
  t.equal((await test.app.inject(discovery(bearer(await mint(es384, { jti }))))).statusCode, 200);
  const other = await mint(es384, { jti, iss: 'https://tenant-bound.example.org', tenant: 'hospital-a' });
  t.equal((await test.app.inject(discovery(bearer(other)))).statusCode, 200);
});

t.test('alg none', async (t) => {
  await refused(
    t,
    discovery(bearer(rawToken({ alg: 'none', typ: 'JWT', kid: es384.kid }, claimsAt()))),
    'alg_not_allowed',
  );
  await refused(
    t,
    discovery(bearer(rawToken({ typ: 'JWT', kid: es384.kid }, claimsAt()))),
    'alg_not_allowed',
  );
});

t.test('HS256 signed with the public key bytes (algorithm confusion)', async (t) => {
  const header = b64url({ alg: 'HS256', typ: 'JWT', kid: rs384.kid });
  const payload = b64url(claimsAt());
  for (const secret of [JSON.stringify(rs384.publicJwk), String(rs384.publicJwk.n)]) {
    const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
    await refused(t, discovery(bearer(`${header}.${payload}.${signature}`)), 'alg_not_allowed');
  }
});

t.test('an alg that does not fit the key named by kid', async (t) => {
  // An ES256 token naming the ES384 key: the key's own alg rules, so no key matches.
  const p256 = await makeKey('ES256', es384.kid);
  await refused(t, discovery(bearer(await mint(p256))), 'key_unknown');
});

t.test('a typ other than JWT', async (t) => {
  await refused(t, discovery(bearer(await mint(es384, { header: { typ: 'at+jwt' } }))), 'typ_invalid');
  const untyped = await mint(es384, { header: { typ: undefined } });
  t.equal((await test.app.inject(discovery(bearer(untyped)))).statusCode, 200, 'typ may be left out');
});

t.test('a jku the issuer does not allow', async (t) => {
  const token = await mint(es384, { header: { jku: 'https://evil.example.com/jwks.json' } });
  await refused(t, discovery(bearer(token)), 'jku_not_allowed');
  await refused(t, discovery(bearer(await mint(es384, { header: { jku: 'not a url' } }))), 'jku_not_allowed');
});

t.test('an oversized token is refused before parsing', async (t) => {
  const big = await mint(es384, { claims: { padding: 'x'.repeat(9000) } });
  await refused(t, discovery(bearer(big)), 'token_too_large');
  await refused(t, discovery({ authorization: `Bearer ${'%'.repeat(8200)}` }), 'token_too_large');
});

t.test('a tenant-bound issuer: the tenant claim must match', async (t) => {
  const iss = 'https://tenant-bound.example.org';
  await refused(t, discovery(bearer(await mint(es384, { iss, tenant: 'hospital-b' }))), 'tenant_mismatch');
  await refused(t, discovery(bearer(await mint(es384, { iss }))), 'tenant_mismatch');
  t.equal(
    (await test.app.inject(discovery(bearer(await mint(es384, { iss, tenant: 'hospital-a' }))))).statusCode,
    200,
  );
});

t.test('a token that is not JSON inside', async (t) => {
  await refused(t, discovery(bearer(`${b64url('{"alg":')}.${b64url(claimsAt())}.sig`)), 'token_malformed');
  await refused(
    t,
    discovery(bearer(`${b64url({ alg: 'ES384', kid: es384.kid })}.${b64url('[1]')}.sig`)),
    'token_malformed',
  );
});

t.test('every reason code is documented in the README', async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  for (const reason of AUTH_FAILURE_REASONS) t.ok(readme.includes(`\`${reason}\``), reason);
});

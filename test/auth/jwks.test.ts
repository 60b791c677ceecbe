/**
 * Remote keys through a loopback JWKS server that counts its requests: caching, refetch on an unknown
 * kid with a cooldown, key rotation, jku allowlisting, and a JWKS endpoint that hangs, fails or is gone.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import t, { type Test } from 'tap';
import { JWKS_MAX_BYTES } from '../../src/auth/jwks.js';
import type { Config } from '../../src/config.js';
import {
  bearer,
  buildAuthApp,
  DISCOVERY,
  ISSUER,
  type JwksServer,
  jwksOf,
  makeKey,
  mint,
  refusals,
  startJwksServer,
  type TestKey,
} from '../helpers/jwt.js';

const k1 = await makeKey('ES384', 'k1');
const k2 = await makeKey('RS384', 'k2');

async function server(t: Test, jwks: unknown = jwksOf(k1)): Promise<JwksServer> {
  const s = await startJwksServer(jwks);
  t.teardown(() => s.close());
  return s;
}

async function app(t: Test, issuer: Record<string, unknown>, config: Partial<Config> = {}) {
  const test = await buildAuthApp([{ iss: ISSUER, ...issuer }], config);
  t.teardown(() => test.app.close());
  const call = async (key: TestKey, options: Parameters<typeof mint>[1] = {}) =>
    (await test.app.inject({ method: 'GET', url: DISCOVERY, headers: bearer(await mint(key, options)) }))
      .statusCode;
  return { test, call };
}

t.test('keys from jwksUrl are fetched once, then served from the cache', async (t) => {
  const jwks = await server(t);
  const { call } = await app(t, { jwksUrl: jwks.url });
  t.equal(jwks.count(), 0, 'nothing fetched at start-up');
  t.same([await call(k1), await call(k1), await call(k1)], [200, 200, 200]);
  t.equal(jwks.count(), 1);
});

t.test('an unknown kid triggers one refetch; a rotated-in key is then accepted', async (t) => {
  const jwks = await server(t);
  const { test, call } = await app(t, { jwksUrl: jwks.url }, { jwksCooldownMs: 0 });
  t.equal(await call(k1), 200);
  t.equal(jwks.count(), 1);
  t.equal(await call(k2), 401, 'k2 not published yet');
  t.equal(jwks.count(), 2, 'refetched once for the unknown kid');
  jwks.serve(jwksOf(k1, k2));
  t.equal(await call(k2), 200, 'rotation: the new key is found by the refetch');
  t.equal(jwks.count(), 3);
  t.equal(await call(k2), 200);
  t.equal(jwks.count(), 3, 'and then cached');
  t.same(refusals(test), ['key_unknown']);
});

t.test('during the cooldown an unknown kid does not refetch', async (t) => {
  const jwks = await server(t);
  const { test, call } = await app(t, { jwksUrl: jwks.url }, { jwksCooldownMs: 60_000 });
  t.equal(await call(k1), 200);
  jwks.serve(jwksOf(k1, k2));
  const flood = await Promise.all(Array.from({ length: 20 }, () => call(k2)));
  t.same(new Set(flood), new Set([401]));
  t.equal(jwks.count(), 1, 'twenty unknown kids, no new fetch');
  t.equal(refusals(test).length, 20);
  t.ok(refusals(test).every((r) => r === 'key_unknown'));
});

t.test('a JWKS endpoint that hangs: 401 once the timeout passes, quickly', async (t) => {
  const jwks = await server(t);
  jwks.mode('hang');
  const { test, call } = await app(t, { jwksUrl: jwks.url }, { jwksTimeoutMs: 200 });
  const started = performance.now();
  t.equal(await call(k1), 401);
  const elapsed = performance.now() - started;
  t.ok(elapsed >= 150 && elapsed < 1500, `answered in ${Math.round(elapsed)} ms`);
  t.same(refusals(test), ['jwks_unavailable']);
});

t.test('a JWKS endpoint that is down or failing: 401 jwks_unavailable, with the cause logged', async (t) => {
  const failing = await server(t);
  failing.mode('error');
  const down = await startJwksServer(jwksOf(k1));
  await down.close();
  for (const url of [failing.url, down.url]) {
    const { test, call } = await app(t, { jwksUrl: url });
    t.equal(await call(k1), 401);
    const line = test.logs().find((l) => l.reason === 'jwks_unavailable')!;
    t.equal(line.iss, ISSUER);
    t.type(line.error, 'string');
  }
  t.equal(failing.count(), 1);
});

t.test('a JWK Set larger than the cap is refused', async (t) => {
  const jwks = await server(t, { keys: [k1.publicJwk], padding: 'x'.repeat(JWKS_MAX_BYTES) });
  const { test, call } = await app(t, { jwksUrl: jwks.url });
  t.equal(await call(k1), 401);
  t.match(test.logs().find((l) => l.reason === 'jwks_unavailable')!.error, /larger than 262144 bytes/);
});

t.test('pinned keys win: a local key file holding the wrong key refuses, whatever the jku', async (t) => {
  // The issue-16 case: the local file pins a key the token was not signed with; the token names an
  // allow-listed jku that does serve the signing key. Accepting it would let the URL override the pin.
  const wrong = await makeKey('ES384', 'k1'); // same kid as k1, another key
  const allowed = await server(t, jwksOf(k1));
  const dir = mkdtempSync(join(tmpdir(), 'cds-pinned-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const jwksFile = join(dir, 'ehr.jwks.json');
  writeFileSync(jwksFile, JSON.stringify(jwksOf(wrong)));
  const { test, call } = await app(t, { jwksFile, jkuAllowlist: [allowed.url] });
  t.equal(await call(k1, { header: { jku: allowed.url } }), 401, 'the jku does not replace the pinned key');
  t.equal(await call(k1), 401, 'nor does its absence');
  t.equal(allowed.count(), 0, 'the jku was never fetched');
  t.same(refusals(test), ['signature_invalid', 'signature_invalid']);
});

t.test('pinned keys win: the right local key and an allow-listed jku pass without a fetch', async (t) => {
  const allowed = await server(t, jwksOf(k2));
  const { test, call } = await app(t, { jwks: jwksOf(k1), jkuAllowlist: [allowed.url] });
  t.equal(await call(k1, { header: { jku: allowed.url } }), 200, 'verified with the local key');
  t.equal(await call(k1), 200, 'without jku, the same keys');
  t.equal(await call(k2, { header: { jku: allowed.url } }), 401, 'a key only at the jku is not trusted');
  t.equal(allowed.count(), 0, 'the jku was never fetched');
  t.same(refusals(test), ['key_unknown']);
});

t.test(
  'offline: a local copy of a published key set and its jku allow-listed (sandbox client)',
  async (t) => {
    // The public CDS Hooks sandbox always sends jku; with a saved copy of its key set as jwksFile and
    // that URL in jkuAllowlist, its tokens verify with no network at all (the URL is never contacted).
    const unreachable = 'https://sandbox.cds-hooks.org/.well-known/jwks.json';
    const { call } = await app(t, { jwks: jwksOf(k1), jkuAllowlist: [unreachable] });
    t.equal(await call(k1, { header: { jku: unreachable } }), 200);
    t.equal(await call(k1, { header: { jku: 'https://sandbox.cds-hooks.org/other.json' } }), 401);
  },
);

t.test('a jku outside the allowlist is never fetched', async (t) => {
  const evil = await server(t, jwksOf(k1));
  const { test, call } = await app(t, { jwks: jwksOf(k1) });
  t.equal(await call(k1, { header: { jku: evil.url } }), 401);
  t.equal(evil.count(), 0);
  t.same(refusals(test), ['jku_not_allowed']);
});

t.test("the issuer's jwksUrl is an allowed jku (the CDS Hooks sandbox sends it)", async (t) => {
  const jwks = await server(t);
  const { call } = await app(t, { jwksUrl: jwks.url });
  t.equal(await call(k1, { header: { jku: jwks.url } }), 200);
  t.equal(await call(k1), 200);
  t.equal(jwks.count(), 1, 'one cache for both');
});

t.test('an issuer known only by its jku allowlist needs a jku in the token', async (t) => {
  const jwks = await server(t);
  const { test, call } = await app(t, { jkuAllowlist: [jwks.url] });
  t.equal(await call(k1), 401);
  t.equal(await call(k1, { header: { jku: jwks.url } }), 200);
  t.same(refusals(test), ['jku_required']);
});

t.test('a remote set with two keys under one kid is refused as ambiguous', async (t) => {
  const twin = await makeKey('ES384', 'k1');
  const jwks = await server(t, jwksOf(k1, twin));
  const { test, call } = await app(t, { jwksUrl: jwks.url });
  t.equal(await call(k1), 401);
  t.same(refusals(test), ['key_ambiguous']);
});

t.test("the verifier loads jose's subpaths it uses, not its index (the whole package)", async (t) => {
  // A module hook printing every jose file loaded while the verifier's modules are imported.
  const hook = `export async function load(url, context, next) {
    if (url.includes('/jose/')) process.stdout.write(url.slice(url.indexOf('/jose/')) + '\\n');
    return next(url, context);
  }`;
  const script = `import { register } from 'node:module';
    register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});
    await import(${JSON.stringify(pathToFileURL(resolve('src/auth/verify.ts')).href)});`;
  const run = spawnSync(
    process.execPath,
    ['--import=./node_modules/@tapjs/typescript/dist/esm/import.mjs', '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 45_000 },
  );
  t.equal(run.status, 0, run.stderr);
  const loaded = run.stdout.split('\n').filter(Boolean);
  t.ok(loaded.includes('/jose/dist/webapi/jwks/remote.js'), 'the hook saw the remote key sets');
  t.ok(loaded.includes('/jose/dist/webapi/util/errors.js'));
  t.ok(loaded.includes('/jose/dist/webapi/util/base64url.js'));
  t.notOk(loaded.includes('/jose/dist/webapi/index.js'), "jose's index is not loaded");
  t.notOk(
    loaded.some((url) => url.includes('/jwe/')),
    'nothing of JWE',
  );
});

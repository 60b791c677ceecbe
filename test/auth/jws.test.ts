/**
 * The node:crypto JWS and claims checks (`src/auth/jws.ts`) through the verifier, at the frozen clock with
 * an in-memory replay cache: every accepted algorithm, each way a signature or a key can be wrong, the
 * `crit` header, and the exact time boundaries jose had (exp, nbf, iat, token age). Tokens jose would
 * refuse to sign are signed here with node:crypto.
 */
import { constants, generateKeyPairSync, KeyObject, randomInt, randomUUID, sign } from 'node:crypto';
import { base64url, createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, type JWK } from 'jose';
import t from 'tap';
import type { TrustedIssuer } from '../../src/auth/issuers.js';
import {
  decodeBase64url,
  decodeJoseSegment,
  JwsFailure,
  localKeySet,
  validateClaims,
  verifySignature,
} from '../../src/auth/jws.js';
import { createMemoryReplayCache } from '../../src/auth/replay.js';
import { createVerifier, type VerifierOptions } from '../../src/auth/verify.js';
import { NOW } from '../helpers/app.js';
import { b64url, ISSUER, jwksOf, makeKey, mint, NOW_S, PUBLIC_URL, type TestKey } from '../helpers/jwt.js';

const AUD = `${PUBLIC_URL}/cds-services`;
const SKEW = 60;
const LIFETIME = 300;

const issuer = (jwks: JSONWebKeySet | null, more: Partial<TrustedIssuer> = {}): TrustedIssuer => ({
  iss: ISSUER,
  jwks,
  jwksUrl: null,
  jkuAllowlist: [],
  tenants: null,
  ...more,
});

function verifierFor(
  issuers: TrustedIssuer[],
  remoteJwks: VerifierOptions['remoteJwks'] = () => {
    throw new Error('no remote keys here');
  },
) {
  const now = () => NOW;
  const verify = createVerifier({
    issuers,
    remoteJwks,
    replayCache: createMemoryReplayCache({ maxEntries: 1000, now }),
    now,
    maxBytes: 8192,
    clockSkewS: SKEW,
    maxLifetimeS: LIFETIME,
  });
  return async (token: string) => {
    const result = await verify(`Bearer ${token}`, AUD);
    return result.ok ? 'ok' : result.reason;
  };
}

const claims = (more: Record<string, unknown> = {}) => ({
  iss: ISSUER,
  aud: AUD,
  iat: NOW_S,
  exp: NOW_S + 300,
  jti: randomUUID(),
  ...more,
});

const HASH: Record<string, string> = { '256': 'sha256', '384': 'sha384', '512': 'sha512' };

/** A compact JWS signed with node:crypto, for tokens jose's SignJWT would not make. */
function signRaw(alg: string, privateKey: KeyObject, header: object, payload: unknown): string {
  const input = `${b64url({ alg, typ: 'JWT', ...header })}.${b64url(payload)}`;
  const options = alg.startsWith('ES')
    ? { key: privateKey, dsaEncoding: 'ieee-p1363' as const }
    : alg.startsWith('PS')
      ? {
          key: privateKey,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
        }
      : privateKey;
  return `${input}.${sign(HASH[alg.slice(2)]!, Buffer.from(input), options).toString('base64url')}`;
}
const privateOf = (key: TestKey) => KeyObject.from(key.privateKey);

const ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512'];
const keys = new Map<string, TestKey>();
for (const alg of ALGS) keys.set(alg, await makeKey(alg));
const key = (alg: string) => keys.get(alg)!;
const verify = verifierFor([issuer(jwksOf(...keys.values()))]);

/** The same token signed with the same kid by another key of the same algorithm. */
const strangers = new Map<string, TestKey>();
for (const alg of ['RS384', 'PS384', 'ES384']) strangers.set(alg, await makeKey(alg, key(alg).kid));

const segments = (token: string) => token.split('.') as [string, string, string];

t.test(
  'every accepted algorithm verifies, and a token of another key under the same kid does not',
  async (t) => {
    for (const alg of ALGS) t.equal(await verify(await mint(key(alg))), 'ok', alg);
    for (const [alg, stranger] of strangers)
      t.equal(await verify(await mint(stranger)), 'signature_invalid', alg);
  },
);

t.test('a tampered payload or header, or a signature of another token', async (t) => {
  for (const alg of ['RS384', 'PS384', 'ES384']) {
    const [h, p, s] = segments(await mint(key(alg)));
    const tampered = b64url({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), sub: 'admin' });
    t.equal(await verify(`${h}.${tampered}.${s}`), 'signature_invalid', `${alg} payload`);
    const header = b64url({ ...JSON.parse(Buffer.from(h, 'base64url').toString()), x: 1 });
    t.equal(await verify(`${header}.${p}.${s}`), 'signature_invalid', `${alg} header`);
    const [, , other] = segments(await mint(key(alg)));
    t.equal(await verify(`${h}.${p}.${other}`), 'signature_invalid', `${alg} other signature`);
    t.equal(await verify(`${h}.${p}.`), 'signature_invalid', `${alg} empty signature`);
  }
});

t.test('an ECDSA signature must be r || s of the curve size', async (t) => {
  for (const [alg, bytes] of [
    ['ES256', 64],
    ['ES384', 96],
    ['ES512', 132],
  ] as const) {
    const [h, p, s] = segments(await mint(key(alg)));
    const raw = Buffer.from(s, 'base64url');
    t.equal(raw.length, bytes, `${alg} signs ${bytes} bytes`);
    t.equal(await verify(`${h}.${p}.${raw.subarray(1).toString('base64url')}`), 'signature_invalid', 'short');
    const long = Buffer.concat([raw, Buffer.alloc(1)]).toString('base64url');
    t.equal(await verify(`${h}.${p}.${long}`), 'signature_invalid', 'long');
    // The same signature in DER (what OpenSSL makes by default) is refused too.
    const der = sign(HASH[alg.slice(2)]!, Buffer.from(`${h}.${p}`), privateOf(key(alg))).toString(
      'base64url',
    );
    t.equal(await verify(`${h}.${p}.${der}`), 'signature_invalid', 'DER');
  }
});

t.test('a signature that is not base64url is malformed', async (t) => {
  const [h, p] = segments(await mint(key('ES384')));
  // Five characters cannot be base64: jose's decoder (atob) refuses them.
  t.equal(await verify(`${h}.${p}.abcde`), 'token_malformed');
});

t.test('a key of the wrong type or curve for the alg is never selected (key_unknown, as jose)', async (t) => {
  const rsa = key('RS384').publicJwk;
  const p256 = key('ES256').publicJwk;
  const bare = (jwk: JWK, kid: string): JWK => ({
    kty: jwk.kty,
    n: jwk.n,
    e: jwk.e,
    crv: jwk.crv,
    x: jwk.x,
    y: jwk.y,
    kid,
  });
  const set = { keys: [bare(rsa, 'rsa-no-alg'), bare(p256, 'p256-no-alg')] };
  const v = verifierFor([issuer(set)]);
  // ES384 naming an RSA key, RS384 naming an EC key, ES384 naming a P-256 key.
  t.equal(await v(await mint(key('ES384'), { header: { kid: 'rsa-no-alg' } })), 'key_unknown');
  t.equal(await v(await mint(key('RS384'), { header: { kid: 'p256-no-alg' } })), 'key_unknown');
  t.equal(await v(await mint(key('ES384'), { header: { kid: 'p256-no-alg' } })), 'key_unknown');
  // Without an alg on the JWK, any alg of the family (and curve) selects it.
  const ps512 = signRaw('PS512', privateOf(key('RS384')), { kid: 'rsa-no-alg' }, claims());
  t.equal(await v(ps512), 'ok', 'PS512 with the RS384 key pair');
  t.equal(await v(await mint({ ...key('RS384'), kid: 'rsa-no-alg' })), 'ok');
  t.equal(await v(await mint({ ...key('ES256'), kid: 'p256-no-alg' })), 'ok');
});

t.test('jose selection rules: use, key_ops, ext, and two matching keys', async (t) => {
  const base = key('ES384').publicJwk;
  const at = (kid: string, more: Partial<JWK>) => ({ ...base, kid, ...more });
  const set = {
    keys: [
      at('enc', { use: 'enc' }),
      at('ops-sign', { key_ops: ['sign'] }),
      at('ops-dup', { key_ops: ['verify', 'verify'] }),
      at('ops-ok', { key_ops: ['verify'], ext: true }),
      at('ext-bad', { ext: 'yes' as unknown as boolean }),
      at('twice', {}),
      at('twice', {}),
    ],
  };
  const v = verifierFor([issuer(set)]);
  const es = (kid: string) => mint({ ...key('ES384'), kid });
  for (const kid of ['enc', 'ops-sign', 'ops-dup', 'ext-bad'])
    t.equal(await v(await es(kid)), 'key_unknown', kid);
  t.equal(await v(await es('ops-ok')), 'ok');
  t.equal(await v(await es('twice')), 'key_ambiguous');
});

t.test('an RSA key shorter than 2048 bits is refused, local or remote', async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'short', alg: 'RS256', use: 'sig' } as JWK;
  const token = signRaw('RS256', privateKey, { kid: 'short' }, claims());
  t.equal(await verifierFor([issuer({ keys: [jwk] })])(token), 'signature_invalid', 'local');
  // A remote set: jose's resolver gives a CryptoKey, which the verifier converts.
  const url = 'https://ehr.example.org/jwks.json';
  const remote = verifierFor([issuer(null, { jwksUrl: url })], () => createLocalJWKSet({ keys: [jwk] }));
  t.equal(await remote(token), 'signature_invalid', 'remote');
});

t.test('remote keys of every family verify through the CryptoKey conversion', async (t) => {
  const url = 'https://ehr.example.org/jwks.json';
  const set = createLocalJWKSet(jwksOf(...keys.values()));
  const v = verifierFor([issuer(null, { jwksUrl: url })], () => set);
  for (const alg of ['RS256', 'PS384', 'ES512']) {
    t.equal(await v(await mint(key(alg))), 'ok', alg);
    t.equal(await v(await mint(key(alg))), 'ok', `${alg} again (converted key cached)`);
  }
  t.equal(await v(await mint(strangers.get('ES384')!)), 'signature_invalid');
});

t.test('verifySignature refuses a key that does not fit the alg, whatever selected it', async (t) => {
  const token = await mint(key('ES384'));
  const keysPublic = new Map(
    ALGS.map((alg) => [alg, localKeySet(jwksOf(key(alg)))(alg as 'RS256', key(alg).kid)]),
  );
  const pub = (alg: string) => keysPublic.get(alg)!;
  const reason = async (fn: () => Promise<void>) => {
    try {
      await fn();
      return 'ok';
    } catch (error) {
      return (error as JwsFailure).reason;
    }
  };
  t.equal(await reason(() => verifySignature(token, 'ES384', pub('ES384'))), 'ok');
  t.equal(
    await reason(() => verifySignature(token, 'ES384', pub('ES256'))),
    'signature_invalid',
    'P-256 key',
  );
  t.equal(await reason(() => verifySignature(token, 'ES384', pub('RS384'))), 'signature_invalid', 'RSA key');
  const rs = await mint(key('RS384'));
  t.equal(
    await reason(() => verifySignature(rs, 'RS384', pub('ES384'))),
    'signature_invalid',
    'EC key for RS',
  );
  t.equal(await reason(() => verifySignature(rs, 'RS384', pub('RS384'))), 'ok');
  t.equal(
    await reason(() => verifySignature(rs, 'PS384', pub('RS384'))),
    'signature_invalid',
    'PKCS1 is not PSS',
  );
  t.equal(
    await reason(() => verifySignature(rs, 'RS256', pub('RS384'))),
    'signature_invalid',
    'another hash',
  );
});

t.test('a JWK that cannot be imported fails at verifier creation', async (t) => {
  const broken = { ...key('ES384').publicJwk, x: 'AAAA' };
  t.throws(() => verifierFor([issuer({ keys: [broken] })]), /keys\[0\] .* is not a valid public key/);
  // Keys of other types cannot match any accepted alg, and are left alone.
  const okp = { kty: 'OKP', crv: 'Ed25519', x: 'x', kid: 'ed' };
  t.equal(
    await verifierFor([issuer({ keys: [okp, key('ES384').publicJwk] })])(await mint(key('ES384'))),
    'ok',
  );
});

t.test('the crit header: only b64 is understood, and a JWT may not use b64: false', async (t) => {
  const es = key('ES384');
  const raw = (header: object) => signRaw('ES384', privateOf(es), { kid: es.kid, ...header }, claims());
  t.equal(await verify(raw({ crit: ['exp'], exp: 1 })), 'token_malformed', 'unknown extension');
  t.equal(await verify(raw({ crit: [] })), 'token_malformed', 'empty');
  t.equal(await verify(raw({ crit: 'b64', b64: true })), 'token_malformed', 'not an array');
  t.equal(await verify(raw({ crit: [''] })), 'token_malformed', 'empty name');
  t.equal(await verify(raw({ crit: ['b64'] })), 'token_malformed', 'b64 missing');
  t.equal(await verify(raw({ crit: ['b64'], b64: 'no' })), 'token_malformed', 'b64 not a boolean');
  t.equal(await verify(raw({ crit: ['b64'], b64: false })), 'token_malformed', 'unencoded payload');
  t.equal(await verify(raw({ crit: ['b64'], b64: true })), 'ok', 'b64: true is the default');
  t.equal(await verify(raw({ b64: false })), 'ok', 'b64 without crit is ignored (RFC 7797 §6)');
  // The crit check comes before the key: an unknown kid is not even looked up.
  t.equal(await verify(raw({ crit: ['exp'], exp: 1, kid: 'nobody' })), 'token_malformed');
});

t.test('a payload that is not a JSON object is malformed, even correctly signed', async (t) => {
  const es = key('ES384');
  for (const payload of ['"text"', '[1]', 'null', '42']) {
    t.equal(
      await verify(signRaw('ES384', privateOf(es), { kid: es.kid }, payload)),
      'token_malformed',
      payload,
    );
  }
});

t.test('exp is refused at now - skew exactly, accepted a second later', async (t) => {
  const es = key('ES384');
  t.equal(await verify(await mint(es, { iat: -SKEW - 300, exp: -SKEW })), 'jwt_expired');
  t.equal(await verify(await mint(es, { iat: -SKEW - 299, exp: -SKEW + 1 })), 'ok');
});

t.test('nbf and iat may be ahead by the skew, not a second more', async (t) => {
  const es = key('ES384');
  t.equal(await verify(await mint(es, { claims: { nbf: NOW_S + SKEW } })), 'ok');
  t.equal(await verify(await mint(es, { claims: { nbf: NOW_S + SKEW + 1 } })), 'nbf_in_future');
  t.equal(await verify(await mint(es, { iat: SKEW, exp: SKEW + 300 })), 'ok');
  t.equal(await verify(await mint(es, { iat: SKEW + 1, exp: SKEW + 301 })), 'iat_in_future');
});

t.test('claims of the wrong type get the reason jose gave them', async (t) => {
  const es = key('ES384');
  const raw = (more: Record<string, unknown>) =>
    signRaw('ES384', privateOf(es), { kid: es.kid }, claims(more));
  t.equal(await verify(raw({ iat: String(NOW_S) })), 'iat_in_future');
  t.equal(await verify(raw({ exp: String(NOW_S + 300) })), 'jwt_expired');
  t.equal(await verify(raw({ exp: null })), 'jwt_expired');
  t.equal(await verify(raw({ nbf: 'now' })), 'nbf_in_future');
  t.equal(await verify(raw({ aud: 42 })), 'aud_mismatch');
  t.equal(await verify(raw({ aud: [AUD.toUpperCase()] })), 'aud_mismatch');
  t.equal(await verify(raw({ aud: ['https://other.example.org', AUD] })), 'ok');
  const { aud: _aud, ...noAud } = claims();
  t.equal(
    await verify(signRaw('ES384', privateOf(es), { kid: es.kid }, noAud)),
    'aud_mismatch',
    'aud missing',
  );
  const { iat: _iat, exp: _exp, jti: _jti, ...bare } = claims();
  t.equal(await verify(signRaw('ES384', privateOf(es), { kid: es.kid }, bare)), 'iat_missing', 'iat first');
  const { exp: _e, jti: _j, ...noJti } = claims();
  t.equal(await verify(signRaw('ES384', privateOf(es), { kid: es.kid }, noJti)), 'jti_missing', 'then jti');
});

t.test('validateClaims: the token age bound and the issuer', async (t) => {
  const options = { issuer: ISSUER, audience: AUD, now: NOW_S, clockTolerance: SKEW, maxTokenAge: LIFETIME };
  const reason = (c: Record<string, unknown>) => {
    try {
      validateClaims(claims(c), options);
      return 'ok';
    } catch (error) {
      t.type(error, JwsFailure);
      return (error as JwsFailure).reason;
    }
  };
  t.equal(reason({ iat: NOW_S - LIFETIME - SKEW, exp: NOW_S + 1 }), 'ok', 'age = max + skew');
  t.equal(reason({ iat: NOW_S - LIFETIME - SKEW - 1, exp: NOW_S + 1 }), 'iat_too_old');
  t.equal(reason({ iss: 'https://other.example.org' }), 'token_malformed');
  t.equal(reason({ iat: 1e400 }), 'iat_in_future', 'an infinite iat');
});

t.test('segments decode as jose decodes them, and fail where jose fails', async (t) => {
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const outcome = (f: () => unknown) => {
    try {
      return { ok: Buffer.from(f() as Uint8Array).toString('hex') };
    } catch {
      return { error: true };
    }
  };
  // Every length from 0 to 24 (4n + 1 included), random characters (non-zero trailing bits included).
  const inputs = ['', 'A', 'AB', 'ABC', 'ABCD', 'AB==', 'a+b/', 'ab c', 'Zg', 'Zh', 'Zm8', 'Zm9'];
  for (let length = 0; length <= 24; length += 1) {
    for (let n = 0; n < 20; n += 1) {
      inputs.push(Array.from({ length }, () => ALPHABET[randomInt(ALPHABET.length)]).join(''));
    }
  }
  for (const input of inputs) {
    t.same(
      outcome(() => decodeBase64url(input)),
      outcome(() => base64url.decode(input)),
      input,
    );
  }

  const segment = (text: string | Buffer) => Buffer.from(text).toString('base64url');
  const joseHeader = (s: string) => {
    try {
      return decodeProtectedHeader(`${s}.e30.sig`);
    } catch {
      return undefined;
    }
  };
  const segments = [
    segment('{"alg":"RS384","kid":"k","typ":"JWT"}'),
    segment('\uFEFF{"alg":"RS384"}'),
    segment('[1,2]'),
    segment('null'),
    segment('"text"'),
    segment('{"__proto__":{"a":1},"b":2}'),
    segment(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])),
    segment('{"a":"\u00e9\u{1F600}"}'),
    segment('{not json'),
    '',
    'eyJhbGciOiJSUzM4NCJ9A',
  ];
  for (const s of segments) t.same(decodeJoseSegment(s), joseHeader(s), s);
});

/**
 * Differential test of the hand-written JWS verifier (`src/auth/jws.ts` through `createVerifier`) against
 * jose's `jwtVerify`: thousands of tokens drawn from a seeded generator, valid and broken in every way
 * the two could judge differently (algorithm, key, header, payload, signature, encoding, claims at the
 * clock-skew boundaries), each judged by both. jose gets the same algorithm allowlist, keys, audience,
 * issuer, clock tolerance and fixed clock.
 *
 * The verdicts must agree, except where the service is deliberately stricter than a plain `jwtVerify`:
 * each such rule is listed in STRICTER with the clause that asks for it, and a token may be refused by
 * the service and accepted by jose only when one of those rules applies to it and is the reason given.
 * The service accepting a token jose refuses is never expected.
 *
 * The keys are made afresh at each run (ECDSA signatures are randomised anyway); what is drawn from the
 * seed is every case: its algorithm, key, claims and mutation, so a failure names a reproducible case.
 */
import {
  constants,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
} from 'node:crypto';
import { createLocalJWKSet, type JSONWebKeySet, type JWK, jwtVerify } from 'jose';
import t from 'tap';
import { ALLOWED_ALGORITHMS } from '../../src/auth/jwks.js';
import type { JwsAlgorithm } from '../../src/auth/jws.js';
import { type AuthFailureReason, createVerifier } from '../../src/auth/verify.js';
import { createRng, type Rng } from '../../tools/synthetic/random.js';
import { NOW } from '../helpers/app.js';
import { ISSUER, NOW_S, PUBLIC_URL } from '../helpers/jwt.js';

const SEED = 20261122;
const CASES = 2400;
const AUD = `${PUBLIC_URL}/cds-services`;
const SKEW = 60;
const LIFETIME = 300;

/** Every algorithm a token may name here: the accepted ones and some the allowlist must keep out. */
type HeaderAlgorithm = JwsAlgorithm | 'none' | 'HS256' | 'EdDSA' | 'RS1';

interface TestKey {
  kid: string;
  private: KeyObject;
  jwk: JWK;
}

function makeKey(
  kid: string,
  make: () => { privateKey: KeyObject; publicKey: KeyObject },
  alg?: string,
): TestKey {
  const { privateKey, publicKey } = make();
  const jwk: JWK = { ...publicKey.export({ format: 'jwk' }), kid, use: 'sig', ...(alg ? { alg } : {}) };
  return { kid, private: privateKey, jwk };
}

const rsaKey = (bits: number) => () => generateKeyPairSync('rsa', { modulusLength: bits });
const ecKey = (namedCurve: string) => () => generateKeyPairSync('ec', { namedCurve });

// Generated once: RSA key generation is the costliest step of this file.
const KEYS = {
  /** No `alg` in its JWK: usable for every RS* and PS* algorithm. */
  rsa: makeKey('rsa-a', rsaKey(2048)),
  /** Pinned to PS384 by its JWK. */
  rsaPs384: makeKey('rsa-ps384', rsaKey(2048), 'PS384'),
  /** Under the 2048 bits RFC 7518 §3.3 asks for. */
  rsaSmall: makeKey('rsa-small', rsaKey(1024)),
  p256: makeKey('ec-256', ecKey('prime256v1'), 'ES256'),
  p384: makeKey('ec-384', ecKey('secp384r1')),
  p521: makeKey('ec-521', ecKey('secp521r1'), 'ES512'),
  /** Two keys under one kid: ambiguous. */
  dup1: makeKey('dup', ecKey('prime256v1')),
  dup2: makeKey('dup', ecKey('prime256v1')),
  ed25519: makeKey('ed', () => generateKeyPairSync('ed25519')),
  /** Not in the key set: signs under the kids of the keys that are. */
  strangerEc: makeKey('ec-384', ecKey('secp384r1')),
};
const { strangerEc, ...trusted } = KEYS;
const JWKS: JSONWebKeySet = { keys: Object.values(trusted).map((key) => key.jwk) };
/** A key that is in no set, for the signer draws. */
const STRANGERS = [strangerEc];

const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' } as const;

/**
 * RFC 7518 §3: the JWS signature of `input` for `alg`, made with node:crypto whatever jose would allow.
 * A key that cannot sign for `alg` (mutations mix them freely) gives a signature of junk bytes.
 */
function signWith(alg: HeaderAlgorithm, key: TestKey, input: string): Buffer {
  const data = Buffer.from(input);
  try {
    if (alg === 'none') return Buffer.alloc(0);
    if (alg === 'RS1') return sign('sha1', data, key.private);
    if (alg === 'EdDSA') return sign(null, data, key.private);
    // The classic confusion: the public key, as PEM, used as an HMAC secret.
    if (alg === 'HS256') {
      const pem = createPublicKey(key.private).export({ type: 'spki', format: 'pem' });
      return createHmac('sha256', pem).update(data).digest();
    }
    const hash = HASH[Number(alg.slice(2)) as 256 | 384 | 512];
    if (alg.startsWith('RS')) return sign(hash, data, key.private);
    if (alg.startsWith('PS')) {
      return sign(hash, data, {
        key: key.private,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
      });
    }
    return sign(hash, data, { key: key.private, dsaEncoding: 'ieee-p1363' });
  } catch {
    return Buffer.from('not a signature');
  }
}

/** The key that verifies `alg` in the set (for PS384 and ES256 sometimes the other right one). */
function rightKey(alg: JwsAlgorithm, rng: Rng): TestKey {
  if (alg === 'PS384' && rng.bool(0.3)) return KEYS.rsaPs384;
  if (alg.startsWith('RS') || alg.startsWith('PS')) return KEYS.rsa;
  if (alg === 'ES256') return rng.bool(0.1) ? KEYS.dup1 : KEYS.p256;
  return alg === 'ES384' ? KEYS.p384 : KEYS.p521;
}

const isAllowed = (alg: unknown): alg is JwsAlgorithm =>
  (ALLOWED_ALGORITHMS as readonly unknown[]).includes(alg);

const b64 = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** One drawn case: what to sign, how, and what to do to the token afterwards. */
interface Draft {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** The algorithm and key the signature is actually made with (they may differ from the header). */
  signAlg: HeaderAlgorithm;
  signer: TestKey;
  /** Rewrites the compact token after signing. */
  post: ((token: string) => string) | null;
  /** What was done, for the failure message. */
  labels: string[];
}

/** Draws a value of a claim around a boundary: the seconds either side of it, and the bound itself. */
const around = (rng: Rng, bound: number): number => bound + rng.int(-2, 2);

/** The ways a case is broken; each mutates the draft. */
const MUTATIONS: readonly (readonly [string, (d: Draft, rng: Rng) => void, number])[] = [
  // Claims at and around the boundaries: skew, lifetime, token age.
  ['exp', (d, rng) => (d.payload.exp = around(rng, rng.pick([NOW_S - SKEW, NOW_S, NOW_S + LIFETIME]))), 4],
  ['exp-absent', (d) => delete d.payload.exp, 1],
  ['exp-text', (d) => (d.payload.exp = String(NOW_S + 100)), 0.5],
  [
    'iat',
    (d, rng) =>
      (d.payload.iat = around(rng, rng.pick([NOW_S + SKEW, NOW_S - LIFETIME - SKEW, NOW_S - SKEW]))),
    4,
  ],
  ['iat-absent', (d) => delete d.payload.iat, 1],
  ['iat-text', (d) => (d.payload.iat = 'yesterday'), 0.5],
  ['nbf', (d, rng) => (d.payload.nbf = around(rng, NOW_S + SKEW)), 2],
  ['nbf-text', (d) => (d.payload.nbf = 'now'), 0.5],
  [
    'exp-iat-span',
    (d, rng) => {
      if (typeof d.payload.iat === 'number') d.payload.exp = d.payload.iat + around(rng, LIFETIME);
    },
    2,
  ],
  [
    'aud',
    (d, rng) =>
      (d.payload.aud = rng.pick([
        [AUD],
        ['https://other.example.org', AUD],
        ['https://other.example.org'],
        `${AUD}/`,
        AUD.toUpperCase(),
        `${PUBLIC_URL}/cds-services/other`,
        PUBLIC_URL,
        [],
        42,
      ])),
    3,
  ],
  ['aud-absent', (d) => delete d.payload.aud, 0.5],
  [
    'iss',
    (d, rng) => (d.payload.iss = rng.pick([`${ISSUER}/`, 'https://evil.example.org', '', 7, [ISSUER]])),
    2,
  ],
  ['iss-absent', (d) => delete d.payload.iss, 0.5],
  ['jti', (d, rng) => (d.payload.jti = rng.pick(['', 5, null, ['a']])), 1],
  ['jti-absent', (d) => delete d.payload.jti, 1],
  // Header parameters.
  ['typ', (d, rng) => (d.header.typ = rng.pick(['jwt', 'JWT', 'at+jwt', 'JOSE', 'application/jwt', 1])), 2],
  ['typ-absent', (d) => delete d.header.typ, 1],
  ['kid', (d, rng) => (d.header.kid = rng.pick(['', 'unknown', 3, 'EC-384', 'dup', 'rsa-small'])), 2],
  ['kid-absent', (d) => delete d.header.kid, 2],
  [
    'crit',
    (d, rng) => {
      const [crit, b64] = rng.pick<[unknown, unknown]>([
        [['b64'], true],
        [['b64'], false],
        [['b64'], undefined],
        [['b64'], 'true'],
        [['exp'], undefined],
        [[], undefined],
        ['b64', true],
        [['b64', 'b64'], true],
        [[''], undefined],
      ]);
      d.header.crit = crit;
      if (b64 !== undefined) d.header.b64 = b64;
    },
    2,
  ],
  ['b64-without-crit', (d) => (d.header.b64 = false), 0.5],
  ['jku', (d) => (d.header.jku = 'https://evil.example.org/jwks.json'), 0.5],
  [
    'x5u-and-extras',
    (d) => Object.assign(d.header, { x5u: 'https://x.example.org', zip: 'DEF', cty: 'x' }),
    0.5,
  ],
  // Algorithm and key.
  [
    'alg-other',
    (d, rng) => {
      d.header.alg = rng.pick([...ALLOWED_ALGORITHMS, 'none', 'HS256', 'EdDSA', 'RS1', 'rs256', '', 1]);
    },
    2,
  ],
  [
    'alg-none',
    (d, rng) => {
      d.header.alg = rng.pick(['none', 'None', 'NONE']);
      d.signAlg = 'none';
    },
    1,
  ],
  [
    'alg-hs256',
    (d) => {
      d.header.alg = 'HS256';
      d.signAlg = 'HS256';
    },
    0.5,
  ],
  [
    'alg-eddsa',
    (d) => {
      Object.assign(d.header, { alg: 'EdDSA', kid: 'ed' });
      d.signAlg = 'EdDSA';
      d.signer = KEYS.ed25519;
    },
    0.5,
  ],
  [
    'alg-rs1',
    (d) => {
      Object.assign(d.header, { alg: 'RS1', kid: 'rsa-a' });
      d.signAlg = 'RS1';
      d.signer = KEYS.rsa;
    },
    0.3,
  ],
  [
    'key-wrong',
    (d, rng) => {
      // The signature made with another private key of the same family, under the header's kid.
      const { alg } = d.header;
      const rsaFamily = typeof alg === 'string' && /^(RS|PS)/.test(alg);
      d.signer = rsaFamily
        ? rng.pick([KEYS.rsaPs384, KEYS.rsa, KEYS.rsaSmall])
        : rng.pick([...STRANGERS, KEYS.dup2, KEYS.p256]);
    },
    3,
  ],
  [
    'key-other-family',
    (d, rng) => {
      // Header and signature agree, but the kid names a key of another family, curve or pinned alg.
      const [alg, key] = rng.pick<[JwsAlgorithm, TestKey]>([
        ['ES256', KEYS.rsa],
        ['ES384', KEYS.p256],
        ['ES512', KEYS.p384],
        ['ES256', KEYS.p521],
        ['RS256', KEYS.p256],
        ['RS256', KEYS.rsaPs384],
        ['PS256', KEYS.rsaPs384],
        ['PS512', KEYS.ed25519],
      ]);
      d.header.alg = alg;
      d.header.kid = key.kid;
      d.signAlg = alg;
      d.signer = rightKey(alg, rng);
    },
    2,
  ],
  [
    'key-small',
    (d, rng) => {
      const alg = rng.pick<JwsAlgorithm>(['RS256', 'PS256', 'RS512']);
      Object.assign(d.header, { alg, kid: KEYS.rsaSmall.kid });
      d.signAlg = alg;
      d.signer = KEYS.rsaSmall;
    },
    1,
  ],
  [
    'sig-alg-mismatch',
    (d, rng) => {
      // Signed with a sibling algorithm of the same key (RS256 for PS256, ES256's hash for ES384…).
      const alg = d.header.alg;
      if (!isAllowed(alg)) return;
      const siblings = ALLOWED_ALGORITHMS.filter((a) => a !== alg && a.slice(0, 2) === alg.slice(0, 2));
      d.signAlg = alg.startsWith('ES') ? alg : rng.pick(siblings);
      if (alg.startsWith('ES')) d.signer = rightKey(rng.pick(siblings), rng);
    },
    1,
  ],
  // The compact serialisation (RFC 7515 §7.1) after signing.
  ['flip', (d, rng) => post(d, (token) => flip(token, rng)), 4],
  [
    'truncate',
    (d, rng) => {
      const n = rng.int(1, 6);
      post(d, (token) => token.slice(0, -n));
    },
    1,
  ],
  ['segment-extra', (d, rng) => post(d, (token) => token + rng.pick(['.', '.AAAA', '..'])), 1],
  [
    'segment-missing',
    (d, rng) =>
      post(d, (token) => (rng.bool(0.5) ? token.slice(0, token.lastIndexOf('.')) : token.replace('.', ''))),
    0.5,
  ],
  ['sig-empty', (d) => post(d, (token) => token.slice(0, token.lastIndexOf('.') + 1)), 1],
  [
    'padding',
    (d, rng) => {
      const segment = rng.int(0, 2);
      post(d, (token) =>
        token
          .split('.')
          .map((part, i) => (i === segment ? part + rng.pick(['=', '==']) : part))
          .join('.'),
      );
    },
    1,
  ],
  [
    'invalid-char',
    (d, rng) => {
      const char = rng.pick(['+', '/', '!', '~', '%', '*']);
      post(d, (token) => {
        const at = rng.int(0, token.length - 1);
        return token[at] === '.' ? token : token.slice(0, at) + char + token.slice(at + 1);
      });
    },
    1,
  ],
  [
    'header-json',
    (d, rng) => {
      const raw = rng.pick([
        '{"alg":"ES384","alg":"none","kid":"ec-384"}',
        '[]',
        'null',
        '{"alg":"ES384","kid":"ec-384"',
        ' {"alg" : "ES384", "kid":"ec-384"} ',
      ]);
      post(d, (token) => `${b64(raw)}${token.slice(token.indexOf('.'))}`);
    },
    0.5,
  ],
  [
    'payload-json',
    (d, rng) => {
      const raw = rng.pick(['[]', '"text"', '{"iss":', '42', '\ufeff{}']);
      post(d, (token) => {
        const [h, , s] = token.split('.') as [string, string, string];
        return `${h}.${b64(raw)}.${s}`;
      });
    },
    0.5,
  ],
];

/** Adds a rewrite of the signed token (after any earlier one). */
function post(d: Draft, step: (token: string) => string): void {
  const before = d.post;
  d.post = before ? (token) => step(before(token)) : step;
}

/** One base64url character of the token changed: in the header, the payload or the signature. */
function flip(token: string, rng: Rng): string {
  const segments = token.split('.');
  const index = rng.int(0, segments.length - 1);
  const segment = segments[index]!;
  if (segment === '') return token;
  const at = rng.int(0, segment.length - 1);
  const old = BASE64URL.indexOf(segment[at]!);
  // A change of the last character may only touch its unused low bits: both verifiers must still refuse
  // (or agree), so any of the other 63 characters is drawn.
  const next = BASE64URL[(old + rng.int(1, 63)) % 64]!;
  segments[index] = segment.slice(0, at) + next + segment.slice(at + 1);
  return segments.join('.');
}

function draw(rng: Rng): { token: string; labels: string[] } {
  const alg = rng.pick(ALLOWED_ALGORITHMS);
  const signer = rightKey(alg, rng);
  const draft: Draft = {
    header: { alg, typ: 'JWT', kid: signer.kid },
    payload: { iss: ISSUER, aud: AUD, iat: NOW_S, exp: NOW_S + LIFETIME, jti: rng.uuid() },
    signAlg: alg,
    signer,
    post: null,
    labels: [alg],
  };
  // A quarter of the tokens stay valid; the others get one to three mutations.
  const count = rng.bool(0.25)
    ? 0
    : rng.weighted([
        [1, 6],
        [2, 3],
        [3, 1],
      ]);
  for (let i = 0; i < count; i++) {
    const [label, mutate] = rng.weighted(MUTATIONS.map((m) => [m, m[2]] as const));
    mutate(draft, rng);
    draft.labels.push(label);
  }
  const input = `${b64(draft.header)}.${b64(draft.payload)}`;
  const token = `${input}.${signWith(draft.signAlg, draft.signer, input).toString('base64url')}`;
  return { token: draft.post ? draft.post(token) : token, labels: draft.labels };
}

/** The token's header and payload as JSON objects, when they decode (for the rules below). */
function decoded(
  token: string,
): { header: Record<string, unknown>; payload: Record<string, unknown> } | null {
  const [header, payload] = token.split('.').slice(0, 2).map(jsonObject);
  return header && payload ? { header, payload } : null;
}

function jsonObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString());
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Where the service is deliberately stricter than a plain `jwtVerify` with the same options: the reason it
 * refuses with, and whether a token falls under the rule. A token jose accepts may be refused only for a
 * reason whose rule applies to it.
 */
const STRICTER: readonly {
  reason: AuthFailureReason;
  why: string;
  applies: (token: string, header: Record<string, unknown>, payload: Record<string, unknown>) => boolean;
}[] = [
  {
    reason: 'token_malformed',
    why: 'RFC 7515 §2/§7.1: base64url without padding; the Bearer pattern takes nothing else',
    applies: (token) => /[^A-Za-z0-9_.-]/.test(token),
  },
  {
    reason: 'typ_invalid',
    why: 'RFC 7519 §5.1: a `typ`, when present, is "JWT" (jwtVerify checks it only when asked)',
    applies: (_, header) => header.typ !== undefined && String(header.typ).toUpperCase() !== 'JWT',
  },
  {
    reason: 'kid_missing',
    why: 'CDS Hooks 2.0 "Trusting CDS Clients": the header carries `kid` (jose picks a lone candidate key)',
    applies: (_, header) => typeof header.kid !== 'string' || header.kid === '',
  },
  {
    reason: 'jku_not_allowed',
    why: 'CDS Hooks 2.0: a `jku` must be on the issuer allowlist (jose ignores `jku`)',
    applies: (_, header) => header.jku !== undefined,
  },
  {
    reason: 'exp_missing',
    why: 'CDS Hooks 2.0: `exp` is required',
    applies: (_, __, payload) => !Object.hasOwn(payload, 'exp'),
  },
  {
    reason: 'iat_missing',
    why: 'CDS Hooks 2.0: `iat` is required',
    applies: (_, __, payload) => !Object.hasOwn(payload, 'iat'),
  },
  {
    reason: 'jti_missing',
    why: 'CDS Hooks 2.0: `jti` is required, a nonce (so a non-empty string)',
    applies: (_, __, payload) => typeof payload.jti !== 'string' || payload.jti === '',
  },
  {
    reason: 'iat_in_future',
    why: 'the token age is bounded both ways (jose checks it only with maxTokenAge)',
    applies: (_, __, payload) => typeof payload.iat === 'number' && payload.iat > NOW_S + SKEW,
  },
  {
    reason: 'iat_too_old',
    why: 'the token age is at most the largest lifetime, plus the skew',
    applies: (_, __, payload) => typeof payload.iat === 'number' && NOW_S - payload.iat - SKEW > LIFETIME,
  },
  {
    reason: 'lifetime_too_long',
    why: 'a short-lived token bounds how long its jti must be remembered',
    applies: (_, __, payload) =>
      typeof payload.iat === 'number' &&
      typeof payload.exp === 'number' &&
      payload.exp - payload.iat > LIFETIME,
  },
];

/** The reasons of STRICTER that apply to a token. */
function stricterReasons(token: string): Set<AuthFailureReason> {
  const parts = decoded(token);
  return new Set(
    STRICTER.filter((rule) =>
      parts
        ? rule.applies(token, parts.header, parts.payload)
        : rule.reason === 'token_malformed' && rule.applies(token, {}, {}),
    ).map((rule) => rule.reason),
  );
}

t.test('the verifier and jose judge every drawn token alike, but for the listed strictness', async (t) => {
  const verify = createVerifier({
    issuers: [{ iss: ISSUER, jwks: JWKS, jwksUrl: null, jkuAllowlist: [], tenants: null }],
    remoteJwks: () => {
      throw new Error('no remote key set in this test');
    },
    // jose has no replay cache: every jti is new here, so the cache never decides a verdict.
    replayCache: { claim: async () => true },
    now: () => NOW,
    maxBytes: 16384,
    clockSkewS: SKEW,
    maxLifetimeS: LIFETIME,
  });
  const joseKeys = createLocalJWKSet(JWKS);
  const joseOptions = {
    algorithms: [...ALLOWED_ALGORITHMS],
    audience: AUD,
    issuer: ISSUER,
    clockTolerance: SKEW,
    currentDate: NOW,
  };

  const rng = createRng(SEED);
  const disagreements: string[] = [];
  const drawn = new Set<string>();
  const tally = { bothAccept: 0, bothRefuse: 0, stricter: new Map<string, number>() };
  for (let i = 0; i < CASES; i++) {
    const { token, labels } = draw(rng);
    for (const label of labels) drawn.add(label);
    const ours = await verify(`Bearer ${token}`, AUD);
    let joseOk: boolean;
    let joseError = '';
    try {
      await jwtVerify(token, joseKeys, joseOptions);
      joseOk = true;
    } catch (error) {
      joseOk = false;
      joseError = (error as Error).message;
    }
    const reason = ours.ok ? null : ours.reason;
    const stricter = stricterReasons(token);
    if (ours.ok && stricter.size > 0) {
      disagreements.push(
        `case ${i} [${labels.join(', ')}]: accepted despite ${[...stricter].join(', ')}: ${token}`,
      );
    } else if (ours.ok && joseOk) tally.bothAccept++;
    else if (!ours.ok && !joseOk) tally.bothRefuse++;
    else if (!ours.ok && reason !== null && stricter.has(reason)) {
      tally.stricter.set(reason, (tally.stricter.get(reason) ?? 0) + 1);
    } else {
      const verdict = ours.ok ? 'accepted' : `refused (${reason})`;
      const theirs = joseOk ? 'accepted' : `refused (${joseError})`;
      disagreements.push(`case ${i} [${labels.join(', ')}]: service ${verdict}, jose ${theirs}: ${token}`);
    }
  }
  t.same(disagreements.slice(0, 20), [], `${disagreements.length} disagreements in ${CASES} tokens`);

  // The draw reached both verdicts and every strictness rule: the comparison was not vacuous.
  t.ok(tally.bothAccept > CASES / 10, `${tally.bothAccept} tokens accepted by both`);
  t.ok(tally.bothRefuse > CASES / 3, `${tally.bothRefuse} tokens refused by both`);
  t.same(
    MUTATIONS.map(([label]) => label).filter((label) => !drawn.has(label)),
    [],
    'every mutation was drawn',
  );
  t.same(
    ALLOWED_ALGORITHMS.filter((alg) => !drawn.has(alg)),
    [],
    'every accepted algorithm was drawn',
  );
  for (const rule of STRICTER) {
    t.ok((tally.stricter.get(rule.reason) ?? 0) > 0, `stricter than jose: ${rule.reason} (${rule.why})`);
  }
});

t.test('the strictness rules and the draw are what they claim', async (t) => {
  t.same([...stricterReasons('a.b.c=')], ['token_malformed'], 'padding is outside the Bearer pattern');
  const token = (header: object, payload: object) => `${b64(header)}.${b64(payload)}.sig`;
  const valid = { iss: ISSUER, aud: AUD, iat: NOW_S, exp: NOW_S + LIFETIME, jti: 'j' };
  t.same([...stricterReasons(token({ alg: 'ES384', kid: 'k', typ: 'JWT' }, valid))], [], 'a valid token');
  t.same(
    [
      ...stricterReasons(
        token({ alg: 'ES384', typ: 'at+jwt', jku: 'https://x' }, { iss: ISSUER, iat: NOW_S + SKEW + 1 }),
      ),
    ],
    ['typ_invalid', 'kid_missing', 'jku_not_allowed', 'exp_missing', 'jti_missing', 'iat_in_future'],
  );
  t.same(
    [...stricterReasons(token({ alg: 'ES384', kid: 'k' }, { ...valid, iat: NOW_S - LIFETIME - SKEW - 1 }))],
    ['iat_too_old', 'lifetime_too_long'],
  );
  // The same seed draws the same cases.
  const a = createRng(SEED);
  const b = createRng(SEED);
  t.same(
    Array.from({ length: 20 }, () => draw(a).labels),
    Array.from({ length: 20 }, () => draw(b).labels),
  );
});

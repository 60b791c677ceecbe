/**
 * Compact JWS signature and JWT claims checks with node:crypto. jose's `jwtVerify` goes through
 * WebCrypto, whose every `verify` is an async job on the libuv threadpool: for one small token per hook
 * call that hop costs more than the RSA check itself, so RSA is checked synchronously; ECDSA, whose
 * check costs far more than the hop, still goes to the threadpool. This module does the same checks jose 6
 * did (same key selection, same claim semantics, same order), and nothing less; jose still decodes the
 * token (`verify.ts`) and still fetches and caches remote JWK Sets (`jwks.ts`).
 *
 * Each failure is a `JwsFailure` carrying the verifier's coded reason (see `AUTH_FAILURE_REASONS`).
 */
import { constants, createPublicKey, type JsonWebKey, type KeyObject, verify } from 'node:crypto';
import type { JSONWebKeySet, JWK, JWTPayload, ProtectedHeaderParameters } from 'jose';
// A subpath, not jose's index (which loads the whole package at start-up: jwks.ts).
import * as base64url from 'jose/base64url';
import type { ALLOWED_ALGORITHMS } from './jwks.js';

export type JwsAlgorithm = (typeof ALLOWED_ALGORITHMS)[number];

/** The reasons this module refuses with: a subset of the verifier's `AuthFailureReason`. */
export type JwsFailureReason =
  | 'token_malformed'
  | 'key_unknown'
  | 'key_ambiguous'
  | 'signature_invalid'
  | 'aud_mismatch'
  | 'exp_missing'
  | 'jwt_expired'
  | 'iat_missing'
  | 'iat_in_future'
  | 'iat_too_old'
  | 'nbf_in_future'
  | 'jti_missing';

export class JwsFailure extends Error {
  readonly reason: JwsFailureReason;
  constructor(reason: JwsFailureReason, message: string = reason) {
    super(message);
    this.reason = reason;
  }
}

const fail = (reason: JwsFailureReason, message?: string): never => {
  throw new JwsFailure(reason, message);
};

/** jose's decoder of header and payload: UTF-8 that refuses invalid bytes (and drops a leading BOM). */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A segment of the base64url alphabet only, unpadded: what a Bearer token's segments are. */
const BASE64URL_SEGMENT = /^[A-Za-z0-9_-]*$/;

/**
 * jose's `base64url.decode`, faster for the segments of a token: for a string of the base64url
 * alphabet alone, jose (atob, or Uint8Array.fromBase64) refuses only a length of 4n + 1 and otherwise
 * gives the bytes Buffer gives; anything else goes to jose itself. test/auth/jws.test.ts compares both.
 * @throws TypeError when the input is not base64url
 */
export function decodeBase64url(input: string): Uint8Array {
  if (!BASE64URL_SEGMENT.test(input)) return base64url.decode(input);
  if (input.length % 4 === 1) throw new TypeError('The input to be decoded is not correctly encoded.');
  return Buffer.from(input, 'base64url');
}

/** jose's `isObject`: a plain object (JSON.parse gives no other kind, but arrays and null are refused). */
function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (
    typeof value !== 'object' ||
    value === null ||
    Object.prototype.toString.call(value) !== '[object Object]'
  )
    return false;
  const prototype = Object.getPrototypeOf(value) as object | null;
  return prototype === null || Object.getPrototypeOf(prototype) === null;
}

/**
 * A token's header or payload segment as jose's `decodeProtectedHeader` and `decodeJwt` decode it
 * (base64url, strict UTF-8, JSON, a plain object), once per segment rather than once per jose call
 * (each of which split the token again).
 * @returns the object, or undefined where jose throws
 */
export function decodeJoseSegment(segment: string): Record<string, unknown> | undefined {
  if (segment === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(STRICT_UTF8.decode(decodeBase64url(segment)));
  } catch {
    return undefined;
  }
  return isPlainObject(parsed) ? parsed : undefined;
}

interface AlgorithmSpec {
  kty: 'RSA' | 'EC';
  /** The node:crypto digest name. */
  hash: 'sha256' | 'sha384' | 'sha512';
  /** RSASSA-PSS rather than RSASSA-PKCS1-v1_5. */
  pss?: boolean;
  /** JWK curve name and the matching OpenSSL name, for EC. */
  crv?: 'P-256' | 'P-384' | 'P-521';
  namedCurve?: 'prime256v1' | 'secp384r1' | 'secp521r1';
  /** Length of the IEEE P1363 signature r || s, for EC. */
  signatureBytes?: number;
}

const rsa = (hash: AlgorithmSpec['hash'], pss = false): AlgorithmSpec => ({ kty: 'RSA', hash, pss });
const ec = (
  hash: AlgorithmSpec['hash'],
  crv: NonNullable<AlgorithmSpec['crv']>,
  namedCurve: NonNullable<AlgorithmSpec['namedCurve']>,
  signatureBytes: number,
): AlgorithmSpec => ({ kty: 'EC', hash, crv, namedCurve, signatureBytes });

/** RFC 7518 §3.1: the `alg` values this service accepts and what each one means. */
const ALGORITHMS: Record<JwsAlgorithm, AlgorithmSpec> = {
  // §3.3: RSASSA-PKCS1-v1_5
  RS256: rsa('sha256'),
  RS384: rsa('sha384'),
  RS512: rsa('sha512'),
  // §3.5: RSASSA-PSS, MGF1 with the same hash, salt as long as the hash
  PS256: rsa('sha256', true),
  PS384: rsa('sha384', true),
  PS512: rsa('sha512', true),
  // §3.4: ECDSA, the signature is r || s, each as long as the curve's order (P-521: 66 bytes)
  ES256: ec('sha256', 'P-256', 'prime256v1', 64),
  ES384: ec('sha384', 'P-384', 'secp384r1', 96),
  ES512: ec('sha512', 'P-521', 'secp521r1', 132),
};

/** RFC 7518 §3.3 and §3.5 ask for 2048 bits at least; jose refuses smaller keys too. */
export const MIN_RSA_BITS = 2048;

/** A key set held in memory: the key for a token's `alg` and `kid`, or a failure. */
export type LocalKeySet = (alg: JwsAlgorithm, kid: string) => KeyObject;

/**
 * jose's `createLocalJWKSet` rule for whether a JWK may verify a token (RFC 7517 §4): `ext` a boolean if
 * present, `key_ops` unique strings including "verify" if present, the `kty` of the algorithm family, the
 * token's `kid`, the token's `alg` if the JWK names one, `use` "sig" if present, and the curve for EC.
 */
function usable(jwk: JWK, spec: AlgorithmSpec, alg: string, kid: string): boolean {
  const ops = jwk.key_ops as unknown;
  return (
    (jwk.ext === undefined || typeof jwk.ext === 'boolean') &&
    (ops === undefined ||
      (Array.isArray(ops) &&
        ops.every((op, i) => typeof op === 'string' && ops.indexOf(op) === i) &&
        ops.includes('verify'))) &&
    jwk.kty === spec.kty &&
    jwk.kid === kid &&
    (jwk.alg === undefined || jwk.alg === alg) &&
    (jwk.use === undefined || jwk.use === 'sig') &&
    (spec.crv === undefined || jwk.crv === spec.crv)
  );
}

/**
 * Imports a JWK Set's RSA and EC keys once, as KeyObjects, and selects by the rules of jose's
 * `createLocalJWKSet`: no usable key is `key_unknown`, several are `key_ambiguous`.
 * @throws Error when an RSA or EC key cannot be imported (the configuration is wrong: better at start)
 */
export function localKeySet(jwks: JSONWebKeySet): LocalKeySet {
  const entries = jwks.keys.map((jwk, index) => {
    // Other key types can never match an accepted alg (usable() checks kty first), so need no import.
    if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') return { jwk, key: undefined };
    try {
      const { kid: _kid, alg: _alg, use: _use, key_ops: _ops, ext: _ext, ...material } = jwk;
      return { jwk, key: createPublicKey({ key: material as JsonWebKey, format: 'jwk' }) };
    } catch (error) {
      throw new Error(`keys[${index}] (kid ${JSON.stringify(jwk.kid)}) is not a valid public key`, {
        cause: error,
      });
    }
  });
  return (alg, kid) => {
    const spec = ALGORITHMS[alg];
    const candidates = entries.filter((entry) => usable(entry.jwk, spec, alg, kid));
    if (candidates.length === 0) return fail('key_unknown');
    if (candidates.length > 1) return fail('key_ambiguous');
    return candidates[0]!.key!;
  };
}

/**
 * RFC 7515 §4.1.11: a `crit` header lists extensions the recipient must understand. Like jose, only
 * `b64` (RFC 7797) is understood; anything else, or a malformed `crit`, refuses the token.
 * @returns the payload encoding: false for an unencoded payload (`b64: false`), which a JWT may not use;
 *   the caller refuses it after the signature, where jose did
 */
export function checkCritical(header: ProtectedHeaderParameters): boolean {
  const { crit } = header as { crit?: unknown };
  if (crit === undefined) return true;
  if (
    !Array.isArray(crit) ||
    crit.length === 0 ||
    crit.some((name) => typeof name !== 'string' || name.length === 0)
  ) {
    return fail('token_malformed', '"crit" must be an array of non-empty strings');
  }
  for (const name of crit as string[]) {
    if (name !== 'b64') return fail('token_malformed', `extension "${name}" is not understood`);
    if (header.b64 === undefined) return fail('token_malformed', `extension "${name}" is missing`);
  }
  if (typeof header.b64 !== 'boolean') return fail('token_malformed', '"b64" must be a boolean');
  return header.b64;
}

/** The key's type and size or curve must fit the algorithm (RFC 7518 §3.3–3.5). */
function checkKey(key: KeyObject, alg: JwsAlgorithm, spec: AlgorithmSpec): void {
  if (spec.kty === 'RSA') {
    if (key.asymmetricKeyType !== 'rsa') fail('signature_invalid', `${alg} needs an RSA key`);
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS)
      fail('signature_invalid', `${alg} needs an RSA key of ${MIN_RSA_BITS} bits or more`);
  } else if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== spec.namedCurve) {
    fail('signature_invalid', `${alg} needs an EC key on ${spec.crv}`);
  }
}

/**
 * RFC 7515 §5.2: verifies the signature of a compact JWS over `header.payload` with `key`, for `alg`.
 * The token is known to be three base64url segments (the verifier's Bearer pattern and jose's decode).
 *
 * RSA verification costs about 0.03 ms: done at once, on the calling thread. ECDSA on P-384 costs about
 * 0.75 ms of CPU whatever the library (OpenSSL): it is handed to the libuv threadpool (node:crypto's
 * callback form), so that the event loop goes on serving other calls meanwhile.
 * @throws JwsFailure (as a rejection) `token_malformed` or `signature_invalid`
 */
export async function verifySignature(token: string, alg: JwsAlgorithm, key: KeyObject): Promise<void> {
  const spec = ALGORITHMS[alg];
  const dot = token.lastIndexOf('.');
  let signature: Uint8Array;
  try {
    signature = decodeBase64url(token.slice(dot + 1));
  } catch {
    return fail('token_malformed', 'the signature is not base64url');
  }
  checkKey(key, alg, spec);
  if (spec.signatureBytes !== undefined && signature.byteLength !== spec.signatureBytes) {
    return fail('signature_invalid', `an ${alg} signature is ${spec.signatureBytes} bytes`);
  }
  const input = Buffer.from(token.slice(0, dot), 'latin1');
  let valid: boolean;
  try {
    valid =
      spec.kty === 'EC'
        ? await new Promise<boolean>((resolve, reject) =>
            verify(spec.hash, input, { key, dsaEncoding: 'ieee-p1363' }, signature, (error, result) =>
              error ? reject(error) : resolve(result),
            ),
          )
        : verify(
            spec.hash,
            input,
            spec.pss
              ? {
                  key,
                  padding: constants.RSA_PKCS1_PSS_PADDING,
                  saltLength: constants.RSA_PSS_SALTLEN_DIGEST,
                }
              : key,
            signature,
          );
  } catch {
    valid = false;
  }
  if (!valid) fail('signature_invalid');
}

export interface ClaimsOptions {
  issuer: string;
  audience: string;
  /** Seconds since the epoch, whole (as jose: floor of the current date). */
  now: number;
  /** Allowed clock difference, in seconds. */
  clockTolerance: number;
  /** Largest age of the token from its `iat`, in seconds. */
  maxTokenAge: number;
}

/** Claims that must be present, in the order jose checked them (so the same one is reported missing). */
const REQUIRED: readonly [claim: string, reason: JwsFailureReason][] = [
  ['iss', 'token_malformed'],
  ['aud', 'aud_mismatch'],
  ['iat', 'iat_missing'],
  ['jti', 'jti_missing'],
  ['exp', 'exp_missing'],
];

/**
 * RFC 7519 §4.1 and §7.2 step 10, as jose's `jwtVerify` applied them with `issuer`, `audience`,
 * `clockTolerance`, `maxTokenAge` and `requiredClaims: ['exp', 'iat', 'jti']`:
 * - `aud` is the audience, or an array holding it (§4.1.3);
 * - `nbf` is refused when later than now + tolerance (§4.1.5);
 * - `exp` is refused when at or before now - tolerance (§4.1.4: "on or after");
 * - the age now - `iat` is refused when above maxTokenAge + tolerance, or below -tolerance;
 * - `iat`, `nbf` and `exp` must be numbers when present.
 */
export function validateClaims(claims: JWTPayload, options: ClaimsOptions): void {
  for (const [claim, reason] of REQUIRED) if (!Object.hasOwn(claims, claim)) fail(reason, `${claim} missing`);
  if (claims.iss !== options.issuer) fail('token_malformed', 'unexpected iss');
  const { aud } = claims;
  if (
    !(typeof aud === 'string'
      ? aud === options.audience
      : Array.isArray(aud) && aud.includes(options.audience))
  )
    fail('aud_mismatch');
  const { now, clockTolerance: tolerance } = options;
  const { iat, nbf, exp } = claims as Record<string, unknown>;
  if (typeof iat !== 'number') return fail('iat_in_future', 'iat is not a number');
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > now + tolerance)) fail('nbf_in_future');
  if (typeof exp !== 'number' || exp <= now - tolerance) fail('jwt_expired');
  const age = now - iat;
  if (age - tolerance > options.maxTokenAge) fail('iat_too_old');
  if (age < -tolerance) fail('iat_in_future');
}

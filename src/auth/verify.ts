/**
 * Verification of a CDS client's JWT (CDS Hooks 2.0 §"Trusting CDS Clients" and the best-practice
 * checklist), framework-free: takes the Authorization header and the exact URL called, returns the
 * authenticated client or a coded reason. The reason goes to the log only; the client always gets the
 * same bare 401.
 *
 * Order matters: everything that costs nothing (size, shape, algorithm, issuer, `jku`) is checked on the
 * unverified token before any key is fetched or any signature computed, and the `jti` is recorded only
 * once everything else passed, so a rejected token never uses up a nonce.
 *
 * jose decodes the token and fetches remote key sets; the signature and the claims are checked by
 * `jws.ts` with node:crypto (RSA at once; ECDSA, costlier, on the threadpool).
 */
import { KeyObject, type webcrypto } from 'node:crypto';
import type {
  CompactJWSHeaderParameters,
  JWTPayload,
  JWTVerifyGetKey,
  ProtectedHeaderParameters,
} from 'jose';
// A subpath, not jose's index (which loads the whole package at start-up: jwks.ts).
import * as errors from 'jose/errors';
import type { TrustedIssuer } from './issuers.js';
import { ALLOWED_ALGORITHMS } from './jwks.js';
import {
  checkCritical,
  decodeJoseSegment,
  type JwsAlgorithm,
  JwsFailure,
  type LocalKeySet,
  localKeySet,
  validateClaims,
  verifySignature,
} from './jws.js';
import { type ReplayCache, replayKey } from './replay.js';

/** Why a token was refused: the `reason` of the warn log line. */
export const AUTH_FAILURE_REASONS = [
  'header_missing',
  'scheme_not_bearer',
  'token_too_large',
  'token_malformed',
  'typ_invalid',
  'alg_not_allowed',
  'kid_missing',
  'iss_missing',
  'iss_untrusted',
  'jku_not_allowed',
  'jku_required',
  'jwks_unavailable',
  'key_unknown',
  'key_ambiguous',
  'signature_invalid',
  'aud_mismatch',
  'exp_missing',
  'jwt_expired',
  'iat_missing',
  'iat_in_future',
  'iat_too_old',
  'nbf_in_future',
  'lifetime_too_long',
  'jti_missing',
  'tenant_mismatch',
  'jti_replayed',
  'replay_cache_unavailable',
] as const;

export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];

/** The authenticated caller, as later stages (audit, rate limit) see it. */
export interface CdsClient {
  iss: string;
  /** The `tenant` claim: the healthcare organisation the EHR speaks for, when it says. */
  tenant: string | null;
  /** The `sub` claim: not part of CDS Hooks 2.0, but some EHRs send it. */
  sub: string | null;
}

export type VerifyResult =
  | { ok: true; client: CdsClient; jti: string }
  | { ok: false; reason: AuthFailureReason; iss?: string; error?: string };

export interface VerifierOptions {
  issuers: readonly TrustedIssuer[];
  /** Resolver of a remote JWK Set by URL (shared caches; see `jwks.ts`). */
  remoteJwks: (url: string) => JWTVerifyGetKey;
  replayCache: ReplayCache;
  now: () => Date;
  /** Largest Authorization header accepted, in bytes; larger ones are refused before any parsing. */
  maxBytes: number;
  /** Allowed clock difference with the client, in seconds, for `exp`, `iat` and `nbf`. */
  clockSkewS: number;
  /** Largest `exp - iat`, in seconds. */
  maxLifetimeS: number;
}

export type Verifier = (authorization: string | undefined, audience: string) => Promise<VerifyResult>;

class Refusal extends Error {
  readonly reason: AuthFailureReason;
  /** For the operator, when the reason alone does not say what went wrong (a key fetch, a store). */
  readonly detail: string | undefined;
  constructor(reason: AuthFailureReason, detail?: string) {
    super(reason);
    this.reason = reason;
    this.detail = detail;
  }
}

const refuse = (reason: AuthFailureReason, detail?: string): never => {
  throw new Refusal(reason, detail);
};

const BEARER = /^Bearer +([A-Za-z0-9_.-]+) *$/i;

/** The compact JWS in the header, or a refusal. */
function tokenOf(authorization: string | undefined, maxBytes: number): string {
  if (authorization === undefined || authorization === '') return refuse('header_missing');
  if (Buffer.byteLength(authorization) > maxBytes) return refuse('token_too_large');
  const match = BEARER.exec(authorization);
  if (!match) return refuse(/^Bearer(\s|$)/i.test(authorization) ? 'token_malformed' : 'scheme_not_bearer');
  return match[1]!;
}

/**
 * The token's header and payload, as jose's `decodeProtectedHeader` and `decodeJwt` accept them (three
 * segments; each base64url, UTF-8, a JSON object), each segment decoded once.
 */
function decode(token: string): { header: ProtectedHeaderParameters; payload: JWTPayload } {
  const segments = token.split('.');
  if (segments.length !== 3) return refuse('token_malformed');
  const header = decodeJoseSegment(segments[0]!);
  const payload = header && decodeJoseSegment(segments[1]!);
  if (!header || !payload) return refuse('token_malformed');
  return { header: header as ProtectedHeaderParameters, payload: payload as JWTPayload };
}

/** The key for a token: from the issuer's own keys at once, or from a remote set (fetched, cached). */
type KeySource = (header: ProtectedHeaderParameters, token: string) => KeyObject | Promise<KeyObject>;

/**
 * jose's remote sets give CryptoKeys (one per JWK and alg, cached by jose); node:crypto wants KeyObjects.
 * Each verifier keeps its own conversions (weakly, by CryptoKey).
 */
type Converted = WeakMap<object, KeyObject>;

function remoteSource(getKey: JWTVerifyGetKey, converted: Converted): KeySource {
  return async (header, token) => {
    const [encodedHeader, payload, signature] = token.split('.') as [string, string, string];
    const key = await getKey(header as CompactJWSHeaderParameters, {
      protected: encodedHeader,
      payload,
      signature,
    });
    // jose's createRemoteJWKSet resolves to CryptoKeys only (KeyObject.from throws on anything else: a bug).
    const cryptoKey = key as webcrypto.CryptoKey;
    let object = converted.get(cryptoKey);
    if (!object) converted.set(cryptoKey, (object = KeyObject.from(cryptoKey)));
    return object;
  };
}

/**
 * The key source for this token. Pinned keys win: an issuer with keys of its own (`jwks`, `jwksFile`)
 * is verified with them, always; a `jku` it sends must still be one of that issuer's configured URLs,
 * but is then never fetched and never replaces the local keys (an operator who pinned keys keeps them,
 * and the issuer works offline). Without local keys, an allowlisted `jku` or the `jwksUrl` is fetched.
 */
function keysFor(
  issuer: TrustedIssuer,
  header: ProtectedHeaderParameters,
  remote: VerifierOptions['remoteJwks'],
  local: Map<TrustedIssuer, LocalKeySet>,
  converted: Converted,
): KeySource {
  const own = local.get(issuer);
  let jku: string | undefined;
  if (header.jku !== undefined) {
    // Never fetch a URL a token names unless the configuration lists it (CDS Hooks 2.0 §"Trusting CDS
    // Clients": keep an allowlist of jku URLs).
    try {
      jku = new URL(String(header.jku)).href;
    } catch {
      jku = undefined;
    }
    if (jku === undefined || !issuer.jkuAllowlist.includes(jku)) return refuse('jku_not_allowed');
  }
  if (own) return (h) => own(h.alg as JwsAlgorithm, h.kid!);
  if (jku !== undefined) return remoteSource(remote(jku), converted);
  if (issuer.jwksUrl) return remoteSource(remote(issuer.jwksUrl), converted);
  return refuse('jku_required');
}

/**
 * Maps the errors of jose's remote key resolver to a reason; anything unexpected is rethrown. (The
 * signature and claim failures are `jws.ts`'s, already coded.)
 */
function reasonOf(error: unknown): AuthFailureReason {
  if (error instanceof errors.JWKSNoMatchingKey) return 'key_unknown';
  if (error instanceof errors.JWKSMultipleMatchingKeys) return 'key_ambiguous';
  // The key set could not be had: timeout, network error, non-200 answer, unparsable or oversized set.
  if (error instanceof errors.JOSEError) return 'jwks_unavailable';
  throw error;
}

/** An error and its causes, on one line. */
function describe(error: unknown): string {
  const parts: string[] = [];
  for (let e = error; e instanceof Error && parts.length < 3; e = e.cause) parts.push(e.message);
  return parts.join(': ');
}

/**
 * Builds the verifier.
 * @example
 *   const verify = createVerifier(options);
 *   const result = await verify(request.headers.authorization, `${publicUrl}/cds-services`);
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const byIss = new Map(options.issuers.map((issuer) => [issuer.iss, issuer]));
  // Each issuer's own keys are imported once, here: a key that cannot be imported fails the start.
  const local = new Map<TrustedIssuer, LocalKeySet>();
  for (const issuer of options.issuers) if (issuer.jwks) local.set(issuer, localKeySet(issuer.jwks));
  const converted: Converted = new WeakMap();

  /**
   * Signature, then the time and audience claims, as jose's `jwtVerify` checked them (`jws.ts`), then
   * the CDS Hooks bounds. `claims` is the token's own payload, decoded from the very segment signed.
   */
  async function verifiedClaims(
    token: string,
    header: ProtectedHeaderParameters,
    claims: JWTPayload,
    keys: KeySource,
    issuer: TrustedIssuer,
    audience: string,
  ): Promise<JWTPayload> {
    try {
      const encoded = checkCritical(header);
      let key: KeyObject;
      try {
        key = await keys(header, token);
      } catch (error) {
        if (error instanceof JwsFailure) throw error;
        const reason = reasonOf(error);
        // The cause of a key fetch failure helps the operator; the other reasons say it all.
        return refuse(reason, reason === 'jwks_unavailable' ? describe(error) : undefined);
      }
      await verifySignature(token, header.alg as JwsAlgorithm, key);
      // RFC 7797 §7: a JWT's payload is always base64url-encoded.
      if (!encoded) refuse('token_malformed');
      validateClaims(claims, {
        issuer: issuer.iss,
        audience,
        now: Math.floor(options.now().getTime() / 1000),
        clockTolerance: options.clockSkewS,
        // The token's age is bounded too, which also refuses an `iat` in the future beyond the tolerance.
        maxTokenAge: options.maxLifetimeS,
      });
    } catch (error) {
      if (error instanceof JwsFailure) refuse(error.reason);
      throw error;
    }
    if (typeof claims.jti !== 'string' || claims.jti === '') refuse('jti_missing');
    // CDS Hooks tokens are single-use and short-lived: bounding exp - iat bounds how long a nonce must be
    // remembered, and how long a stolen token is worth anything.
    if (claims.exp! - claims.iat! > options.maxLifetimeS) refuse('lifetime_too_long');
    return claims;
  }

  /** Records the jti, last: a token refused for any other reason does not use up its nonce. */
  async function claimJti(iss: string, claims: JWTPayload): Promise<void> {
    const expiresAt = new Date((claims.exp! + options.clockSkewS) * 1000);
    let first: boolean;
    try {
      first = await options.replayCache.claim(replayKey(iss, claims.jti!), expiresAt);
    } catch (error) {
      return refuse('replay_cache_unavailable', describe(error));
    }
    if (!first) refuse('jti_replayed');
  }

  async function check(
    authorization: string | undefined,
    audience: string,
    seen: { iss?: string },
  ): Promise<VerifyResult> {
    const token = tokenOf(authorization, options.maxBytes);
    const { header, payload } = decode(token);
    // Logged with a refusal (truncated: it is whatever the caller wrote) to help a site find a
    // misconfigured client.
    if (typeof payload.iss === 'string') seen.iss = payload.iss.slice(0, 200);
    if (header.typ !== undefined && String(header.typ).toUpperCase() !== 'JWT') refuse('typ_invalid');
    if (!(ALLOWED_ALGORITHMS as readonly unknown[]).includes(header.alg)) refuse('alg_not_allowed');
    if (typeof header.kid !== 'string' || header.kid === '') refuse('kid_missing');
    if (typeof payload.iss !== 'string' || payload.iss === '') refuse('iss_missing');
    const issuer = byIss.get(payload.iss!) ?? refuse('iss_untrusted');
    const keys = keysFor(issuer, header, options.remoteJwks, local, converted);

    const claims = await verifiedClaims(token, header, payload, keys, issuer, audience);
    const tenant = typeof claims.tenant === 'string' ? claims.tenant : null;
    if (issuer.tenants && (tenant === null || !issuer.tenants.includes(tenant))) refuse('tenant_mismatch');
    await claimJti(issuer.iss, claims);
    const sub = typeof claims.sub === 'string' ? claims.sub : null;
    return { ok: true, client: { iss: issuer.iss, tenant, sub }, jti: claims.jti! };
  }

  return async (authorization, audience) => {
    const seen: { iss?: string } = {};
    try {
      return await check(authorization, audience, seen);
    } catch (error) {
      if (!(error instanceof Refusal)) throw error;
      return {
        ok: false,
        reason: error.reason,
        ...seen,
        ...(error.detail === undefined ? {} : { error: error.detail }),
      };
    }
  };
}

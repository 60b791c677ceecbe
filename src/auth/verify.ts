/**
 * Verification of a CDS client's JWT (CDS Hooks 2.0 §"Trusting CDS Clients" and the best-practice
 * checklist), framework-free: takes the Authorization header and the exact URL called, returns the
 * authenticated client or a coded reason. The reason goes to the log only; the client always gets the
 * same bare 401.
 *
 * Order matters: everything that costs nothing (size, shape, algorithm, issuer, `jku`) is checked on the
 * unverified token before any key is fetched or any signature computed, and the `jti` is recorded only
 * once everything else passed, so a rejected token never uses up a nonce.
 */
import {
  decodeJwt,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyGetKey,
  type ProtectedHeaderParameters,
} from 'jose';
import type { TrustedIssuer } from './issuers.js';
import { ALLOWED_ALGORITHMS, localJwks } from './jwks.js';
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

function decode(token: string): { header: ProtectedHeaderParameters; payload: JWTPayload } {
  if (token.split('.').length !== 3) return refuse('token_malformed');
  try {
    return { header: decodeProtectedHeader(token), payload: decodeJwt(token) };
  } catch {
    return refuse('token_malformed');
  }
}

/** The key source for this token: the issuer's own keys, or an allowlisted `jku`. */
function keysFor(
  issuer: TrustedIssuer,
  header: ProtectedHeaderParameters,
  remote: VerifierOptions['remoteJwks'],
  local: Map<TrustedIssuer, JWTVerifyGetKey>,
): JWTVerifyGetKey {
  if (header.jku !== undefined) {
    // Never fetch a URL a token names unless the configuration lists it (CDS Hooks 2.0 §"Trusting CDS
    // Clients": keep an allowlist of jku URLs).
    let jku: string | undefined;
    try {
      jku = new URL(String(header.jku)).href;
    } catch {
      jku = undefined;
    }
    if (jku === undefined || !issuer.jkuAllowlist.includes(jku)) return refuse('jku_not_allowed');
    return remote(jku);
  }
  const own = local.get(issuer);
  if (own) return own;
  if (issuer.jwksUrl) return remote(issuer.jwksUrl);
  return refuse('jku_required');
}

/** Maps jose's verification errors to a reason; anything unexpected is rethrown. */
function reasonOf(error: unknown): AuthFailureReason {
  if (error instanceof errors.JWTExpired) {
    return error.claim === 'iat' ? 'iat_too_old' : 'jwt_expired';
  }
  if (error instanceof errors.JWTClaimValidationFailed) {
    const missing = error.reason === 'missing';
    switch (error.claim) {
      case 'aud':
        return 'aud_mismatch';
      case 'iat':
        return missing ? 'iat_missing' : 'iat_in_future';
      case 'exp':
        return missing ? 'exp_missing' : 'jwt_expired';
      case 'nbf':
        return 'nbf_in_future';
      case 'jti':
        return 'jti_missing';
      default:
        return 'token_malformed';
    }
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'signature_invalid';
  if (error instanceof errors.JWKSNoMatchingKey) return 'key_unknown';
  if (error instanceof errors.JWKSMultipleMatchingKeys) return 'key_ambiguous';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'alg_not_allowed';
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid) return 'token_malformed';
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
  const local = new Map<TrustedIssuer, JWTVerifyGetKey>();
  for (const issuer of options.issuers) if (issuer.jwks) local.set(issuer, localJwks(issuer.jwks));

  /** Signature, then the time and audience claims; jose does most of it, this adds the CDS Hooks bounds. */
  async function verifiedClaims(
    token: string,
    keys: JWTVerifyGetKey,
    issuer: TrustedIssuer,
    audience: string,
  ): Promise<JWTPayload> {
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(token, keys, {
        algorithms: [...ALLOWED_ALGORITHMS],
        issuer: issuer.iss,
        audience,
        currentDate: options.now(),
        clockTolerance: options.clockSkewS,
        // With maxTokenAge jose also refuses an `iat` in the future (beyond the tolerance).
        maxTokenAge: options.maxLifetimeS,
        requiredClaims: ['exp', 'iat', 'jti'],
      }));
    } catch (error) {
      const reason = reasonOf(error);
      // The cause of a key fetch failure helps the operator; claim failures are said by the reason.
      return refuse(reason, reason === 'jwks_unavailable' ? describe(error) : undefined);
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
    const keys = keysFor(issuer, header, options.remoteJwks, local);

    const claims = await verifiedClaims(token, keys, issuer, audience);
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

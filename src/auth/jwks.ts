/**
 * Where the keys that verify client JWTs come from: a trusted issuer's own JWK Set (inline, from a file,
 * or from its JWKS URL) or, when the token names one, an allowlisted `jku` URL. Remote sets are fetched
 * with jose's `createRemoteJWKSet`: a timeout, a cache with a maximum age, and a refetch on an unknown
 * `kid` only after a cooldown, so a flood of tokens with made-up `kid`s cannot hammer the issuer. Sets held
 * in memory are imported once by `localKeySet` (`jws.ts`).
 */
// From jose's subpaths, not its index: the index loads every module of the package (JWE, JWT signing,
// key generation: about forty files the service never runs) on the start-up path.
import type { FetchImplementation, JWTVerifyGetKey } from 'jose';
import * as errors from 'jose/errors';
import { createRemoteJWKSet, customFetch } from 'jose/jwks/remote';

/**
 * The accepted JWS algorithms: asymmetric only (CDS Hooks 2.0 §"Trusting CDS Clients": never `none`, and
 * a symmetric key cannot be shared safely with every service). ES384 and RS384 are the spec's
 * recommendations; the others of the same families cost nothing to allow.
 */
export const ALLOWED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
] as const;

/** Largest JWK Set read from the network: a few keys weigh a few kB. */
export const JWKS_MAX_BYTES = 256 * 1024;

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const CURVES = ['P-256', 'P-384', 'P-521'];

/**
 * Checks that a configured JWK Set holds only public RSA or EC signature keys, each with a unique `kid`
 * (CDS Hooks requires `kid` in the JWT header, so a key without one could never be chosen).
 * @returns the first problem found, or undefined
 */
export function checkPublicJwks(jwks: unknown): string | undefined {
  const keys = (jwks as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys) || keys.length === 0) return 'a JWK Set needs a non-empty "keys" array';
  const kids = new Set<string>();
  for (const [index, key] of keys.entries()) {
    const where = `keys[${index}]`;
    if (!key || typeof key !== 'object') return `${where} is not an object`;
    const jwk = key as Record<string, unknown>;
    if (jwk.kty !== 'RSA' && jwk.kty !== 'EC')
      return `${where}: kty must be RSA or EC (asymmetric keys only)`;
    const secret = PRIVATE_MEMBERS.find((member) => member in jwk);
    if (secret)
      return `${where} holds private or secret key material ("${secret}"); publish public keys only`;
    if (typeof jwk.kid !== 'string' || jwk.kid === '') return `${where} has no "kid"`;
    if (kids.has(jwk.kid)) return `${where}: kid "${jwk.kid}" is not unique`;
    kids.add(jwk.kid);
    if (jwk.alg !== undefined && !(ALLOWED_ALGORITHMS as readonly unknown[]).includes(jwk.alg)) {
      return `${where}: alg ${JSON.stringify(jwk.alg)} is not one of ${ALLOWED_ALGORITHMS.join(', ')}`;
    }
    if (jwk.use !== undefined && jwk.use !== 'sig') return `${where}: use must be "sig"`;
    const members = jwk.kty === 'RSA' ? ['n', 'e'] : ['crv', 'x', 'y'];
    const missing = members.find((member) => typeof jwk[member] !== 'string');
    if (missing) return `${where}: "${missing}" is missing`;
    if (jwk.kty === 'EC' && !CURVES.includes(jwk.crv as string))
      return `${where}: crv must be one of ${CURVES}`;
  }
  return undefined;
}

/** Reads a response body up to `maxBytes`, then gives it back as a fresh Response for jose to parse. */
async function capped(response: Response, maxBytes: number): Promise<Response> {
  if (!response.body) return response;
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) throw new Error(`JWK Set larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return new Response(Buffer.concat(chunks), { status: response.status, headers: response.headers });
}

export interface RemoteJwksOptions {
  fetch: typeof globalThis.fetch;
  timeoutMs: number;
  cooldownMs: number;
  maxAgeMs: number;
}

/**
 * Remote JWK Sets by URL: one resolver (with its own cache) per URL, created on first use. Only URLs
 * from the trusted issuers file ever get here, so the map is bounded by the configuration.
 */
export function createRemoteJwksCache(options: RemoteJwksOptions): (url: string) => JWTVerifyGetKey {
  const resolvers = new Map<string, JWTVerifyGetKey>();
  const fetchImpl: FetchImplementation = async (url, init) => {
    try {
      return await capped(await options.fetch(url, init), JWKS_MAX_BYTES);
    } catch (error) {
      // jose turns a TimeoutError into JWKSTimeout itself; anything else becomes a JOSEError so that
      // the verifier can tell "no keys to be had" from a bug.
      if ((error as Error).name === 'TimeoutError') throw error;
      throw new errors.JOSEError('The JWK Set could not be fetched', { cause: error });
    }
  };
  return (url) => {
    let resolver = resolvers.get(url);
    if (!resolver) {
      resolver = createRemoteJWKSet(new URL(url), {
        timeoutDuration: options.timeoutMs,
        cooldownDuration: options.cooldownMs,
        cacheMaxAge: options.maxAgeMs,
        [customFetch]: fetchImpl,
      });
      resolvers.set(url, resolver);
    }
    return resolver;
  };
}

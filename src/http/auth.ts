/**
 * Client authentication: every request to a CDS route (discovery, service calls, feedback, any route
 * added to the CDS scope, and unknown paths under `/cds-services`) must carry a JWT from a trusted CDS
 * client. The check is an `onRequest` hook registered inside the encapsulated plugin scope that owns the
 * `/cds-services` routes (`routes.ts`), so it covers exactly that scope (Fastify
 * docs/Reference/Encapsulation.md); it runs before the body is read, so an unauthenticated caller never
 * gets a body parsed. CORS preflights (`OPTIONS`) pass: browsers send them without credentials.
 *
 * A refusal is a 401 with `WWW-Authenticate: Bearer` and the same OperationOutcome whatever the cause
 * (CDS Hooks best practice: no detail to the client); the cause goes to one warn log line as a coded
 * `reason`. The token itself is never logged.
 */
import type { FastifyInstance, onRequestAsyncHookHandler } from 'fastify';
import type { Config } from '../config.js';
import { CdsError } from '../errors.js';
import type { TrustedIssuer } from '../auth/issuers.js';
import { createRemoteJwksCache } from '../auth/jwks.js';
import type { ReplayCache } from '../auth/replay.js';
import { type CdsClient, createVerifier } from '../auth/verify.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The authenticated CDS client. null when authentication is disabled (CDS_AUTH_DISABLED) and on
     * routes outside the CDS scope.
     */
    cdsClient: CdsClient | null;
  }
}

/** The path prefix of every CDS Hooks endpoint (CDS Hooks 2.0 §"Discovery", §"Calling a CDS Service"). */
export const CDS_PREFIX = '/cds-services';

export type AuthConfig = Pick<
  Config,
  | 'authDisabled'
  | 'publicUrl'
  | 'jwtClockSkewS'
  | 'jwtMaxLifetimeS'
  | 'jwtMaxBytes'
  | 'jwksTimeoutMs'
  | 'jwksCooldownMs'
  | 'jwksMaxAgeMs'
>;

export interface AuthDeps {
  /** The trusted CDS clients (auth/issuers.ts), read by app.ts before anything is opened. */
  issuers: readonly TrustedIssuer[];
  replayCache: ReplayCache;
  fetch: typeof globalThis.fetch;
  now: () => Date;
}

/** What `main.ts` logs, at error level, when it starts a server with authentication disabled. */
export const AUTH_DISABLED_WARNING =
  'CLIENT AUTHENTICATION IS DISABLED (CDS_AUTH_DISABLED=true): anyone who can reach this server can call ' +
  'its CDS services. For local development only; never expose this server.';

/**
 * Declares `request.cdsClient` (null) on the app and builds the authentication hook, for the CDS scope
 * only (`routes.ts` registers it there). loadConfig has checked that the public URL and the trusted
 * issuers file are set when authentication is on; the issuers come read and checked in `deps`.
 * @returns the hook, or null when authentication is disabled
 */
export function clientAuthentication(
  app: FastifyInstance,
  config: AuthConfig,
  deps: AuthDeps,
): onRequestAsyncHookHandler | null {
  app.decorateRequest('cdsClient', null);
  if (config.authDisabled) return null;
  // Without a public URL (which loadConfig does not let through) no audience would match: fails closed.
  const publicUrl = (config.publicUrl ?? '').replace(/\/+$/, '');
  const { issuers } = deps;
  const verify = createVerifier({
    issuers,
    remoteJwks: createRemoteJwksCache({
      fetch: deps.fetch,
      timeoutMs: config.jwksTimeoutMs,
      cooldownMs: config.jwksCooldownMs,
      maxAgeMs: config.jwksMaxAgeMs,
    }),
    replayCache: deps.replayCache,
    now: deps.now,
    maxBytes: config.jwtMaxBytes,
    clockSkewS: config.jwtClockSkewS,
    maxLifetimeS: config.jwtMaxLifetimeS,
  });
  app.log.info({ issuers: issuers.map((i) => i.iss), publicUrl }, 'client authentication on');

  return async (request, reply) => {
    if (request.method === 'OPTIONS') return;
    // CDS Hooks 2.0 §"Trusting CDS Clients": aud is the exact URL of the endpoint called.
    const audience = publicUrl + request.url.split('?')[0];
    const result = await verify(request.headers.authorization, audience);
    if (result.ok) {
      request.cdsClient = result.client;
      const bindings = { iss: result.client.iss, tenant: result.client.tenant, jti: result.jti };
      request.log = request.log.child(bindings);
      reply.log = request.log;
      return;
    }
    const { ok: _ok, ...fields } = result;
    if (result.reason === 'replay_cache_unavailable')
      request.log.error(fields, 'client authentication failed');
    else request.log.warn(fields, 'client authentication refused');
    reply.header('www-authenticate', 'Bearer');
    throw new CdsError('CDS_ERR_UNAUTHORIZED');
  };
}

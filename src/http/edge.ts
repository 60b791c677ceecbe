/**
 * The hardened HTTP edge: TLS when a key and certificate are configured, security headers for a JSON API
 * (@fastify/helmet), per-client rate limiting (@fastify/rate-limit) and socket timeouts. The body size
 * limit and the connection and request timeouts are Fastify options set in `app.ts`.
 */
import { readFileSync } from 'node:fs';
import helmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { CdsError } from '../errors.js';

/** A stalled client gets this long to send its request headers (Node's default is a minute). */
export const HEADERS_TIMEOUT_MS = 10_000;

/**
 * Idle keep-alive connections are closed after this. Fastify's own default, kept on purpose: it must be
 * longer than the idle timeout of a load balancer in front (often 60 s), or the balancer may reuse a
 * connection the server is closing.
 */
export const KEEP_ALIVE_TIMEOUT_MS = 72_000;

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new Error(`Cannot read the TLS ${what} file ${path}: ${(error as Error).message}`);
  }
}

/**
 * The `https` option of Fastify: the PEM key and certificate when both are configured, else null
 * (plain HTTP, for loopback or behind a TLS-terminating proxy).
 * @throws Error naming a file that cannot be read
 */
export function httpsOptions(config: Pick<Config, 'tlsKeyFile' | 'tlsCertFile'>): {
  key: Buffer;
  cert: Buffer;
} | null {
  if (!config.tlsKeyFile || !config.tlsCertFile) return null;
  return { key: readPem(config.tlsKeyFile, 'key'), cert: readPem(config.tlsCertFile, 'certificate') };
}

/** The rate-limit bucket of a request: the authenticated client when known, else the IP address. */
export function rateLimitKey(request: FastifyRequest): string {
  return request.cdsClient ? `iss:${request.cdsClient.iss}` : `ip:${request.ip}`;
}

/**
 * Registers security headers and rate limiting on the root, so that they cover the CDS scope and its
 * authentication refusals too. Call it before the routes: rate limiting attaches a hook to each route as
 * it is added, and route hooks run after the hooks of the route's scope (authentication among them), so
 * the limit sees the authenticated client.
 */
export async function registerEdge(
  app: FastifyInstance,
  config: Pick<Config, 'rateLimitMax' | 'rateLimitWindowMs'>,
): Promise<void> {
  app.server.headersTimeout = HEADERS_TIMEOUT_MS;
  await app.register(helmet, {
    // Only JSON is served: nothing may be loaded, framed or run from a response.
    contentSecurityPolicy: {
      useDefaults: false,
      directives: { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] },
    },
    frameguard: { action: 'deny' },
  });
  await app.register(rateLimit, {
    max: config.rateLimitMax,
    timeWindow: config.rateLimitWindowMs,
    keyGenerator: rateLimitKey,
    errorResponseBuilder: (_request, context) =>
      new CdsError('CDS_ERR_RATE_LIMITED', { retryAfterS: Math.ceil(context.ttl / 1000) }),
  });
}

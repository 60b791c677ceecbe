/**
 * The hardened HTTP edge: TLS when a key and certificate are configured, security headers for a JSON API
 * (@fastify/helmet), per-client rate limiting (@fastify/rate-limit) and socket timeouts. The body size
 * limit and the connection and request timeouts are Fastify options set in `app.ts`.
 */
import { readFileSync } from 'node:fs';
import { fastifyHelmet, type FastifyHelmetOptions } from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
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

/** The security headers' settings: only JSON is served, nothing may be loaded, framed or run from it. */
export const HELMET_OPTIONS: FastifyHelmetOptions = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { 'default-src': ["'none'"], 'frame-ancestors': ["'none'"] },
  },
  frameguard: { action: 'deny' },
};

/** What helmet does to a response: set a header, or remove one (`X-Powered-By`). */
export type HeaderOperation = readonly [name: string, value: string | null];

/**
 * The header operations @fastify/helmet performs on every response with `options`, in its order,
 * recorded once by running the plugin's own code against a stand-in instance and response.
 * @fastify/helmet builds a new helmet middleware chain for every request (its options parsed again, a
 * dozen closures), about 40 µs a call, although with these settings (no CSP nonce, no per-route
 * settings, no directive computed from the request) the result never changes: replaying the recorded
 * operations gives the same headers. A setting whose output would depend on the request cannot be
 * recorded: refused here, at start.
 * @throws Error when the plugin does not set its headers synchronously from one request-independent hook
 */
export function recordHelmetHeaders(options: FastifyHelmetOptions): HeaderOperation[] {
  if (options.enableCSPNonces) throw new Error('CSP nonces differ per request: they cannot be recorded');
  const hooks: ((request: unknown, reply: unknown, done: () => void) => unknown)[] = [];
  const standIn = {
    hasReplyDecorator: () => true,
    decorateReply: () => undefined,
    addHook: (name: string, hook: (typeof hooks)[number]) => {
      if (name === 'onRequest') hooks.push(hook);
    },
  };
  void fastifyHelmet(standIn as never, options);
  const operations: HeaderOperation[] = [];
  const raw = {
    setHeader: (name: string, value: unknown) => {
      if (typeof value !== 'string') throw new Error(`helmet set ${name} to a non-string`);
      operations.push([name, value]);
    },
    removeHeader: (name: string) => {
      operations.push([name, null]);
    },
  };
  const request = { raw: {}, routeOptions: { config: {} } };
  // Request-independent: the hook sees no header, URL or method, and must act before it returns.
  const reply = { raw };
  for (const hook of hooks) void hook(request, reply, () => undefined);
  if (!operations.some(([name]) => name.toLowerCase() === 'content-security-policy')) {
    throw new Error('@fastify/helmet set no header synchronously: cannot record its output');
  }
  return operations;
}

/** An `onRequest` hook that applies recorded header operations to the raw response, as helmet did. */
export function applyHeaders(operations: readonly HeaderOperation[]) {
  return (_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    const { raw } = reply;
    for (const [name, value] of operations) {
      if (value === null) raw.removeHeader(name);
      else raw.setHeader(name, value);
    }
    done();
  };
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
  // At the place @fastify/helmet registered its hooks (on the root, after CORS and load shedding), so
  // the same answers carry them: test/http/edge.test.ts compares every route's with the plugin's.
  app.addHook('onRequest', applyHeaders(recordHelmetHeaders(HELMET_OPTIONS)));
  await app.register(rateLimit, {
    max: config.rateLimitMax,
    timeWindow: config.rateLimitWindowMs,
    keyGenerator: rateLimitKey,
    errorResponseBuilder: (_request, context) =>
      new CdsError('CDS_ERR_RATE_LIMITED', { retryAfterS: Math.ceil(context.ttl / 1000) }),
  });
}

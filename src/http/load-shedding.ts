/**
 * Bounded work in flight (issue 16 §5): a request beyond `maxRequestsInFlight` requests, or whose body
 * would take the bytes in flight beyond `maxBytesInFlight`, is answered 503 CDS_ERR_OVERLOADED with
 * `Retry-After` before its body is read. A parsed JSON body costs many times its size in heap for as
 * long as its call runs (README, "Memory"), so bounding the bytes of the bodies being handled bounds
 * the heap. A body is counted from its Content-Length when the request arrives; a chunked body (no
 * Content-Length) as its bytes arrive, and refused as soon as they overflow the budget. Both are counted
 * until the answer is sent or the connection closes.
 *
 * The health and metrics routes are not counted: a probe must see a busy instance as alive. Requests
 * arriving while the app closes get 503 CDS_ERR_SHUTTING_DOWN (an OperationOutcome, not Fastify's own
 * body).
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CdsError } from '../errors.js';

export interface LoadLimits {
  maxRequestsInFlight: number;
  maxBytesInFlight: number;
}

/** What a client is told to wait: the calls in flight are answered within a second or two. */
export const OVERLOAD_RETRY_AFTER_S = 2;

const EXEMPT = new Set(['/health/live', '/health/ready', '/metrics']);

export interface LoadGauge {
  /** Requests and body bytes being handled now, and requests refused so far. */
  snapshot(): { requests: number; bytes: number; refused: number };
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Body bytes this request holds in the in-flight budget. */
    [HELD]?: { bytes: number };
  }
}
const HELD = Symbol('heldInFlight');

export function registerLoadShedding(app: FastifyInstance, limits: LoadLimits): LoadGauge {
  let requests = 0;
  let bytes = 0;
  let refused = 0;
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });

  const overloaded = (reply: FastifyReply, limit: string) => {
    refused += 1;
    // The body is not parsed: Node reads what the client still sends and drops it (no heap is held),
    // so that the client, still writing, reads this answer rather than a reset connection.
    void reply.header('retry-after', String(OVERLOAD_RETRY_AFTER_S));
    return new CdsError('CDS_ERR_OVERLOADED', { limit, retryAfterS: OVERLOAD_RETRY_AFTER_S });
  };

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    if (closing) {
      void reply.header('connection', 'close');
      throw new CdsError('CDS_ERR_SHUTTING_DOWN');
    }
    if (EXEMPT.has(request.url.split('?')[0]!)) return;
    if (requests >= limits.maxRequestsInFlight) {
      throw overloaded(reply, `${limits.maxRequestsInFlight} requests in flight`);
    }
    const declared = Number(request.headers['content-length'] ?? 0);
    const length = Number.isSafeInteger(declared) && declared > 0 ? declared : 0;
    if (length > 0 && bytes + length > limits.maxBytesInFlight) {
      throw overloaded(reply, `${limits.maxBytesInFlight} body bytes in flight`);
    }
    const held = { bytes: length };
    requests += 1;
    bytes += length;
    request[HELD] = held;
    reply.raw.once('close', () => {
      requests -= 1;
      bytes -= held.bytes;
      held.bytes = 0;
    });
  });

  // A body without Content-Length (chunked) is counted as it arrives.
  app.addHook('preParsing', async (request, reply, payload) => {
    const held = request[HELD];
    if (!held || request.headers['content-length'] !== undefined) return payload;
    const counter = new Transform({
      transform(chunk: Buffer, _encoding, done: TransformCallback) {
        if (bytes + chunk.length > limits.maxBytesInFlight) {
          done(overloaded(reply, `${limits.maxBytesInFlight} body bytes in flight`));
          return;
        }
        bytes += chunk.length;
        held.bytes += chunk.length;
        done(null, chunk);
      },
    });
    return payload.pipe(counter);
  });

  return { snapshot: () => ({ requests, bytes, refused }) };
}

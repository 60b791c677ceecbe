/**
 * pino options for the service. What is logged per request: method, route (URL path without query),
 * status, request id, response time; the service call adds service id, hookInstance, card count and
 * stage timings. Never a header value, a body, a prefetch, a context or a token: request serializers
 * keep only the listed fields, and redaction removes the secrets should a log call pass them anyway.
 */
import type { DestinationStream, LoggerOptions } from 'pino';
import type { Config } from './config.js';

/** Paths removed from every log line, wherever a careless call might put them. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'authorization',
  'fhirAuthorization',
  '*.fhirAuthorization',
  'access_token',
  '*.access_token',
  'prefetch',
  '*.prefetch',
  'context',
  '*.context',
  'body',
  '*.body',
];

interface LoggedRequest {
  method: string;
  url: string;
  id: string;
  ip?: string;
}

/** pino options (with the destination, when given): what `app.ts` hands to Fastify as its logger. */
export function loggerOptions(
  config: Pick<Config, 'logLevel'>,
  stream?: DestinationStream,
): LoggerOptions & { stream?: DestinationStream } {
  const options: LoggerOptions & { stream?: DestinationStream } = {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      req: (req: LoggedRequest) => ({ method: req.method, path: req.url.split('?')[0], id: req.id }),
      res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
    },
  };
  if (stream) options.stream = stream;
  return options;
}

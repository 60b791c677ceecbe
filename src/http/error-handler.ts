/**
 * The one place where errors become HTTP answers. A CdsError keeps its catalogue status; Fastify's own
 * client errors (bad JSON, body too large, wrong media type, schema validation) are mapped to catalogue
 * codes; anything else is a 500 whose body names only the request id, logged once with its stack.
 * Every error body is an OperationOutcome.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CdsError, toOperationOutcome } from '../errors.js';
import { describeError } from '../request/validate.js';

function fromFastify(error: FastifyError, request: FastifyRequest, bodyLimit: number): CdsError | undefined {
  if (error.validation) {
    return new CdsError('CDS_ERR_REQUEST_INVALID', {
      reason: describeError(error.validation as never, 'request'),
    });
  }
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new CdsError('CDS_ERR_REQUEST_MALFORMED_JSON');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new CdsError('CDS_ERR_REQUEST_EMPTY_BODY');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new CdsError('CDS_ERR_REQUEST_TOO_LARGE', { limitBytes: bodyLimit });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new CdsError('CDS_ERR_UNSUPPORTED_MEDIA_TYPE', {
        contentType: JSON.stringify(String(request.headers['content-type'] ?? '').slice(0, 80)),
      });
    default:
      if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
        return new CdsError('CDS_ERR_CLIENT_ERROR', { reason: error.message });
      }
      return undefined;
  }
}

/**
 * Registers the error and not-found handlers on an app.
 * @param storeRetryAfterS the Retry-After of a 503 for an unavailable audit store
 */
export function registerErrorHandlers(app: FastifyInstance, bodyLimit: number, storeRetryAfterS = 5): void {
  app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    let cdsError = error instanceof CdsError ? error : fromFastify(error, request, bodyLimit);
    if (!cdsError) {
      request.log.error({ err: error }, 'unexpected error');
      cdsError = new CdsError('CDS_ERR_INTERNAL', { requestId: request.id });
    } else if (cdsError.status >= 500) {
      request.log.error({ code: cdsError.code }, 'server error');
    } else {
      request.log.info({ code: cdsError.code, status: cdsError.status }, 'request refused');
    }
    if (cdsError.code === 'CDS_ERR_STORE_UNAVAILABLE') reply.header('retry-after', String(storeRetryAfterS));
    return reply.code(cdsError.status).type('application/fhir+json').send(toOperationOutcome(cdsError));
  });
  app.setNotFoundHandler(notFound);
}

/** The answer to a path no route serves (the CDS scope answers its unknown paths with it too). */
export function notFound(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const error = new CdsError('CDS_ERR_ROUTE_NOT_FOUND', {
    method: request.method,
    url: request.url.split('?')[0]!.slice(0, 200),
  });
  return reply.code(404).type('application/fhir+json').send(toOperationOutcome(error));
}

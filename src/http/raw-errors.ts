/**
 * The error answers written below Fastify's request handling, so that they too are OperationOutcomes
 * (issue 16 §9): what Node's HTTP parser refuses (a Content-Length shorter than the body, whose rest is
 * then read as a malformed next request; Content-Length with Transfer-Encoding; two Content-Length
 * headers; headers too large; a request not received in time), written straight to the socket, and what
 * Fastify's router refuses before any route runs (a path segment over `maxParamLength`, an undecodable
 * URL).
 */
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { CdsError, toOperationOutcome } from '../errors.js';

/** Fastify's `maxParamLength`: the longest path parameter (a service id is at most 64 characters). */
export const MAX_PARAM_LENGTH = 100;

/** The error of a request Node's HTTP parser refused. */
function parserError(error: NodeJS.ErrnoException, maxHeaderBytes: number): CdsError {
  if (error.code === 'HPE_HEADER_OVERFLOW') {
    return new CdsError('CDS_ERR_HEADERS_TOO_LARGE', { limitBytes: maxHeaderBytes });
  }
  if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') return new CdsError('CDS_ERR_REQUEST_TIMEOUT');
  // The parser's code (HPE_UNEXPECTED_CONTENT_LENGTH, HPE_INVALID_METHOD…) names the problem; nothing
  // of the request itself is echoed.
  const reason = /^[A-Z_]{1,64}$/.test(error.code ?? '') ? error.code! : 'unparseable';
  return new CdsError('CDS_ERR_HTTP_MALFORMED', { reason });
}

export interface ClientErrorLog {
  info(fields: Record<string, unknown>, message: string): void;
}

/**
 * The server's `clientError` handler (Fastify's `clientErrorHandler` option): an OperationOutcome with
 * the status, written to the socket, which is then closed (what follows on it cannot be trusted).
 */
export function clientErrorHandler(log: () => ClientErrorLog, maxHeaderBytes: number) {
  return (error: NodeJS.ErrnoException, socket: Socket): void => {
    // A reset connection, or one already gone: there is nobody to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const cdsError = parserError(error, maxHeaderBytes);
    log().info({ code: cdsError.code, status: cdsError.status, parser: error.code }, 'request refused');
    if (socket.writable) {
      const body = JSON.stringify(toOperationOutcome(cdsError));
      socket.write(
        `HTTP/1.1 ${cdsError.status} ${STATUS_CODES[cdsError.status]}\r\n` +
          'Content-Type: application/fhir+json; charset=utf-8\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\n` +
          'X-Content-Type-Options: nosniff\r\n' +
          'Connection: close\r\n\r\n' +
          body,
      );
    }
    socket.destroySoon();
  };
}

/** Fastify's `frameworkErrors` option: the router's refusals, as catalogue errors. */
export function frameworkErrors(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const cdsError =
    error.code === 'FST_ERR_MAX_PARAM_LENGTH'
      ? new CdsError('CDS_ERR_URL_TOO_LONG', { limit: MAX_PARAM_LENGTH })
      : error.code === 'FST_ERR_BAD_URL'
        ? new CdsError('CDS_ERR_CLIENT_ERROR', { reason: 'The URL is not validly percent-encoded' })
        : new CdsError('CDS_ERR_INTERNAL', { requestId: request.id });
  if (cdsError.status >= 500) request.log.error({ err: error }, 'unexpected error');
  else request.log.info({ code: cdsError.code, status: cdsError.status }, 'request refused');
  // The router refused before the edge's hooks ran: its essential header is set here.
  void reply
    .code(cdsError.status)
    .header('x-content-type-options', 'nosniff')
    .type('application/fhir+json')
    .send(toOperationOutcome(cdsError));
}

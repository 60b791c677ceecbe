/**
 * The one catalogue of error codes. Stages throw {@link CdsError}; only `http/error-handler.ts` turns
 * errors into an HTTP status and an OperationOutcome body. Codes are stable: clients and log searches
 * rely on them, and `test/errors.test.ts` pins them (and checks each one is documented in openapi.yaml).
 */
import type { OperationOutcome, OperationOutcomeIssue } from 'fhir/r4.js';
import { SYSTEM } from './codes.js';

type IssueType = OperationOutcomeIssue['code'];

interface CatalogueEntry {
  status: number;
  /** FHIR issue type (hl7.org/fhir/R4/valueset-issue-type.html). */
  issue: IssueType;
  /** Message template; `{name}` placeholders are filled from the error's params. */
  message: string;
}

export const ERRORS = {
  CDS_ERR_REQUEST_MALFORMED_JSON: {
    status: 400,
    issue: 'structure',
    message: 'The request body is not valid JSON (or holds a forbidden __proto__ or constructor key)',
  },
  CDS_ERR_REQUEST_EMPTY_BODY: {
    status: 400,
    issue: 'required',
    message: 'The request body is empty; a JSON object is required',
  },
  CDS_ERR_REQUEST_INVALID: {
    status: 400,
    issue: 'invalid',
    message: 'The request does not conform to CDS Hooks 2.0: {reason}',
  },
  CDS_ERR_REQUEST_TOO_LARGE: {
    status: 413,
    issue: 'too-long',
    message: 'The request body is larger than the limit of {limitBytes} bytes',
  },
  CDS_ERR_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    issue: 'not-supported',
    message: 'Unsupported Content-Type {contentType}; send application/json',
  },
  CDS_ERR_HOOK_UNKNOWN: {
    status: 400,
    issue: 'not-supported',
    message: 'Unknown hook "{hook}"',
  },
  CDS_ERR_HOOK_MISMATCH: {
    status: 400,
    issue: 'invalid',
    message: 'Service "{serviceId}" answers the "{expected}" hook, not "{hook}"',
  },
  CDS_ERR_CONTEXT_INVALID: {
    status: 400,
    issue: 'invalid',
    message: 'The context does not match the "{hook}" hook: {reason}',
  },
  CDS_ERR_PREFETCH_INVALID: {
    status: 400,
    issue: 'invalid',
    message: 'Prefetch key "{key}" holds {reason}',
  },
  CDS_ERR_PREFETCH_MALFORMED: {
    status: 400,
    issue: 'structure',
    message: 'Prefetch key "{key}" is not well-formed FHIR R4: {path} {problem}',
  },
  CDS_ERR_SERVICE_NOT_FOUND: {
    status: 404,
    issue: 'not-found',
    message: 'No CDS service with id "{serviceId}"',
  },
  CDS_ERR_ROUTE_NOT_FOUND: {
    status: 404,
    issue: 'not-found',
    message: 'No route for {method} {url}',
  },
  CDS_ERR_UNAUTHORIZED: {
    status: 401,
    issue: 'login',
    // The same text for every cause (CDS Hooks best practice: no detail); the cause is in the log.
    message: 'Authentication required: a valid CDS client JWT was not presented',
  },
  CDS_ERR_RATE_LIMITED: {
    status: 429,
    issue: 'throttled',
    message: 'Too many requests from this client; retry in {retryAfterS} s',
  },
  CDS_ERR_PREFETCH_UNAVAILABLE: {
    status: 412,
    issue: 'not-found',
    message: 'Required data could not be obtained for prefetch key(s): {details}',
  },
  CDS_ERR_FEEDBACK_UNKNOWN_CARD: {
    status: 404,
    issue: 'not-found',
    message: 'feedback[{index}]: service "{serviceId}" issued no card with uuid "{card}"',
  },
  CDS_ERR_FEEDBACK_INVALID: {
    status: 422,
    issue: 'business-rule',
    message: 'feedback[{index}]: {reason}',
  },
  CDS_ERR_ANALYTICS_DISABLED: {
    status: 404,
    issue: 'not-found',
    message: 'Analytics are disabled: no analytics credential is configured',
  },
  CDS_ERR_ANALYTICS_UNAUTHORIZED: {
    status: 401,
    issue: 'login',
    message: 'The analytics credential is missing or wrong',
  },
  CDS_ERR_OPS_UNAUTHORIZED: {
    status: 401,
    issue: 'login',
    message: 'The operations credential (metrics or admin token) is missing or wrong',
  },
  CDS_ERR_STORE_UNAVAILABLE: {
    status: 503,
    issue: 'transient',
    message: 'The audit store is unavailable; nothing was stored, retry later',
  },
  CDS_ERR_HTTP_MALFORMED: {
    status: 400,
    issue: 'structure',
    message: 'The HTTP request is malformed ({reason}); it was not read and the connection is closed',
  },
  CDS_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    issue: 'too-long',
    message: 'The request line and headers are larger than {limitBytes} bytes; the connection is closed',
  },
  CDS_ERR_URL_TOO_LONG: {
    status: 414,
    issue: 'too-long',
    message: 'A path segment of the URL is longer than {limit} characters',
  },
  CDS_ERR_REQUEST_TIMEOUT: {
    status: 408,
    issue: 'timeout',
    message: 'The request was not received in time; the connection is closed',
  },
  CDS_ERR_OVERLOADED: {
    status: 503,
    issue: 'transient',
    message: 'The server is at its limit of {limit}; retry in {retryAfterS} s',
  },
  CDS_ERR_SHUTTING_DOWN: {
    status: 503,
    issue: 'transient',
    message: 'This instance is shutting down; retry (another instance will answer)',
  },
  CDS_ERR_CLIENT_ERROR: {
    status: 400,
    issue: 'invalid',
    message: '{reason}',
  },
  CDS_ERR_INTERNAL: {
    status: 500,
    issue: 'exception',
    message: 'Internal error; it has been logged with request id {requestId}',
  },
  CDS_ERR_DEFINITION_INVALID: {
    status: 500,
    issue: 'invalid',
    message: '{file}{pointer}: {reason}',
  },
  CDS_ERR_MODEL_INVALID: {
    status: 500,
    issue: 'invalid',
    message: 'model {model}: {reason}',
  },
} as const satisfies Record<string, CatalogueEntry>;

export type ErrorCode = keyof typeof ERRORS;

type Params = Record<string, string | number>;

function fill(template: string, params: Params): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) =>
    name in params ? String(params[name]) : `{${name}}`,
  );
}

/** An error with a catalogue code. `expression` names the offending element (FHIRPath-like) when known. */
export class CdsError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly params: Params;
  readonly expression: string[] | undefined;

  constructor(
    code: ErrorCode,
    params: Params = {},
    options: { expression?: string[]; cause?: unknown } = {},
  ) {
    super(fill(ERRORS[code].message, params), options.cause === undefined ? {} : { cause: options.cause });
    this.name = 'CdsError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.params = params;
    this.expression = options.expression;
  }
}

/**
 * Builds the OperationOutcome body of an error (CDS Hooks 3.0 ballot: non-2xx responses SHOULD carry
 * one). The catalogue code travels in `details.coding` so clients can branch on it.
 */
export function toOperationOutcome(error: CdsError): OperationOutcome {
  const issue: OperationOutcomeIssue = {
    severity: error.status >= 500 ? 'fatal' : 'error',
    code: ERRORS[error.code].issue,
    details: { coding: [{ system: SYSTEM.errorCode, code: error.code }], text: error.message },
    diagnostics: error.message,
  };
  if (error.expression) issue.expression = error.expression;
  return { resourceType: 'OperationOutcome', issue: [issue] };
}

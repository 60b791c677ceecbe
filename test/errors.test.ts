import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';
import { SYSTEM } from '../src/codes.js';
import { CdsError, ERRORS, type ErrorCode, toOperationOutcome } from '../src/errors.js';

/**
 * The catalogue as clients see it. Changing a code's status or FHIR issue type breaks clients and log
 * searches: it must be a visible decision, made here as well as in src/errors.ts.
 */
const PINNED: Record<ErrorCode, [status: number, issue: string]> = {
  CDS_ERR_REQUEST_MALFORMED_JSON: [400, 'structure'],
  CDS_ERR_REQUEST_EMPTY_BODY: [400, 'required'],
  CDS_ERR_REQUEST_INVALID: [400, 'invalid'],
  CDS_ERR_REQUEST_TOO_LARGE: [413, 'too-long'],
  CDS_ERR_UNSUPPORTED_MEDIA_TYPE: [415, 'not-supported'],
  CDS_ERR_HOOK_UNKNOWN: [400, 'not-supported'],
  CDS_ERR_HOOK_MISMATCH: [400, 'invalid'],
  CDS_ERR_CONTEXT_INVALID: [400, 'invalid'],
  CDS_ERR_PREFETCH_INVALID: [400, 'invalid'],
  CDS_ERR_PREFETCH_MALFORMED: [400, 'structure'],
  CDS_ERR_SERVICE_NOT_FOUND: [404, 'not-found'],
  CDS_ERR_ROUTE_NOT_FOUND: [404, 'not-found'],
  CDS_ERR_UNAUTHORIZED: [401, 'login'],
  CDS_ERR_RATE_LIMITED: [429, 'throttled'],
  CDS_ERR_PREFETCH_UNAVAILABLE: [412, 'not-found'],
  CDS_ERR_FEEDBACK_UNKNOWN_CARD: [404, 'not-found'],
  CDS_ERR_FEEDBACK_INVALID: [422, 'business-rule'],
  CDS_ERR_ANALYTICS_DISABLED: [404, 'not-found'],
  CDS_ERR_ANALYTICS_UNAUTHORIZED: [401, 'login'],
  CDS_ERR_OPS_UNAUTHORIZED: [401, 'login'],
  CDS_ERR_STORE_UNAVAILABLE: [503, 'transient'],
  CDS_ERR_HTTP_MALFORMED: [400, 'structure'],
  CDS_ERR_HEADERS_TOO_LARGE: [431, 'too-long'],
  CDS_ERR_URL_TOO_LONG: [414, 'too-long'],
  CDS_ERR_REQUEST_TIMEOUT: [408, 'timeout'],
  CDS_ERR_OVERLOADED: [503, 'transient'],
  CDS_ERR_SHUTTING_DOWN: [503, 'transient'],
  CDS_ERR_CLIENT_ERROR: [400, 'invalid'],
  CDS_ERR_INTERNAL: [500, 'exception'],
  CDS_ERR_DEFINITION_INVALID: [500, 'invalid'],
  CDS_ERR_MODEL_INVALID: [500, 'invalid'],
};

/** Codes that stop start-up; README gives "start-up" as their status. */
const START_UP: ErrorCode[] = ['CDS_ERR_DEFINITION_INVALID', 'CDS_ERR_MODEL_INVALID'];

const codes = Object.keys(ERRORS) as ErrorCode[];

t.test('every code has its pinned status and FHIR issue type, and no code is unpinned', async (t) => {
  t.same(codes.slice().sort(), Object.keys(PINNED).sort());
  for (const code of codes) {
    t.same([ERRORS[code].status, ERRORS[code].issue], PINNED[code], code);
  }
});

t.test('codes are upper-case CDS_ERR_ names and messages are one line', async (t) => {
  for (const code of codes) {
    t.match(code, /^CDS_ERR_[A-Z_]+$/);
    t.notMatch(ERRORS[code].message, /\n/, code);
  }
});

t.test('a 4xx becomes an error OperationOutcome carrying the code and the expression', async (t) => {
  const error = new CdsError(
    'CDS_ERR_HOOK_MISMATCH',
    { serviceId: 'melanoma-lesion-triage', expected: 'patient-view', hook: 'order-sign' },
    { expression: ['hook'] },
  );
  const text = 'Service "melanoma-lesion-triage" answers the "patient-view" hook, not "order-sign"';
  t.same(toOperationOutcome(error), {
    resourceType: 'OperationOutcome',
    issue: [
      {
        severity: 'error',
        code: 'invalid',
        details: { coding: [{ system: SYSTEM.errorCode, code: 'CDS_ERR_HOOK_MISMATCH' }], text },
        diagnostics: text,
        expression: ['hook'],
      },
    ],
  });
  t.equal(SYSTEM.errorCode, 'https://explainable-cds.example.org/fhir/CodeSystem/cds-error');
});

t.test('the 500 is fatal, names only the request id and has no expression', async (t) => {
  const error = new CdsError('CDS_ERR_INTERNAL', { requestId: 'req-42' });
  const text = 'Internal error; it has been logged with request id req-42';
  const outcome = toOperationOutcome(error);
  t.same(outcome, {
    resourceType: 'OperationOutcome',
    issue: [
      {
        severity: 'fatal',
        code: 'exception',
        details: { coding: [{ system: SYSTEM.errorCode, code: 'CDS_ERR_INTERNAL' }], text },
        diagnostics: text,
      },
    ],
  });
  t.notOk('expression' in outcome.issue[0]!);
});

t.test('CdsError keeps code, status, params, expression and cause', async (t) => {
  const cause = new Error('root cause');
  const error = new CdsError(
    'CDS_ERR_PREFETCH_INVALID',
    { key: 'lesions', reason: 'a Patient' },
    { expression: ['prefetch.lesions'], cause },
  );
  t.ok(error instanceof Error);
  t.equal(error.name, 'CdsError');
  t.equal(error.code, 'CDS_ERR_PREFETCH_INVALID');
  t.equal(error.status, 400);
  t.same(error.params, { key: 'lesions', reason: 'a Patient' });
  t.same(error.expression, ['prefetch.lesions']);
  t.equal(error.cause, cause);
  const bare = new CdsError('CDS_ERR_REQUEST_EMPTY_BODY');
  t.equal(bare.expression, undefined);
  t.notOk('cause' in bare);
  t.same(bare.params, {});
});

t.test('placeholders are filled from params; numbers are printed', async (t) => {
  t.equal(
    new CdsError('CDS_ERR_REQUEST_TOO_LARGE', { limitBytes: 2048 }).message,
    'The request body is larger than the limit of 2048 bytes',
  );
  t.equal(
    new CdsError('CDS_ERR_ROUTE_NOT_FOUND', { method: 'GET', url: '/nope' }).message,
    'No route for GET /nope',
  );
  t.equal(
    new CdsError('CDS_ERR_DEFINITION_INVALID', { file: 'a.yaml', pointer: '#/id', reason: 'bad' }).message,
    'a.yaml#/id: bad',
  );
});

t.test('an unknown or missing placeholder stays visible, and values are not expanded again', async (t) => {
  t.equal(new CdsError('CDS_ERR_HOOK_UNKNOWN').message, 'Unknown hook "{hook}"');
  t.equal(new CdsError('CDS_ERR_HOOK_UNKNOWN', { other: 'x' }).message, 'Unknown hook "{hook}"');
  t.equal(
    new CdsError('CDS_ERR_CONTEXT_INVALID', { reason: 'bad' }).message,
    'The context does not match the "{hook}" hook: bad',
  );
  // A client-supplied value holding a placeholder is printed as is, not filled.
  t.equal(
    new CdsError('CDS_ERR_HOOK_UNKNOWN', { hook: '{hook}{reason}', reason: 'x' }).message,
    'Unknown hook "{hook}{reason}"',
  );
});

t.test('every code is documented in the README error table with its status', async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const rows = new Map(
    [...readme.matchAll(/^\|\s*`(CDS_ERR_[A-Z_]+)`\s*\|\s*([^|]+?)\s*\|/gm)].map((m) => [m[1]!, m[2]!]),
  );
  t.ok(rows.size > 10, 'the README error table was found');
  for (const code of codes) {
    const expected = START_UP.includes(code) ? 'start-up' : String(ERRORS[code].status);
    t.equal(rows.get(code), expected, `README documents ${code} as ${expected}`);
  }
  for (const code of rows.keys()) t.ok(code in ERRORS, `README's ${code} is in the catalogue`);
});

t.test('every code is documented in openapi.yaml with its status', async (t) => {
  const text = readFileSync(new URL('../openapi.yaml', import.meta.url), 'utf8');
  const doc = parse(text) as { 'x-error-codes': Record<string, { status: number }> };
  for (const code of codes) t.equal(doc['x-error-codes'][code]?.status, ERRORS[code].status, code);
});

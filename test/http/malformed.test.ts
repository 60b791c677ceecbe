/**
 * Malformed and hostile requests: each gets the exact status and catalogue code, an OperationOutcome
 * body, and never a 5xx; the app still answers a valid call afterwards.
 */
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import type { HookRequest } from '../../src/cds-hooks.js';
import type { ErrorCode } from '../../src/errors.js';
import { assertConforms, buildTestApp } from '../helpers/app.js';
import { lesion, PATIENT_ID, patientView, searchset, triageCards } from '../helpers/hook-request.js';

const URL = '/cds-services/melanoma-lesion-triage';
const JSON_TYPE = { 'content-type': 'application/json' };

const harness = await buildTestApp();
const { app } = harness;
t.teardown(() => app.close());

/** A valid call whose prefetch holds no lesion examination: the answer is `{ cards: [] }`. */
const valid = (extra: Partial<HookRequest> = {}) => patientView({ lesions: searchset([]) }, extra);

const post = (payload: unknown, url = URL) => app.inject({ method: 'POST', url, payload: payload as object });
const postRaw = (payload: string, headers: Record<string, string> = JSON_TYPE, url = URL) =>
  app.inject({ method: 'POST', url, headers, payload });

function expectError(t: Test, res: LightMyRequestResponse, status: number, code: ErrorCode): void {
  t.equal(res.statusCode, status, 'status');
  t.match(res.headers['content-type'], /^application\/fhir\+json/);
  const body = res.json();
  assertConforms('OperationOutcome', body);
  t.equal(body.issue[0].details.coding[0].code, code, 'catalogue code');
  t.equal(body.issue[0].severity, 'error');
}

t.test('invalid JSON', async (t) => {
  expectError(t, await postRaw('{"hook": "patient-view",'), 400, 'CDS_ERR_REQUEST_MALFORMED_JSON');
});

t.test('a JSON __proto__ key', async (t) => {
  const payload = JSON.stringify(valid()).replace('{', '{"__proto__":{"polluted":true},');
  expectError(t, await postRaw(payload), 400, 'CDS_ERR_REQUEST_MALFORMED_JSON');
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution');
});

t.test('a JSON constructor.prototype key', async (t) => {
  const payload = JSON.stringify(valid()).replace('{', '{"constructor":{"prototype":{"polluted":true}},');
  expectError(t, await postRaw(payload), 400, 'CDS_ERR_REQUEST_MALFORMED_JSON');
});

t.test('an empty body with a JSON content type', async (t) => {
  expectError(t, await postRaw(''), 400, 'CDS_ERR_REQUEST_EMPTY_BODY');
});

for (const [name, payload] of [
  ['an array', '[]'],
  ['a string', '"patient-view"'],
  ['a number', '42'],
  ['null', 'null'],
] as const) {
  t.test(`a body that is ${name}`, async (t) => {
    expectError(t, await postRaw(payload), 400, 'CDS_ERR_REQUEST_INVALID');
  });
}

for (const field of ['hook', 'hookInstance', 'context'] as const) {
  t.test(`missing ${field}`, async (t) => {
    const { [field]: _, ...rest } = valid();
    const res = await post(rest);
    expectError(t, res, 400, 'CDS_ERR_REQUEST_INVALID');
    t.match(res.json().issue[0].diagnostics, `"${field}"`);
  });
}

t.test('a hook that is not a string', async (t) => {
  expectError(t, await post({ ...valid(), hook: 42 }), 400, 'CDS_ERR_REQUEST_INVALID');
});

t.test('a context that is not an object', async (t) => {
  expectError(t, await post({ ...valid(), context: 'pat-123' }), 400, 'CDS_ERR_REQUEST_INVALID');
});

t.test('an unknown hook name', async (t) => {
  const res = await post(valid({ hook: 'chart-open' }));
  expectError(t, res, 400, 'CDS_ERR_HOOK_UNKNOWN');
  t.same(res.json().issue[0].expression, ['hook']);
});

t.test("a known hook that is not the service's", async (t) => {
  const res = await post(valid({ hook: 'order-sign' }));
  expectError(t, res, 400, 'CDS_ERR_HOOK_MISMATCH');
  t.equal(
    res.json().issue[0].diagnostics,
    'Service "melanoma-lesion-triage" answers the "patient-view" hook, not "order-sign"',
  );
});

t.test('patient-view context without patientId', async (t) => {
  const res = await post(valid({ context: { userId: 'Practitioner/prac-1' } }));
  expectError(t, res, 400, 'CDS_ERR_CONTEXT_INVALID');
  t.match(res.json().issue[0].diagnostics, '"patientId"');
});

t.test('patient-view context with a userId of a type the hook does not allow', async (t) => {
  const res = await post(valid({ context: { userId: 'Device/1', patientId: PATIENT_ID } }));
  expectError(t, res, 400, 'CDS_ERR_CONTEXT_INVALID');
  t.match(res.json().issue[0].diagnostics, 'context.userId');
});

t.test('patient-view context with illegal characters in patientId', async (t) => {
  const res = await post(valid({ context: { userId: 'Practitioner/prac-1', patientId: '../x?y=1' } }));
  expectError(t, res, 400, 'CDS_ERR_CONTEXT_INVALID');
  t.match(res.json().issue[0].diagnostics, 'context.patientId');
});

const authorization = {
  access_token: 'secret-token-value',
  token_type: 'Bearer',
  expires_in: 300,
  scope: 'patient/*.read',
  subject: 'cds-service',
};

t.test('fhirAuthorization without fhirServer', async (t) => {
  const res = await post({ ...valid(), fhirAuthorization: authorization });
  expectError(t, res, 400, 'CDS_ERR_REQUEST_INVALID');
  t.match(res.json().issue[0].diagnostics, 'fhirServer');
  t.notMatch(harness.logText(), 'secret-token-value');
});

t.test('fhirAuthorization with token_type MAC', async (t) => {
  const res = await post({
    ...valid(),
    fhirServer: 'https://fhir.example.org/r4',
    fhirAuthorization: { ...authorization, token_type: 'MAC' },
  });
  expectError(t, res, 400, 'CDS_ERR_REQUEST_INVALID');
  t.match(res.json().issue[0].diagnostics, 'token_type');
});

for (const [name, value] of [
  ['a string', 'Bundle/1'],
  ['an array', [{ resourceType: 'Bundle' }]],
  ['an object without resourceType', { type: 'searchset', entry: [] }],
] as const) {
  t.test(`a prefetch value that is ${name}`, async (t) => {
    const res = await post({ ...valid(), prefetch: { lesions: value } });
    expectError(t, res, 400, 'CDS_ERR_REQUEST_INVALID');
    t.match(res.json().issue[0].diagnostics, 'request.prefetch.lesions');
  });
}

t.test('a prefetch Patient where the template returns a Bundle', async (t) => {
  const res = await post(patientView({ lesions: { resourceType: 'Patient', id: PATIENT_ID } }));
  expectError(t, res, 400, 'CDS_ERR_PREFETCH_INVALID');
  const diagnostics = 'Prefetch key "lesions" holds a Patient where its template returns a Bundle';
  t.equal(res.json().issue[0].diagnostics, diagnostics);
  t.same(res.json().issue[0].expression, ['prefetch.lesions']);
});

t.test('an unknown service id', async (t) => {
  expectError(t, await post(valid(), '/cds-services/no-such-service'), 404, 'CDS_ERR_SERVICE_NOT_FOUND');
});

t.test('an unknown path', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/cds-services/melanoma-lesion-triage/feedback?x=1' });
  expectError(t, res, 404, 'CDS_ERR_ROUTE_NOT_FOUND');
  t.equal(res.json().issue[0].diagnostics, 'No route for GET /cds-services/melanoma-lesion-triage/feedback');
});

t.test('a body over the configured limit', async (t) => {
  const small = await buildTestApp({ bodyLimitBytes: 2048 });
  t.teardown(() => small.app.close());
  const res = await small.app.inject({
    method: 'POST',
    url: URL,
    payload: valid({ extension: { 'org.example.padding': 'x'.repeat(4096) } }),
  });
  expectError(t, res, 413, 'CDS_ERR_REQUEST_TOO_LARGE');
  t.equal(res.json().issue[0].diagnostics, 'The request body is larger than the limit of 2048 bytes');
  const fits = await small.app.inject({ method: 'POST', url: URL, payload: valid() });
  t.equal(fits.statusCode, 200, 'a body under the limit still passes');
});

t.test('text/plain is an unsupported media type', async (t) => {
  const res = await postRaw(JSON.stringify(valid()), { 'content-type': 'text/plain' });
  t.ok(res.statusCode < 500, 'never a 5xx');
  assertConforms('OperationOutcome', res.json());
  // Fastify's built-in text/plain parser is still registered (src/app.ts): the body reaches schema
  // validation as a string and is refused with 400 CDS_ERR_REQUEST_INVALID instead.
  t.equal(res.statusCode, 415, 'status');
  t.equal(res.json().issue[0].details.coding[0].code, 'CDS_ERR_UNSUPPORTED_MEDIA_TYPE', 'code');
});

t.test('application/xml is an unsupported media type', async (t) => {
  const res = await postRaw('<hook>patient-view</hook>', { 'content-type': 'application/xml' });
  expectError(t, res, 415, 'CDS_ERR_UNSUPPORTED_MEDIA_TYPE');
  t.equal(
    res.json().issue[0].diagnostics,
    'Unsupported Content-Type "application/xml"; send application/json',
  );
});

t.test('application/fhir+json is accepted like application/json', async (t) => {
  for (const type of ['application/fhir+json', 'application/fhir+json; charset=utf-8']) {
    const res = await postRaw(JSON.stringify(valid()), { 'content-type': type });
    t.equal(res.statusCode, 200, type);
    t.same(res.json(), { cards: [] });
  }
});

t.test('5,000 levels of nested arrays inside extension do not crash the server', async (t) => {
  const nested = `${'['.repeat(5000)}${']'.repeat(5000)}`;
  const payload = JSON.stringify(valid()).replace(/\}$/, `,"extension":{"org.example.deep":${nested}}}`);
  const res = await postRaw(payload);
  // The extension is opaque to the service: accepted and ignored.
  t.equal(res.statusCode, 200);
  t.same(res.json(), { cards: [] });
});

t.test('5,000 levels of nesting inside a prefetched lesion do not crash the rules', async (t) => {
  const exam = JSON.stringify(lesion({ items: { changeSize: true, irregularColour: true } }));
  const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
  const resource = exam.replace(/\}$/, `,"note":[{"text":"n","extension":[${deep}]}]}`);
  const bundle = `{"resourceType":"Bundle","type":"searchset","entry":[{"resource":${resource}}]}`;
  const payload = JSON.stringify(patientView()).replace(/\}$/, `,"prefetch":{"lesions":${bundle}}}`);
  const res = await postRaw(payload);
  t.equal(res.statusCode, 200);
  const body = res.json();
  assertConforms('HookResponse', body);
  t.equal(triageCards(body.cards).length, 1);
  t.equal(triageCards(body.cards)[0].indicator, 'warning', 'the lesion still scores 4');
});

t.test('a 200-field context with huge strings is accepted and not logged', async (t) => {
  const context: Record<string, string> = { userId: 'Practitioner/prac-1', patientId: PATIENT_ID };
  for (let i = 0; i < 200; i++) context[`org.example.field${i}`] = `huge-${i}-${'z'.repeat(10_000)}`;
  const res = await post(valid({ context }));
  t.equal(res.statusCode, 200);
  t.same(res.json(), { cards: [] });
  t.notMatch(harness.logText(), 'huge-0-zzzz');
});

t.test('a hookInstance of 10,000 characters', async (t) => {
  const res = await post(valid({ hookInstance: 'a'.repeat(10_000) }));
  expectError(t, res, 400, 'CDS_ERR_REQUEST_INVALID');
  t.match(res.json().issue[0].diagnostics, 'request.hookInstance must NOT have more than 256 characters');
});

t.test(
  'a lesion item recorded as valueBoolean "yes" (a string) is malformed data, not "not recorded"',
  async (t) => {
    // Issue 16: present-but-malformed data is never read as absent (test/http/malformed-prefetch.test.ts).
    const exam = lesion({ items: { changeSize: true, irregularColour: true, inflammation: true } });
    Object.assign(exam.component![0]!, { valueBoolean: 'yes' });
    const res = await post(patientView({ lesions: searchset([exam]) }));
    expectError(t, res, 400, 'CDS_ERR_PREFETCH_MALFORMED');
    t.same(res.json().issue[0].expression, ['prefetch.lesions.entry[0].resource.component[0].valueBoolean']);
  },
);

t.test('after all of the above the app still answers a valid call, and nothing was a 5xx', async (t) => {
  const res = await post(patientView({ lesions: searchset([lesion({ items: { changeSize: true } })]) }));
  t.equal(res.statusCode, 200);
  assertConforms('HookResponse', res.json());
  t.equal(triageCards(res.json().cards).length, 1);
  const lines = harness.logs();
  const statuses = lines.map((line) => (line.res as { statusCode?: number } | undefined)?.statusCode);
  t.ok(statuses.filter(Boolean).length > 30, 'every request was logged with its status');
  t.same(
    statuses.filter((s) => s !== undefined && s >= 500),
    [],
    'no 5xx',
  );
  t.same(
    lines.filter((line) => (line.level as number) >= 50),
    [],
    'no error log line',
  );
});

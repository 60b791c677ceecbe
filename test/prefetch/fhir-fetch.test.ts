import type { Bundle, FhirResource, Observation, Patient } from 'fhir/r4.js';
import t, { type Test } from 'tap';
import { createFhirFetch, type FetchResult, type FhirFetchOptions } from '../../src/prefetch/fhir-fetch.js';
import { startFhirServer } from '../helpers/fhir-server.js';
import { PATIENT_ID } from '../helpers/hook-request.js';

const TOKEN = 'secret-token-0123456789';
const PATIENT: Patient = {
  resourceType: 'Patient',
  id: PATIENT_ID,
  gender: 'female',
  birthDate: '1970-01-01',
};

function observation(id: string, day: number): Observation {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
    subject: { reference: `Patient/${PATIENT_ID}` },
    effectiveDateTime: `2026-11-${String(day).padStart(2, '0')}T10:00:00Z`,
  };
}

const OBSERVATIONS = [1, 2, 3, 4, 5].map((d) => observation(`obs-${d}`, d));

function options(overrides: Partial<FhirFetchOptions> = {}): FhirFetchOptions {
  return {
    fetch: globalThis.fetch,
    timeoutMs: 2000,
    maxBytes: 1024 * 1024,
    maxPages: 5,
    allowHttp: false,
    ...overrides,
  };
}

/** Asserts a failure with its code, and that its reason names neither the patient nor the token. */
function expectFailure(t: Test, result: FetchResult, code: string): void {
  t.equal(result.ok, false, 'a failure');
  if (result.ok) return;
  t.equal(result.code, code, `code ${code}`);
  t.type(result.reason, 'string');
  t.ok(result.reason.length > 0, 'a reason');
  t.notOk(result.reason.includes(PATIENT_ID), 'the reason does not name the patient');
  t.notOk(result.reason.includes(TOKEN), 'the reason does not hold the token');
}

interface FakeCall {
  url: string;
  init: RequestInit | undefined;
}

/** A fake `fetch` answering each call with the next of `answers` (the last one repeats). */
function fakeFetch(answers: (() => Response)[]): { fetch: typeof globalThis.fetch; calls: FakeCall[] } {
  const calls: FakeCall[] = [];
  const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(input), init });
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)]!;
    return answer();
  }) as typeof globalThis.fetch;
  return { fetch, calls };
}

function json(body: unknown, status = 200): () => Response {
  return () =>
    new Response(typeof body === 'string' ? body : JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/fhir+json' },
    });
}

function bundle(resources: FhirResource[], next?: string): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'searchset',
    link: [
      { relation: 'self', url: 'https://fhir.example/r4/Observation?patient=x' },
      ...(next ? [{ relation: 'next', url: next }] : []),
    ],
    entry: resources.map((resource) => ({ resource })),
  };
}

t.test('a read that exists returns the resource', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT] });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options())(server.url, `Patient/${PATIENT_ID}`, 'Patient', undefined);
  t.equal(result.ok, true);
  if (!result.ok) return;
  t.same(result.value, PATIENT);
  t.equal(result.pages, 1);
  t.equal(result.bytes, JSON.stringify(PATIENT).length);
  t.equal(server.requests.length, 1);
  t.equal(server.requests[0]!.method, 'GET');
  t.equal(server.requests[0]!.path, `/fhir/Patient/${PATIENT_ID}`);
  t.match(server.requests[0]!.accept, /application\/fhir\+json/);
  t.equal(server.requests[0]!.authorization, undefined, 'no token, no Authorization header');
});

t.test('a base URL with a trailing slash gives the same request', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT] });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options())(
    `${server.url}/`,
    `Patient/${PATIENT_ID}`,
    'Patient',
    undefined,
  );
  t.equal(result.ok, true);
  t.equal(server.requests[0]!.path, `/fhir/Patient/${PATIENT_ID}`);
});

t.test('a read answered 404 is known absent: ok with a null value', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT] });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options())(server.url, 'Patient/nobody', 'Patient', undefined);
  t.same(result, { ok: true, value: null, pages: 1, bytes: 0, raw: [] });
});

t.test('a read answered 410 is known absent too', async (t) => {
  const fake = fakeFetch([json({ resourceType: 'OperationOutcome', issue: [] }, 410)]);
  const result = await createFhirFetch(options({ fetch: fake.fetch }))(
    'https://fhir.example/r4',
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  t.same(result, { ok: true, value: null, pages: 1, bytes: 0, raw: [] });
});

t.test('a search answered 404 is a failure', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT] });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options())(
    server.url,
    `NoSuchType?patient=${PATIENT_ID}`,
    'Bundle',
    undefined,
  );
  expectFailure(t, result, 'http-error');
});

t.test('a search returns the searchset', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT, ...OBSERVATIONS] });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options())(
    server.url,
    `Observation?patient=${PATIENT_ID}&_sort=-date`,
    'Bundle',
    undefined,
  );
  t.equal(result.ok, true);
  if (!result.ok) return;
  const value = result.value as Bundle;
  t.equal(value.resourceType, 'Bundle');
  t.same(
    value.entry?.map((e) => e.resource?.id),
    ['obs-5', 'obs-4', 'obs-3', 'obs-2', 'obs-1'],
  );
  t.equal(result.pages, 1);
});

t.test('the access token is sent as a Bearer token', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT], token: TOKEN });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options())(server.url, `Patient/${PATIENT_ID}`, 'Patient', TOKEN);
  t.equal(result.ok, true);
  t.equal(server.requests.length, 1);
  t.equal(server.requests[0]!.authorization, `Bearer ${TOKEN}`);
});

t.test('a refused token (401) is unauthorized', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT], token: TOKEN });
  t.teardown(() => server.close());
  const fhirFetch = createFhirFetch(options());
  expectFailure(
    t,
    await fhirFetch(server.url, `Patient/${PATIENT_ID}`, 'Patient', 'wrong-token'),
    'unauthorized',
  );
  expectFailure(
    t,
    await fhirFetch(server.url, `Patient/${PATIENT_ID}`, 'Patient', undefined),
    'unauthorized',
  );
  t.equal(server.requests[0]!.authorization, 'Bearer wrong-token');
  t.equal(server.requests[1]!.authorization, undefined);
});

t.test('403 is unauthorized too', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT], failWith: 403 });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options())(server.url, `Patient/${PATIENT_ID}`, 'Patient', TOKEN);
  expectFailure(t, result, 'unauthorized');
});

t.test('a server error (500) is an http-error', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT], failWith: 500 });
  t.teardown(() => server.close());
  const fhirFetch = createFhirFetch(options());
  const read = await fhirFetch(server.url, `Patient/${PATIENT_ID}`, 'Patient', TOKEN);
  expectFailure(t, read, 'http-error');
  if (!read.ok) t.equal(read.reason, 'the FHIR server answered with an error status', 'no remote status');
  expectFailure(
    t,
    await fhirFetch(server.url, `Observation?patient=${PATIENT_ID}`, 'Bundle', TOKEN),
    'http-error',
  );
});

t.test('a server slower than the deadline is a timeout, returned on time', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT], delayMs: 2000 });
  t.teardown(() => server.close());
  const timeoutMs = 150;
  const start = performance.now();
  const result = await createFhirFetch(options({ timeoutMs }))(
    server.url,
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  const elapsed = performance.now() - start;
  expectFailure(t, result, 'timeout');
  if (!result.ok) t.equal(result.reason, 'no answer within 150 ms');
  t.ok(elapsed >= timeoutMs - 20, `not before the deadline (${elapsed.toFixed(0)} ms)`);
  t.ok(elapsed < timeoutMs + 300, `soon after the deadline (${elapsed.toFixed(0)} ms)`);
});

t.test('the deadline covers every page of a search', async (t) => {
  // Each page takes 120 ms: the first fits in 200 ms, the second does not.
  const server = await startFhirServer({ resources: OBSERVATIONS, pageSize: 2, delayMs: 120 });
  t.teardown(() => server.close());
  const start = performance.now();
  const result = await createFhirFetch(options({ timeoutMs: 200 }))(
    server.url,
    `Observation?patient=${PATIENT_ID}`,
    'Bundle',
    TOKEN,
  );
  const elapsed = performance.now() - start;
  expectFailure(t, result, 'timeout');
  t.ok(elapsed < 200 + 300, `bounded (${elapsed.toFixed(0)} ms)`);
});

t.test('an answer larger than maxBytes is too-large', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT], padBytes: 4096 });
  t.teardown(() => server.close());
  const fhirFetch = createFhirFetch(options({ maxBytes: 2048 }));
  expectFailure(t, await fhirFetch(server.url, `Patient/${PATIENT_ID}`, 'Patient', TOKEN), 'too-large');
  // The same answer fits a larger cap (the padding is whitespace after the JSON).
  const larger = await createFhirFetch(options({ maxBytes: 8192 }))(
    server.url,
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  t.equal(larger.ok, true);
});

t.test('the byte cap holds without a Content-Length (streamed body)', async (t) => {
  const chunk = new TextEncoder().encode(' '.repeat(1000));
  const fake = fakeFetch([
    () => {
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent === 0) controller.enqueue(new TextEncoder().encode('{"resourceType":"Patient"}'));
          else if (sent < 50) controller.enqueue(chunk);
          else controller.close();
          sent += 1;
        },
      });
      return new Response(body, { status: 200 });
    },
  ]);
  const result = await createFhirFetch(options({ fetch: fake.fetch, maxBytes: 4096 }))(
    'https://fhir.example/r4',
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  expectFailure(t, result, 'too-large');
});

t.test('the byte cap is shared by every page of a search', async (t) => {
  const server = await startFhirServer({ resources: OBSERVATIONS, pageSize: 1 });
  t.teardown(() => server.close());
  const query = `Observation?patient=${PATIENT_ID}`;
  const one = await createFhirFetch(options())(
    `${server.url}`,
    `${query}&_count=1&_id=obs-1`,
    'Bundle',
    TOKEN,
  );
  t.equal(one.ok, true);
  if (!one.ok) return;
  // Room for about two pages: one page fits, five do not.
  const result = await createFhirFetch(options({ maxBytes: Math.floor(one.bytes * 2.5) }))(
    server.url,
    query,
    'Bundle',
    TOKEN,
  );
  expectFailure(t, result, 'too-large');
});

t.test('paging merges every page and drops the next link', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT, ...OBSERVATIONS], pageSize: 2 });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options())(
    server.url,
    `Observation?patient=${PATIENT_ID}&_sort=date`,
    'Bundle',
    TOKEN,
  );
  t.equal(result.ok, true);
  if (!result.ok) return;
  const value = result.value as Bundle;
  t.same(
    value.entry?.map((e) => e.resource?.id),
    ['obs-1', 'obs-2', 'obs-3', 'obs-4', 'obs-5'],
  );
  t.equal(result.pages, 3);
  t.same(
    value.link?.map((l) => l.relation),
    ['self'],
  );
  t.equal(server.requests.length, 3);
  for (const request of server.requests) t.equal(request.authorization, `Bearer ${TOKEN}`);
  t.match(server.requests[1]!.path, /_offset=2/);
  t.match(server.requests[2]!.path, /_offset=4/);
  // Each page's body as received, in order (the audit hashes them), not the merged Bundle.
  const pages = (result.raw ?? []).map((bytes) => JSON.parse(Buffer.from(bytes).toString()) as Bundle);
  t.same(
    pages.map((page) => page.entry?.map((e) => e.resource?.id)),
    [['obs-1', 'obs-2'], ['obs-3', 'obs-4'], ['obs-5']],
  );
  t.equal(
    (result.raw ?? []).reduce((sum, bytes) => sum + bytes.byteLength, 0),
    result.bytes,
    'every byte read is kept',
  );
});

t.test('a search with more pages than maxPages fails rather than being cut short', async (t) => {
  const server = await startFhirServer({ resources: OBSERVATIONS, pageSize: 2 });
  t.teardown(() => server.close());
  const result = await createFhirFetch(options({ maxPages: 2 }))(
    server.url,
    `Observation?patient=${PATIENT_ID}&_sort=date`,
    'Bundle',
    TOKEN,
  );
  expectFailure(t, result, 'too-many-pages');
  t.equal(server.requests.length, 2);
});

t.test('a next link to another host is not followed', async (t) => {
  const fake = fakeFetch([json(bundle([PATIENT], `https://evil.example/r4/Observation?page=2`))]);
  const result = await createFhirFetch(options({ fetch: fake.fetch }))(
    'https://fhir.example/r4',
    `Observation?patient=${PATIENT_ID}`,
    'Bundle',
    TOKEN,
  );
  expectFailure(t, result, 'foreign-next-link');
  t.equal(fake.calls.length, 1, 'only the first page was requested');
  t.notOk(
    fake.calls.some((c) => c.url.includes('evil.example')),
    'the token never went to the other host',
  );
});

t.test('a next link to a look-alike host is not followed', async (t) => {
  for (const next of [
    'https://fhir.example.evil.example/r4/Observation?page=2',
    'https://fhir.example/r4evil/Observation?page=2',
    'http://fhir.example/r4/Observation?page=2',
  ]) {
    const fake = fakeFetch([json(bundle([PATIENT], next))]);
    const result = await createFhirFetch(options({ fetch: fake.fetch }))(
      'https://fhir.example/r4',
      `Observation?patient=${PATIENT_ID}`,
      'Bundle',
      TOKEN,
    );
    t.equal(result.ok ? 'ok' : result.code, 'foreign-next-link', next);
    t.equal(fake.calls.length, 1);
  }
});

t.test('a next page that is not a Bundle is not-fhir', async (t) => {
  const fake = fakeFetch([
    json(bundle([PATIENT], 'https://fhir.example/r4/Observation?page=2')),
    json({ resourceType: 'OperationOutcome', issue: [] }),
  ]);
  const result = await createFhirFetch(options({ fetch: fake.fetch }))(
    'https://fhir.example/r4',
    `Observation?patient=${PATIENT_ID}`,
    'Bundle',
    TOKEN,
  );
  expectFailure(t, result, 'not-fhir');
  t.equal(fake.calls.length, 2);
  t.equal(fake.calls[1]!.url, 'https://fhir.example/r4/Observation?page=2');
});

t.test('an answer that is not JSON is not-json', async (t) => {
  const fake = fakeFetch([json('<html>Service unavailable</html>')]);
  const result = await createFhirFetch(options({ fetch: fake.fetch }))(
    'https://fhir.example/r4',
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  expectFailure(t, result, 'not-json');
});

t.test('JSON that is not a FHIR resource is not-fhir', async (t) => {
  for (const body of ['{"id":"x"}', '[1,2]', 'null', '"Patient"', '{"resourceType":7}']) {
    const fake = fakeFetch([json(body)]);
    const result = await createFhirFetch(options({ fetch: fake.fetch }))(
      'https://fhir.example/r4',
      `Patient/${PATIENT_ID}`,
      'Patient',
      TOKEN,
    );
    t.equal(result.ok ? 'ok' : result.code, 'not-fhir', body);
  }
});

t.test('an OperationOutcome answered with 200 is an outcome failure', async (t) => {
  const fake = fakeFetch([
    json({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'processing' }] }),
  ]);
  const fhirFetch = createFhirFetch(options({ fetch: fake.fetch }));
  expectFailure(
    t,
    await fhirFetch('https://fhir.example/r4', `Patient/${PATIENT_ID}`, 'Patient', TOKEN),
    'outcome',
  );
  expectFailure(
    t,
    await fhirFetch('https://fhir.example/r4', `Observation?patient=${PATIENT_ID}`, 'Bundle', TOKEN),
    'outcome',
  );
});

t.test('a resource of another type is wrong-type', async (t) => {
  const server = await startFhirServer({ resources: [PATIENT, ...OBSERVATIONS] });
  t.teardown(() => server.close());
  const fhirFetch = createFhirFetch(options());
  const read = await fhirFetch(server.url, `Patient/${PATIENT_ID}`, 'Observation', TOKEN);
  expectFailure(t, read, 'wrong-type');
  if (!read.ok) t.equal(read.reason, 'expected an Observation, got another resource type');
  // A search template expects a Bundle; a single resource is not one.
  expectFailure(t, await fhirFetch(server.url, 'Observation/obs-1', 'Bundle', TOKEN), 'wrong-type');
});

t.test('a plain-http fhirServer off loopback is refused unless allowed', async (t) => {
  const fake = fakeFetch([json(PATIENT)]);
  const refused = await createFhirFetch(options({ fetch: fake.fetch }))(
    'http://fhir.example/r4',
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  expectFailure(t, refused, 'insecure-server');
  t.equal(fake.calls.length, 0, 'nothing sent, the token did not travel in clear');

  const allowed = await createFhirFetch(options({ fetch: fake.fetch, allowHttp: true }))(
    'http://fhir.example/r4',
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  t.equal(allowed.ok, true);
  t.equal(fake.calls.length, 1);
  t.equal(fake.calls[0]!.url, `http://fhir.example/r4/Patient/${PATIENT_ID}`);
});

t.test('plain http is accepted on loopback addresses', async (t) => {
  for (const base of ['http://127.0.0.1:8080/fhir', 'http://localhost/fhir', 'http://[::1]:9/fhir']) {
    const fake = fakeFetch([json(PATIENT)]);
    const result = await createFhirFetch(options({ fetch: fake.fetch }))(
      base,
      `Patient/${PATIENT_ID}`,
      'Patient',
      TOKEN,
    );
    t.equal(result.ok, true, base);
  }
});

t.test('other schemes and relative URLs are refused', async (t) => {
  for (const base of ['ftp://fhir.example/r4', 'file:///etc', 'fhir.example/r4', '']) {
    const fake = fakeFetch([json(PATIENT)]);
    const result = await createFhirFetch(options({ fetch: fake.fetch, allowHttp: true }))(
      base,
      `Patient/${PATIENT_ID}`,
      'Patient',
      TOKEN,
    );
    t.equal(result.ok ? 'ok' : result.code, 'insecure-server', JSON.stringify(base));
    t.equal(fake.calls.length, 0);
  }
});

t.test('https is accepted and gets the token, the accept header, no redirects', async (t) => {
  const fake = fakeFetch([json(PATIENT)]);
  const result = await createFhirFetch(options({ fetch: fake.fetch }))(
    'https://fhir.example/r4',
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  t.equal(result.ok, true);
  if (result.ok) t.same(result.value, PATIENT);
  t.equal(fake.calls.length, 1);
  const call = fake.calls[0]!;
  t.equal(call.url, `https://fhir.example/r4/Patient/${PATIENT_ID}`);
  const headers = call.init?.headers as Record<string, string>;
  t.equal(headers.authorization, `Bearer ${TOKEN}`);
  t.match(headers.accept, /application\/fhir\+json/);
  t.equal(call.init?.redirect, 'error');
  t.ok(call.init?.signal instanceof AbortSignal, 'the deadline travels with the request');
});

t.test('an unreachable server is a network failure (or timeout), bounded', async (t) => {
  const server = await startFhirServer({ resources: [] });
  const url = server.url;
  await server.close();
  const timeoutMs = 1000;
  const start = performance.now();
  const result = await createFhirFetch(options({ timeoutMs }))(
    url,
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  const elapsed = performance.now() - start;
  t.equal(result.ok, false);
  if (result.ok) return;
  t.ok(['network', 'timeout'].includes(result.code), `code ${result.code}`);
  t.notOk(result.reason.includes(PATIENT_ID));
  t.notOk(result.reason.includes(TOKEN));
  t.ok(elapsed < timeoutMs + 300, `bounded (${elapsed.toFixed(0)} ms)`);
});

t.test('a fetch that throws is a network failure', async (t) => {
  const fetch = (async () => {
    throw new TypeError(`fetch failed for Patient/${PATIENT_ID}`);
  }) as typeof globalThis.fetch;
  const result = await createFhirFetch(options({ fetch }))(
    'https://fhir.example/r4',
    `Patient/${PATIENT_ID}`,
    'Patient',
    TOKEN,
  );
  expectFailure(t, result, 'network');
});

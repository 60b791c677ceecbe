/**
 * Issue 16 §5: a cap on requests in flight and on body bytes in flight, beyond which 503
 * CDS_ERR_OVERLOADED with Retry-After, before the body is read; health probes are not counted; a chunked
 * body is counted as it arrives. (The child-process test under a capped heap is memory-survival.test.ts.)
 */
import { Readable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import { assertConforms, buildTestApp } from '../helpers/app.js';
import { PATIENT_ID, patientView, searchset } from '../helpers/hook-request.js';

const URL = '/cds-services/melanoma-lesion-triage';

function expectOverloaded(t: Test, res: LightMyRequestResponse, limit: string): void {
  t.equal(res.statusCode, 503, 'status');
  t.equal(res.headers['retry-after'], '2', 'Retry-After');
  const body = res.json();
  assertConforms('OperationOutcome', body);
  t.equal(body.issue[0].details.coding[0].code, 'CDS_ERR_OVERLOADED');
  t.equal(body.issue[0].code, 'transient');
  t.equal(body.issue[0].diagnostics, `The server is at its limit of ${limit}; retry in 2 s`);
}

/** A call that waits on the FHIR server (the lesions key is fetched) until `release` is called. */
async function blockedApp(t: Test, config: Parameters<typeof buildTestApp>[0]) {
  let release = () => {};
  const gate = new Promise<void>((resolve) => (release = resolve));
  const built = await buildTestApp(config, {
    fetch: async () => {
      await gate;
      return new Response(JSON.stringify(searchset([])), {
        status: 200,
        headers: { 'content-type': 'application/fhir+json' },
      });
    },
  });
  t.teardown(() => built.app.close());
  const slow = patientView(
    { patient: null, conditions: null, skin: null, consent: null },
    { fhirServer: 'http://127.0.0.1:9/fhir' },
  );
  return { ...built, release, slow };
}

t.test('beyond maxRequestsInFlight: 503 with Retry-After; health is not counted', async (t) => {
  const { app, release, slow } = await blockedApp(t, { maxRequestsInFlight: 2 });
  const first = app.inject({ method: 'POST', url: URL, payload: slow });
  const second = app.inject({ method: 'POST', url: URL, payload: slow });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const third = await app.inject({ method: 'POST', url: URL, payload: slow });
  expectOverloaded(t, third, '2 requests in flight');
  t.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200, 'liveness answers');
  release();
  t.same([(await first).statusCode, (await second).statusCode], [200, 200], 'those in flight finish');
  const after = await app.inject({ method: 'POST', url: URL, payload: slow });
  t.equal(after.statusCode, 200, 'the slots are given back');
});

t.test('beyond maxBytesInFlight: 503 before the body is read', async (t) => {
  const { app, release, slow } = await blockedApp(t, { maxBytesInFlight: 8192 });
  const padded = { ...slow, extension: { 'org.example.padding': 'x'.repeat(5000) } };
  const first = app.inject({ method: 'POST', url: URL, payload: padded });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const second = await app.inject({ method: 'POST', url: URL, payload: padded });
  expectOverloaded(t, second, '8192 body bytes in flight');
  const small = await app.inject({
    method: 'POST',
    url: URL,
    payload: patientView({
      lesions: searchset([]),
      patient: null,
      conditions: null,
      skin: null,
      consent: null,
    }),
  });
  t.equal(small.statusCode, 200, 'a small body still fits');
  release();
  t.equal((await first).statusCode, 200);
  t.equal(
    (await app.inject({ method: 'POST', url: URL, payload: padded })).statusCode,
    200,
    'bytes given back',
  );
});

t.test('a chunked body is counted as it arrives', async (t) => {
  const { app, release, slow } = await blockedApp(t, { maxBytesInFlight: 8192 });
  const padded = JSON.stringify({ ...slow, extension: { 'org.example.padding': 'x'.repeat(5000) } });
  const first = app.inject({
    method: 'POST',
    url: URL,
    payload: padded,
    headers: { 'content-type': 'application/json' },
  });
  await new Promise((resolve) => setTimeout(resolve, 200));
  const chunked = await app.inject({
    method: 'POST',
    url: URL,
    headers: { 'content-type': 'application/json' },
    payload: Readable.from([padded.slice(0, 2000), padded.slice(2000, 4000), padded.slice(4000)]),
  });
  // A stream payload is sent without Content-Length (light-my-request cannot know its length).
  expectOverloaded(t, chunked, '8192 body bytes in flight');
  release();
  t.equal((await first).statusCode, 200);
  t.notMatch(JSON.stringify(chunked.json()), PATIENT_ID);
});

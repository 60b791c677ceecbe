import type { FhirResource, OperationOutcome, Patient } from 'fhir/r4.js';
import t from 'tap';
import type { HookRequest } from '../../src/cds-hooks.js';
import { CdsError } from '../../src/errors.js';
import type { FetchResult, FhirFetch } from '../../src/prefetch/fhir-fetch.js';
import { resolvePrefetch } from '../../src/prefetch/resolve.js';
import { parseTemplate } from '../../src/prefetch/template.js';
import type { PrefetchSpec } from '../../src/services/definition-schema.js';
import type { CompiledPrefetch } from '../../src/services/load.js';
import { lesion, PATIENT_ID, patientView, searchset } from '../helpers/hook-request.js';

const SERVER = 'https://fhir.example/r4';
const TOKEN = 'resolve-token-abc';
const AUTH: HookRequest['fhirAuthorization'] = {
  access_token: TOKEN,
  token_type: 'Bearer',
  expires_in: 300,
  scope: 'patient/*.read',
  subject: 'cds-service',
};

const PATIENT: Patient = { resourceType: 'Patient', id: PATIENT_ID };
const OUTCOME: OperationOutcome = {
  resourceType: 'OperationOutcome',
  issue: [{ severity: 'error', code: 'processing', diagnostics: 'timeout' }],
};

function key(
  name: string,
  query: string,
  onFailure: PrefetchSpec['onFailure'] = 'fail',
  description = { en: `${name} data`, fr: `données ${name}` },
): CompiledPrefetch {
  return {
    key: name,
    spec: { query, onFailure, description },
    template: parseTemplate(query, 'patient-view'),
  };
}

const PATIENT_KEY = key('patient', 'Patient/{{context.patientId}}');
const LESIONS_KEY = key('lesions', 'Observation?patient={{context.patientId}}&code=lesion-examination');

interface Call {
  fhirServer: string;
  query: string;
  resultType: string;
  accessToken: string | undefined;
}

/** A fake FhirFetch recording its calls and answering from `answer`. */
function fakeFetch(answer: (call: Call) => FetchResult | Promise<FetchResult> = okFor): {
  fhirFetch: FhirFetch;
  calls: Call[];
} {
  const calls: Call[] = [];
  const fhirFetch: FhirFetch = async (fhirServer, query, resultType, accessToken) => {
    const call = { fhirServer, query, resultType, accessToken };
    calls.push(call);
    return answer(call);
  };
  return { fhirFetch, calls };
}

function okFor(call: Call): FetchResult {
  const value: FhirResource = call.resultType === 'Bundle' ? searchset([lesion()]) : PATIENT;
  return { ok: true, value, pages: 1, bytes: 100 };
}

function withServer(prefetch?: HookRequest['prefetch']): HookRequest {
  return patientView(prefetch, { fhirServer: SERVER, fhirAuthorization: AUTH });
}

/** Runs and returns the thrown error (fails the test if nothing is thrown). */
async function rejection(promise: Promise<unknown>): Promise<CdsError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof CdsError) return error;
    throw error;
  }
  throw new Error('expected a CdsError, got a result');
}

t.test('a key sent with a resource is used, not fetched', async (t) => {
  const fake = fakeFetch();
  const bundle = searchset([lesion()]);
  const resolved = await resolvePrefetch(
    [PATIENT_KEY, LESIONS_KEY],
    withServer({ patient: PATIENT, lesions: bundle }),
    fake.fhirFetch,
  );
  t.equal(fake.calls.length, 0);
  t.equal(resolved.data.patient, PATIENT);
  t.equal(resolved.data.lesions, bundle);
  t.same(resolved.sources, { patient: 'prefetch', lesions: 'prefetch' });
  t.same(resolved.unavailable, []);
});

t.test('a key sent as null is known absent, not fetched', async (t) => {
  const fake = fakeFetch();
  const resolved = await resolvePrefetch(
    [PATIENT_KEY, LESIONS_KEY],
    withServer({ patient: null, lesions: null }),
    fake.fhirFetch,
  );
  t.equal(fake.calls.length, 0);
  t.same(resolved.data, { patient: null, lesions: null });
  t.same(resolved.sources, { patient: 'prefetch', lesions: 'prefetch' });
  t.same(resolved.unavailable, []);
});

t.test('a key sent as an OperationOutcome is a failure without a fetch', async (t) => {
  const fake = fakeFetch();
  const error = await rejection(
    resolvePrefetch([LESIONS_KEY], withServer({ lesions: OUTCOME }), fake.fhirFetch),
  );
  t.equal(fake.calls.length, 0, 'not retried');
  t.equal(error.code, 'CDS_ERR_PREFETCH_UNAVAILABLE');
  t.equal(error.status, 412);
  t.same(error.expression, ['prefetch.lesions']);
  t.equal(
    error.message,
    'Required data could not be obtained for prefetch key(s): lesions (the CDS client reported an OperationOutcome)',
  );

  const omit = key('patient', 'Patient/{{context.patientId}}', 'omit');
  const resolved = await resolvePrefetch([omit], withServer({ patient: OUTCOME }), fake.fhirFetch);
  t.equal(fake.calls.length, 0);
  t.same(resolved.unavailable, [
    {
      key: 'patient',
      description: { en: 'patient data', fr: 'données patient' },
      code: 'client-outcome',
      reason: 'the CDS client reported an OperationOutcome',
    },
  ]);
  t.equal(resolved.data.patient, null);
  t.notOk('patient' in resolved.sources);
});

t.test('a missing key is fetched with the rendered query, its result type and the token', async (t) => {
  const fake = fakeFetch();
  const resolved = await resolvePrefetch(
    [PATIENT_KEY, LESIONS_KEY],
    withServer({ patient: PATIENT }),
    fake.fhirFetch,
  );
  t.same(fake.calls, [
    {
      fhirServer: SERVER,
      query: `Observation?patient=${PATIENT_ID}&code=lesion-examination`,
      resultType: 'Bundle',
      accessToken: TOKEN,
    },
  ]);
  t.same(resolved.sources, { patient: 'prefetch', lesions: 'fetched' });
  t.equal((resolved.data.lesions as { resourceType: string }).resourceType, 'Bundle');

  const read = fakeFetch();
  const fetched = await resolvePrefetch([PATIENT_KEY], withServer(), read.fhirFetch);
  t.same(read.calls, [
    { fhirServer: SERVER, query: `Patient/${PATIENT_ID}`, resultType: 'Patient', accessToken: TOKEN },
  ]);
  t.same(fetched.data.patient, PATIENT);
  t.same(fetched.sources, { patient: 'fetched' });
});

t.test('a missing key is fetched without a token when the request has no fhirAuthorization', async (t) => {
  const fake = fakeFetch();
  await resolvePrefetch([PATIENT_KEY], patientView(undefined, { fhirServer: SERVER }), fake.fhirFetch);
  t.equal(fake.calls.length, 1);
  t.equal(fake.calls[0]!.accessToken, undefined);
});

t.test('a fetched read that finds nothing is known absent', async (t) => {
  const fake = fakeFetch(() => ({ ok: true, value: null, pages: 1, bytes: 0 }));
  const resolved = await resolvePrefetch([PATIENT_KEY], withServer(), fake.fhirFetch);
  t.same(resolved.data, { patient: null });
  t.same(resolved.sources, { patient: 'fetched' });
  t.same(resolved.unavailable, []);
});

t.test('several missing keys are fetched in parallel', async (t) => {
  const keys = [
    PATIENT_KEY,
    LESIONS_KEY,
    key('conditions', 'Condition?patient={{context.patientId}}'),
    key('practitioner', 'Practitioner/{{userPractitionerId}}'),
  ];
  // Each call waits until every call has started: a sequential resolver would never get there (the
  // guard then answers a failure after 1 s, so the test fails instead of hanging).
  const waiting: (() => void)[] = [];
  let started = 0;
  const guard = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1000);
    t.teardown(() => clearTimeout(timer));
  });
  const fake = fakeFetch(async (call) => {
    started += 1;
    const all = new Promise<void>((resolve) => waiting.push(resolve));
    if (started === keys.length) for (const release of waiting) release();
    const won = await Promise.race([all.then(() => 'all' as const), guard.then(() => 'guard' as const)]);
    return won === 'all' ? okFor(call) : { ok: false, code: 'timeout', reason: 'not in parallel' };
  });
  const resolved = await resolvePrefetch(keys, withServer(), fake.fhirFetch);
  t.equal(fake.calls.length, 4);
  t.same(resolved.sources, {
    patient: 'fetched',
    lesions: 'fetched',
    conditions: 'fetched',
    practitioner: 'fetched',
  });
  t.same(
    fake.calls.map((c) => c.query),
    [
      `Patient/${PATIENT_ID}`,
      `Observation?patient=${PATIENT_ID}&code=lesion-examination`,
      `Condition?patient=${PATIENT_ID}`,
      'Practitioner/prac-1',
    ],
  );
});

t.test('fail policy: 412 naming every failed key', async (t) => {
  const keys = [
    PATIENT_KEY,
    LESIONS_KEY,
    key('conditions', 'Condition?patient={{context.patientId}}'),
    key('encounter', 'Encounter/{{context.encounterId}}', 'omit'),
  ];
  const fake = fakeFetch((call) =>
    call.resultType === 'Patient'
      ? { ok: false, code: 'unauthorized', reason: 'the FHIR server refused the access token (401)' }
      : call.query.startsWith('Observation')
        ? { ok: false, code: 'timeout', reason: 'no answer within 2500 ms' }
        : okFor(call),
  );
  const error = await rejection(resolvePrefetch(keys, withServer(), fake.fhirFetch));
  t.type(error, CdsError);
  t.equal(error.code, 'CDS_ERR_PREFETCH_UNAVAILABLE');
  t.equal(error.status, 412);
  t.same(error.expression, ['prefetch.patient', 'prefetch.lesions']);
  t.equal(
    error.message,
    'Required data could not be obtained for prefetch key(s): ' +
      'patient (the FHIR server refused the access token (401)); lesions (no answer within 2500 ms)',
  );
  t.notOk(error.message.includes('conditions'), 'a key that was had is not named');
  t.notOk(error.message.includes('encounter'), 'an omit key is not named');
  t.notOk(error.message.includes(TOKEN));
  t.notOk(error.message.includes(PATIENT_ID));
});

t.test('omit policy: goes on and lists the key with its description and reason', async (t) => {
  const keys = [
    LESIONS_KEY,
    key('patient', 'Patient/{{context.patientId}}', 'omit', { en: 'patient demographics', fr: 'identité' }),
    key('encounter', 'Encounter/{{context.encounterId}}', 'omit', { en: 'the encounter', fr: 'la venue' }),
  ];
  const fake = fakeFetch((call) =>
    call.resultType === 'Patient'
      ? { ok: false, code: 'http-error', reason: 'the FHIR server answered 500' }
      : okFor(call),
  );
  const resolved = await resolvePrefetch(keys, withServer(), fake.fhirFetch);
  t.same(resolved.unavailable, [
    {
      key: 'patient',
      description: { en: 'patient demographics', fr: 'identité' },
      code: 'http-error',
      reason: 'the FHIR server answered 500',
    },
    {
      key: 'encounter',
      description: { en: 'the encounter', fr: 'la venue' },
      code: 'unresolved-token',
      reason: 'the request gives no value for {{context.encounterId}}',
    },
  ]);
  t.same(resolved.data.patient, null);
  t.same(resolved.data.encounter, null);
  t.same(resolved.sources, { lesions: 'fetched' });
  t.same(
    fake.calls.map((c) => c.resultType),
    ['Bundle', 'Patient'],
    'the key whose token has no value is not fetched',
  );
});

t.test('no fhirServer: a missing fail key is a 412, not another error', async (t) => {
  const fake = fakeFetch();
  const error = await rejection(resolvePrefetch([LESIONS_KEY], patientView(), fake.fhirFetch));
  t.equal(fake.calls.length, 0);
  t.equal(error.code, 'CDS_ERR_PREFETCH_UNAVAILABLE');
  t.equal(error.status, 412);
  t.same(error.expression, ['prefetch.lesions']);
  t.equal(
    error.message,
    'Required data could not be obtained for prefetch key(s): lesions (not sent, and the request has no fhirServer)',
  );

  const omit = key('patient', 'Patient/{{context.patientId}}', 'omit');
  const resolved = await resolvePrefetch([omit], patientView({}), fake.fhirFetch);
  t.same(
    resolved.unavailable.map((u) => [u.key, u.code, u.reason]),
    [['patient', 'no-fhir-server', 'not sent, and the request has no fhirServer']],
  );
});

t.test('a fail key whose token has no value is a 412 without a fetch', async (t) => {
  const fake = fakeFetch();
  const encounter = key('encounter', 'Encounter/{{context.encounterId}}');
  const error = await rejection(resolvePrefetch([encounter], withServer(), fake.fhirFetch));
  t.equal(fake.calls.length, 0);
  t.equal(error.status, 412);
  t.match(error.message, /encounter \(the request gives no value for \{\{context\.encounterId\}\}\)/);
});

t.test('a sent value of the wrong resource type is CDS_ERR_PREFETCH_INVALID', async (t) => {
  const fake = fakeFetch();
  const read = await rejection(
    resolvePrefetch([PATIENT_KEY], withServer({ patient: searchset([PATIENT]) }), fake.fhirFetch),
  );
  t.equal(read.code, 'CDS_ERR_PREFETCH_INVALID');
  t.equal(read.status, 400);
  t.same(read.expression, ['prefetch.patient']);
  t.equal(read.message, 'Prefetch key "patient" holds a Bundle where its template returns a Patient');

  const search = await rejection(
    resolvePrefetch([LESIONS_KEY], withServer({ lesions: lesion() }), fake.fhirFetch),
  );
  t.equal(search.code, 'CDS_ERR_PREFETCH_INVALID');
  t.same(search.expression, ['prefetch.lesions']);
  t.match(
    search.message,
    /^Prefetch key "lesions" holds an? Observation where its template returns a Bundle$/,
  );
  t.equal(fake.calls.length, 0);
});

t.test('every key sent or some fetched: the same results, and the first invalid key named', async (t) => {
  // Every key sent takes the path without a promise per key; one key missing, the parallel one.
  const bothSent = withServer({ patient: PATIENT, lesions: null });
  const fake = fakeFetch();
  const sentOnly = await resolvePrefetch([PATIENT_KEY, LESIONS_KEY], bothSent, fake.fhirFetch);
  t.same(sentOnly.data, { patient: PATIENT, lesions: null });
  t.same(sentOnly.sources, { patient: 'prefetch', lesions: 'prefetch' });
  t.equal(fake.calls.length, 0);
  const mixed = await resolvePrefetch(
    [PATIENT_KEY, LESIONS_KEY],
    withServer({ patient: PATIENT }),
    fake.fhirFetch,
  );
  t.same(mixed.sources, { patient: 'prefetch', lesions: 'fetched' });
  t.equal(fake.calls.length, 1);
  // Two invalid keys: the first in the service's order is named, on either path.
  const twoInvalid = { patient: searchset([PATIENT]), lesions: lesion() };
  const allSent = await rejection(
    resolvePrefetch([LESIONS_KEY, PATIENT_KEY], withServer(twoInvalid), fake.fhirFetch),
  );
  t.same(allSent.expression, ['prefetch.lesions']);
  const withFetch = await rejection(
    resolvePrefetch(
      [key('other', 'Condition?patient={{context.patientId}}'), LESIONS_KEY, PATIENT_KEY],
      withServer(twoInvalid),
      fake.fhirFetch,
    ),
  );
  t.same(withFetch.expression, ['prefetch.lesions']);
  // A malformed sent value under `reject`: 400 naming it, on the path without promises too.
  const malformed = await rejection(
    resolvePrefetch(
      [PATIENT_KEY],
      withServer({ patient: { ...PATIENT, active: 'yes' } as unknown as Patient }),
      fake.fhirFetch,
    ),
  );
  t.equal(malformed.code, 'CDS_ERR_PREFETCH_MALFORMED');
  t.same(malformed.expression, ['prefetch.patient.active']);
});

t.test('keys the service did not declare are ignored', async (t) => {
  const fake = fakeFetch();
  const resolved = await resolvePrefetch(
    [PATIENT_KEY],
    withServer({ patient: PATIENT, other: OUTCOME, lesions: lesion() }),
    fake.fhirFetch,
  );
  t.same(Object.keys(resolved.data), ['patient']);
  t.equal(fake.calls.length, 0);
});

t.test('a service without prefetch keys resolves to nothing', async (t) => {
  const fake = fakeFetch();
  t.same(await resolvePrefetch([], patientView(), fake.fhirFetch), {
    data: {},
    unavailable: [],
    malformed: [],
    sources: {},
    fetchedRaw: [],
  });
});

t.test(
  'the bytes of each fetched key are kept in the order of the keys, for the hash of the inputs',
  async (t) => {
    const bytesOf = (text: string) => [Buffer.from(text)];
    const fake = fakeFetch((call) => ({
      ...okFor(call),
      raw: bytesOf(call.resultType === 'Bundle' ? 'lesions-bytes' : 'patient-bytes'),
    }));
    // The lesions' answer comes first: the order kept is the keys', not the answers'.
    const resolved = await resolvePrefetch([PATIENT_KEY, LESIONS_KEY], withServer(), async (...args) => {
      const result = await fake.fhirFetch(...args);
      if (args[2] === 'Patient') await new Promise((resolve) => setTimeout(resolve, 5));
      return result;
    });
    t.same(
      resolved.fetchedRaw.map((f) => [f.key, f.pages?.map((p) => Buffer.from(p).toString())]),
      [
        ['patient', ['patient-bytes']],
        ['lesions', ['lesions-bytes']],
      ],
    );
    const sent = await resolvePrefetch([PATIENT_KEY], withServer({ patient: PATIENT }), fake.fhirFetch);
    t.same(sent.fetchedRaw, [], 'a key sent in the request is in the body, not here');
    const noBytes = await resolvePrefetch([PATIENT_KEY], withServer(), fakeFetch().fhirFetch);
    t.same(noBytes.fetchedRaw, [{ key: 'patient', pages: null }], 'a fetcher without the bytes');
  },
);

/**
 * End to end: a prefetch key the CDS client did not send is fetched from its fhirServer (a loopback FHIR
 * server), and every way that can fail gives the key's policy: 412 for `fail`, a card that says what is
 * missing for `omit`. The token and the patient id never reach the logs.
 */
import { createHash } from 'node:crypto';
import { get } from 'node:http';
import type { Observation, Patient, Resource } from 'fhir/r4.js';
import type { LightMyRequestResponse } from 'fastify';
import t, { type Test } from 'tap';
import type { FhirAuthorization, HookRequest } from '../../src/cds-hooks.js';
import type { Config } from '../../src/config.js';
import { LESION, SYSTEM } from '../../src/codes.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { openStore } from '../../src/audit/store.js';
import { assertConforms, buildTestApp, tempDir, type TestApp, testSqliteWorker } from '../helpers/app.js';
import { type FhirServerOptions, type StartedFhirServer, startFhirServer } from '../helpers/fhir-server.js';
import { lesion, PATIENT_ID, patientView, searchset, triageCards } from '../helpers/hook-request.js';

const MELANOMA = '/cds-services/melanoma-lesion-triage';
const OMIT_DEMO = '/cds-services/omit-demo';
const TOKEN = 'tok-9f3e7c1a-fallback-secret';
const AUTH: FhirAuthorization = {
  access_token: TOKEN,
  token_type: 'Bearer',
  expires_in: 300,
  scope: 'patient/Observation.read patient/Patient.read',
  subject: 'explainable-cds',
  patient: PATIENT_ID,
};

/** Scores 5 on the weighted checklist: a referral card. */
const FOREARM = lesion({
  id: 'lesion-forearm',
  site: 'left forearm',
  date: '2026-11-20T10:00:00Z',
  items: { changeSize: true, irregularColour: true, inflammation: true },
});
/** Scores 1: a below-threshold card. */
const BACK = lesion({
  id: 'lesion-back',
  site: 'back',
  date: '2026-11-10T10:00:00Z',
  items: { oozing: true },
});
/** Older than 90 days: history, no card. */
const OLD = lesion({
  id: 'lesion-old',
  site: 'scalp',
  date: '2026-03-01T10:00:00Z',
  items: { changeSize: true },
});
/** Another patient's lesion: the search must not return it. */
const OTHER: Observation = {
  ...lesion({ id: 'lesion-other', site: 'neck', items: { changeSize: true, irregularShape: true } }),
  subject: { reference: 'Patient/someone-else' },
};
const PATIENT: Patient = { resourceType: 'Patient', id: PATIENT_ID, birthDate: '1960-05-01' };
const RESOURCES: Resource[] = [FOREARM, BACK, OLD, OTHER, PATIENT];

/** The melanoma service's `lesions` template rendered for PATIENT_ID, as the FHIR server receives it. */
const RENDERED_LESIONS =
  `/fhir/Observation?patient=${PATIENT_ID}&code=${SYSTEM.localObservation}|${LESION.panel}` +
  '&_sort=-date&_count=100';

async function fhirServer(t: Test, options: Partial<FhirServerOptions> = {}): Promise<StartedFhirServer> {
  const server = await startFhirServer({ resources: RESOURCES, token: TOKEN, ...options });
  t.teardown(() => server.close());
  return server;
}

async function testApp(t: Test, config: Partial<Config> = {}): Promise<TestApp> {
  const built = await buildTestApp(config);
  t.teardown(() => built.app.close());
  return built;
}

function post(app: TestApp, url: string, payload: HookRequest): Promise<LightMyRequestResponse> {
  return app.app.inject({ method: 'POST', url, payload });
}

/** With the fhirServer and its token, and the given prefetch (`undefined`: none sent). */
/**
 * The melanoma service's model inputs (patient, conditions, skin, consent) are sent as known-absent, so
 * each test is about the one key it leaves out (lesions) and the FHIR server sees one request.
 */
const MODEL_KEYS_ABSENT = { patient: null, conditions: null, skin: null, consent: null };

function withServer(server: string, prefetch?: HookRequest['prefetch']): HookRequest {
  return patientView({ ...MODEL_KEYS_ABSENT, ...prefetch }, { fhirServer: server, fhirAuthorization: AUTH });
}

function omitDemoWithServer(server: string, prefetch?: HookRequest['prefetch']): HookRequest {
  return patientView(prefetch, { fhirServer: server, fhirAuthorization: AUTH });
}

function noLeak(t: Test, built: TestApp, res?: LightMyRequestResponse): void {
  const logs = built.logText();
  t.ok(logs.length > 0, 'something was logged');
  t.notOk(logs.includes(TOKEN), 'the access token is not logged');
  t.notOk(logs.includes(PATIENT_ID), 'the patient id is not logged');
  if (res && res.statusCode !== 200) {
    t.notOk(res.body.includes(TOKEN), 'the error body does not hold the token');
    t.notOk(res.body.includes(PATIENT_ID), 'the error body does not name the patient');
  }
}

function hookAnswered(built: TestApp): Record<string, unknown> | undefined {
  return built.logs().find((l) => l.msg === 'hook answered');
}

/** Asserts a 412 OperationOutcome with CDS_ERR_PREFETCH_UNAVAILABLE naming the key. */
function expectUnavailable(t: Test, res: LightMyRequestResponse, key = 'lesions'): void {
  t.equal(res.statusCode, 412, 'status 412');
  t.match(res.headers['content-type'], /^application\/fhir\+json/);
  const body = res.json();
  assertConforms('OperationOutcome', body);
  const issue = body.issue[0];
  t.equal(issue.details.coding[0].code, 'CDS_ERR_PREFETCH_UNAVAILABLE');
  t.same(issue.expression, [`prefetch.${key}`]);
  t.match(
    issue.diagnostics,
    new RegExp(`^Required data could not be obtained for prefetch key\\(s\\): ${key} \\(`),
  );
}

interface CardDigest {
  summary: string;
  indicator: string;
  focus: string | undefined;
  scores: (number | undefined)[];
}

function digest(cards: Record<string, unknown>[]): CardDigest[] {
  return triageCards(cards).map((card) => {
    const explanation = (card.extension as Record<string, Record<string, unknown>>)[EXPLANATION_EXTENSION]!;
    return {
      summary: card.summary as string,
      indicator: card.indicator as string,
      focus: (explanation.focus as { reference?: string } | undefined)?.reference,
      scores: (explanation.rules as { score?: number }[]).map((r) => r.score),
    };
  });
}

t.test('a missing key is fetched from fhirServer: same cards as when it is sent', async (t) => {
  const server = await fhirServer(t);
  const fetched = await testApp(t);
  const res = await post(fetched, MELANOMA, withServer(server.url));
  t.equal(res.statusCode, 200);
  const body = res.json();
  assertConforms('HookResponse', body);

  t.equal(server.requests.length, 1, 'exactly one request to the FHIR server');
  const request = server.requests[0]!;
  t.equal(request.method, 'GET');
  t.equal(request.path, RENDERED_LESIONS);
  t.equal(request.authorization, `Bearer ${TOKEN}`);

  const sent = await testApp(t);
  const reference = await post(sent, MELANOMA, patientView({ lesions: searchset([FOREARM, BACK, OLD]) }));
  t.equal(reference.statusCode, 200);
  const expected = digest(reference.json().cards);
  t.same(expected, [
    {
      summary:
        'Lesion (left forearm): a 7-point checklist reaches the referral threshold; consider urgent dermatology referral',
      indicator: 'warning',
      focus: 'Observation/lesion-forearm',
      scores: [5, undefined],
    },
    {
      // One item of seven recorded: incomplete, not "below the threshold" (issue 14).
      summary:
        'Lesion (back): 7-point checklist incomplete, not recorded: Change in size, Irregular shape, Irregular colour, Largest diameter 7 mm or…',
      indicator: 'info',
      focus: 'Observation/lesion-back',
      scores: [1, undefined],
    },
  ]);
  t.same(digest(body.cards), expected, 'the fetched data gives the same cards');

  const answered = hookAnswered(fetched);
  t.ok(answered, "a 'hook answered' line");
  t.same(answered?.fetchedKeys, ['lesions']);
  t.same(answered?.unavailableKeys, []);
  t.same(hookAnswered(sent)?.fetchedKeys, [], 'nothing fetched when the key is sent');
  noLeak(t, fetched);
  noLeak(t, sent);
});

t.test('a key sent as null is known absent: no card, no request to the FHIR server', async (t) => {
  const server = await fhirServer(t);
  const built = await testApp(t);
  const res = await post(built, MELANOMA, withServer(server.url, { lesions: null }));
  t.equal(res.statusCode, 200);
  assertConforms('HookResponse', res.json());
  t.same(res.json(), { cards: [] });
  t.equal(server.requests.length, 0);
  t.same(hookAnswered(built)?.fetchedKeys, []);
  noLeak(t, built);
});

t.test('no prefetch and no fhirServer: 412 naming lesions', async (t) => {
  const built = await testApp(t);
  const res = await post(built, MELANOMA, patientView());
  expectUnavailable(t, res);
  t.match(res.json().issue[0].diagnostics, /lesions \(not sent, and the request has no fhirServer\)/);
  noLeak(t, built, res);
});

t.test('a FHIR server that rejects the token: 412', async (t) => {
  const server = await fhirServer(t, { token: 'another-token' });
  const built = await testApp(t);
  const res = await post(built, MELANOMA, withServer(server.url));
  expectUnavailable(t, res);
  t.match(res.json().issue[0].diagnostics, /lesions \(the FHIR server refused the access token\)/);
  t.notMatch(res.json().issue[0].diagnostics, /401/, 'the remote status is not echoed');
  t.equal(server.requests.length, 1);
  t.equal(server.requests[0]!.authorization, `Bearer ${TOKEN}`);
  noLeak(t, built, res);
});

t.test('a FHIR server that is down: 412', async (t) => {
  const server = await startFhirServer({ resources: RESOURCES });
  const url = server.url;
  await server.close();
  const built = await testApp(t, { fhirFetchTimeoutMs: 1000 });
  const start = performance.now();
  const res = await post(built, MELANOMA, withServer(url));
  const elapsed = performance.now() - start;
  expectUnavailable(t, res);
  t.ok(elapsed < 1000, `bounded (${elapsed.toFixed(0)} ms)`);
  noLeak(t, built, res);
});

t.test('a FHIR server slower than the deadline: 412 within a second', async (t) => {
  const server = await fhirServer(t, { delayMs: 2000 });
  const built = await testApp(t, { fhirFetchTimeoutMs: 200 });
  const start = performance.now();
  const res = await post(built, MELANOMA, withServer(server.url));
  const elapsed = performance.now() - start;
  expectUnavailable(t, res);
  t.match(res.json().issue[0].diagnostics, /lesions \(no answer within 200 ms\)/);
  t.ok(elapsed >= 180, `waited for the deadline (${elapsed.toFixed(0)} ms)`);
  t.ok(elapsed < 1000, `answered within a second (${elapsed.toFixed(0)} ms)`);
  noLeak(t, built, res);
});

t.test('a FHIR answer larger than fhirFetchMaxBytes: 412', async (t) => {
  const server = await fhirServer(t, { padBytes: 8192 });
  const built = await testApp(t, { fhirFetchMaxBytes: 4096 });
  const res = await post(built, MELANOMA, withServer(server.url));
  expectUnavailable(t, res);
  t.match(res.json().issue[0].diagnostics, /exceeds the size limit/);
  t.equal(server.requests.length, 1);
  noLeak(t, built, res);
});

t.test('a FHIR server error: 412', async (t) => {
  const server = await fhirServer(t, { failWith: 503 });
  const built = await testApp(t);
  const res = await post(built, MELANOMA, withServer(server.url));
  expectUnavailable(t, res);
  t.match(res.json().issue[0].diagnostics, /lesions \(the FHIR server answered with an error status\)/);
  t.notMatch(res.json().issue[0].diagnostics, /503/, 'the remote status is not echoed');
  noLeak(t, built, res);
});

t.test(
  'a prefetch value that is an OperationOutcome: 412 without a request to the FHIR server',
  async (t) => {
    const server = await fhirServer(t);
    const built = await testApp(t);
    const outcome = {
      resourceType: 'OperationOutcome' as const,
      issue: [{ severity: 'error' as const, code: 'timeout' as const }],
    };
    const res = await post(built, MELANOMA, withServer(server.url, { lesions: outcome }));
    expectUnavailable(t, res);
    t.match(res.json().issue[0].diagnostics, /lesions \(the CDS client reported an OperationOutcome\)/);
    t.equal(server.requests.length, 0, 'not retried');
    noLeak(t, built, res);
  },
);

t.test('omit policy: the card says which data was not available', async (t) => {
  const DATA_LINE = (reason: string) => `_Data not available_: patient demographics (${reason}).`;
  const outcome = {
    resourceType: 'OperationOutcome' as const,
    issue: [{ severity: 'error' as const, code: 'processing' as const }],
  };

  t.test('patient sent as an OperationOutcome', async (t) => {
    const built = await testApp(t, { servicesDir: 'test/fixtures/services' });
    const res = await post(
      built,
      OMIT_DEMO,
      patientView({ lesions: searchset([FOREARM]), patient: outcome }),
    );
    t.equal(res.statusCode, 200);
    const body = res.json();
    assertConforms('HookResponse', body);
    t.equal(body.cards.length, 1);
    const card = body.cards[0];
    t.equal(card.summary, 'Lesion (left forearm): the checklist reaches the referral threshold');
    t.ok(
      card.detail.split('\n').includes(DATA_LINE('the CDS client reported an OperationOutcome')),
      'the detail has the "Data not available" line',
    );
    t.same(card.extension[EXPLANATION_EXTENSION].unavailable, [
      {
        key: 'patient',
        description: { en: 'patient demographics', fr: 'données démographiques du patient' },
        reason: 'the CDS client reported an OperationOutcome',
      },
    ]);
    const answered = hookAnswered(built);
    t.same(answered?.unavailableKeys, ['patient']);
    t.same(answered?.fetchedKeys, []);
    noLeak(t, built);
  });

  t.test('patient fetched from a FHIR server that answers 500', async (t) => {
    const server = await fhirServer(t, { failWith: 500 });
    const built = await testApp(t, { servicesDir: 'test/fixtures/services' });
    const res = await post(
      built,
      OMIT_DEMO,
      omitDemoWithServer(server.url, { lesions: searchset([FOREARM]) }),
    );
    t.equal(res.statusCode, 200);
    const card = res.json().cards[0];
    t.ok(
      card.detail.split('\n').includes(DATA_LINE('the FHIR server answered with an error status')),
      card.detail,
    );
    t.same(
      card.extension[EXPLANATION_EXTENSION].unavailable.map((u: { key: string }) => u.key),
      ['patient'],
    );
    t.same(
      server.requests.map((r) => [r.path, r.authorization]),
      [[`/fhir/Patient/${PATIENT_ID}`, `Bearer ${TOKEN}`]],
    );
    t.same(hookAnswered(built)?.unavailableKeys, ['patient']);
    noLeak(t, built);
  });

  t.test('both keys fetched: nothing is reported missing', async (t) => {
    const server = await fhirServer(t);
    const built = await testApp(t, { servicesDir: 'test/fixtures/services' });
    const res = await post(built, OMIT_DEMO, omitDemoWithServer(server.url));
    t.equal(res.statusCode, 200);
    const cards = res.json().cards;
    // The back lesion records none of this checklist's three items: not evaluable, no card.
    t.same(
      cards.map((c: { summary: string }) => c.summary),
      ['Lesion (left forearm): the checklist reaches the referral threshold'],
    );
    for (const card of cards) {
      t.notMatch(card.detail, /Data not available/);
      t.same(card.extension[EXPLANATION_EXTENSION].unavailable, []);
    }
    t.equal(server.requests.length, 2, 'both keys fetched');
    t.same(hookAnswered(built)?.fetchedKeys, ['lesions', 'patient']);
    noLeak(t, built);
  });

  t.test('the fail key still answers 412 when the omit key is fine', async (t) => {
    const built = await testApp(t, { servicesDir: 'test/fixtures/services' });
    const res = await post(built, OMIT_DEMO, patientView({ lesions: outcome, patient: PATIENT }));
    expectUnavailable(t, res);
    noLeak(t, built, res);
  });
});

t.test(
  'the audit hashes the bytes as received: the request body, then each fetched page in order',
  async (t) => {
    const server = await fhirServer(t);
    const dataDir = tempDir();
    const built = await testApp(t, { dataDir });
    const body = JSON.stringify(withServer(server.url), null, 1);
    const res = await built.app.inject({
      method: 'POST',
      url: MELANOMA,
      headers: { 'content-type': 'application/json' },
      payload: body,
    });
    t.equal(res.statusCode, 200);
    t.equal(server.requests.length, 1, 'one page');
    // A site re-checking the record: the body it sent, then the pages as the server answers them
    // (one connection per request, as the service's own fetches: none is left open).
    const pages: Buffer[] = [];
    for (const request of [...server.requests]) {
      const origin = new URL(server.url).origin;
      pages.push(await getBytes(`${origin}${request.path}`, { authorization: `Bearer ${TOKEN}` }));
    }
    const expected = createHash('sha256');
    for (const part of [Buffer.from(body), ...pages]) expected.update(part);

    const store = await openStore({ dataDir }, { worker: testSqliteWorker });
    t.teardown(() => store.close());
    const [row] = await store.readChain(0, 10);
    const { inputs } = JSON.parse(row!.payload);
    t.same(inputs, {
      sha256: expected.digest('hex'),
      method: 'sha256-raw',
      fetched: ['lesions'],
      references: ['Observation/lesion-back', 'Observation/lesion-forearm', 'Observation/lesion-old'],
    });
    t.not(
      inputs.sha256,
      createHash('sha256').update(body).digest('hex'),
      'the fetched pages are part of the hash',
    );
  },
);

function getBytes(url: string, headers: Record<string, string>): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks)));
      res.on('error', reject);
    }).on('error', reject);
  });
}

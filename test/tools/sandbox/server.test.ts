import type {
  Bundle,
  Condition,
  MedicationRequest,
  Observation,
  OperationOutcome,
  Patient,
  Resource,
} from 'fhir/r4.js';
import t, { type Test } from 'tap';
import {
  type FhirServerOptions,
  type StartedFhirServer,
  startFhirServer,
} from '../../../tools/sandbox/server.js';

const LOINC = 'http://loinc.org';
const SNOMED = 'http://snomed.info/sct';
const RXNORM = 'http://www.nlm.nih.gov/research/umls/rxnorm';
const OBS_CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category';
const CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';

function patient(id: string): Patient {
  return { resourceType: 'Patient', id, gender: 'female', birthDate: '1970-01-01' };
}

function observation(
  id: string,
  patientId: string,
  code: string,
  category: string,
  effectiveDateTime: string,
  status: Observation['status'] = 'final',
): Observation {
  return {
    resourceType: 'Observation',
    id,
    status,
    category: [{ coding: [{ system: OBS_CATEGORY, code: category }] }],
    code: { coding: [{ system: LOINC, code }] },
    subject: { reference: `Patient/${patientId}` },
    effectiveDateTime,
  };
}

function condition(id: string, patientId: string, code: string, clinical: string, onset: string): Condition {
  return {
    resourceType: 'Condition',
    id,
    clinicalStatus: { coding: [{ system: CLINICAL, code: clinical }] },
    code: { coding: [{ system: SNOMED, code }] },
    subject: { reference: `Patient/${patientId}` },
    onsetDateTime: onset,
  };
}

function medicationRequest(
  id: string,
  patientId: string,
  code: string,
  status: MedicationRequest['status'],
  authoredOn: string,
): MedicationRequest {
  return {
    resourceType: 'MedicationRequest',
    id,
    status,
    intent: 'order',
    medicationCodeableConcept: { coding: [{ system: RXNORM, code }] },
    subject: { reference: `Patient/${patientId}` },
    authoredOn,
  };
}

const ldl = observation('obs-ldl', 'p2', '18262-6', 'laboratory', '2020-01-01', 'amended');
ldl.code.coding!.push({ system: SNOMED, code: '113079009' });

const RESOURCES: Resource[] = [
  patient('p1'),
  patient('p2'),
  observation('obs-a1c-1', 'p1', '4548-4', 'laboratory', '2020-01-15T10:00:00Z'),
  observation('obs-a1c-2', 'p1', '4548-4', 'laboratory', '2021-06-01T08:30:00Z'),
  observation('obs-a1c-3', 'p1', '4548-4', 'laboratory', '2022-03-10T09:00:00+02:00'),
  observation('obs-bp', 'p1', '85354-9', 'vital-signs', '2021-06-01T09:00:00Z'),
  ldl,
  observation('obs-p2-a1c', 'p2', '4548-4', 'laboratory', '2019-12-31T23:30:00Z', 'preliminary'),
  condition('cond-dm', 'p1', '44054006', 'active', '2015-05-01'),
  condition('cond-htn', 'p1', '38341003', 'resolved', '2010'),
  condition('cond-p2-dm', 'p2', '44054006', 'active', '2018-02-03T00:00:00Z'),
  medicationRequest('mr-metformin', 'p1', '860975', 'active', '2021-01-01'),
  medicationRequest('mr-lisinopril', 'p1', '314076', 'stopped', '2019-05-05'),
  medicationRequest('mr-p2-metformin', 'p2', '860975', 'active', '2020-07-07'),
];

async function start(t: Test, options: Partial<FhirServerOptions> = {}): Promise<StartedFhirServer> {
  const server = await startFhirServer({ resources: RESOURCES, ...options });
  t.teardown(() => server.close());
  return server;
}

interface Reply {
  status: number;
  contentType: string | null;
  text: string;
  body: Resource;
}

async function get(
  server: StartedFhirServer,
  path: string,
  headers: Record<string, string> = {},
): Promise<Reply> {
  const res = await fetch(`${server.url}/${path}`, {
    headers: { accept: 'application/fhir+json', ...headers },
  });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    text,
    body: JSON.parse(text) as Resource,
  };
}

/** Ids of a search result, in Bundle order. */
async function ids(server: StartedFhirServer, path: string): Promise<string[]> {
  const res = await get(server, path);
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status} ${res.text}`);
  return ((res.body as Bundle).entry ?? []).map((e) => e.resource!.id!);
}

function issueOf(body: Resource): string | undefined {
  return (body as OperationOutcome).issue?.[0]?.code;
}

t.test('read, metadata and unknown routes', async (t) => {
  const server = await start(t);
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/fhir$/);

  const hit = await get(server, 'Patient/p1');
  t.equal(hit.status, 200);
  t.equal(hit.contentType, 'application/fhir+json');
  t.same(hit.body, patient('p1'));

  const miss = await get(server, 'Patient/nope');
  t.equal(miss.status, 404);
  t.equal(miss.body.resourceType, 'OperationOutcome');
  t.equal(issueOf(miss.body), 'not-found');

  const metadata = await get(server, 'metadata');
  t.equal(metadata.status, 200);
  t.equal(metadata.body.resourceType, 'CapabilityStatement');

  t.equal((await get(server, 'Frobnicator/1')).status, 404, 'unknown type read');
  t.equal((await get(server, 'Frobnicator?patient=p1')).status, 404, 'unknown type search');
  t.equal((await get(server, 'Patient/p1/_history')).status, 404);
  const other = await fetch(server.url.replace(/\/fhir$/, '/other'));
  t.equal(other.status, 404);
  t.equal(((await other.json()) as Resource).resourceType, 'OperationOutcome');
  const post = await fetch(`${server.url}/Patient`, { method: 'POST', body: '{}' });
  t.equal(post.status, 405, 'read-only: no create');
  t.equal(post.headers.get('allow'), 'GET, POST, OPTIONS');
  t.match(await post.json(), { resourceType: 'OperationOutcome', issue: [{ code: 'not-supported' }] });
  const del = await fetch(`${server.url}/Patient/p1`, { method: 'DELETE' });
  t.equal(del.status, 405);
  await del.text();

  const empty = await get(server, 'AllergyIntolerance?patient=p1');
  t.equal(empty.status, 200, 'a known type without data searches to an empty Bundle');
  t.equal((empty.body as Bundle).total, 0);
  t.same((empty.body as Bundle).entry, []);
});

t.test('search Bundle shape and patient / subject', async (t) => {
  const server = await start(t);
  const res = await get(server, 'Observation?patient=p2');
  const bundle = res.body as Bundle;
  t.equal(res.status, 200);
  t.equal(bundle.type, 'searchset');
  t.equal(bundle.total, 2);
  t.same(bundle.link, [{ relation: 'self', url: `${server.url}/Observation?patient=p2` }]);
  t.same(
    bundle.entry!.map((e) => [e.fullUrl, e.search?.mode]),
    [
      [`${server.url}/Observation/obs-ldl`, 'match'],
      [`${server.url}/Observation/obs-p2-a1c`, 'match'],
    ],
  );
  t.same(bundle.entry![0]!.resource, ldl);

  t.same(await ids(server, 'Observation?patient=Patient/p2'), ['obs-ldl', 'obs-p2-a1c']);
  t.same(await ids(server, 'Observation?subject=Patient%2Fp2'), ['obs-ldl', 'obs-p2-a1c']);
  t.same(await ids(server, 'MedicationRequest?subject=p2'), ['mr-p2-metformin']);
  t.same(await ids(server, 'Condition?patient=p1,p2'), ['cond-dm', 'cond-htn', 'cond-p2-dm']);
  t.same(await ids(server, 'Condition?patient=p3'), []);
  t.same(
    await ids(server, 'Observation'),
    RESOURCES.filter((r) => r.resourceType === 'Observation').map((r) => r.id),
  );
});

t.test('code token', async (t) => {
  const server = await start(t);
  t.same(await ids(server, 'Observation?code=4548-4'), ['obs-a1c-1', 'obs-a1c-2', 'obs-a1c-3', 'obs-p2-a1c']);
  t.same(await ids(server, 'Observation?patient=p1&code=http://loinc.org|4548-4'), [
    'obs-a1c-1',
    'obs-a1c-2',
    'obs-a1c-3',
  ]);
  t.same(
    await ids(
      server,
      'Observation?patient=p1&code=http%3A%2F%2Floinc.org%7C85354-9,http://loinc.org|18262-6',
    ),
    ['obs-bp'],
  );
  t.same(
    await ids(server, 'Observation?code=http://snomed.info/sct|'),
    ['obs-ldl'],
    'system| matches any code',
  );
  t.same(await ids(server, 'Observation?code=http://snomed.info/sct|4548-4'), [], 'system must match');
  t.same(await ids(server, 'Observation?code=|4548-4'), [], '|code matches only codings without system');
  t.same(await ids(server, 'MedicationRequest?code=http://www.nlm.nih.gov/research/umls/rxnorm|860975'), [
    'mr-metformin',
    'mr-p2-metformin',
  ]);
  t.same(await ids(server, 'Condition?code=44054006&patient=p2'), ['cond-p2-dm']);
  t.same(await ids(server, 'Observation?code=4548-4&code=85354-9'), [], 'repeated parameters AND together');
});

t.test('category, clinical-status and status', async (t) => {
  const server = await start(t);
  t.same(await ids(server, 'Observation?patient=p1&category=vital-signs'), ['obs-bp']);
  t.same(await ids(server, `Observation?patient=p2&category=${OBS_CATEGORY}|laboratory`), [
    'obs-ldl',
    'obs-p2-a1c',
  ]);
  t.same(await ids(server, 'Observation?patient=p1&category=vital-signs,exam'), ['obs-bp']);
  t.same(await ids(server, 'Observation?category=laboratory&category=vital-signs'), []);

  t.same(await ids(server, 'Condition?clinical-status=active'), ['cond-dm', 'cond-p2-dm']);
  t.same(await ids(server, `Condition?clinical-status=${CLINICAL}|resolved`), ['cond-htn']);
  t.same(await ids(server, 'Condition?clinical-status=active,resolved&patient=p1'), ['cond-dm', 'cond-htn']);

  t.same(await ids(server, 'MedicationRequest?patient=p1&status=active'), ['mr-metformin']);
  t.same(await ids(server, 'MedicationRequest?status=stopped,active&patient=p1'), [
    'mr-metformin',
    'mr-lisinopril',
  ]);
  t.same(await ids(server, 'Observation?status=amended'), ['obs-ldl']);
  t.same(await ids(server, 'Observation?status=Final'), [], 'status is an exact match');
});

t.test('date prefixes', async (t) => {
  const server = await start(t);
  t.same(
    await ids(server, 'Observation?date=2021-06-01'),
    ['obs-a1c-2', 'obs-bp'],
    'a day covers its instants',
  );
  t.same(await ids(server, 'Observation?date=eq2021-06'), ['obs-a1c-2', 'obs-bp']);
  t.same(await ids(server, 'Observation?date=eq2021-06-01T08:30:00Z'), ['obs-a1c-2'], 'an instant');
  t.same(
    await ids(server, 'Observation?date=2022-03-10T07:00:00Z'),
    ['obs-a1c-3'],
    'time zones compare by instant',
  );
  t.same(await ids(server, 'Observation?date=ge2021-06-01'), ['obs-a1c-2', 'obs-a1c-3', 'obs-bp']);
  t.same(await ids(server, 'Observation?date=gt2021-06-01'), ['obs-a1c-3']);
  t.same(await ids(server, 'Observation?date=gt2021-06-01T08:30:00Z'), ['obs-a1c-3', 'obs-bp']);
  t.same(await ids(server, 'Observation?date=lt2020-01-01'), ['obs-p2-a1c']);
  t.same(await ids(server, 'Observation?date=le2020-01-01'), ['obs-ldl', 'obs-p2-a1c']);
  t.same(await ids(server, 'Observation?date=ge2020-01-01&date=lt2021-01-01'), ['obs-a1c-1', 'obs-ldl']);
  t.same(
    await ids(server, 'Observation?date=ge2022-03-10T09:00:00+02:00'),
    ['obs-a1c-3'],
    'an unencoded + of an offset (decoded as a space) still works',
  );
  t.same(await ids(server, 'Observation?date=ge2022-03-10T09:00:00%2B02:00'), ['obs-a1c-3']);
  t.same(await ids(server, 'Condition?onset-date=lt2012'), ['cond-htn'], 'onsetDateTime');
  t.same(await ids(server, 'MedicationRequest?authoredon=ge2021'), ['mr-metformin'], 'authoredOn');
  t.equal((await get(server, 'Patient?date=ge1900')).status, 400, 'Patient has no date parameter');
  t.equal((await get(server, 'Condition?date=lt2012')).status, 400, 'R4 names: Condition has onset-date');

  for (const bad of [
    'xx2020-01-01',
    '2020-13-01',
    '2021-02-30',
    '2020-01-01T25:00:00Z',
    'yesterday',
    '2020-1-1',
  ]) {
    const res = await get(server, `Observation?date=${bad}`);
    t.equal(res.status, 400, bad);
    t.equal(issueOf(res.body), 'invalid');
  }
  const ap = await get(server, 'Observation?date=ap2020-01-01');
  t.equal(ap.status, 400);
  t.equal(issueOf(ap.body), 'not-supported', 'the approximate prefix is refused, not guessed');
});

t.test('_sort, _count and paging', async (t) => {
  const server = await start(t, { pageSize: 2 });

  const latest = await get(server, 'Observation?patient=p1&code=4548-4&_sort=-date&_count=1');
  const bundle = latest.body as Bundle;
  t.same(
    bundle.entry!.map((e) => e.resource!.id),
    ['obs-a1c-3'],
  );
  t.equal(bundle.total, 3);
  t.equal(
    bundle.link!.find((l) => l.relation === 'next')?.url,
    `${server.url}/Observation?patient=p1&code=4548-4&_sort=-date&_count=1&_offset=1`,
  );

  t.same(await ids(server, 'Observation?patient=p1&_sort=date&_count=10'), [
    'obs-a1c-1',
    'obs-a1c-2',
    'obs-bp',
    'obs-a1c-3',
  ]);
  t.same(await ids(server, 'Condition?_sort=-onset-date&_count=10'), ['cond-p2-dm', 'cond-dm', 'cond-htn']);
  t.same(await ids(server, 'Observation?_sort=date&_offset=5'), ['obs-a1c-3']);
  const countOnly = (await get(server, 'Observation?_count=0')).body as Bundle;
  t.equal(countOnly.total, 6);
  t.same(countOnly.entry, []);
  t.notOk(
    countOnly.link!.some((l) => l.relation === 'next'),
    '_count=0 has no next page',
  );

  // Follow next links with the server's default page size of 2.
  const seen: string[] = [];
  let next: string | undefined = `${server.url}/Observation?_sort=date`;
  let pages = 0;
  while (next) {
    const res = await fetch(next);
    t.equal(res.status, 200);
    const page = (await res.json()) as Bundle;
    t.equal(page.total, 6);
    t.ok((page.entry ?? []).length <= 2);
    seen.push(...(page.entry ?? []).map((e) => e.resource!.id!));
    next = page.link?.find((l) => l.relation === 'next')?.url;
    if (next) t.ok(next.startsWith(`${server.url}/Observation?`), 'next link is absolute on this server');
    pages++;
  }
  t.equal(pages, 3);
  t.same(seen, ['obs-p2-a1c', 'obs-ldl', 'obs-a1c-1', 'obs-a1c-2', 'obs-bp', 'obs-a1c-3']);
  t.equal(new Set(seen).size, seen.length, 'no duplicates');

  t.equal((await get(server, 'Observation?_sort=code')).status, 400);
  t.equal((await get(server, 'Observation?_count=-1')).status, 400);
  t.equal((await get(server, 'Observation?_offset=x')).status, 400);
});

t.test('bearer token', async (t) => {
  const server = await start(t, { token: 'secret-token' });
  const none = await get(server, 'Patient/p1');
  t.equal(none.status, 401);
  t.equal(none.body.resourceType, 'OperationOutcome');
  t.equal(issueOf(none.body), 'login');
  t.equal((await get(server, 'Patient/p1', { authorization: 'Bearer wrong' })).status, 401);
  t.equal(
    (await get(server, 'Patient/p1', { authorization: 'secret-token' })).status,
    401,
    'scheme required',
  );
  t.equal((await get(server, 'metadata')).status, 401, 'every request, metadata too');
  const ok = await get(server, 'Patient/p1', { authorization: 'Bearer secret-token' });
  t.equal(ok.status, 200);
  t.same(ok.body, patient('p1'));

  t.same(
    server.requests.map((r) => r.authorization),
    [undefined, 'Bearer wrong', 'secret-token', undefined, 'Bearer secret-token'],
  );
  t.same(server.requests.at(-1), {
    method: 'GET',
    path: '/fhir/Patient/p1',
    authorization: 'Bearer secret-token',
    accept: 'application/fhir+json',
  });
});

t.test('requests are recorded with path and query', async (t) => {
  const server = await start(t);
  await get(server, 'Observation?patient=p1&code=http://loinc.org|4548-4');
  await get(server, 'Nope');
  t.same(
    server.requests.map((r) => [r.method, r.path]),
    [
      ['GET', '/fhir/Observation?patient=p1&code=http://loinc.org|4548-4'],
      ['GET', '/fhir/Nope'],
    ],
  );
});

t.test('delayMs delays every response', async (t) => {
  const fast = await start(t);
  const slow = await start(t, { delayMs: 150 });
  const t0 = performance.now();
  await get(fast, 'Patient/p1');
  const fastMs = performance.now() - t0;
  const t1 = performance.now();
  t.equal((await get(slow, 'Patient/p1')).status, 200);
  const slowMs = performance.now() - t1;
  t.ok(slowMs >= 140, `delayed by ${Math.round(slowMs)} ms`);
  t.ok(slowMs > fastMs + 100, `slower than the undelayed server (${Math.round(fastMs)} ms)`);
});

t.test('close() does not wait for delayed responses', async (t) => {
  const server = await startFhirServer({ resources: RESOURCES, delayMs: 10_000 });
  const pending = fetch(`${server.url}/Patient/p1`);
  while (server.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  const t0 = performance.now();
  await server.close();
  await t.rejects(pending);
  t.ok(performance.now() - t0 < 1000);
});

t.test('padBytes enlarges every response and keeps it parseable', async (t) => {
  const plain = await start(t);
  const padded = await start(t, { padBytes: 50_000 });
  for (const path of ['Patient/p1', 'Observation?patient=p1', 'Patient/nope']) {
    const a = await get(plain, path);
    const b = await get(padded, path);
    t.equal(b.status, a.status, path);
    t.ok(Buffer.byteLength(b.text) >= Buffer.byteLength(a.text) + 50_000, path);
    t.same(
      // fullUrls differ only by port
      JSON.parse(b.text.replaceAll(padded.url, 'BASE')),
      JSON.parse(a.text.replaceAll(plain.url, 'BASE')),
    );
  }
});

t.test('failWith answers every request with that status', async (t) => {
  const server = await start(t, { failWith: 503, token: 'x' });
  for (const path of ['Patient/p1', 'Observation?patient=p1', 'metadata', 'Nope/1']) {
    const res = await get(server, path, { authorization: 'Bearer x' });
    t.equal(res.status, 503, path);
    t.equal(res.body.resourceType, 'OperationOutcome');
  }
});

t.test('unsupported search parameters and values are 400', async (t) => {
  const server = await start(t);
  for (const path of [
    'Observation?patient=p1&_include=Observation:subject',
    'Observation?code:text=glucose',
    'Observation?value-quantity=gt5',
    'Observation?patient=',
    'Observation?code=4548-4,',
    'Patient?name=smith',
    'Patient?constructor=x',
  ]) {
    const res = await get(server, path);
    t.equal(res.status, 400, path);
    t.equal(res.body.resourceType, 'OperationOutcome', path);
  }
  t.match((await get(server, 'Observation?value-quantity=gt5')).body, {
    issue: [{ code: 'not-supported', diagnostics: /value-quantity/ }],
  });
});

t.test('rejects resources without id and duplicates', async (t) => {
  await t.rejects(startFhirServer({ resources: [{ resourceType: 'Patient' }] }), /no id/);
  await t.rejects(
    startFhirServer({ resources: [patient('a'), patient('a')] }),
    /duplicate resource Patient\/a/,
  );
});

const FORM = 'application/x-www-form-urlencoded';

async function postSearch(
  server: StartedFhirServer,
  path: string,
  body: string,
  headers: Record<string, string> = { 'content-type': FORM },
): Promise<Reply> {
  const res = await fetch(`${server.url}/${path}`, { method: 'POST', headers, body });
  const text = await res.text();
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    text,
    body: JSON.parse(text) as Resource,
  };
}

t.test('POST <Type>/_search with a form-encoded body searches like GET', async (t) => {
  const server = await start(t);
  const query = 'patient=p1&code=http%3A%2F%2Floinc.org%7C4548-4&_sort=-date&_count=2';
  const viaGet = await get(server, `Observation?${query}`);
  const viaPost = await postSearch(server, 'Observation/_search', query);
  t.equal(viaPost.status, 200);
  t.equal(viaPost.contentType, 'application/fhir+json');
  t.same(viaPost.body, viaGet.body, 'same Bundle, links included (they are GET URLs)');
  t.same(
    (viaPost.body as Bundle).entry!.map((e) => e.resource!.id),
    ['obs-a1c-3', 'obs-a1c-2'],
  );

  // Parameters of the URL and of the body both count (AND).
  t.same(
    ((await postSearch(server, 'Observation/_search?patient=p1', 'code=85354-9')).body as Bundle).entry!.map(
      (e) => e.resource!.id,
    ),
    ['obs-bp'],
  );
  const charset = await postSearch(server, 'Condition/_search', 'patient=p2', {
    'content-type': `${FORM}; charset=UTF-8`,
  });
  t.same(
    (charset.body as Bundle).entry!.map((e) => e.resource!.id),
    ['cond-p2-dm'],
  );
  const empty = await postSearch(server, 'Patient/_search', '');
  t.equal((empty.body as Bundle).total, 2, 'an empty form searches everything');

  const json = await postSearch(server, 'Observation/_search', '{"patient":"p1"}', {
    'content-type': 'application/json',
  });
  t.equal(json.status, 415);
  t.match(json.body, {
    issue: [{ code: 'not-supported', diagnostics: /application\/x-www-form-urlencoded/ }],
  });
  const none = await fetch(`${server.url}/Observation/_search`, { method: 'POST' });
  t.equal(none.status, 415, 'no Content-Type');
  await none.text();
  t.equal((await postSearch(server, 'Observation/_search', 'value-quantity=gt5')).status, 400);
  t.equal((await postSearch(server, 'Frobnicator/_search', 'patient=p1')).status, 404);
  const huge = await postSearch(server, 'Observation/_search', `patient=${'p'.repeat(70_000)}`);
  t.equal(huge.status, 413);
  t.equal(issueOf(huge.body), 'too-costly');

  t.same(
    server.requests.slice(0, 3).map((r) => [r.method, r.path, r.body]),
    [
      ['GET', `/fhir/Observation?${query}`, undefined],
      ['POST', '/fhir/Observation/_search', query],
      ['POST', '/fhir/Observation/_search?patient=p1', 'code=85354-9'],
    ],
  );
});

t.test('POST _search needs the bearer token too', async (t) => {
  const server = await start(t, { token: 'tok' });
  t.equal((await postSearch(server, 'Patient/_search', '')).status, 401);
  const ok = await postSearch(server, 'Patient/_search', '_id=p2', {
    'content-type': FORM,
    authorization: 'Bearer tok',
  });
  t.equal(ok.status, 200);
  t.equal((ok.body as Bundle).total, 1);
});

const SANDBOX_ORIGIN = 'https://sandbox.cds-hooks.org';

function preflight(server: StartedFhirServer, path: string, headers: Record<string, string>) {
  return fetch(`${server.url}/${path}`, { method: 'OPTIONS', headers });
}

t.test('CORS with a list of origins: preflight and answers for a listed origin only', async (t) => {
  const server = await start(t, { corsOrigins: [SANDBOX_ORIGIN], token: 'tok' });
  const asked = {
    origin: SANDBOX_ORIGIN,
    'access-control-request-method': 'POST',
    'access-control-request-headers': 'authorization,content-type',
  };
  const pre = await preflight(server, 'Observation/_search', asked);
  t.equal(pre.status, 204, 'a preflight needs no token');
  t.equal(await pre.text(), '');
  t.equal(pre.headers.get('access-control-allow-origin'), SANDBOX_ORIGIN);
  t.equal(pre.headers.get('access-control-allow-methods'), 'GET, POST, OPTIONS');
  t.match(pre.headers.get('access-control-allow-headers'), /\bauthorization\b.*\bcontent-type\b/);
  t.equal(pre.headers.get('access-control-max-age'), '600');
  t.equal(pre.headers.get('vary'), 'Origin');
  t.equal(pre.headers.get('access-control-allow-private-network'), null);

  const pna = await preflight(server, 'Patient/p1', {
    ...asked,
    'access-control-request-method': 'GET',
    'access-control-request-private-network': 'true',
  });
  t.equal(pna.status, 204);
  t.equal(
    pna.headers.get('access-control-allow-private-network'),
    'true',
    "Chromium's private network access",
  );

  const foreign = await preflight(server, 'Observation/_search', {
    ...asked,
    origin: 'https://evil.example.com',
  });
  t.equal(foreign.status, 403);
  t.equal(foreign.headers.get('access-control-allow-origin'), null);
  t.match(await foreign.json(), {
    issue: [{ code: 'forbidden', diagnostics: /https:\/\/evil\.example\.com/ }],
  });

  const plain = await preflight(server, 'Patient/p1', {});
  t.equal(plain.status, 204, 'OPTIONS without a preflight says what is allowed');
  t.equal(plain.headers.get('allow'), 'GET, POST, OPTIONS');

  const read = await get(server, 'Patient/p1', { origin: SANDBOX_ORIGIN, authorization: 'Bearer tok' });
  t.equal(read.status, 200);
  const readHeaders = await fetch(`${server.url}/Patient/p1`, {
    headers: { origin: SANDBOX_ORIGIN, authorization: 'Bearer tok' },
  });
  t.equal(readHeaders.headers.get('access-control-allow-origin'), SANDBOX_ORIGIN);
  t.equal(readHeaders.headers.get('vary'), 'Origin');
  await readHeaders.text();
  const refused = await fetch(`${server.url}/Patient/p1`, { headers: { origin: SANDBOX_ORIGIN } });
  t.equal(refused.status, 401);
  t.equal(refused.headers.get('access-control-allow-origin'), SANDBOX_ORIGIN, 'errors are readable too');
  t.equal(refused.headers.get('access-control-expose-headers'), 'WWW-Authenticate');
  await refused.text();
  const other = await fetch(`${server.url}/Patient/p1`, {
    headers: { origin: 'https://evil.example.com', authorization: 'Bearer tok' },
  });
  t.equal(other.status, 200, 'served (CORS is enforced by the browser)…');
  t.equal(other.headers.get('access-control-allow-origin'), null, '…without the header a browser needs');
  await other.text();
  t.same(server.requests.map((r) => [r.method, r.origin]).slice(0, 2), [
    ['OPTIONS', SANDBOX_ORIGIN],
    ['OPTIONS', SANDBOX_ORIGIN],
  ]);
});

t.test('CORS with * allows any origin; without corsOrigins there is no CORS header', async (t) => {
  const open = await start(t, { corsOrigins: ['*'] });
  const pre = await preflight(open, 'Observation/_search', {
    origin: 'http://localhost:8080',
    'access-control-request-method': 'POST',
  });
  t.equal(pre.status, 204);
  t.equal(pre.headers.get('access-control-allow-origin'), '*');
  t.equal(pre.headers.get('vary'), null);
  const read = await fetch(`${open.url}/Patient/p1`, { headers: { origin: 'http://localhost:8080' } });
  t.equal(read.headers.get('access-control-allow-origin'), '*');
  await read.text();

  const closed = await start(t);
  const refused = await preflight(closed, 'Patient/p1', {
    origin: 'http://localhost:8080',
    'access-control-request-method': 'GET',
  });
  t.equal(refused.status, 403);
  t.equal(refused.headers.get('access-control-allow-origin'), null);
  await refused.text();
  const plain = await fetch(`${closed.url}/Patient/p1`, { headers: { origin: 'http://localhost:8080' } });
  t.equal(plain.status, 200);
  t.equal(plain.headers.get('access-control-allow-origin'), null);
  await plain.text();
});

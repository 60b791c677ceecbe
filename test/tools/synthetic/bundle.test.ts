import type { Bundle, Condition, Observation, Patient } from 'fhir/r4.js';
import t from 'tap';
import {
  byType,
  patientOf,
  referenceTo,
  resourcesOf,
  searchset,
  toServerForm,
} from '../../../tools/synthetic/bundle.js';
import { generatePatient } from '../../../tools/synthetic/patients.js';
import { createRng } from '../../../tools/synthetic/random.js';

const NOW = new Date('2026-01-01T00:00:00Z');
const generated = generatePatient(createRng(11), {
  now: NOW,
  kneeOa: true,
  lesions: 1,
  objection: true,
  medications: { naproxen: 'active' },
});

/** Every string `reference` anywhere in a value. */
function referencesIn(value: unknown, found: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) referencesIn(v, found);
  else if (value !== null && typeof value === 'object') {
    for (const [key, v] of Object.entries(value)) {
      if (key === 'reference' && typeof v === 'string') found.push(v);
      else referencesIn(v, found);
    }
  }
  return found;
}

const handMade: Bundle = {
  resourceType: 'Bundle',
  type: 'transaction',
  entry: [
    {
      fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000001',
      resource: { resourceType: 'Patient' } as Patient,
      request: { method: 'POST', url: 'Patient' },
    },
    {
      fullUrl: 'http://other.example/fhir/Practitioner/dr1',
      resource: { resourceType: 'Practitioner', id: 'dr1' },
      request: { method: 'POST', url: 'Practitioner' },
    },
    {
      fullUrl: 'urn:uuid:00000000-0000-4000-8000-000000000002',
      resource: {
        resourceType: 'Observation',
        id: 'obs-1',
        status: 'final',
        code: { text: 'x' },
        subject: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000001' },
        performer: [
          { reference: 'http://other.example/fhir/Practitioner/dr1' },
          { reference: 'urn:uuid:99999999-0000-4000-8000-000000000000' },
        ],
        contained: [
          {
            resourceType: 'Observation',
            id: 'inner',
            status: 'final',
            code: { text: 'y' },
            subject: { reference: 'urn:uuid:00000000-0000-4000-8000-000000000001' },
          } as Observation,
        ],
        hasMember: [{ reference: '#inner' }],
      } as Observation,
      request: { method: 'POST', url: 'Observation' },
    },
    { request: { method: 'DELETE', url: 'Observation/old' } },
  ],
};

t.test('resourcesOf, byType and patientOf list what a bundle holds', async (t) => {
  t.equal(resourcesOf(generated).length, generated.entry!.length);
  t.equal(resourcesOf(handMade).length, 3, 'entries without a resource are skipped');
  t.same(resourcesOf({ resourceType: 'Bundle', type: 'collection' }), []);
  const observations = byType(generated, 'Observation');
  t.ok(observations.length > 5);
  t.ok(observations.every((o) => o.resourceType === 'Observation'));
  t.equal(observations[0]!.status, 'final', 'the result is typed as Observation');
  t.same(byType(resourcesOf(generated), 'Consent').length, 1, 'works on a resource list too');
  t.same(byType(generated, 'Encounter'), []);
  t.equal(patientOf(generated).resourceType, 'Patient');
  t.throws(
    () => patientOf({ resourceType: 'Bundle', type: 'collection' }),
    new Error('expected exactly one Patient in the bundle, found 0'),
  );
  const two: Bundle = {
    resourceType: 'Bundle',
    type: 'collection',
    entry: [
      { resource: { resourceType: 'Patient', id: 'a' } },
      { resource: { resourceType: 'Patient', id: 'b' } },
    ],
  };
  t.throws(() => patientOf(two), new Error('expected exactly one Patient in the bundle, found 2'));
  t.equal(referenceTo({ resourceType: 'Patient', id: 'p1' }), 'Patient/p1');
  t.throws(() => referenceTo({ resourceType: 'Patient' }), new Error('Patient has no id'));
});

t.test('toServerForm rewrites urn:uuid references to Type/id and requests to PUT', async (t) => {
  const before = JSON.stringify(generated);
  const server = toServerForm(generated);
  t.equal(JSON.stringify(generated), before, 'the input is not mutated');
  t.notOk(JSON.stringify(server).includes('urn:uuid:'), 'no urn:uuid left anywhere');
  const patient = patientOf(server);
  t.equal(patient.id, patientOf(generated).id, 'ids are kept');
  const refs = referencesIn(resourcesOf(server));
  t.ok(refs.length > 5);
  t.ok(
    refs.every((ref) => ref === `Patient/${patient.id}`),
    'every reference points at Patient/<id>',
  );
  t.equal(byType(server, 'Consent')[0]!.patient!.reference, `Patient/${patient.id}`, 'Consent.patient too');
  for (const entry of server.entry!) {
    t.same(entry.request, { method: 'PUT', url: referenceTo(entry.resource!) });
    t.notOk('fullUrl' in entry, 'no relative fullUrl in a transaction');
  }
  t.equal(server.type, 'transaction');

  const absolute = toServerForm(generated, { baseUrl: 'https://fhir.example.org/r4/' });
  t.same(
    absolute.entry!.map((e) => e.fullUrl),
    resourcesOf(generated).map((r) => `https://fhir.example.org/r4/${r.resourceType}/${r.id}`),
    'fullUrl is absolute with baseUrl (trailing slash trimmed)',
  );
});

t.test(
  'toServerForm handles ids from fullUrl, absolute fullUrls, contained resources and unknown targets',
  async (t) => {
    const server = toServerForm(handMade);
    const [patient, practitioner, observation, deletion] = server.entry!;
    t.equal(
      patient!.resource!.id,
      '00000000-0000-4000-8000-000000000001',
      'id taken from the urn:uuid fullUrl',
    );
    t.same(patient!.request, { method: 'PUT', url: 'Patient/00000000-0000-4000-8000-000000000001' });
    t.same(practitioner!.request, { method: 'PUT', url: 'Practitioner/dr1' });
    const obs = observation!.resource as Observation;
    t.equal(obs.subject!.reference, 'Patient/00000000-0000-4000-8000-000000000001');
    t.same(
      obs.performer!.map((p) => p.reference),
      ['Practitioner/dr1', 'urn:uuid:99999999-0000-4000-8000-000000000000'],
      'an absolute fullUrl is rewritten; a reference to nothing in the bundle is left as it is',
    );
    t.equal(
      (obs.contained![0] as Observation).subject!.reference,
      'Patient/00000000-0000-4000-8000-000000000001',
      'references inside contained resources are rewritten',
    );
    t.equal(obs.hasMember![0]!.reference, '#inner', 'local references are left alone');
    t.same(
      deletion,
      { request: { method: 'DELETE', url: 'Observation/old' } },
      'entries without a resource are kept',
    );
    t.notOk((handMade.entry![0]!.resource as Patient).id, 'the input keeps its missing id');

    const collection = toServerForm({
      resourceType: 'Bundle',
      type: 'collection',
      entry: [{ fullUrl: 'urn:uuid:abc', resource: { resourceType: 'Patient', id: 'abc' } }],
    });
    t.same(
      collection.entry,
      [{ resource: { resourceType: 'Patient', id: 'abc' } }],
      'no request is invented',
    );
    t.same(toServerForm({ resourceType: 'Bundle', type: 'collection' }), {
      resourceType: 'Bundle',
      type: 'collection',
    });
  },
);

t.test('toServerForm refuses resources it cannot identify', async (t) => {
  t.throws(
    () =>
      toServerForm({
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [{ fullUrl: 'http://x/Patient/1', resource: { resourceType: 'Patient' } }],
      }),
    new Error('entry 0 (Patient) has no id and no urn:uuid fullUrl'),
  );
  t.throws(
    () =>
      toServerForm({
        resourceType: 'Bundle',
        type: 'collection',
        entry: [
          { resource: { resourceType: 'Patient', id: 'p' } },
          { resource: { resourceType: 'Patient', id: 'p' } },
        ],
      }),
    new Error('duplicate resource Patient/p (entry 1)'),
  );
});

t.test('searchset builds what a FHIR search returns, for prefetch', async (t) => {
  const server = toServerForm(generated);
  const conditions = byType(server, 'Condition');
  const result = searchset(conditions);
  t.equal(result.resourceType, 'Bundle');
  t.equal(result.type, 'searchset');
  t.equal(result.total, conditions.length);
  t.same(
    result.entry!.map((e) => [e.fullUrl, e.search]),
    conditions.map((c) => [`Condition/${c.id}`, { mode: 'match' }]),
  );
  t.equal(result.entry![0]!.resource, conditions[0], 'resources are included as given');
  t.equal(
    (result.entry![0]!.resource as Condition).subject.reference,
    `Patient/${patientOf(server).id}`,
    'references are in server form',
  );
  const absolute = searchset(conditions, { baseUrl: 'https://fhir.example.org/r4' });
  t.equal(absolute.entry![0]!.fullUrl, `https://fhir.example.org/r4/Condition/${conditions[0]!.id}`);
  t.same(searchset([]), { resourceType: 'Bundle', type: 'searchset', total: 0 }, 'no empty entry array');
});

t.test('searchset refuses resources without id or with urn:uuid references', async (t) => {
  t.throws(
    () => searchset([{ resourceType: 'Patient', id: 'a' }, { resourceType: 'Observation' }]),
    new Error('searchset: resource 1 (Observation) has no id'),
  );
  const raw = byType(generated, 'Observation')[0]!;
  t.throws(
    () => searchset([raw]),
    new Error(
      `searchset: Observation/${raw.id} still references urn:uuid:${patientOf(generated).id}; convert the bundle with toServerForm() first`,
    ),
  );
  const nested = {
    resourceType: 'Observation',
    id: 'n',
    performer: [{ display: 'x' }, { reference: 'Practitioner/1' }],
    contained: [{ resourceType: 'Observation', id: 'c', subject: { reference: 'urn:uuid:1' } }],
  } as unknown as Observation;
  t.throws(
    () => searchset([nested]),
    new Error(
      'searchset: Observation/n still references urn:uuid:1; convert the bundle with toServerForm() first',
    ),
  );
  t.equal(searchset([{ ...nested, contained: [] } as Observation]).total, 1);
});

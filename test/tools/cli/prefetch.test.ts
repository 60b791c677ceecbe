/**
 * Prefetch of the hook CLI: template tokens filled from the context, and queries answered from a list
 * of resources with the search parameters the bundled templates use.
 */
import type { Bundle, Observation, Resource } from 'fhir/r4.js';
import t from 'tap';
import { answerLocally, fillTemplate } from '../../../tools/cli/prefetch.js';

const obs = (id: string, code: string, date?: string, patient = 'p1'): Observation => ({
  resourceType: 'Observation',
  id,
  status: 'final',
  code: { coding: [{ system: 'http://loinc.org', code }] },
  subject: { reference: `Patient/${patient}` },
  ...(date ? { effectiveDateTime: date } : {}),
});

const RESOURCES: Resource[] = [
  { resourceType: 'Patient', id: 'p1' },
  obs('o1', '1-1', '2026-01-01'),
  obs('o2', '2-2', '2026-03-01'),
  obs('o3', '1-1'),
  obs('o4', '1-1', '2026-02-01', 'p2'),
];

const ids = (answer: ReturnType<typeof answerLocally>) =>
  answer.ok ? ((answer.value as Bundle).entry ?? []).map((e) => e.resource!.id) : answer.reason;

t.test('fillTemplate fills context and user tokens, URL-encoded', async (t) => {
  const context = { patientId: 'a b', userId: 'Practitioner/u1' };
  t.equal(fillTemplate('Observation?patient={{context.patientId}}', context), 'Observation?patient=a%20b');
  t.equal(fillTemplate('Practitioner/{{userPractitionerId}}', context), 'Practitioner/u1');
  t.equal(fillTemplate('PractitionerRole/{{userPractitionerRoleId}}', context), undefined);
  t.equal(fillTemplate('Encounter/{{context.encounterId}}', context), undefined);
  t.equal(fillTemplate('X/{{unknown}}', context), undefined);
});

t.test('reads give the resource or null', async (t) => {
  t.same(answerLocally('Patient/p1', RESOURCES), { ok: true, value: { resourceType: 'Patient', id: 'p1' } });
  t.same(answerLocally('Patient/zz', RESOURCES), { ok: true, value: null });
});

t.test('searches filter by patient and code lists, sort by date (undated last) and count', async (t) => {
  t.same(ids(answerLocally('Observation?patient=p1', RESOURCES)), ['o1', 'o2', 'o3']);
  t.same(ids(answerLocally('Observation?subject=Patient/p2', RESOURCES)), ['o4']);
  t.same(ids(answerLocally('Observation?patient=p1&code=http://loinc.org|2-2,1-1&_sort=-date', RESOURCES)), [
    'o2',
    'o1',
    'o3',
  ]);
  t.same(ids(answerLocally('Observation?patient=p1&_sort=date&_count=2', RESOURCES)), ['o1', 'o2']);
  t.same(ids(answerLocally('Observation?code=other|1-1', RESOURCES)), []);
  t.same(ids(answerLocally('Observation?status=final&_id=o2', RESOURCES)), ['o2']);
  t.same(ids(answerLocally('Condition?patient=p1&clinical-status=active&category=x', RESOURCES)), []);
});

t.test('anything else is reported, not guessed', async (t) => {
  t.equal(
    ids(answerLocally('Observation?date=ge2026-01-01', RESOURCES)),
    'unsupported search parameter date=ge2026-01-01',
  );
  t.equal(ids(answerLocally('Observation?_sort=code', RESOURCES)), 'unsupported search parameter _sort=code');
  t.equal(
    ids(answerLocally('Patient/p1/_history', RESOURCES)),
    'unsupported query path "Patient/p1/_history"',
  );
});

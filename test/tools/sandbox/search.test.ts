import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  Bundle,
  CapabilityStatement,
  Consent,
  Encounter,
  Observation,
  Procedure,
  Resource,
} from 'fhir/r4.js';
import t from 'tap';
import { parse } from 'yaml';
import {
  capabilityStatement,
  compareRanges,
  dateRange,
  FhirError,
  search,
} from '../../../tools/sandbox/search.js';
import { startFhirServer } from '../../../tools/sandbox/server.js';

const BASE = 'http://127.0.0.1:1/fhir';
const LOCAL = 'https://explainable-cds.example.org/fhir/CodeSystem/cds-local-prescribing';

function obs(id: string, effective: Partial<Observation>, patient = 'p1'): Observation {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
    subject: { reference: `Patient/${patient}` },
    ...effective,
  };
}

const OBSERVATIONS: Observation[] = [
  obs('day', { effectiveDateTime: '2024-03-10' }),
  obs('instant', { effectiveDateTime: '2024-03-10T12:00:00Z' }),
  obs('period', { effectivePeriod: { start: '2024-03-09', end: '2024-03-11' } }),
  obs('open', { effectivePeriod: { start: '2024-03-12T00:00:00Z' } }),
  obs('before', { effectiveDateTime: '2024-01-01' }),
  obs('undated', {}),
];

function ids(type: string, resources: readonly Resource[], query: string, pageSize?: number): string[] {
  const bundle = search(BASE, type, resources, new URLSearchParams(query), pageSize);
  return (bundle.entry ?? []).map((e) => e.resource!.id!);
}

function refused(type: string, query: string): FhirError {
  try {
    search(BASE, type, [], new URLSearchParams(query));
  } catch (error) {
    if (error instanceof FhirError) return error;
    throw error;
  }
  throw new Error(`${type}?${query} was accepted`);
}

t.test('dateRange covers the precision of the value', async (t) => {
  t.same(dateRange('2024'), [Date.UTC(2024, 0, 1), Date.UTC(2025, 0, 1)]);
  t.same(dateRange('2024-02'), [Date.UTC(2024, 1, 1), Date.UTC(2024, 2, 1)]);
  t.same(dateRange('2024-02-29'), [Date.UTC(2024, 1, 29), Date.UTC(2024, 2, 1)]);
  const minute = Date.UTC(2024, 2, 10, 12, 30);
  t.same(dateRange('2024-03-10T12:30Z'), [minute, minute + 60_000]);
  t.same(dateRange('2024-03-10T12:30:00Z'), [minute, minute + 1000]);
  t.same(dateRange('2024-03-10T12:30:00.250Z'), [minute + 250, minute + 251]);
  t.same(dateRange('2024-03-10T14:30:00+02:00'), [minute, minute + 1000]);
  t.same(dateRange('2024-03-10T12:30:00'), [minute, minute + 1000], 'no zone: UTC');
  for (const bad of [
    '2023-02-29',
    '2024-03-10T24:00:00Z',
    '2024-03-10T12:60Z',
    '2024-03-10T12:00:61Z',
    '24',
  ]) {
    t.equal(dateRange(bad), undefined, bad);
  }
});

t.test('compareRanges follows the R4 prefix table', async (t) => {
  const search: [number, number] = [10, 20];
  const cases: [[number, number], string[]][] = [
    [
      [12, 15],
      ['eq', 'le', 'ge'],
    ],
    [
      [10, 20],
      ['eq', 'le', 'ge'],
    ],
    [
      [5, 8],
      ['ne', 'lt', 'le', 'eb'],
    ],
    [
      [5, 10],
      ['ne', 'lt', 'le', 'eb'],
    ],
    [
      [25, 30],
      ['ne', 'gt', 'ge', 'sa'],
    ],
    [
      [20, 30],
      ['ne', 'gt', 'ge', 'sa'],
    ],
    [
      [5, 15],
      ['ne', 'lt', 'le'],
    ],
    [
      [15, 25],
      ['ne', 'gt', 'ge'],
    ],
    [
      [5, 25],
      ['ne', 'lt', 'gt', 'le', 'ge'],
    ],
  ];
  for (const [target, expected] of cases) {
    const matching = (['eq', 'ne', 'lt', 'gt', 'le', 'ge', 'sa', 'eb'] as const).filter((p) =>
      compareRanges(p, target, search),
    );
    t.same(matching, expected, `[${target.join(', ')}) against [10, 20)`);
  }
});

t.test('date prefixes over dateTime and Period values', async (t) => {
  const q = (query: string) => ids('Observation', OBSERVATIONS, query);
  t.same(q('date=2024-03-10'), ['day', 'instant']);
  t.same(q('date=ne2024-03-10'), ['period', 'open', 'before'], 'ne: not within; undated never matches');
  t.same(q('date=sa2024-03-10'), ['open']);
  t.same(q('date=eb2024-03-10'), ['before']);
  t.same(
    q('date=eb2024-03-12'),
    ['day', 'instant', 'period', 'before'],
    'a period ending at 03-12 ends before',
  );
  t.same(q('date=gt2024-03-30'), ['open'], 'an open period runs on');
  t.same(q('date=lt2024-03-10'), ['period', 'before']);
  t.same(q('date=ge2024-03-10T12:00:00Z'), ['day', 'instant', 'period', 'open']);
  t.same(q('date=eq2024-03'), ['day', 'instant', 'period'], 'an open period is not within a month');
  t.same(q('date=ge2024-03-01&date=lt2024-03-11'), ['day', 'instant', 'period']);
  t.same(q('date=eb2024-01-02,sa2024-03-11'), ['open', 'before'], 'comma list: OR');
  t.equal(refused('Observation', 'date=ap2024').issue, 'not-supported');
  t.equal(refused('Observation', 'date=eq').issue, 'invalid');
});

t.test('_sort: date parameters of the type, descending, several keys, _id', async (t) => {
  const q = (query: string) => ids('Observation', OBSERVATIONS, query);
  t.same(q('_sort=date'), ['before', 'period', 'day', 'instant', 'open', 'undated']);
  t.same(
    q('_sort=-date'),
    ['open', 'instant', 'day', 'period', 'before', 'undated'],
    'undated last either way',
  );
  t.same(q('_sort=-_id'), ['undated', 'period', 'open', 'instant', 'day', 'before']);
  const twins = [obs('b', { effectiveDateTime: '2024' }), obs('a', { effectiveDateTime: '2024' })];
  t.same(ids('Observation', twins, '_sort=date'), ['b', 'a'], 'stable');
  t.same(ids('Observation', twins, '_sort=date,_id'), ['a', 'b'], 'second key breaks ties');
  t.same(ids('Observation', twins, '_sort=-date,-_id'), ['b', 'a']);
  t.match(refused('Observation', '_sort=code'), { status: 400, issue: 'not-supported' });
  t.match(refused('Patient', '_sort=date'), { status: 400, message: /Patient/ });
  t.same(ids('Condition', [], '_sort=-onset-date,recorded-date'), []);
});

t.test('_count and paging links keep the query', async (t) => {
  const bundle = search(BASE, 'Observation', OBSERVATIONS, new URLSearchParams('_sort=date&_count=4'));
  t.equal(bundle.total, 6);
  t.same(bundle.link, [
    { relation: 'self', url: `${BASE}/Observation?_sort=date&_count=4` },
    { relation: 'next', url: `${BASE}/Observation?_sort=date&_count=4&_offset=4` },
  ]);
  t.same(ids('Observation', OBSERVATIONS, '_sort=date&_count=4&_offset=4'), ['open', 'undated']);
  const last = search(BASE, 'Observation', OBSERVATIONS, new URLSearchParams('_count=4&_offset=4'));
  t.equal(last.link!.length, 1, 'no next link on the last page');
  t.same(ids('Observation', OBSERVATIONS, '', 2), ['day', 'instant'], 'default page size');
  t.equal(refused('Observation', '_count=1e3').issue, 'invalid');
  t.equal(refused('Observation', '_count=99999999999999999999').issue, 'invalid');
});

t.test('_id, token and exact-code parameters of the other types', async (t) => {
  const procedures: Procedure[] = [
    {
      resourceType: 'Procedure',
      id: 'mri',
      status: 'completed',
      code: { coding: [{ system: LOCAL, code: 'brain-mri' }] },
      subject: { reference: 'Patient/p1' },
      performedPeriod: { start: '2025-01-01T10:00:00Z', end: '2025-01-01T11:00:00Z' },
    },
    {
      resourceType: 'Procedure',
      id: 'other',
      status: 'in-progress',
      code: { coding: [{ system: LOCAL, code: 'knee-xray' }] },
      subject: { reference: 'Patient/p2' },
      performedDateTime: '2026-01-01',
    },
  ];
  t.same(ids('Procedure', procedures, `patient=p1&code=${LOCAL}|brain-mri`), ['mri']);
  t.same(ids('Procedure', procedures, `code=${LOCAL}|`), ['mri', 'other']);
  t.same(ids('Procedure', procedures, 'date=2025-01-01'), ['mri'], 'performedPeriod');
  t.same(ids('Procedure', procedures, 'status=completed,in-progress&_sort=-date'), ['other', 'mri']);
  t.same(ids('Procedure', procedures, '_id=other,nope'), ['other']);

  const consents: Consent[] = [
    {
      resourceType: 'Consent',
      id: 'c1',
      status: 'active',
      scope: { coding: [{ code: 'treatment' }] },
      category: [{ coding: [{ system: 'http://loinc.org', code: '59284-0' }] }],
      patient: { reference: 'Patient/p1' },
      dateTime: '2026-02-01',
    },
    {
      resourceType: 'Consent',
      id: 'c2',
      status: 'inactive',
      scope: {},
      category: [],
      patient: { reference: 'Patient/p1' },
    },
  ];
  t.same(ids('Consent', consents, 'patient=Patient/p1&status=active'), ['c1']);
  t.same(ids('Consent', consents, 'category=59284-0&date=ge2026'), ['c1']);
  t.equal(refused('Consent', 'subject=p1').status, 400, 'Consent has no subject parameter');

  const encounters: Encounter[] = [
    {
      resourceType: 'Encounter',
      id: 'e1',
      status: 'finished',
      class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' },
      subject: { reference: 'Patient/p1' },
      period: { start: '2026-03-01T09:00:00Z', end: '2026-03-01T09:30:00Z' },
    },
  ];
  t.same(ids('Encounter', encounters, 'class=AMB&date=2026-03-01'), ['e1'], 'class is a Coding');
  t.same(ids('Encounter', encounters, 'class=IMP'), []);

  const claims = [
    { resourceType: 'Claim', id: 'cl1', patient: { reference: 'Patient/p1' } },
    { resourceType: 'Claim', id: 'cl2', patient: { reference: 'Patient/p2' } },
  ] as unknown as Resource[];
  t.same(ids('Claim', claims, 'patient=p2'), ['cl2'], 'other types: _id and patient');
  t.equal(refused('Claim', 'status=active').issue, 'not-supported');
});

t.test('strict: unknown parameters, modifiers and malformed values are refused', async (t) => {
  for (const [type, query, issue] of [
    ['Patient', 'patient=p1', 'not-supported'],
    ['Patient', 'name=smith', 'not-supported'],
    ['Observation', 'code:not=4548-4', 'not-supported'],
    ['Observation', 'patient:missing=true', 'not-supported'],
    ['Observation', '_include=Observation:subject', 'not-supported'],
    ['Observation', 'hasOwnProperty=x', 'not-supported'],
    ['Observation', 'code=|', 'invalid'],
    ['Observation', 'code=a,,b', 'invalid'],
    ['Observation', 'status=', 'invalid'],
    ['Condition', 'date=2024', 'not-supported'],
  ] as const) {
    const error = refused(type, query);
    t.equal(error.status, 400, `${type}?${query}`);
    t.equal(error.issue, issue, `${type}?${query}`);
  }
});

t.test('capabilityStatement lists the types and their search parameters', async (t) => {
  const cs: CapabilityStatement = capabilityStatement(['Claim', 'Observation'], '2026-11-22T09:30:00.000Z');
  t.equal(cs.fhirVersion, '4.0.1');
  t.equal(cs.date, '2026-11-22T09:30:00.000Z');
  const resources = cs.rest![0]!.resource!;
  const types = resources.map((r) => r.type);
  t.same(types, [...types].sort(), 'sorted');
  for (const type of [
    'Claim',
    'Condition',
    'Consent',
    'MedicationRequest',
    'Observation',
    'Patient',
    'Procedure',
  ]) {
    t.ok(types.includes(type as never), type);
  }
  const params = (type: string) =>
    resources.find((r) => r.type === type)!.searchParam!.map((p) => `${p.name}:${p.type}`);
  t.same(params('Observation'), [
    '_id:token',
    'patient:reference',
    'subject:reference',
    'code:token',
    'category:token',
    'status:token',
    'date:date',
  ]);
  t.same(params('Patient'), ['_id:token']);
  t.same(params('Claim'), ['_id:token', 'patient:reference']);
  t.ok(params('Condition').includes('clinical-status:token'));
  t.same(
    cs.rest![0]!.searchParam!.map((p) => p.name),
    ['_sort', '_count'],
  );
});

t.test('every prefetch template of the bundled services is answered by the sandbox', async (t) => {
  const server = await startFhirServer({ resources: [{ resourceType: 'Patient', id: 'p1' }] });
  t.teardown(() => server.close());
  const files = readdirSync('cds-services').filter((f) => f.endsWith('.yaml'));
  let templates = 0;
  for (const file of files) {
    const definition = parse(readFileSync(join('cds-services', file), 'utf8')) as {
      prefetch?: Record<string, { query: string }>;
    };
    for (const [key, { query }] of Object.entries(definition.prefetch ?? {})) {
      const res = await fetch(`${server.url}/${query.replaceAll('{{context.patientId}}', 'p1')}`);
      const body = (await res.json()) as Bundle;
      t.equal(res.status, 200, `${file} ${key}: ${JSON.stringify(body).slice(0, 200)}`);
      templates++;
    }
  }
  t.ok(templates >= 15, `${templates} templates checked`);
});

import type { Consent } from 'fhir/r4.js';
import t from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { findObjection, instantBounds, OBJECTION_PURPOSE } from '../../src/consent/objection.js';
import { OBJECTION_PURPOSE as GENERATOR_PURPOSE, generatePatient } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';
import { NOW } from '../helpers/app.js';
import { searchset } from '../helpers/hook-request.js';

/** The objection as reference/clinical-codes.md §4 shows it. */
function objection(extra: Partial<Consent> = {}): Consent {
  return {
    resourceType: 'Consent',
    id: 'consent-1',
    status: 'active',
    scope: { coding: [{ system: SYSTEM.consentScope, code: 'patient-privacy' }] },
    category: [{ coding: [{ system: SYSTEM.loinc, code: '59284-0' }] }],
    patient: { reference: 'Patient/pat-123' },
    dateTime: '2025-01-15',
    policy: [{ uri: 'https://example.org/policies/objection-to-automated-processing' }],
    provision: {
      type: 'deny',
      action: [{ coding: [{ system: SYSTEM.consentAction, code: 'use' }] }],
      purpose: [{ system: SYSTEM.purposeOfUse, code: OBJECTION_PURPOSE }],
    },
    ...extra,
  };
}

const provision = (extra: NonNullable<Consent['provision']>) => ({ ...objection().provision!, ...extra });

t.test('the purpose code is the one the synthetic patients carry', async (t) => {
  t.equal(OBJECTION_PURPOSE, GENERATOR_PURPOSE);
});

t.test('an active privacy Consent denying algorithmic decision support is an objection', async (t) => {
  t.same(findObjection([objection()], NOW, 'pat-123'), { consentId: 'consent-1' });
  t.same(
    findObjection([searchset([objection()])], NOW, 'pat-123'),
    { consentId: 'consent-1' },
    'inside a Bundle',
  );
  t.same(findObjection([null, undefined, objection()], NOW), { consentId: 'consent-1' }, 'no patient named');
  t.same(
    findObjection(
      [objection({ patient: { reference: 'https://ehr.example/fhir/Patient/pat-123' } })],
      NOW,
      'pat-123',
    ),
    { consentId: 'consent-1' },
  );
});

t.test('the Consent a generated patient who objects carries is found; none in the others', async (t) => {
  // Transaction bundles reference the patient as urn:uuid:…, which a FHIR server rewrites on load: the
  // patient check is left out here.
  const objecting = generatePatient(createRng(7), { now: NOW, objection: true });
  const other = generatePatient(createRng(7), { now: NOW, objection: false });
  const consent = objecting.entry!.find((e) => e.resource?.resourceType === 'Consent')!.resource!;
  t.same(findObjection([objecting], NOW), { consentId: consent.id });
  t.equal(findObjection([other], NOW), null);
});

t.test('anything else is not an objection', async (t) => {
  const cases: [string, Consent][] = [
    ['draft', objection({ status: 'draft' })],
    ['inactive', objection({ status: 'inactive' })],
    ['rejected', objection({ status: 'rejected' })],
    [
      'treatment scope',
      objection({ scope: { coding: [{ system: SYSTEM.consentScope, code: 'treatment' }] } }),
    ],
    ['no scope coding', objection({ scope: { text: 'privacy' } })],
    ['permit', objection({ provision: provision({ type: 'permit' }) })],
    [
      'another purpose',
      objection({ provision: provision({ purpose: [{ system: SYSTEM.purposeOfUse, code: 'research' }] }) }),
    ],
    [
      'purpose in another system',
      objection({ provision: provision({ purpose: [{ system: 'http://other', code: OBJECTION_PURPOSE }] }) }),
    ],
    ['no provision', objection({ provision: undefined })],
    ['expired', objection({ provision: provision({ period: { end: '2026-11-21' } }) })],
    ['not yet', objection({ provision: provision({ period: { start: '2026-11-23T00:00:00Z' } }) })],
  ];
  for (const [name, consent] of cases) t.equal(findObjection([consent], NOW, 'pat-123'), null, name);
  t.equal(findObjection([objection()], NOW, 'pat-999'), null, 'about another patient');
  t.equal(findObjection([objection({ patient: undefined })], NOW, 'pat-123'), null, 'about no patient');
  t.equal(findObjection([{ resourceType: 'Patient', id: 'pat-123' }], NOW, 'pat-123'), null, 'not a Consent');
  t.equal(findObjection([], NOW), null);
});

t.test('a nested deny counts, within its own period and its parents', async (t) => {
  const nested = (period?: { start?: string; end?: string }, parent?: { start?: string; end?: string }) =>
    objection({
      provision: {
        type: 'permit',
        ...(parent ? { period: parent } : {}),
        provision: [
          {
            type: 'deny',
            purpose: [{ system: SYSTEM.purposeOfUse, code: OBJECTION_PURPOSE }],
            ...(period ? { period } : {}),
          },
        ],
      },
    });
  t.same(findObjection([nested()], NOW, 'pat-123'), { consentId: 'consent-1' });
  t.same(findObjection([nested({ start: '2026-01-01' })], NOW, 'pat-123'), { consentId: 'consent-1' });
  t.equal(findObjection([nested({ end: '2026-01-01' })], NOW, 'pat-123'), null, 'nested period over');
  t.equal(findObjection([nested(undefined, { end: '2025' })], NOW, 'pat-123'), null, 'parent period over');
});

t.test(
  'a period covers whole days, months and years, and an unreadable bound does not limit it',
  async (t) => {
    const at = (end: string) =>
      findObjection([objection({ provision: provision({ period: { end } }) })], NOW, 'pat-123');
    t.ok(at('2026-11-22'), 'the day of "now" is covered to its end');
    t.ok(at('2026-11'));
    t.ok(at('2026'));
    t.ok(at('2026-11-22T09:30:00Z'));
    t.equal(at('2026-11-22T09:29:59Z'), null);
    t.equal(at('2026-10'), null);
    t.ok(at('soon'), 'unreadable: the objection is honoured');
    t.same(instantBounds('2024-02'), [Date.UTC(2024, 1, 1), Date.UTC(2024, 2, 1) - 1]);
    t.same(instantBounds('2024'), [Date.UTC(2024, 0, 1), Date.UTC(2025, 0, 1) - 1]);
    t.same(instantBounds('2024-02-29'), [Date.UTC(2024, 1, 29), Date.UTC(2024, 2, 1) - 1]);
  },
);

t.test('a Consent without id still counts, with an empty id', async (t) => {
  const consent = objection();
  delete consent.id;
  t.same(findObjection([consent], NOW, 'pat-123'), { consentId: '' });
});

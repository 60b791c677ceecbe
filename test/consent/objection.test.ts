import type { Bundle, Consent } from 'fhir/r4.js';
import t from 'tap';
import { SYSTEM } from '../../src/codes.js';
import { findObjection, OBJECTION_PURPOSE, resourcesOf } from '../../src/consent/objection.js';
import { OBJECTION_PURPOSE as GENERATOR_PURPOSE, generatePatient } from '../../src/synthetic/patients.js';
import { createRng } from '../../src/synthetic/random.js';

const NOW = new Date('2026-11-22T09:30:00Z');

function generated(objection: boolean): Bundle {
  return generatePatient(createRng(42), { now: NOW, objection });
}

const bundle = generated(true);
const consent = resourcesOf(bundle).find((r) => (r as Consent).resourceType === 'Consent') as Consent;

/** A copy of the generated objection with changes. */
function variant(change: (c: Consent) => void): Consent {
  const copy = structuredClone(consent);
  change(copy);
  return copy;
}

t.test('the generator and the reader agree on the purpose code', async (t) => {
  t.equal(OBJECTION_PURPOSE, 'algorithmic-decision-support');
  t.equal(GENERATOR_PURPOSE, OBJECTION_PURPOSE);
});

t.test('a generated objection Consent is found', async (t) => {
  t.ok(consent, 'the generated bundle holds a Consent');
  t.type(consent.id, 'string');
  t.same(findObjection(resourcesOf(bundle), NOW), { consentId: consent.id });
  t.same(findObjection([consent], NOW), { consentId: consent.id }, 'alone');
  const noId = variant((c) => delete c.id);
  t.same(findObjection([noId], NOW), { consentId: '(no id)' }, 'without an id');
});

t.test('a patient generated without objection has none', async (t) => {
  const plain = generated(false);
  t.equal(
    resourcesOf(plain).some((r) => (r as Consent).resourceType === 'Consent'),
    false,
  );
  t.equal(findObjection(resourcesOf(plain), NOW), null);
  t.equal(findObjection([], NOW), null, 'no resources');
});

t.test('what is not an objection', async (t) => {
  const cases: [string, Consent][] = [
    ['status inactive', variant((c) => (c.status = 'inactive'))],
    ['status draft', variant((c) => (c.status = 'draft'))],
    ['status rejected', variant((c) => (c.status = 'rejected'))],
    ['status proposed', variant((c) => (c.status = 'proposed'))],
    [
      'scope research',
      variant((c) => (c.scope = { coding: [{ system: SYSTEM.consentScope, code: 'research' }] })),
    ],
    [
      'scope treatment',
      variant((c) => (c.scope = { coding: [{ system: SYSTEM.consentScope, code: 'treatment' }] })),
    ],
    [
      'patient-privacy in another system',
      variant(
        (c) => (c.scope = { coding: [{ system: 'http://example.org/scope', code: 'patient-privacy' }] }),
      ),
    ],
    ['scope as text only', variant((c) => (c.scope = { text: 'patient-privacy' }))],
    ['provision permit', variant((c) => (c.provision!.type = 'permit'))],
    ['provision without type', variant((c) => delete c.provision!.type)],
    ['no provision', variant((c) => delete c.provision)],
    [
      'another purpose',
      variant((c) => (c.provision!.purpose = [{ system: SYSTEM.purposeOfUse, code: 'research' }])),
    ],
    [
      'the purpose code in another system',
      variant(
        (c) =>
          (c.provision!.purpose = [
            { system: 'http://terminology.hl7.org/CodeSystem/v3-ActReason', code: OBJECTION_PURPOSE },
          ]),
      ),
    ],
    ['no purpose', variant((c) => delete c.provision!.purpose)],
    [
      'period ended before now',
      variant((c) => (c.provision!.period = { start: '2025-01-01', end: '2026-11-22T09:29:59Z' })),
    ],
    ['period starting after now', variant((c) => (c.provision!.period = { start: '2026-11-22T09:30:01Z' }))],
    [
      'period starting next year',
      variant((c) => (c.provision!.period = { start: '2027-01-01', end: '2028-01-01' })),
    ],
  ];
  for (const [name, c] of cases) t.equal(findObjection([c], NOW), null, name);
  t.equal(findObjection([{ ...consent, resourceType: 'Contract' }], NOW), null, 'not a Consent');
  t.equal(findObjection([null, 'Consent', 42, undefined], NOW), null, 'not resources');
});

t.test('a provision period that covers now', async (t) => {
  const cases: [string, Consent][] = [
    ['start before, no end', variant((c) => (c.provision!.period = { start: '2025-06-01' }))],
    ['end after, no start', variant((c) => (c.provision!.period = { end: '2027-01-01' }))],
    [
      'around now',
      variant((c) => (c.provision!.period = { start: '2026-11-22T09:00:00Z', end: '2026-11-22T10:00:00Z' })),
    ],
    ['starting exactly now', variant((c) => (c.provision!.period = { start: '2026-11-22T09:30:00Z' }))],
    ['ending exactly now', variant((c) => (c.provision!.period = { end: '2026-11-22T09:30:00Z' }))],
    ['empty period', variant((c) => (c.provision!.period = {}))],
  ];
  for (const [name, c] of cases) t.same(findObjection([c], NOW), { consentId: consent.id }, name);
});

t.test('the purpose among others, patient-privacy among other scope codings', async (t) => {
  const c = variant((c) => {
    c.id = 'consent-mixed';
    c.scope = {
      coding: [
        { system: SYSTEM.consentScope, code: 'treatment' },
        { system: SYSTEM.consentScope, code: 'patient-privacy' },
      ],
    };
    c.provision!.purpose = [
      { system: SYSTEM.purposeOfUse, code: 'research' },
      { system: SYSTEM.purposeOfUse, code: OBJECTION_PURPOSE },
    ];
  });
  t.same(findObjection([c], NOW), { consentId: 'consent-mixed' });
});

t.test('the first active objection wins; inactive ones are skipped', async (t) => {
  const inactive = variant((c) => {
    c.id = 'old';
    c.status = 'inactive';
  });
  const first = variant((c) => (c.id = 'first'));
  const second = variant((c) => (c.id = 'second'));
  t.same(findObjection([inactive, first, second], NOW), { consentId: 'first' });
  t.same(findObjection([second, first], NOW), { consentId: 'second' });
});

t.test('resourcesOf', async (t) => {
  const a = { resourceType: 'Consent', id: 'a' };
  const b = { resourceType: 'Observation', id: 'b' };
  const searchset: Bundle = {
    resourceType: 'Bundle',
    type: 'searchset',
    entry: [{ resource: a as never }, { fullUrl: 'urn:x' }, { resource: b as never }],
  };
  t.same(
    resourcesOf(searchset),
    [a, b],
    'a Bundle: its entries’ resources, in order, entries without one skipped',
  );
  t.equal(resourcesOf(searchset)[0], a, 'the resources themselves, not copies');
  t.same(resourcesOf({ resourceType: 'Bundle', type: 'searchset', total: 0 }), [], 'a Bundle without entry');
  t.same(resourcesOf(a), [a], 'a single resource');
  t.equal(resourcesOf(a)[0], a);
  t.same(resourcesOf(null), [], 'null');
  t.same(resourcesOf(undefined), [], 'undefined');
  t.same(resourcesOf('Consent'), [], 'a string');
  t.same(resourcesOf(7), [], 'a number');
  t.equal(
    resourcesOf(bundle).length,
    bundle.entry!.length,
    'every entry of a generated bundle has a resource',
  );
});

t.test(
  'a Consent without scope (invalid R4, but prefetch data is not trusted) is not an objection and does not throw',
  async (t) => {
    const noScope = variant((c) => delete (c as Partial<Consent>).scope);
    let result: unknown = 'threw';
    try {
      result = findObjection([noScope, variant((c) => (c.id = 'valid'))], NOW);
    } catch {
      // reported below
    }
    t.same(result, { consentId: 'valid' }, 'skipped, and the next Consent is still read');
  },
);

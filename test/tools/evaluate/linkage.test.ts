/**
 * The outcome rule of `npm run evaluate` (models/README.md): 1 within the horizon, 0 when follow-up
 * data exists past the horizon without it, null otherwise; and what a linked row keeps.
 */
import t from 'tap';
import type { DiagnosticReport, Encounter, Observation, Resource, Specimen } from 'fhir/r4.js';
import {
  addMonths,
  compileOutcome,
  evidenceOf,
  focusEvidence,
  focusResourceTypes,
  linkageCounts,
  linked,
  outcomeOf,
  patientEvidence,
} from '../../../tools/evaluate/linkage.js';
import { focusIdentityOf, focusKeyOf } from '../../../src/audit/predictions.js';
import { pseudonymiser } from '../../../src/audit/pseudonym.js';
import { createFhirPath } from '../../../src/rules/fhirpath.js';
import type { StoredPrediction } from '../../../src/audit/store.js';

const AT = new Date('2026-01-31T10:00:00.000Z');
const ms = (iso: string) => Date.parse(iso);

t.test('calendar months, the end of a short month kept', async (t) => {
  t.equal(addMonths(AT, 1).toISOString(), '2026-02-28T10:00:00.000Z');
  t.equal(addMonths(AT, 24).toISOString(), '2028-01-31T10:00:00.000Z');
});

t.test('the outcome rule', async (t) => {
  const end = '2028-01-31T10:00:00.000Z';
  t.equal(
    outcomeOf(AT, 24, [{ at: ms('2027-01-01T00:00:00Z'), shows: true }]),
    1,
    'shown within the horizon',
  );
  t.equal(outcomeOf(AT, 24, [{ at: ms(end), shows: true }]), 1, 'the horizon itself is within');
  t.equal(
    outcomeOf(AT, 24, [{ at: ms('2028-02-01T00:00:00Z'), shows: false }]),
    0,
    'follow-up past it, no outcome',
  );
  t.equal(
    outcomeOf(AT, 24, [{ at: ms('2028-02-01T00:00:00Z'), shows: true }]),
    0,
    'shown only after the horizon',
  );
  t.equal(
    outcomeOf(AT, 24, [{ at: ms('2027-01-01T00:00:00Z'), shows: false }]),
    null,
    'no follow-up past it yet',
  );
  t.equal(outcomeOf(AT, 24, [{ at: ms('2025-06-01T00:00:00Z'), shows: true }]), null, 'before the estimate');
  t.equal(outcomeOf(AT, 24, [{ at: AT.getTime(), shows: true }]), null, 'at the estimate itself: not later');
  t.equal(outcomeOf(AT, 24, []), null, 'no data');
});

t.test('evidence from a resource, by the manifest definition', async (t) => {
  const outcome = compileOutcome(
    {
      resourceType: 'Observation',
      expression:
        "code.coding.where(code = 'medial-jsn-loss').exists() and value.ofType(Quantity).where(value >= 0.5).exists()",
      date: 'effective.ofType(dateTime)',
      horizonMonths: 24,
    },
    createFhirPath(),
  );
  const obs = (value: number, date?: string): Observation => ({
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ code: 'medial-jsn-loss' }] },
    ...(date ? { effectiveDateTime: date } : {}),
    valueQuantity: { value, code: 'mm' },
  });
  t.same(evidenceOf(obs(0.7, '2027-01-01'), outcome, AT), { at: ms('2027-01-01'), shows: true });
  t.same(evidenceOf(obs(0.2, '2027-01-01'), outcome, AT), { at: ms('2027-01-01'), shows: false });
  t.equal(evidenceOf(obs(0.7), outcome, AT), undefined, 'undated: says nothing');
  const encounter: Encounter = {
    resourceType: 'Encounter',
    status: 'finished',
    class: { code: 'AMB' },
    period: { start: '2029-01-01' },
  };
  t.same(
    evidenceOf(encounter, outcome, AT),
    { at: ms('2029-01-01'), shows: false },
    'an encounter is follow-up',
  );
  t.equal(evidenceOf({ resourceType: 'Condition', subject: {} } as never, outcome, AT), undefined);
});

t.test('a linked row keeps the week, not the pseudonym, instant or focus', async (t) => {
  const stored: StoredPrediction = {
    eventSeq: 3,
    serviceId: 'knee-oa-progression',
    serviceVersion: '1.0.0',
    pseudonym: 'f'.repeat(64),
    at: '2026-11-22T09:30:00.000Z',
    week: '2026-W47',
    model: { id: 'knee-oa-progression', version: '1.1.0' },
    mode: 'silent',
    focus: 'Condition/abc',
    risk: 0.3,
    band: 'higher',
    positive: true,
    topFactors: [],
    inputs: { bmi: 31 },
    subgroups: { sex: 'male' },
  };
  t.same(linked(stored, 1), {
    serviceId: 'knee-oa-progression',
    modelId: 'knee-oa-progression',
    modelVersion: '1.1.0',
    mode: 'silent',
    week: '2026-W47',
    risk: 0.3,
    band: 'higher',
    positive: true,
    inputs: { bmi: 31 },
    subgroups: { sex: 'male' },
    outcome: 1,
  });
});

t.test("per focus: a lesion takes the outcome of the reports about it, else the patient's", async (t) => {
  const outcome = compileOutcome(
    {
      resourceType: 'DiagnosticReport',
      expression: "conclusionCode.coding.where(code.startsWith('C43')).exists()",
      date: 'effective.ofType(dateTime)',
      horizonMonths: 3,
      focus:
        "%resources.ofType(Specimen).where(('Specimen/' + id) in %context.specimen.reference).collection.bodySite.select(text | coding.display)",
    },
    createFhirPath(),
  );
  t.same(focusResourceTypes(outcome.definition), ['Specimen']);
  const specimen = (id: string, site: Specimen['collection']): Specimen => ({
    resourceType: 'Specimen',
    id,
    subject: { reference: 'Patient/p1' },
    collection: site,
  });
  const report = (id: string, code: string, at: string, specimenId?: string): DiagnosticReport => ({
    resourceType: 'DiagnosticReport',
    id,
    status: 'final',
    code: { text: 'Histology' },
    subject: { reference: 'Patient/p1' },
    effectiveDateTime: at,
    ...(specimenId === undefined ? {} : { specimen: [{ reference: `Specimen/${specimenId}` }] }),
    conclusionCode: [{ coding: [{ system: 'http://hl7.org/fhir/sid/icd-10', code }] }],
  });
  const resources: Resource[] = [
    specimen('s1', { bodySite: { text: 'Upper  Back ' } }),
    specimen('s2', { bodySite: { coding: [{ display: 'left thigh' }] } }),
    report('r1', 'C43.5', '2026-02-28T00:00:00Z', 's1'),
    report('r2', 'D22.5', '2026-06-01T00:00:00Z', 's2'),
  ];
  const key = (identity: string) => focusKeyOf(pseudonymiser(Buffer.from('k')), 'p1', identity);
  t.equal(focusIdentityOf('  Upper\tBACK '), 'upper back', 'case and spacing aside');
  t.equal(focusIdentityOf('  '), undefined);
  t.not(key('upper back'), focusKeyOf(pseudonymiser(Buffer.from('k')), 'p2', 'upper back'), 'per patient');
  const evidence = patientEvidence(resources, outcome, AT, key);
  t.same(evidence, [
    { at: ms('2026-02-28T00:00:00Z'), shows: true, focus: key('upper back') },
    { at: ms('2026-06-01T00:00:00Z'), shows: false, focus: key('left thigh') },
  ]);
  const outcomeFor = (focusKey: string | undefined) => {
    const { by, evidence: found } = focusEvidence(evidence, focusKey);
    return [by, outcomeOf(AT, 3, found)];
  };
  t.same(outcomeFor(key('upper back')), ['focus', 1], 'the melanoma lesion');
  t.same(outcomeFor(key('left thigh')), ['focus', 0], 'the benign lesion');
  t.same(outcomeFor(key('scalp')), ['patient', 1], "a lesion no report names: the patient's outcome");
  t.same(outcomeFor(undefined), ['patient', 1], 'an estimate without a key (before migration 9)');
  // A report without a specimen names no lesion: it counts for every lesion of the patient.
  const unnamed = patientEvidence(
    [...resources, report('r3', 'C43.7', '2026-02-01T00:00:00Z')],
    outcome,
    AT,
    key,
  );
  t.equal(unnamed[2]!.focus, undefined);
  t.same(focusEvidence(unnamed, key('left thigh')).by, 'focus');
  t.equal(outcomeOf(AT, 3, focusEvidence(unnamed, key('left thigh')).evidence), 1);

  const p = (mode: 'live' | 'silent') => ({ model: { id: 'm', version: '1' }, mode }) as StoredPrediction;
  t.same(
    linkageCounts([
      { prediction: p('live'), outcome: 1, by: 'focus' },
      { prediction: p('live'), outcome: 0, by: 'patient' },
      { prediction: p('live'), outcome: null, by: 'patient' },
      { prediction: p('silent'), outcome: null, by: 'focus' },
    ]),
    [
      { modelId: 'm', modelVersion: '1', mode: 'live', byFocus: 1, byPatient: 1 },
      { modelId: 'm', modelVersion: '1', mode: 'silent', byFocus: 0, byPatient: 0 },
    ],
    'estimates with a known outcome only',
  );
});

/**
 * The clinical test corpus (test/fixtures/clinical-corpus): every case, written from the source its rule
 * cites, run through the HTTP API on order-sign (prescribing) or patient-view (melanoma lesions). A case says whether a card is expected, its indicator,
 * the rules that must fire, and texts the card or its suggestions must show.
 */
import { readFileSync } from 'node:fs';
import type { MedicationRequest, Patient, Resource } from 'fhir/r4.js';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import type { Card } from '../../src/cds-hooks.js';
import { PRESCRIBING, SYSTEM } from '../../src/codes.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { orderPrefetch, orderSignRequest } from '../../tools/synthetic/orders.js';
import { buildTestApp, NOW } from '../helpers/app.js';
import { type LesionSpec, lesion, PATIENT_ID, patientView, searchset } from '../helpers/hook-request.js';

interface Coded {
  system: 'atc' | 'rxnorm' | 'snomed' | 'icd10';
  code: string;
  display: string;
}
interface Case {
  id: string;
  why: string;
  source: string;
  service: string;
  /** `age` left out: no birthDate in the record. */
  patient: { age?: number; gender: string };
  /** Prescribing cases (order-sign). */
  draft: Coded;
  record: Record<string, Record<string, unknown>>[];
  /** Melanoma cases (patient-view): the checklist items recorded on one lesion. */
  lesion?: LesionSpec['items'];
  expect: {
    /** Melanoma cases: every card, in order. */
    cards?: { indicator: string; topic: string; text?: string }[];
    /** A pattern no card's summary or detail may match. */
    notText?: string;
    card?: false;
    indicator?: string;
    fired?: string[];
    /** Rules that must not fire on the card. */
    notFired?: string[];
    text?: string;
    suggestion?: string;
    noTopical?: boolean;
    topicalCode?: string;
    /** The state of rules on the card (`fired`, `not-fired`, `not-evaluable`, `stale`). */
    states?: Record<string, string>;
    /** The state of data on the card (`current`, `stale`, `unreadable`, `not-recorded`). */
    data?: Record<string, string>;
  };
}

const CASES = parse(readFileSync('test/fixtures/clinical-corpus/cases.yaml', 'utf8')) as Case[];
const SYSTEMS = { atc: SYSTEM.atc, rxnorm: SYSTEM.rxnorm, snomed: SYSTEM.snomed, icd10: SYSTEM.icd10 };
const PID = 'corpus-patient';
const subject = { reference: `Patient/${PID}` };
const coding = (c: Coded) => ({ system: SYSTEMS[c.system], code: c.code, display: c.display });
const birthDate = (age: number) => `${NOW.getUTCFullYear() - age}-01-15`;

function observation(id: string, loinc: string, date: string, value: Record<string, unknown>): Resource {
  return {
    resourceType: 'Observation',
    id,
    status: 'final',
    code: { coding: [{ system: SYSTEM.loinc, code: loinc }] },
    subject,
    effectiveDateTime: date,
    ...value,
  } as Resource;
}

function recordOf(c: Case): Resource[] {
  const resources: Resource[] = [
    {
      resourceType: 'Patient',
      id: PID,
      gender: c.patient.gender,
      ...(c.patient.age === undefined ? {} : { birthDate: birthDate(c.patient.age) }),
    } as Resource,
  ];
  c.record.forEach((entry, i) => {
    const [kind, v] = Object.entries(entry)[0]! as [string, Record<string, string | number>];
    const id = `r${i}`;
    const quantity = (value: number, unit: string) => ({
      valueQuantity: { value, unit, system: 'http://unitsofmeasure.org', code: unit },
    });
    if (kind === 'egfr') {
      // `text`: the value recorded as a string (unreadable); `unit`: another unit than mL/min/1.73 m².
      const value =
        v.text !== undefined
          ? { valueString: String(v.text) }
          : quantity(Number(v.value), String(v.unit ?? 'mL/min/{1.73_m2}'));
      resources.push(observation(id, '33914-3', String(v.date), value));
    } else if (kind === 'weight') {
      resources.push(observation(id, '29463-7', String(v.date), quantity(Number(v.value), 'kg')));
    } else if (kind === 'gestationalAge') {
      resources.push(observation(id, '49051-6', String(v.date), quantity(Number(v.weeks), 'wk')));
    } else if (kind === 'dueDate') {
      resources.push(observation(id, '11778-8', '2026-11-01', { valueDateTime: String(v.date) }));
    } else if (kind === 'pregnant') {
      // `text`: the status recorded as a string (unreadable).
      const value =
        v.text !== undefined
          ? { valueString: String(v.text) }
          : {
              valueCodeableConcept: {
                coding: [{ system: SYSTEM.loinc, code: 'LA15173-0', display: 'Pregnant' }],
              },
            };
      resources.push(observation(id, '82810-3', String(v.date), value));
    } else if (kind === 'ppp') {
      resources.push({
        resourceType: 'Observation',
        id,
        status: 'final',
        code: { coding: [{ system: SYSTEM.localPrescribing, code: String(v.code) }] },
        subject,
        effectiveDateTime: String(v.date),
        valueBoolean: true,
      } as Resource);
    } else if (kind === 'mri') {
      resources.push({
        resourceType: 'Procedure',
        id,
        status: 'completed',
        code: { coding: [{ system: SYSTEM.localPrescribing, code: PRESCRIBING.brainMri }] },
        subject,
        // `date` left out: an MRI recorded without a date.
        ...(v.date === undefined ? {} : { performedDateTime: String(v.date) }),
      } as Resource);
    } else if (kind === 'medication' || kind === 'pastOrder') {
      resources.push({
        resourceType: 'MedicationRequest',
        id,
        status: kind === 'medication' ? 'active' : 'completed',
        intent: 'order',
        subject,
        authoredOn: String(v.date ?? '2026-01-01'),
        medicationCodeableConcept: { coding: [coding(v as unknown as Coded)], text: String(v.display) },
      } as Resource);
    } else if (kind === 'condition') {
      resources.push({
        resourceType: 'Condition',
        id,
        clinicalStatus: { coding: [{ code: 'active' }] },
        code: { coding: [coding(v as unknown as Coded)], text: String(v.display) },
        subject,
      } as Resource);
    } else {
      throw new Error(`case ${c.id}: unknown record entry ${kind}`);
    }
  });
  return resources;
}

const { app } = await buildTestApp();
t.teardown(() => app.close());

const rulesOf = (card: Card) =>
  (
    card.extension![EXPLANATION_EXTENSION] as {
      rules: { id: string; status: string; data?: { id: string; state: string }[] }[];
    }
  ).rules;

/** A melanoma case: one lesion, with the whole prefetch the model reads (no skin data, no objection). */
async function lesionCase(t: Test, c: Case): Promise<void> {
  const res = await app.inject({
    method: 'POST',
    url: `/cds-services/${c.service}`,
    payload: patientView({
      lesions: searchset([lesion({ items: c.lesion! })]),
      patient: {
        resourceType: 'Patient',
        id: PATIENT_ID,
        gender: c.patient.gender as Patient['gender'],
        birthDate: birthDate(c.patient.age!),
      },
      conditions: searchset([]),
      skin: searchset([]),
      consent: searchset([]),
    }),
    headers: { 'accept-language': 'en' },
  });
  t.equal(res.statusCode, 200, 'status 200');
  const cards = res.json().cards as Card[];
  t.same(
    cards.map((card) => [card.indicator, card.source.topic?.code]),
    (c.expect.cards ?? []).map((e) => [e.indicator, e.topic]),
    'the cards, in order',
  );
  (c.expect.cards ?? []).forEach((e, i) => {
    if (e.text && cards[i])
      t.match(`${cards[i].summary}\n${cards[i].detail}`, new RegExp(e.text), 'card text');
  });
  if (c.expect.notText) {
    for (const card of cards) t.notMatch(`${card.summary}\n${card.detail}`, new RegExp(c.expect.notText));
  }
}

for (const c of CASES) {
  t.test(`${c.id}: ${c.why} (${c.source})`, async (t) => {
    if (c.lesion) return lesionCase(t, c);
    const resources = recordOf(c);
    const draft: MedicationRequest = {
      resourceType: 'MedicationRequest',
      id: 'draft-1',
      status: 'draft',
      intent: 'order',
      subject,
      medicationCodeableConcept: { coding: [coding(c.draft)], text: c.draft.display },
    };
    const res = await app.inject({
      method: 'POST',
      url: `/cds-services/${c.service}-order-sign`,
      payload: orderSignRequest({ patientId: PID, drafts: [draft], prefetch: orderPrefetch(resources, PID) }),
      headers: { 'accept-language': 'en' },
    });
    t.equal(res.statusCode, 200, 'status 200');
    const cards = res.json().cards as Card[];
    if (c.expect.card === false) {
      t.same(cards, [], 'no card');
      return;
    }
    t.equal(cards.length, 1, 'one card');
    const card = cards[0]!;
    t.equal(card.indicator, c.expect.indicator);
    const fired = rulesOf(card)
      .filter((r) => r.status === 'fired')
      .map((r) => r.id);
    for (const id of c.expect.fired ?? [])
      t.ok(fired.includes(id), `${id} fired (fired: ${fired.join(', ')})`);
    for (const id of c.expect.notFired ?? [])
      t.notOk(fired.includes(id), `${id} did not fire (fired: ${fired.join(', ')})`);
    for (const [id, status] of Object.entries(c.expect.states ?? {})) {
      t.equal(rulesOf(card).find((r) => r.id === id)?.status, status, `${id} is ${status}`);
    }
    for (const [id, state] of Object.entries(c.expect.data ?? {})) {
      const data = rulesOf(card).flatMap((r) => r.data ?? []);
      t.equal(data.find((d) => d.id === id)?.state, state, `${id} is ${state}`);
    }
    const text = `${card.summary}\n${card.detail}`;
    if (c.expect.text) t.match(text, new RegExp(c.expect.text), 'card text');
    if (c.expect.notText) t.notMatch(text, new RegExp(c.expect.notText), 'text the card must not hold');
    const labels = (card.suggestions ?? []).map((s) => s.label);
    if (c.expect.suggestion) {
      t.ok(
        labels.some((l) => l.includes(c.expect.suggestion!)),
        `a suggestion says "${c.expect.suggestion}" (${labels.join(' | ')})`,
      );
    }
    if (c.expect.noTopical)
      t.notOk(
        labels.some((l) => /gel/.test(l)),
        'no topical NSAID offered',
      );
    if (c.expect.topicalCode) {
      const topical = (card.suggestions ?? []).find((s) => /gel/.test(s.label));
      const resource = topical?.actions?.[0]?.resource as MedicationRequest | undefined;
      const codes = resource?.medicationCodeableConcept?.coding?.map((x) => x.code) ?? [];
      t.ok(
        codes.includes(c.expect.topicalCode),
        `topical coded ${c.expect.topicalCode} (${codes.join(', ')})`,
      );
      t.notOk(codes.includes('D11AX18'));
      t.notMatch(topical?.label ?? '', /knee/);
    }
    // Replacing a draft survives a client that applies only the first action: create first.
    for (const s of card.suggestions ?? []) {
      const types = (s.actions ?? []).map((a) => a.type);
      if (types.includes('delete')) t.same(types, ['create', 'delete'], `${s.label}: create, then delete`);
    }
  });
}

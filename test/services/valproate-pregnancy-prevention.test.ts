/**
 * cds-services/valproate-pregnancy-prevention.yaml end to end: a valproate draft for a female patient
 * aged 12 to 55 without a pregnancy prevention programme documented in the last 12 months gets one
 * critical card; every other case none.
 */
import type { Patient, Resource } from 'fhir/r4.js';
import t from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { patientOf, resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import {
  medicationRequest,
  orderPrefetch,
  orderSelectRequest,
  orderSignRequest,
  valproatePppObservation,
} from '../../tools/synthetic/orders.js';
import { generatePatient, type PatientOptions } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';
import { assertConforms, buildTestApp, NOW } from '../helpers/app.js';

const { app } = await buildTestApp();
t.teardown(() => app.close());

function patient(options: PatientOptions): { id: string; resources: Resource[] } {
  const bundle = toServerForm(generatePatient(createRng(3, 0), { now: NOW, ...options }));
  return { id: patientOf(bundle).id!, resources: resourcesOf(bundle) };
}

async function sign(
  p: { id: string; resources: Resource[] },
  extra: Resource[] = [],
  language = 'en',
): Promise<Card[]> {
  const drafts = [
    medicationRequest({ id: 'v1', drug: 'valproate', patientId: p.id }),
    medicationRequest({ id: 'p1', drug: 'paracetamol', patientId: p.id }),
  ];
  const prefetch = orderPrefetch([...p.resources, ...extra], p.id);
  const res = await app.inject({
    method: 'POST',
    url: '/cds-services/valproate-pregnancy-prevention-order-sign',
    headers: { 'accept-language': language },
    payload: orderSignRequest({ patientId: p.id, drafts, prefetch }),
  });
  t.equal(res.statusCode, 200);
  assertConforms('HookResponse', res.json());
  return res.json().cards;
}

/** A rule's result in the card's extension. */
const stateOf = (card: Card, id: string) =>
  (
    card.extension![EXPLANATION_EXTENSION] as {
      rules: { id: string; status: string; data?: { id: string; state: string }[] }[];
    }
  ).rules.find((r) => r.id === id)!;

t.test('a woman of 30 without a documented programme: one critical card with the requirement', async (t) => {
  const p = patient({ age: 30, gender: 'female' });
  const cards = await sign(p);
  t.equal(cards.length, 1);
  const card = cards[0]!;
  t.equal(card.indicator, 'critical');
  t.equal(
    card.summary,
    'Valproic acid 250 mg capsule: valproate for a female aged 12–55 with no pregnancy prevention programme in 12 months',
  );
  t.match(card.detail!, /pregnancy prevention programme/);
  t.match(card.detail!, /signed risk acknowledgement form/);
  t.match(card.detail!, /\*\*female aged 12 to 55\*\* — Age \(date of birth\): 30/);
  t.equal(
    card.source.url,
    'https://www.ema.europa.eu/en/medicines/human/referrals/valproate-related-substances-0',
  );
  t.same(
    card.links!.map((l) => l.url),
    [
      'https://www.ema.europa.eu/en/medicines/human/referrals/valproate-related-substances-0',
      'https://www.gov.uk/guidance/valproate-use-by-women-and-girls',
      'https://archive.ansm.sante.fr/afssaps/Dossiers/Valproate-et-derives',
    ],
  );
  const focus = (card.extension![EXPLANATION_EXTENSION] as { focus: { reference: string } }).focus;
  t.equal(focus.reference, 'MedicationRequest/v1');
  t.equal(card.overrideReasons!.length, 6);
});

t.test('a programme documented within 12 months: no card; an older one has lapsed', async (t) => {
  const p = patient({ age: 30, gender: 'female' });
  t.same(await sign(p, [valproatePppObservation('ppp1', p.id, '2026-03-01T10:00:00Z')]), []);
  const [card] = await sign(p, [valproatePppObservation('ppp1', p.id, '2025-06-01T10:00:00Z')]);
  t.equal(card!.indicator, 'critical');
  // Lapsed: the programme is shown as too old, with its date, and is stale in the extension.
  t.match(
    card!.detail!,
    /\*\*no pregnancy prevention programme documented in the last 12 months\*\* — Pregnancy prevention programme \\\(2025\\-06\\-01\\\), older than 12 months/,
  );
  t.match(stateOf(card!, 'noCurrentProgramme'), {
    status: 'fired',
    data: [{ id: 'programme', state: 'stale', date: '2025-06-01T10:00:00Z' }],
  });
  // A record saying the programme is not in place does not count.
  t.equal((await sign(p, [valproatePppObservation('ppp1', p.id, '2026-03-01T10:00:00Z', false)])).length, 1);
});

t.test('the age band is 12 to 55 inclusive, female only', async (t) => {
  t.same(await sign(patient({ age: 30, gender: 'male' })), [], 'male');
  t.same(await sign(patient({ age: 56, gender: 'female' })), [], 'female aged 56');
  t.equal((await sign(patient({ age: 55, gender: 'female' }))).length, 1, 'female aged 55');
  // The generator makes adults only: a girl is the same record with another birth date.
  const born = (birthDate: string) => {
    const p = patient({ age: 30, gender: 'female' });
    return {
      ...p,
      resources: p.resources.map((r) => (r.resourceType === 'Patient' ? { ...r, birthDate } : r)),
    };
  };
  t.equal((await sign(born('2014-11-22'))).length, 1, '12 today');
  t.same(await sign(born('2014-11-23')), [], '12 tomorrow');
});

t.test('order-select: only a selected valproate draft is checked', async (t) => {
  const p = patient({ age: 25, gender: 'female' });
  const drafts = [
    medicationRequest({ id: 'v1', drug: 'valproate', patientId: p.id }),
    medicationRequest({ id: 'p1', drug: 'paracetamol', patientId: p.id }),
  ];
  const call = async (selections: string[]) => {
    const res = await app.inject({
      method: 'POST',
      url: '/cds-services/valproate-pregnancy-prevention-order-select',
      payload: orderSelectRequest({
        patientId: p.id,
        drafts,
        selections,
        prefetch: orderPrefetch(p.resources, p.id),
      }),
    });
    t.equal(res.statusCode, 200);
    return res.json().cards as Card[];
  };
  t.same(await call(['MedicationRequest/p1']), []);
  t.equal((await call(['MedicationRequest/v1'])).length, 1);
});

t.test(
  'without the programme documentation the card still comes, and says the data was missing',
  async (t) => {
    const p = patient({ age: 30, gender: 'female' });
    const { ppp: _ppp, ...prefetch } = orderPrefetch(p.resources, p.id);
    const res = await app.inject({
      method: 'POST',
      url: '/cds-services/valproate-pregnancy-prevention-order-sign',
      payload: orderSignRequest({
        patientId: p.id,
        drafts: [medicationRequest({ id: 'v1', drug: 'valproate', patientId: p.id })],
        prefetch,
      }),
    });
    t.equal(res.statusCode, 200);
    const [card] = res.json().cards;
    t.match(card.detail, /_Data not available_: pregnancy prevention programme documentation \(/);
  },
);

t.test('French card', async (t) => {
  const [card] = await sign(patient({ age: 30, gender: 'female' }), [], 'fr');
  t.equal(
    card!.summary,
    'Valproic acid 250 mg capsule\u00a0: valproate chez une patiente de 12–55 ans sans programme de prévention des grossesses',
  );
  t.match(card!.detail!, /accord de soins/);
});

t.test(
  'no date of birth: a warning card saying so, never silence (the age rule is not evaluable)',
  async (t) => {
    const p = patient({ age: 30, gender: 'female' });
    const noBirthDate = {
      ...p,
      resources: p.resources.map((r) => {
        if (r.resourceType !== 'Patient') return r;
        const { birthDate: _birthDate, ...rest } = r as Patient;
        return rest as Resource;
      }),
    };
    const [card, ...rest] = await sign(noBirthDate);
    t.same(rest, []);
    t.equal(card!.indicator, 'warning');
    t.equal(
      card!.summary,
      'Valproic acid 250 mg capsule: date of birth not recorded; if she can become pregnant, valproate needs the prevention programme',
    );
    t.match(card!.detail!, /\*\*female aged 12 to 55: not evaluated\*\* \(date of birth not recorded\)/);
    t.notMatch(card!.detail!, /Pregnancy prevention programme not recorded/, 'the title says it');
    t.match(stateOf(card!, 'childbearingAge'), {
      status: 'not-evaluable',
      data: [{ id: 'birthDate', state: 'not-recorded' }],
    });
    // With a current programme there is nothing to check: no card.
    t.same(await sign(noBirthDate, [valproatePppObservation('ppp1', p.id, '2026-03-01T10:00:00Z')]), []);
    const [fr] = await sign(noBirthDate, [], 'fr');
    t.match(fr!.summary, /date de naissance non renseignée/);
  },
);

t.test('a programme record that cannot be read is not "no programme": a warning card', async (t) => {
  const p = patient({ age: 30, gender: 'female' });
  const ppp = valproatePppObservation('ppp1', p.id, '2026-03-01T10:00:00Z') as Resource & {
    valueBoolean?: boolean;
    valueString?: string;
  };
  delete ppp.valueBoolean;
  ppp.valueString = 'yes';
  const [card, ...rest] = await sign(p, [ppp]);
  t.same(rest, []);
  t.equal(card!.indicator, 'warning');
  t.match(card!.summary, /the pregnancy prevention programme record cannot be read/);
  t.match(stateOf(card!, 'noCurrentProgramme'), {
    status: 'not-evaluable',
    data: [{ id: 'programme', state: 'unreadable' }],
  });
  t.match(
    card!.detail!,
    /pregnancy prevention programme unreadable \\\(2026\\-03\\-01\\\): value not yes or no/,
  );
});

t.test('a programme recorded as not in place counts as none, with its date', async (t) => {
  const p = patient({ age: 30, gender: 'female' });
  const [card] = await sign(p, [valproatePppObservation('ppp1', p.id, '2026-03-01T10:00:00Z', false)]);
  t.equal(card!.indicator, 'critical');
  t.match(card!.detail!, /Recorded as not in place on: 2026\\-03\\-01/);
  t.match(stateOf(card!, 'noCurrentProgramme'), { data: [{ id: 'programme', state: 'current' }] });
});

t.test('a pregnancy record without a date or of the wrong type is not dropped: not evaluable', async (t) => {
  const p = patient({ age: 30, gender: 'female' });
  const status = (extra: Record<string, unknown>) =>
    ({
      resourceType: 'Observation',
      id: 'preg1',
      status: 'final',
      code: { coding: [{ system: 'http://loinc.org', code: '82810-3' }] },
      subject: { reference: `Patient/${p.id}` },
      ...extra,
    }) as Resource;
  const pregnant = { valueCodeableConcept: { coding: [{ system: 'http://loinc.org', code: 'LA15173-0' }] } };
  // Undated: the pregnancy rule is not evaluable; the programme card says so.
  const [undated] = await sign(p, [status(pregnant)]);
  t.equal(undated!.indicator, 'critical');
  t.match(stateOf(undated!, 'pregnant'), {
    status: 'not-evaluable',
    data: [{ id: 'pregnancyRecords', state: 'unreadable' }],
  });
  t.match(
    undated!.detail!,
    /\*\*pregnant: not evaluated\*\* \(pregnancy record unreadable: the record has no date\)/,
  );
  // A status recorded as text: unreadable, with its reason.
  const [text] = await sign(p, [status({ effectiveDateTime: '2026-11-01', valueString: 'pregnant' })]);
  t.match(stateOf(text!, 'pregnant'), {
    status: 'not-evaluable',
    reason: {
      en: 'pregnancy record unreadable (2026-11-01): pregnancy status not coded (valueString: "pregnant")',
    },
  });
  // Dated and coded: the pregnancy card; older than 42 weeks, no longer a pregnancy (stale, evaluated).
  const [current] = await sign(p, [status({ effectiveDateTime: '2026-11-01', ...pregnant })]);
  t.equal(
    current!.summary,
    'Valproic acid 250 mg capsule: valproate in pregnancy, contraindicated whatever the prevention programme',
  );
  const [old] = await sign(p, [status({ effectiveDateTime: '2025-11-01', ...pregnant })]);
  t.match(stateOf(old!, 'pregnant'), { status: 'not-fired', data: [{ state: 'stale' }] });
});

/**
 * cds-services/valproate-pregnancy-prevention.yaml end to end: a valproate draft for a female patient
 * aged 12 to 55 without a pregnancy prevention programme documented in the last 12 months gets one
 * critical card; every other case none.
 */
import type { Resource } from 'fhir/r4.js';
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
  t.match(card!.detail!, /Last documented \(lapsed\): 2025\\-06\\-01/);
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

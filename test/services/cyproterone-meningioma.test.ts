/**
 * cds-services/cyproterone-meningioma.yaml end to end: the brain MRI monitoring of the ANSM (at the
 * start, at 5 years, then every 2 years) checked against the treatment history of each cyproterone draft.
 */
import type { Resource } from 'fhir/r4.js';
import t from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import { SYSTEM } from '../../src/codes.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import { patientOf, resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import {
  brainMriProcedure,
  medicationRequest,
  orderPrefetch,
  orderSignRequest,
} from '../../tools/synthetic/orders.js';
import { generatePatient } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';
import { assertConforms, buildTestApp, NOW } from '../helpers/app.js';

const { app } = await buildTestApp();
t.teardown(() => app.close());

const bundle = toServerForm(generatePatient(createRng(5, 0), { now: NOW, age: 45, gender: 'male' }));
const PATIENT = patientOf(bundle).id!;
const RECORD = resourcesOf(bundle);

/** A cyproterone prescription in the record, authored on `date`. */
const past = (id: string, date: string, status: 'active' | 'completed' | 'stopped' = 'active') =>
  medicationRequest({ id, drug: 'cyproterone', patientId: PATIENT, status, authoredOn: date });
const mri = (id: string, date: string) => brainMriProcedure(id, PATIENT, date);

async function sign(extra: Resource[], language = 'en'): Promise<Card[]> {
  const drafts = [
    medicationRequest({ id: 'c1', drug: 'cyproterone', patientId: PATIENT }),
    medicationRequest({ id: 'i1', drug: 'ibuprofen', patientId: PATIENT }),
  ];
  const res = await app.inject({
    method: 'POST',
    url: '/cds-services/cyproterone-meningioma-order-sign',
    headers: { 'accept-language': language },
    payload: orderSignRequest({
      patientId: PATIENT,
      drafts,
      prefetch: orderPrefetch([...RECORD, ...extra], PATIENT),
    }),
  });
  t.equal(res.statusCode, 200);
  assertConforms('HookResponse', res.json());
  return res.json().cards;
}

const fired = (card: Card) =>
  (card.extension![EXPLANATION_EXTENSION] as { rules: { id: string; status: string }[] }).rules
    .filter((r) => r.status === 'fired')
    .map((r) => r.id);

const ruleOf = (card: Card, id: string) =>
  (
    card.extension![EXPLANATION_EXTENSION] as {
      rules: {
        id: string;
        status: string;
        reason?: { en: string };
        data?: { id: string; state: string }[];
      }[];
    }
  ).rules.find((r) => r.id === id)!;

t.test('starting cyproterone with no brain MRI on record: the MRI required at the start', async (t) => {
  const cards = await sign([]);
  t.equal(cards.length, 1);
  t.equal(cards[0]!.indicator, 'warning');
  t.equal(
    cards[0]!.summary,
    'Cyproterone acetate 50 mg tablet: no brain MRI on record; one is required at the start of treatment (meningioma)',
  );
  t.same(fired(cards[0]!), ['noBrainMri']);
  t.equal(
    cards[0]!.source.url,
    'https://ansm.sante.fr/informations-de-securite/acetate-de-cyproterone-androcur-et-generiques-et-risque-de-meningiome-conduite-a-tenir',
  );
});

t.test(
  'taken for 6 months or more without any brain MRI: the prolonged-use card with the start date',
  async (t) => {
    const cards = await sign([
      past('old', '2025-01-10T09:00:00Z', 'completed'),
      past('now', '2026-01-10T09:00:00Z'),
    ]);
    t.equal(cards.length, 1);
    t.match(cards[0]!.summary, /: taken for 6 months or more and no brain MRI on record \(meningioma\)/);
    t.same(fired(cards[0]!), ['prolongedUse', 'noBrainMri']);
    t.match(cards[0]!.detail!, /First prescription on record: 2025\\-01\\-10/);
  },
);

t.test('an MRI at the start and less than 5 years of treatment: no card', async (t) => {
  t.same(await sign([past('p', '2023-01-10T09:00:00Z'), mri('m', '2023-01-05T09:00:00Z')]), []);
  // A new start with an MRI on record: nothing to add either.
  t.same(await sign([mri('m', '2026-11-01T09:00:00Z')]), []);
});

t.test('5 years or more after the first MRI: the last MRI must be less than 2 years old', async (t) => {
  const history = [past('p', '2020-06-01T09:00:00Z'), mri('m0', '2020-05-20T09:00:00Z')];
  const [card, ...rest] = await sign([...history, mri('m5', '2024-10-01T09:00:00Z')]);
  t.same(rest, []);
  t.match(card!.summary, /first brain MRI 5 years ago or more, last one over 2 years ago; repeat the MRI/);
  t.same(fired(card!), ['prolongedUse', 'fiveYearsFromFirstMri', 'mriOlderThan2Years']);
  t.match(card!.detail!, /First brain MRI: 2020\\-05\\-20/);
  // The last MRI is older than its 24-month window: named with its date, stale in the extension.
  t.match(card!.detail!, /— Last brain MRI \\\(2024\\-10\\-01\\\), older than 24 months/);
  t.match(ruleOf(card!, 'mriOlderThan2Years'), {
    status: 'fired',
    data: [
      { id: 'firstMri', state: 'current', date: '2020-05-20T09:00:00Z' },
      { id: 'lastMri', state: 'stale', date: '2024-10-01T09:00:00Z' },
    ],
  });
  t.same(await sign([...history, mri('m5', '2025-06-01T09:00:00Z')]), [], 'a recent MRI');
});

t.test('counted from the first MRI, not from the start of treatment (ANSM)', async (t) => {
  // Started 7 years ago, first MRI 3 years ago: the repeat MRI is due in 2 years, not now.
  t.same(await sign([past('p', '2019-10-01T09:00:00Z'), mri('m', '2023-10-01T09:00:00Z')]), []);
  // First MRI 5 years ago and nothing since: the 5-year MRI is due, whatever the start date.
  const [card] = await sign([past('p', '2021-06-01T09:00:00Z'), mri('m', '2021-05-01T09:00:00Z')]);
  t.same(fired(card!), ['prolongedUse', 'fiveYearsFromFirstMri', 'mriOlderThan2Years']);
});

t.test('chlormadinone and nomegestrol are monitored the same way (ANSM 2020-2021)', async (t) => {
  for (const [code, display] of [
    ['G03DB06', 'chlormadinone acetate 10 mg tablet'],
    ['G03DB04', 'nomegestrol acetate 5 mg tablet'],
  ]) {
    const draft = medicationRequest({ id: 'p1', drug: 'cyproterone', patientId: PATIENT });
    draft.medicationCodeableConcept = { coding: [{ system: SYSTEM.atc, code, display }], text: display };
    const res = await app.inject({
      method: 'POST',
      url: '/cds-services/cyproterone-meningioma-order-sign',
      payload: orderSignRequest({
        patientId: PATIENT,
        drafts: [draft],
        prefetch: orderPrefetch(RECORD, PATIENT),
      }),
    });
    const [card, ...rest] = res.json().cards as Card[];
    t.same(rest, []);
    t.equal(
      card!.summary,
      `${display}: no brain MRI on record; one is required at the start of treatment (meningioma)`,
    );
  }
});

t.test('French card', async (t) => {
  const [card] = await sign([], 'fr');
  t.equal(
    card!.summary,
    'Cyproterone acetate 50 mg tablet\u00a0: aucune IRM cérébrale au dossier\u00a0; elle est requise en début de traitement',
  );
  t.match(card!.detail!, /attestation annuelle/);
});

t.test('a brain MRI recorded without a date is "unreadable: no date", never "no MRI"', async (t) => {
  const undated = mri('m', '2020-01-01T00:00:00Z');
  delete (undated as { performedDateTime?: string }).performedDateTime;
  for (const extra of [[undated], [undated, mri('m2', '2025-06-01T09:00:00Z')]]) {
    const [card, ...rest] = await sign([past('p', '2020-06-01T09:00:00Z'), ...extra]);
    t.same(rest, []);
    t.equal(card!.indicator, 'warning');
    t.equal(
      card!.summary,
      'Cyproterone acetate 50 mg tablet: brain MRI monitoring cannot be checked: first brain MRI unreadable: no date',
    );
    t.notMatch(`${card!.summary}\n${card!.detail}`, /no brain MRI on record(?!, )/);
    t.match(ruleOf(card!, 'noBrainMri'), {
      status: 'not-evaluable',
      reason: { en: 'first brain MRI unreadable: no date' },
    });
    t.same(fired(card!), ['prolongedUse']);
  }
  const [fr] = await sign([undated], 'fr');
  t.equal(
    fr!.summary,
    'Cyproterone acetate 50 mg tablet\u00a0: surveillance par IRM cérébrale non vérifiable\u00a0: première IRM cérébrale illisible\u00a0: pas de date',
  );
});

t.test('an MRI dated by its period is read (performedPeriod.start)', async (t) => {
  const period = mri('m', '2020-01-01T00:00:00Z');
  delete (period as { performedDateTime?: string }).performedDateTime;
  (period as { performedPeriod?: object }).performedPeriod = { start: '2026-01-05T09:00:00Z' };
  t.same(await sign([past('p', '2026-01-10T09:00:00Z'), period]), []);
});

t.test('a prescription without a date: the treatment start is not evaluable, said on the card', async (t) => {
  const undated = past('old', '2020-01-01T00:00:00Z', 'completed');
  delete (undated as { authoredOn?: string }).authoredOn;
  const [card, ...rest] = await sign([undated, past('now', '2026-10-10T09:00:00Z')]);
  t.same(rest, []);
  t.match(card!.summary, /no brain MRI on record; one is required at the start of treatment/);
  t.match(ruleOf(card!, 'prolongedUse'), {
    status: 'not-evaluable',
    data: [{ id: 'treatmentStart', state: 'unreadable' }],
  });
  t.match(
    card!.detail!,
    /\*\*taken for 6 months or more: not evaluated\*\* \(first prescription unreadable: no prescription date\)/,
  );
});

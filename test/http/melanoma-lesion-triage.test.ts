/**
 * Issues 14 and 15 through the HTTP API: the melanoma model does not score a lesion whose checklist
 * items are not all recorded (the manifest's `minimumRecorded`); a checklist whose missing items could
 * reach the threshold is "incomplete", never "below the referral threshold"; and a lesion whose checklist
 * reaches the threshold gets the referral card alone, with no lower-risk estimate beside it.
 */
import type { Patient } from 'fhir/r4.js';
import t from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';
import type { NotScoredOutcome } from '../../src/scoring/score.js';
import { assertConforms, buildTestApp } from '../helpers/app.js';
import { type LesionSpec, lesion, PATIENT_ID, patientView, searchset } from '../helpers/hook-request.js';

const URL = '/cds-services/melanoma-lesion-triage';
const patient: Patient = { resourceType: 'Patient', id: PATIENT_ID, birthDate: '2001-03-04' };

/** Every weighted 7-point checklist item recorded absent, then the given ones. */
const allAbsent = {
  changeSize: false,
  irregularShape: false,
  irregularColour: false,
  diameter7mm: false,
  inflammation: false,
  oozing: false,
  sensation: false,
} as const;

const { app } = await buildTestApp();
t.teardown(() => app.close());

/** One lesion with the whole prefetch the model reads (a 25-year-old, no skin data, no objection). */
async function cardsFor(spec: LesionSpec, language = 'en'): Promise<Card[]> {
  const res = await app.inject({
    method: 'POST',
    url: URL,
    payload: patientView({
      lesions: searchset([lesion(spec)]),
      patient,
      conditions: searchset([]),
      skin: searchset([]),
      consent: searchset([]),
    }),
    headers: { 'accept-language': language },
  });
  t.equal(res.statusCode, 200, 'status 200');
  const body = res.json() as { cards: Card[] };
  assertConforms('HookResponse', body);
  return body.cards;
}

const topic = (card: Card) => card.source.topic?.code;
const text = (cards: Card[]) => cards.map((c) => `${c.summary}\n${c.detail ?? ''}`).join('\n');

t.test('one item of seven recorded: "incomplete" with the items missing, no model estimate', async (t) => {
  const cards = await cardsFor({ items: { irregularShape: true } });
  t.equal(cards.length, 1, 'one card for the lesion');
  const card = cards[0]!;
  t.equal(card.indicator, 'info');
  t.equal(
    card.summary,
    'Lesion (left forearm): 7-point checklist incomplete, not recorded: Change in size, Irregular colour, Largest diameter 7 mm or more…',
  );
  t.match(
    card.detail,
    /\*\*Weighted 7-point checklist: 2 \(threshold 3\), incomplete: the items not recorded could reach the threshold\*\* — Irregular shape 2\./,
  );
  t.match(
    card.detail,
    /^Items to record: Change in size, Irregular colour, Largest diameter 7 mm or more, Inflammation, Oozing, Change in sensation\./,
  );
  t.notMatch(text(cards), /below the (referral )?threshold/, 'never "below the threshold"');
  t.notMatch(text(cards), /lower risk|<1%/, 'no estimate');
  const rules = (card.extension![EXPLANATION_EXTENSION] as { rules: { id: string; incomplete?: true }[] })
    .rules;
  t.equal(rules.find((r) => r.id === 'weighted7pcl')?.incomplete, true, 'incomplete in the extension');
});

t.test('the same lesion in French: "incomplète", never "sous le seuil"', async (t) => {
  const cards = await cardsFor({ items: { irregularShape: true } }, 'fr');
  t.equal(cards.length, 1);
  t.match(
    cards[0]!.summary,
    /^Lésion \(avant-bras gauche\)\u00a0: liste des 7 points incomplète, critères non renseignés\u00a0: Modification de taille/,
  );
  t.match(
    cards[0]!.detail,
    /^Critères à renseigner\u00a0: Modification de taille, Couleur irrégulière, Plus grand diamètre de 7 mm ou plus, Inflammation, Suintement, Modification de la sensibilité\./,
  );
  t.notMatch(text(cards), /sous le seuil ;|— sous le seuil/);
});

t.test('a dermoscopy with one item recorded is incomplete too', async (t) => {
  const cards = await cardsFor({ items: { ...allAbsent, irregularStreaks: true } });
  t.same(
    cards.map((c) => c.summary),
    [
      'Lesion (left forearm): 7-point checklist incomplete, not recorded: Atypical pigment network, Blue-whitish veil, Atypical vascular…',
    ],
    'the incomplete card only: no model card beside it',
  );
  t.match(
    cards[0]!.detail,
    /Weighted 7-point checklist: 0 \(threshold 3\), below the threshold\*\* — no item scored\./,
  );
  t.match(
    cards[0]!.detail,
    /Dermoscopic 7-point checklist: 1 \(threshold 3\), incomplete: the items not recorded could reach the threshold\*\* — Irregular streaks 1\./,
  );
});

t.test(
  'missing items that cannot reach the threshold leave it below; the model says which it lacks',
  async (t) => {
    const { oozing: _, ...sixAbsent } = allAbsent;
    const cards = await cardsFor({ items: sixAbsent });
    t.same(
      cards.map((c) => [topic(c), c.summary]),
      [
        [
          'melanoma-triage',
          'Lesion (left forearm): 7-point checklists below the referral threshold; this does not exclude melanoma',
        ],
        [
          'melanoma-risk-model',
          'Lesion (left forearm): no demonstration model estimate, Weighted 7-point checklist items not recorded: Oozing (all 7 needed)',
        ],
      ],
    );
    const model = (cards[1]!.extension![EXPLANATION_EXTENSION] as { model: NotScoredOutcome }).model;
    t.equal(model.status, 'not-scored');
    t.same(model.reasons, [
      {
        code: 'incomplete',
        text: {
          en: 'Weighted 7-point checklist items not recorded: Oozing (all 7 needed)',
          fr: 'Critères de la liste des 7 points pondérée non renseignés : Suintement (les 7 requis)',
        },
      },
    ]);
    t.match(
      cards[1]!.detail,
      // Escaped for markdown (cards/detail.ts).
      '**No estimate**: Weighted 7\\-point checklist items not recorded: Oozing \\(all 7 needed\\).',
    );
  },
);

t.test('every item recorded, below the threshold: the estimate, in plain words', async (t) => {
  const cards = await cardsFor({ items: allAbsent });
  t.same(
    cards.map((c) => c.summary),
    [
      'Lesion (left forearm): 7-point checklists below the referral threshold; this does not exclude melanoma',
      'Lesion (left forearm): <1% melanoma risk (lower risk) estimated by a demonstration model on simulated data',
    ],
  );
  t.notMatch(text(cards), /checklists apart/);
});

t.test(
  'the weighted checklist reaches the threshold: the referral card alone, no lower-risk card',
  async (t) => {
    const cards = await cardsFor({ items: { ...allAbsent, changeSize: true, inflammation: true } });
    t.equal(cards.length, 1, 'one voice for the lesion');
    const card = cards[0]!;
    t.equal(card.indicator, 'warning');
    t.equal(
      card.summary,
      'Lesion (left forearm): a 7-point checklist reaches the referral threshold; consider urgent dermatology referral',
    );
    t.notMatch(text(cards), /lower risk|<1%|For the patient|demonstration computer model/);
  },
);

t.test(
  'the dermoscopic checklist reaches the threshold (issue 14): no "<1% (lower risk)" beside it',
  async (t) => {
    const cards = await cardsFor({ items: { ...allAbsent, atypicalNetwork: true, blueWhitishVeil: true } });
    t.same(
      cards.map((c) => [c.indicator, topic(c)]),
      [['warning', 'melanoma-triage']],
    );
    t.match(
      cards[0]!.detail,
      /Dermoscopic 7-point checklist: 4 \(threshold 3\), referral threshold reached\*\* — Atypical pigment network 2, Blue-whitish veil 2\./,
    );
    t.notMatch(text(cards), /lower risk|<1%/);
  },
);

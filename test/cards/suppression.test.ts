import t from 'tap';
import type { IssuedCard } from '../../src/cards/render.js';
import {
  alertFatigueOf,
  DEFAULT_ALERT_FATIGUE,
  suppressCards,
  unassessedKind,
  windowEnd,
} from '../../src/cards/suppression.js';
import type { CardSpec } from '../../src/services/definition-schema.js';

const NOW = new Date('2026-11-22T09:30:00.000Z');

function issued(
  id: string,
  indicator: 'info' | 'warning' | 'critical',
  when: CardSpec['when'] = {},
): IssuedCard {
  const spec = { id, when, indicator, summary: { en: id, fr: id } } as CardSpec;
  return { card: { summary: id, indicator }, spec, findingKey: `${id}@patient` } as unknown as IssuedCard;
}

const ids = (cards: readonly IssuedCard[]) => cards.map((c) => c.spec.id);

t.test('defaults, and what a service declares replaces them', async (t) => {
  t.same(alertFatigueOf({}), DEFAULT_ALERT_FATIGUE);
  t.same(alertFatigueOf({ alertFatigue: { maxCards: 2, showNoEstimate: false, afterOverride: {} } }), {
    afterOverride: {},
    showNoEstimate: false,
    showNotEvaluable: true,
    maxCards: 2,
  });
  const settings = alertFatigueOf({});
  const base = { findingKey: 'x', cardUuid: 'c', at: NOW.toISOString(), encounter: null };
  t.equal(
    windowEnd({ ...base, reasonCode: 'already-handled' }, settings)?.toISOString(),
    '2026-12-22T09:30:00.000Z',
  );
  t.equal(
    windowEnd({ ...base, reasonCode: 'not-relevant-now' }, settings)?.toISOString(),
    '2026-11-23T09:30:00.000Z',
  );
  t.equal(windowEnd({ ...base, reasonCode: 'input-data-wrong' }, settings), undefined);
  t.equal(windowEnd({ ...base, reasonCode: null }, settings), undefined);
});

t.test('no-estimate and not-evaluable cards, by their condition', async (t) => {
  t.equal(unassessedKind(issued('a', 'info', { model: 'm', scored: false }).spec), 'no-estimate');
  t.equal(unassessedKind(issued('b', 'info', { noneEvaluated: ['r'] }).spec), 'not-evaluable');
  t.equal(unassessedKind(issued('c', 'info', { model: 'm', scored: true }).spec), undefined);
  t.equal(unassessedKind(issued('d', 'warning', { anyFired: ['r'] }).spec), undefined);

  const cards = [
    issued('estimate', 'info', { model: 'm', scored: true }),
    issued('noEstimate', 'info', { model: 'm', scored: false }),
    issued('notEvaluable', 'info', { noneEvaluated: ['r'] }),
  ];
  const run = (showNoEstimate: boolean, showNotEvaluable: boolean) =>
    suppressCards({
      cards,
      settings: { ...DEFAULT_ALERT_FATIGUE, showNoEstimate, showNotEvaluable },
      overrides: [],
      encounter: null,
      now: NOW,
    });
  t.same(ids(run(true, true).shown), ['estimate', 'noEstimate', 'notEvaluable']);
  const off = run(false, false);
  t.same(ids(off.shown), ['estimate']);
  t.same(off.suppressed, [
    { findingKey: 'noEstimate@patient', reason: 'no-estimate-hidden' },
    { findingKey: 'notEvaluable@patient', reason: 'not-evaluable-hidden' },
  ]);
});

t.test('the cap keeps the most urgent cards, in their order', async (t) => {
  const cards = [
    issued('i1', 'info'),
    issued('w1', 'warning'),
    issued('i2', 'info'),
    issued('c1', 'critical'),
    issued('w2', 'warning'),
  ];
  const { shown, suppressed } = suppressCards({
    cards,
    settings: { ...DEFAULT_ALERT_FATIGUE, maxCards: 3 },
    overrides: [],
    encounter: null,
    now: NOW,
  });
  t.same(ids(shown), ['w1', 'c1', 'w2']);
  t.same(suppressed, [
    { findingKey: 'i1@patient', reason: 'card-cap' },
    { findingKey: 'i2@patient', reason: 'card-cap' },
  ]);
  t.same(
    ids(
      suppressCards({ cards, settings: DEFAULT_ALERT_FATIGUE, overrides: [], encounter: null, now: NOW })
        .shown,
    ),
    ['i1', 'w1', 'i2', 'c1', 'w2'],
    'under the cap, all',
  );
});

t.test('the latest feedback on a card decides; the longest window wins', async (t) => {
  const card = issued('refer', 'warning');
  const feedback = (seq: number, reasonCode: string | null, at: string, outcome = 'overridden' as const) => ({
    seq,
    findingKey: 'refer@patient',
    cardUuid: `card-${seq}`,
    reasonCode,
    at,
    encounter: null,
    outcome,
  });
  const result = suppressCards({
    cards: [card],
    settings: DEFAULT_ALERT_FATIGUE,
    overrides: [
      feedback(1, 'already-handled', '2026-11-01T00:00:00.000Z'),
      feedback(2, 'not-relevant-now', '2026-11-22T00:00:00.000Z'),
    ],
    encounter: null,
    now: NOW,
  });
  t.same(result.suppressed, [
    {
      findingKey: 'refer@patient',
      reason: 'override:already-handled',
      overriddenCard: 'card-1',
      until: '2026-12-01T00:00:00.000Z',
    },
  ]);
});

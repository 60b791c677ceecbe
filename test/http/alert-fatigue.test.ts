/**
 * Alert fatigue controls end to end, on both stores, with a clock the test moves: a card overridden
 * with a coded reason that has a window is not shown again for the same patient and finding until the
 * window ends (exactly), the suppression is in the audit trail and in the analytics; another patient,
 * another finding, a reason without a window, or a later acceptance, do not suppress.
 */
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import type { AuditStore } from '../../src/audit/store.js';
import type { Card } from '../../src/cds-hooks.js';
import { SYSTEM } from '../../src/codes.js';
import { buildTestApp, NOW } from '../helpers/app.js';
import { lesion, patientView, searchset, triageCards } from '../helpers/hook-request.js';
import { eachStore, type StoreKind } from '../helpers/stores.js';

const URL = '/cds-services/melanoma-lesion-triage';
const DAY = 24 * 3_600_000;
const referralExam = () => lesion({ items: { changeSize: true, irregularColour: true, inflammation: true } });

async function setUp(t: Test, kind: StoreKind) {
  const { store } = await kind.open();
  const clock = { now: NOW };
  const { app } = await buildTestApp({}, { store, now: () => clock.now });
  t.teardown(() => app.close());
  return { app, store, clock };
}

async function call(app: FastifyInstance, patientId: string, encounterId?: string): Promise<Card[]> {
  const request = patientView({ lesions: searchset([referralExam()]), patient: null });
  request.context.patientId = patientId;
  if (encounterId) request.context.encounterId = encounterId;
  else delete request.context.encounterId;
  const res = await app.inject({ method: 'POST', url: URL, payload: request });
  if (res.statusCode !== 200) throw new Error(`service call answered ${res.statusCode}: ${res.body}`);
  return res.json().cards as Card[];
}

async function feedback(app: FastifyInstance, card: Card, outcome: 'overridden' | 'accepted', code?: string) {
  const item =
    outcome === 'overridden'
      ? { overrideReason: { reason: { system: SYSTEM.overrideReason, code } } }
      : { acceptedSuggestions: [{ id: card.suggestions![0]!.uuid }] };
  const res = await app.inject({
    method: 'POST',
    url: `${URL}/feedback`,
    payload: {
      feedback: [{ card: card.uuid, outcome, outcomeTimestamp: '2026-11-22T09:35:00Z', ...item }],
    },
  });
  if (res.statusCode !== 200) throw new Error(`feedback answered ${res.statusCode}: ${res.body}`);
}

const referral = (cards: Card[]) =>
  triageCards(cards).find((c) => c.indicator === 'warning') as Card | undefined;
const at = (ms: number) => new Date(NOW.getTime() + ms);

/** The `suppressed` entries of the last service call recorded. */
async function lastSuppressed(store: AuditStore): Promise<unknown[] | undefined> {
  const rows = (await store.readChain(0, 10_000)).filter((r) => r.kind === 'service-call');
  return (JSON.parse(rows.at(-1)!.payload) as { suppressed?: unknown[] }).suppressed;
}

await eachStore(t, async (t, kind) => {
  t.test('already handled: 30 days for this patient and this finding, exactly', async (t) => {
    const { app, store, clock } = await setUp(t, kind);
    const first = referral(await call(app, 'pat-a'))!;
    t.ok(first, 'a referral card');
    const others = (await call(app, 'pat-a')).length;
    await feedback(app, first, 'overridden', 'already-handled');
    const until = at(30 * DAY).toISOString();

    clock.now = at(1000);
    const again = await call(app, 'pat-a');
    t.equal(referral(again), undefined, 'the overridden referral is not shown again');
    t.equal(again.length, others - 1, 'the other cards (the model estimate) still are');
    t.same(await lastSuppressed(store), [
      {
        finding: 'refer@Observation/lesion-1',
        reason: 'override:already-handled',
        overriddenCard: first.uuid,
        until,
      },
    ]);

    clock.now = at(30 * DAY - 1);
    t.equal(referral(await call(app, 'pat-a')), undefined, 'still hidden at the last millisecond');
    t.ok(referral(await call(app, 'pat-b')), 'another patient still gets the card');

    clock.now = at(30 * DAY);
    const after = await call(app, 'pat-a');
    t.ok(referral(after), 'shown again when the window ends');
    t.equal(await lastSuppressed(store), undefined, 'nothing suppressed, nothing recorded');

    const rows = (await store.analytics()).suppressed;
    t.same(
      rows.map((r) => [r.serviceId, r.reason, r.n]),
      [['melanoma-lesion-triage', 'override:already-handled', 2]],
      'the analytics count the suppressed cards by reason',
    );
  });

  t.test('not relevant now: 24 hours, or until another encounter', async (t) => {
    const { app, store, clock } = await setUp(t, kind);
    const first = referral(await call(app, 'pat-c', 'enc-1'))!;
    await feedback(app, first, 'overridden', 'not-relevant-now');

    clock.now = at(DAY - 1);
    t.equal(referral(await call(app, 'pat-c', 'enc-1')), undefined, 'same encounter, within 24 h: hidden');
    t.same(
      ((await lastSuppressed(store)) as { reason: string; until: string }[]).map((s) => [s.reason, s.until]),
      [['override:not-relevant-now', at(DAY).toISOString()]],
    );
    t.equal(referral(await call(app, 'pat-c')), undefined, 'a call naming no encounter: the 24 h apply');
    clock.now = at(3_600_000);
    t.ok(referral(await call(app, 'pat-c', 'enc-2')), 'the next encounter shows it again');
    clock.now = at(DAY);
    t.ok(referral(await call(app, 'pat-c', 'enc-1')), 'after 24 h, shown again');
  });

  t.test('a reason without a window, or a later acceptance, suppresses nothing', async (t) => {
    const { app, clock } = await setUp(t, kind);
    const wrong = referral(await call(app, 'pat-d'))!;
    await feedback(app, wrong, 'overridden', 'input-data-wrong');
    clock.now = at(1000);
    t.ok(referral(await call(app, 'pat-d')), 'input data wrong: the card comes back');

    const handled = referral(await call(app, 'pat-e'))!;
    await feedback(app, handled, 'overridden', 'already-handled');
    clock.now = at(2000);
    t.equal(referral(await call(app, 'pat-e')), undefined);
    await feedback(app, handled, 'accepted');
    clock.now = at(3000);
    t.ok(referral(await call(app, 'pat-e')), 'the override was replaced by an acceptance');
  });
});

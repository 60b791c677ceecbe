/**
 * POST /cds-services/{id}/feedback (CDS Hooks 2.0 §Feedback), on both stores: cards are issued by real
 * service calls, then feedback is sent about them.
 */
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import { SYSTEM } from '../../src/codes.js';
import type { AuditStore } from '../../src/audit/store.js';
import { verifyStore } from '../../tools/audit-verify.js';
import { assertConforms, buildTestApp, tempDir } from '../helpers/app.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';
import { eachStore, type StoreKind } from '../helpers/stores.js';

const MELANOMA = 'melanoma-lesion-triage';
const RESTRICTED = 'restricted-reasons';

/** The bundled service, and a copy of the omit-demo fixture that offers two override reasons only. */
function servicesDir(): string {
  const dir = tempDir('cds-services-');
  copyFileSync(`cds-services/${MELANOMA}.yaml`, join(dir, `${MELANOMA}.yaml`));
  const fixture = readFileSync('test/fixtures/services/omit-demo.yaml', 'utf8').replace(
    'id: omit-demo',
    `id: ${RESTRICTED}`,
  );
  writeFileSync(
    join(dir, `${RESTRICTED}.yaml`),
    `${fixture}\noverrideReasons: [already-handled, not-relevant-now]\n`,
  );
  return dir;
}

const referralExam = () => lesion({ items: { changeSize: true, irregularColour: true, inflammation: true } });

async function setUp(t: Test, kind: StoreKind) {
  const { store } = await kind.open();
  const { app, logText } = await buildTestApp({ servicesDir: servicesDir() }, { store });
  t.teardown(() => app.close());
  return { app, store, logText };
}

/** Calls a service and returns the cards it issued. */
async function issue(app: FastifyInstance, serviceId = MELANOMA, patientId = 'pat-123'): Promise<Card[]> {
  const request = patientView({ lesions: searchset([referralExam()]), patient: null });
  request.context.patientId = patientId;
  const res = await app.inject({ method: 'POST', url: `/cds-services/${serviceId}`, payload: request });
  if (res.statusCode !== 200) throw new Error(`service call answered ${res.statusCode}: ${res.body}`);
  return res.json().cards;
}

function send(app: FastifyInstance, feedback: unknown[], serviceId = MELANOMA) {
  return app.inject({ method: 'POST', url: `/cds-services/${serviceId}/feedback`, payload: { feedback } });
}

const accepted = (card: Card, extra: Record<string, unknown> = {}) => ({
  card: card.uuid,
  outcome: 'accepted',
  acceptedSuggestions: [{ id: card.suggestions![0]!.uuid }],
  outcomeTimestamp: '2026-11-22T09:35:00Z',
  ...extra,
});

const overridden = (card: Card, code = 'already-handled', extra: Record<string, unknown> = {}) => ({
  card: card.uuid,
  outcome: 'overridden',
  overrideReason: { reason: { system: SYSTEM.overrideReason, code }, userComment: 'Referred last week' },
  outcomeTimestamp: '2026-11-22T09:35:00Z',
  ...extra,
});

async function feedbackRows(store: AuditStore) {
  return (await store.readChain(0, 1000)).filter((r) => r.kind === 'feedback');
}

function errorCode(res: { json(): unknown }): string {
  return (res.json() as { issue: { details: { coding: { code: string }[] } }[] }).issue[0]!.details.coding[0]!
    .code;
}

await eachStore(t, async (t, kind) => {
  t.test('an accepted suggestion is stored, linked to the card and its patient pseudonym', async (t) => {
    const { app, store } = await setUp(t, kind);
    const [card] = await issue(app);
    t.ok(card?.suggestions?.[0]?.uuid, 'the card carries suggestions with uuids');
    const res = await send(app, [accepted(card!)]);
    t.equal(res.statusCode, 200);
    t.same(res.json(), { stored: 1, duplicates: 0 });
    assertConforms('FeedbackResponse', res.json());
    const [row] = await feedbackRows(store);
    const [call] = (await store.readChain(0, 1)).filter((r) => r.kind === 'service-call');
    t.equal(row!.pseudonym, call!.pseudonym, "the feedback carries the card's patient pseudonym");
    t.same(JSON.parse(row!.payload), {
      card: card!.uuid,
      outcome: 'accepted',
      acceptedSuggestions: [card!.suggestions![0]!.uuid],
      outcomeTimestamp: '2026-11-22T09:35:00Z',
      caller: { issuer: null, tenant: null },
    });
    t.equal(row!.at, '2026-11-22T09:30:00.000Z');
  });

  t.test('a retry is answered 200 again and stored once', async (t) => {
    const { app, store } = await setUp(t, kind);
    const [card] = await issue(app);
    t.same((await send(app, [overridden(card!)])).json(), { stored: 1, duplicates: 0 });
    const retry = await send(app, [
      overridden(card!, 'already-handled', { outcomeTimestamp: '2026-11-22T09:35:00.000+00:00' }),
    ]);
    t.equal(retry.statusCode, 200);
    t.same(retry.json(), { stored: 0, duplicates: 1 });
    t.equal((await feedbackRows(store)).length, 1);
  });

  t.test('a batch about several cards and calls is stored in one go, in order', async (t) => {
    const { app, store } = await setUp(t, kind);
    const [first] = await issue(app, MELANOMA, 'pat-1');
    const [second] = await issue(app, MELANOMA, 'pat-2');
    const res = await send(app, [accepted(first!), overridden(second!, 'input-data-wrong')]);
    t.same(res.json(), { stored: 2, duplicates: 0 });
    const rows = await feedbackRows(store);
    t.same(
      rows.map((r) => JSON.parse(r.payload).card),
      [first!.uuid, second!.uuid],
    );
    t.not(rows[0]!.pseudonym, rows[1]!.pseudonym);
  });

  t.test('feedback about a card the service never issued is refused whole with a 404', async (t) => {
    const { app, store } = await setUp(t, kind);
    const [card] = await issue(app);
    const unknown = { ...accepted(card!), card: '11111111-2222-4333-8444-555555555555' };
    const res = await send(app, [accepted(card!), unknown]);
    t.equal(res.statusCode, 404);
    t.equal(errorCode(res), 'CDS_ERR_FEEDBACK_UNKNOWN_CARD');
    t.same(res.json().issue[0].expression, ['feedback[1].card']);
    t.equal(
      res.json().issue[0].diagnostics,
      `feedback[1]: service "${MELANOMA}" issued no card with uuid "11111111-2222-4333-8444-555555555555"`,
    );
    t.equal((await feedbackRows(store)).length, 0, 'the valid item was not stored either');
  });

  t.test("feedback sent to another service than the card's is refused", async (t) => {
    const { app } = await setUp(t, kind);
    const [card] = await issue(app, MELANOMA);
    const res = await send(app, [overridden(card!)], RESTRICTED);
    t.equal(res.statusCode, 404);
    t.equal(errorCode(res), 'CDS_ERR_FEEDBACK_UNKNOWN_CARD');
  });

  t.test("an accepted suggestion that is not the card's is a 422", async (t) => {
    const { app, store } = await setUp(t, kind);
    const [first] = await issue(app);
    const [second] = await issue(app);
    const res = await send(app, [
      accepted(first!, { acceptedSuggestions: [{ id: second!.suggestions![0]!.uuid }] }),
    ]);
    t.equal(res.statusCode, 422);
    t.equal(errorCode(res), 'CDS_ERR_FEEDBACK_INVALID');
    t.same(res.json().issue[0].expression, ['feedback[0].acceptedSuggestions[0].id']);
    t.match(res.json().issue[0].diagnostics, /is not one of the card's suggestions/);
    t.equal((await feedbackRows(store)).length, 0);
  });

  t.test('an override reason must be one the service offers, in the service code system', async (t) => {
    const { app } = await setUp(t, kind);
    const [card] = await issue(app, RESTRICTED);
    const offered = await send(app, [overridden(card!, 'not-relevant-now')], RESTRICTED);
    t.equal(offered.statusCode, 200);
    const notOffered = await send(app, [overridden(card!, 'input-data-wrong')], RESTRICTED);
    t.equal(notOffered.statusCode, 422);
    t.equal(
      notOffered.json().issue[0].diagnostics,
      `feedback[0]: override reason ${SYSTEM.overrideReason}#input-data-wrong is not one the service offers (system ${SYSTEM.overrideReason}, codes already-handled, not-relevant-now)`,
    );
    t.same(notOffered.json().issue[0].expression, ['feedback[0].overrideReason.reason']);
    const otherSystem = overridden(card!, 'already-handled');
    (otherSystem.overrideReason.reason as { system: string }).system = 'http://example.org/other';
    t.equal((await send(app, [otherSystem], RESTRICTED)).statusCode, 422);
    // A comment alone is a valid override (3.0 cds-fb-3: a reason or a comment).
    const commentOnly = {
      ...overridden(card!),
      overrideReason: { userComment: 'no' },
      outcomeTimestamp: '2026-11-22T09:40:00Z',
    };
    t.equal((await send(app, [commentOnly], RESTRICTED)).statusCode, 200);
  });

  t.test('a timestamp the schema accepts but no clock can read (a leap second) is a 422', async (t) => {
    const { app } = await setUp(t, kind);
    const [card] = await issue(app);
    const res = await send(app, [
      overridden(card!, 'already-handled', { outcomeTimestamp: '2026-12-31T23:59:60Z' }),
    ]);
    t.equal(res.statusCode, 422);
    t.equal(res.json().issue[0].diagnostics, 'feedback[0]: outcomeTimestamp is not a valid instant');
    t.same(res.json().issue[0].expression, ['feedback[0].outcomeTimestamp']);
  });

  t.test('the chain stays intact after feedback', async (t) => {
    const { app, store } = await setUp(t, kind);
    const [card] = await issue(app);
    await send(app, [accepted(card!)]);
    await send(app, [accepted(card!)]);
    const report = await verifyStore(store);
    t.equal(report.ok, true);
    t.equal(report.rows, 2);
  });
});

t.test('malformed feedback is a 400 naming what is wrong, before any lookup', async (t) => {
  const { app } = await buildTestApp();
  t.teardown(() => app.close());
  const card = 'c1';
  const cases: [unknown, RegExp][] = [
    [{}, /body must have required property 'feedback'/],
    [{ feedback: [] }, /body\.feedback must NOT have fewer than 1 items/],
    [
      { feedback: [{ card, outcome: 'accepted', outcomeTimestamp: '2026-11-22T09:35:00Z' }] },
      /"acceptedSuggestions"/,
    ],
    [
      { feedback: [{ card, outcome: 'ignored', outcomeTimestamp: '2026-11-22T09:35:00Z' }] },
      /outcome must be equal to one of the allowed values/,
    ],
    [
      { feedback: [{ card, outcome: 'overridden', outcomeTimestamp: 'yesterday' }] },
      /outcomeTimestamp must match format "date-time"/,
    ],
    [
      { feedback: [{ card, outcome: 'overridden', outcomeTimestamp: '2026-11-22T09:35:00' }] },
      /must match format "date-time"/,
    ],
    [
      {
        feedback: [
          { card, outcome: 'overridden', overrideReason: {}, outcomeTimestamp: '2026-11-22T09:35:00Z' },
        ],
      },
      /overrideReason must have required property/,
    ],
    [
      {
        feedback: [
          {
            card,
            outcome: 'overridden',
            acceptedSuggestions: [{ id: 's' }],
            outcomeTimestamp: '2026-11-22T09:35:00Z',
          },
        ],
      },
      /must NOT be valid/,
    ],
    [
      {
        feedback: [
          {
            card,
            outcome: 'accepted',
            acceptedSuggestions: [{ id: 's' }],
            overrideReason: { userComment: 'x' },
            outcomeTimestamp: '2026-11-22T09:35:00Z',
          },
        ],
      },
      /must NOT be valid/,
    ],
    [
      {
        feedback: [
          {
            card,
            outcome: 'overridden',
            overrideReason: { reason: { code: 'x' } },
            outcomeTimestamp: '2026-11-22T09:35:00Z',
          },
        ],
      },
      /"system"/,
    ],
  ];
  for (const [payload, message] of cases) {
    const res = await app.inject({
      method: 'POST',
      url: `/cds-services/${MELANOMA}/feedback`,
      payload: payload as object,
    });
    t.equal(res.statusCode, 400, JSON.stringify(payload));
    t.equal(errorCode(res), 'CDS_ERR_REQUEST_INVALID');
    t.match(res.json().issue[0].diagnostics, message);
  }
  const unknownService = await app.inject({
    method: 'POST',
    url: '/cds-services/nope/feedback',
    payload: {},
  });
  t.equal(unknownService.statusCode, 404);
  t.equal(errorCode(unknownService), 'CDS_ERR_SERVICE_NOT_FOUND');
});

/**
 * One suite, run against SQLite and PostgreSQL alike (test/helpers/stores.ts): migrations, the chain,
 * idempotent feedback, lookups, the patient export, analytics rows, append-only enforcement, tampering
 * detected by the verifier, and a linear chain under concurrent appends from two instances.
 */
import t from 'tap';
import { chainHash, GENESIS } from '../../src/audit/hash-chain.js';
import { MIGRATIONS } from '../../src/audit/migrations.js';
import { findingFeedbackSql } from '../../src/audit/sql-store.js';
import { openStore } from '../../src/audit/store.js';
import { verifyStore } from '../../tools/audit-verify.js';
import { CALLER, callEvent, feedbackEvent, objectionEvent } from '../helpers/audit-events.js';
import { eachStore } from '../helpers/stores.js';

const P1 = '1'.repeat(64);
const P2 = '2'.repeat(64);

await eachStore(t, async (t, kind) => {
  t.test('migrations are applied once, in order, and recorded', async (t) => {
    const { store, raw, another } = await kind.open();
    t.teardown(() => store.close());
    const rows = await raw('SELECT version, name FROM schema_migrations ORDER BY version');
    t.same(
      rows.map((r) => [Number(r.version), r.name]),
      MIGRATIONS.map((m) => [m.version, m.name]),
    );
    // A second instance starting on the same database finds nothing to do.
    const second = await another();
    await second.close();
    t.equal(Number((await raw('SELECT COUNT(*) AS n FROM schema_migrations'))[0]!.n), MIGRATIONS.length);
    t.same(await store.chainHead(), { seq: 0, hash: GENESIS });
  });

  t.test('a database migrated by a newer version stops start-up', async (t) => {
    const { store, raw, where } = await kind.open();
    await raw("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')");
    await store.close();
    await t.rejects(
      openStore(where, where.schema ? { schema: where.schema } : {}),
      /holds migration 99, which this version does not know/,
    );
  });

  t.test('model estimates are read back by period, in chain order, page by page', async (t) => {
    const { store } = await kind.open();
    const estimate = (version: string, risk: number) => ({
      model: { id: 'knee-oa-progression', version },
      mode: version === '1.0.0' ? ('live' as const) : ('silent' as const),
      focus: 'Condition/c1',
      risk,
      band: 'intermediate',
      positive: false,
      topFactors: [{ id: 'bmi', value: 31.5, contribution: -0.25 }],
      inputs: { bmi: 31.5, female: 1 },
      subgroups: { sex: 'female', ageBand: '65+' },
    });
    const at = (iso: string, risks: number[]) => {
      const event = callEvent({ at: iso, cards: [], pseudonym: 'e'.repeat(64) });
      if (event.kind !== 'service-call') throw new Error('a call event');
      const predictions = risks.map((r, i) => estimate(i === 0 ? '1.0.0' : '1.1.0', r));
      return { ...event, payload: { ...event.payload, predictions } };
    };
    await store.append([
      at('2026-10-31T23:59:59.999Z', [0.5]),
      at('2026-11-02T08:00:00.000Z', [0.125, 0.25]),
      at('2026-11-30T10:00:00.000Z', [0.375]),
      at('2026-12-01T00:00:00.000Z', [0.9]),
    ]);
    const range = { from: '2026-11-01T00:00:00.000Z', to: '2026-12-01T00:00:00.000Z' };
    const first = await store.predictions(range, { seq: 0, ordinal: -1 }, 2);
    t.same(
      first.map((p) => [p.eventSeq, p.ordinal, p.model.version, p.mode, p.risk]),
      [
        [2, 0, '1.0.0', 'live', 0.125],
        [2, 1, '1.1.0', 'silent', 0.25],
      ],
    );
    t.same(first[0], {
      eventSeq: 2,
      ordinal: 0,
      serviceId: 'melanoma-lesion-triage',
      serviceVersion: '1.0.0',
      pseudonym: 'e'.repeat(64),
      at: '2026-11-02T08:00:00.000Z',
      week: '2026-W45',
      ...estimate('1.0.0', 0.125),
    });
    const rest = await store.predictions(range, { seq: 2, ordinal: 1 }, 2);
    t.same(
      rest.map((p) => [p.eventSeq, p.ordinal, p.risk, p.week]),
      [[3, 0, 0.375, '2026-W49']],
    );
  });

  t.test('events are chained in order, and the verifier finds the chain intact', async (t) => {
    const { store } = await kind.open();
    t.teardown(() => store.close());
    const result = await store.append([
      callEvent({ cards: [{ uuid: 'card-1', suggestions: ['s-1', 's-2'] }] }),
      feedbackEvent({ card: 'card-1', accepted: ['s-1'] }),
    ]);
    t.same(result.seqs, [1, 2]);
    t.same((await store.append([objectionEvent(P1)])).seqs, [3]);
    const rows = await store.readChain(0, 10);
    t.same(
      rows.map((r) => [r.seq, r.kind]),
      [
        [1, 'service-call'],
        [2, 'feedback'],
        [3, 'objection'],
      ],
    );
    t.equal(rows[0]!.prevHash, GENESIS);
    t.equal(rows[1]!.prevHash, rows[0]!.hash);
    t.equal(rows[2]!.prevHash, rows[1]!.hash);
    t.same(await store.chainHead(), { seq: 3, hash: rows[2]!.hash });
    t.same(
      (await store.readChain(1, 1)).map((r) => r.seq),
      [2],
    );
    const report = await verifyStore(store);
    t.same(report, { ok: true, rows: 3, last: { seq: 3, hash: rows[2]!.hash } });
  });

  t.test('feedback is stored once: a retry of the same card, outcome and instant is skipped', async (t) => {
    const { store, raw } = await kind.open();
    t.teardown(() => store.close());
    await store.append([callEvent({ cards: [{ uuid: 'card-1' }] })]);
    const first = feedbackEvent({ card: 'card-1', reason: 'already-handled' });
    t.same((await store.append([first])).seqs, [2]);
    // Same instant written differently, and twice in one batch.
    const retry = feedbackEvent({
      card: 'card-1',
      reason: 'already-handled',
      outcomeTimestamp: '2026-11-22T09:31:00.000+00:00',
    });
    t.same((await store.append([retry, retry])).seqs, [null, null]);
    // A later decision about the same card is new feedback.
    const later = feedbackEvent({ card: 'card-1', outcomeTimestamp: '2026-11-22T10:00:00Z' });
    t.same((await store.append([later, later])).seqs, [3, null]);
    t.equal(Number((await raw('SELECT COUNT(*) AS n FROM audit_feedback'))[0]!.n), 2);
    t.equal((await verifyStore(store)).ok, true);
  });

  t.test("earlier overrides of a finding are found from the patient's feedback events", async (t) => {
    const { store, raw } = await kind.open();
    t.teardown(() => store.close());
    const OTHER = 'knee-oa-progression';
    await store.append([
      callEvent({
        cards: [
          { uuid: 'c1', finding: 'fa' },
          { uuid: 'c4', finding: 'fb' },
        ],
        pseudonym: P1,
      }),
      callEvent({
        cards: [
          { uuid: 'c2', finding: 'fa' },
          { uuid: 'c3', finding: 'fa' },
        ],
        pseudonym: P1,
      }),
      callEvent({ cards: [{ uuid: 'c5', finding: 'fa' }], pseudonym: P1, serviceId: OTHER }),
      callEvent({ cards: [{ uuid: 'c6', finding: 'fa' }], pseudonym: P2 }),
    ]);
    await store.append([
      feedbackEvent({ card: 'c4', reason: 'not-relevant', pseudonym: P1 }),
      feedbackEvent({ card: 'c1', reason: 'already-addressed', pseudonym: P1 }),
      feedbackEvent({ card: 'c2', pseudonym: P1 }),
      feedbackEvent({ card: 'c5', reason: 'not-relevant', pseudonym: P1, serviceId: OTHER }),
      feedbackEvent({ card: 'c6', reason: 'not-relevant', pseudonym: P2 }),
    ]);
    const found = await store.findingFeedback(P1, 'melanoma-lesion-triage', ['fa', 'fb']);
    t.same(
      found.map((f) => [f.seq, f.findingKey, f.cardUuid, f.outcome, f.reasonCode]),
      [
        [5, 'fb', 'c4', 'overridden', 'not-relevant'],
        [6, 'fa', 'c1', 'overridden', 'already-addressed'],
        [7, 'fa', 'c2', 'accepted', null],
      ],
    );
    t.same(await store.findingFeedback(P1, 'melanoma-lesion-triage', []), []);
    t.same(
      (await store.findingFeedback(P2, 'melanoma-lesion-triage', ['fa'])).map((f) => f.cardUuid),
      ['c6'],
    );
    // The same rows as walking every card of the finding (the statement before migration 10).
    const walked = await raw(
      `SELECT f.event_seq FROM audit_card c JOIN audit_feedback f ON f.card_uuid = c.card_uuid
       WHERE c.pseudonym = '${P1}' AND c.service_id = 'melanoma-lesion-triage' AND c.finding IN ('fa', 'fb')
       ORDER BY f.event_seq`,
    );
    t.same(
      walked.map((r) => Number(r.event_seq)),
      found.map((f) => f.seq),
    );
    if (kind.name === 'sqlite') {
      // SQLite starts from the patient's feedback events by the partial index, not from the cards.
      const plan = await raw(
        `EXPLAIN QUERY PLAN ${findingFeedbackSql(2)
          .replace('e.pseudonym = ?', `e.pseudonym = '${P1}'`)
          .replace('c.pseudonym = ?', `c.pseudonym = '${P1}'`)
          .replace('c.service_id = ?', "c.service_id = 'melanoma-lesion-triage'")
          .replace('IN (?, ?)', "IN ('fa', 'fb')")}`,
      );
      const steps = plan.map((r) => String(r.detail));
      t.match(steps[0], /^SEARCH e USING INDEX audit_event_feedback \(pseudonym=\?\)/);
      t.notOk(
        steps.some((d) => d.includes('audit_card_finding')),
        steps.join('; '),
      );
    }
  });

  t.test('cards are found by service and uuid; a card without uuid is not indexed', async (t) => {
    const { store } = await kind.open();
    t.teardown(() => store.close());
    await store.append([
      callEvent({ cards: [{ uuid: 'card-1', suggestions: ['s-1'] }, { uuid: '' }], pseudonym: P1 }),
      callEvent({ serviceId: 'other-service', cards: [{ uuid: 'card-2' }], pseudonym: null }),
    ]);
    const found = await store.findCards('melanoma-lesion-triage', ['card-1', 'card-2', 'nope', '']);
    t.same([...found.keys()], ['card-1']);
    t.same(found.get('card-1'), {
      uuid: 'card-1',
      serviceId: 'melanoma-lesion-triage',
      pseudonym: P1,
      suggestions: ['s-1'],
      issuedAt: '2026-11-22T09:30:00.000Z',
      // The client it was issued to (tenancy: feedback from that client only).
      issuer: CALLER.issuer,
      tenant: CALLER.tenant,
    });
    t.same([...(await store.findCards('other-service', ['card-2'])).values()][0]?.pseudonym, null);
    t.equal((await store.findCards('melanoma-lesion-triage', [])).size, 0);
  });

  t.test("a patient's events are found by pseudonym, with their payloads, in order", async (t) => {
    const { store } = await kind.open();
    t.teardown(() => store.close());
    await store.append([
      callEvent({ cards: [{ uuid: 'card-1' }], pseudonym: P1 }),
      callEvent({ cards: [{ uuid: 'card-2' }], pseudonym: P2 }),
      feedbackEvent({ card: 'card-1', reason: 'clinical-context', pseudonym: P1 }),
      objectionEvent(P1),
    ]);
    const events = await store.eventsFor(P1);
    t.same(
      events.map((e) => [e.seq, e.kind]),
      [
        [1, 'service-call'],
        [3, 'feedback'],
        [4, 'objection'],
      ],
    );
    t.same(
      events[1]!.payload,
      (feedbackEvent({ card: 'card-1', reason: 'clinical-context' }) as { payload: unknown }).payload,
    );
    t.same(await store.eventsFor('f'.repeat(64)), []);
  });

  t.test('analytics rows: cards by group, latest outcome per card, risk by week and tenth', async (t) => {
    const { store } = await kind.open();
    t.teardown(() => store.close());
    const model = [{ id: 'melanoma-risk', version: '0.1.0', sha256: 'c'.repeat(64) }];
    await store.append([
      callEvent({
        at: '2026-11-17T08:00:00.000Z',
        models: model,
        cards: [
          { uuid: 'm-1', risk: 0.12 },
          { uuid: 'm-2', risk: 0.18 },
          { uuid: 'm-3', risk: 1 },
        ],
      }),
      callEvent({ at: '2026-11-24T08:00:00.000Z', models: model, cards: [{ uuid: 'm-4', risk: 0.55 }] }),
      callEvent({ cards: [{ uuid: 'r-1' }, { uuid: 'r-2' }] }),
      // m-1 overridden, then accepted later: counted as accepted.
      feedbackEvent({ card: 'm-1', reason: 'input-data-wrong', outcomeTimestamp: '2026-11-22T09:00:00Z' }),
      feedbackEvent({ card: 'm-1', outcome: 'accepted', outcomeTimestamp: '2026-11-22T09:05:00Z' }),
      feedbackEvent({ card: 'm-2', reason: 'input-data-wrong' }),
      feedbackEvent({ card: 'r-1', comment: 'seen yesterday' }),
    ]);
    const rows = await store.analytics();
    const rules = { serviceId: 'melanoma-lesion-triage', serviceVersion: '1.0.0', models: '' };
    const scored = { ...rules, models: 'melanoma-risk@0.1.0' };
    t.same(rows.issued, [
      { ...rules, n: 2 },
      { ...scored, n: 4 },
    ]);
    t.same(rows.outcomes, [
      { ...rules, outcome: 'overridden', reasonCode: null, n: 1 },
      { ...scored, outcome: 'accepted', reasonCode: null, n: 1 },
      { ...scored, outcome: 'overridden', reasonCode: 'input-data-wrong', n: 1 },
    ]);
    t.same(
      rows.risk.map((r) => ({ ...r, sum: Math.round(r.sum * 100) / 100 })),
      [
        { ...scored, week: '2026-11-16', bin: 1, n: 2, sum: 0.3 },
        { ...scored, week: '2026-11-16', bin: 9, n: 1, sum: 1 },
        { ...scored, week: '2026-11-23', bin: 5, n: 1, sum: 0.55 },
      ],
    );
  });

  t.test('audit rows cannot be updated or deleted through SQL while the guards are in place', async (t) => {
    const { store, raw } = await kind.open();
    t.teardown(() => store.close());
    await store.append([callEvent({ cards: [{ uuid: 'card-1' }] }), feedbackEvent({ card: 'card-1' })]);
    const columns = { audit_event: 'kind', audit_card: 'indicator', audit_feedback: 'outcome' };
    for (const [table, column] of Object.entries(columns)) {
      await t.rejects(raw(`UPDATE ${table} SET ${column} = 'x'`), /append-only/, `UPDATE ${table}`);
      await t.rejects(raw(`DELETE FROM ${table}`), /append-only/, `DELETE ${table}`);
    }
    t.equal((await verifyStore(store)).ok, true);
  });

  /** Drops the guards, as someone with full access to the database could. */
  async function dropGuards(raw: (sql: string) => Promise<unknown>): Promise<void> {
    if (kind.name === 'sqlite') {
      for (const table of ['audit_event', 'audit_card', 'audit_feedback']) {
        await raw(`DROP TRIGGER ${table}_no_update`);
        await raw(`DROP TRIGGER ${table}_no_delete`);
      }
    } else {
      for (const table of ['audit_event', 'audit_card', 'audit_feedback']) {
        await raw(`DROP TRIGGER ${table}_append_only ON ${table}`);
      }
    }
  }

  async function fiveEvents() {
    const opened = await kind.open();
    await opened.store.append([
      callEvent({ cards: [{ uuid: 'card-1' }] }),
      feedbackEvent({ card: 'card-1', reason: 'already-handled' }),
      callEvent({ cards: [{ uuid: 'card-2' }] }),
      objectionEvent(P1),
      callEvent({ cards: [{ uuid: 'card-3' }] }),
    ]);
    await dropGuards(opened.raw);
    return opened;
  }

  t.test('the verifier reports an edited row', async (t) => {
    const { store, raw } = await fiveEvents();
    t.teardown(() => store.close());
    await raw(
      "UPDATE audit_event SET payload = REPLACE(payload, 'already-handled', 'patient-preference') WHERE seq = 2",
    );
    const report = await verifyStore(store);
    t.equal(report.ok, false);
    t.same(report.problem, {
      seq: 2,
      problem: 'edited',
      detail: "row 2's content no longer matches its hash",
    });
    t.equal(report.rows, 1);
  });

  t.test('the verifier reports an edited row whose hash was recomputed', async (t) => {
    const { store, raw } = await fiveEvents();
    t.teardown(() => store.close());
    await raw("UPDATE audit_event SET at = '2026-01-01T00:00:00.000Z' WHERE seq = 3");
    const [row] = await store.readChain(2, 1);
    await raw('UPDATE audit_event SET hash = ? WHERE seq = 3', [chainHash(row!.prevHash, row!)]);
    const report = await verifyStore(store);
    t.equal(report.problem?.seq, 3);
    t.equal(report.problem?.problem, 'edited');
    t.match(report.problem?.detail, /row 4 links to a different version of row 3/);
  });

  t.test('the verifier reports a deleted row', async (t) => {
    const { store, raw } = await fiveEvents();
    t.teardown(() => store.close());
    await raw('DELETE FROM audit_event WHERE seq = 2');
    const report = await verifyStore(store);
    t.same(report.problem, {
      seq: 2,
      problem: 'deleted',
      detail: 'row 2 is missing (row 3 follows row 1)',
    });
  });

  t.test('the verifier reports rows deleted from the end', async (t) => {
    const { store, raw } = await fiveEvents();
    t.teardown(() => store.close());
    await raw('DELETE FROM audit_event WHERE seq >= 4');
    const report = await verifyStore(store);
    t.same(report.problem, {
      seq: 4,
      problem: 'deleted',
      detail: 'the chain head is at row 5 but the last row is 3: the last rows were deleted',
    });
  });

  t.test('appends from two instances at once keep one linear chain', async (t) => {
    const { store, another } = await kind.open();
    const second = await another();
    t.teardown(async () => {
      await store.close();
      await second.close();
    });
    const writes = Array.from({ length: 40 }, (_, i) =>
      (i % 2 ? store : second).append([callEvent({ cards: [{ uuid: `card-${i}` }] })]),
    );
    const seqs = (await Promise.all(writes)).flatMap((r) => r.seqs);
    t.same(
      [...seqs].sort((a, b) => a! - b!),
      Array.from({ length: 40 }, (_, i) => i + 1),
    );
    const report = await verifyStore(store);
    t.equal(report.ok, true);
    t.equal(report.rows, 40);
  });

  t.test(
    'a JWT id is accepted once per issuer across instances, and forgotten after it expires',
    async (t) => {
      const { store, another, raw } = await kind.open();
      const second = await another();
      t.teardown(async () => {
        await store.close();
        await second.close();
      });
      const now = new Date('2026-11-22T09:30:00Z');
      const exp = new Date('2026-11-22T09:35:00Z');
      t.equal(await store.rememberJti('https://ehr.example', 'jti-1', exp, now), true);
      t.equal(
        await second.rememberJti('https://ehr.example', 'jti-1', exp, now),
        false,
        'replayed on the other instance',
      );
      t.equal(await store.rememberJti('https://other.example', 'jti-1', exp, now), true, 'another issuer');
      const concurrent = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          (i % 2 ? store : second).rememberJti('https://ehr.example', 'jti-2', exp, now),
        ),
      );
      t.equal(concurrent.filter(Boolean).length, 1, 'one of ten concurrent presentations wins');
      const later = new Date('2026-11-22T09:36:00Z');
      t.equal(
        await store.rememberJti('https://ehr.example', 'jti-3', new Date('2026-11-22T09:40:00Z'), later),
        true,
      );
      t.same(
        (await raw('SELECT jti FROM jwt_replay ORDER BY jti')).map((r) => r.jti),
        ['jti-3'],
        'expired pairs were purged',
      );
    },
  );

  t.test('a failed append leaves nothing behind', async (t) => {
    const { store, raw } = await kind.open();
    t.teardown(() => store.close());
    await store.append([callEvent({ cards: [{ uuid: 'card-1' }] })]);
    // The same card uuid again violates the index's key: the whole batch is rolled back.
    await t.rejects(
      store.append([callEvent({ cards: [{ uuid: 'card-2' }] }), callEvent({ cards: [{ uuid: 'card-1' }] })]),
    );
    t.equal(Number((await raw('SELECT COUNT(*) AS n FROM audit_event'))[0]!.n), 1);
    t.equal((await store.chainHead())?.seq, 1);
    t.equal((await verifyStore(store)).ok, true);
    await store.ping();
  });
});

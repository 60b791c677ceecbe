/**
 * The audit fail-safe policy with the SQLite store when the data folder is full or read-only.
 *
 * Fault injection: the tests run as root, where neither a small tmpfs nor chmod is available or stops a
 * write, so the faults are made on the store's own SQLite connection: `PRAGMA max_page_count` (the file
 * cannot grow: SQLITE_FULL "database or disk is full", what a full disk gives) and `PRAGMA query_only`
 * (SQLITE_READONLY, what a read-only file or folder gives). The store runs on the test's thread here (the
 * same driver and SQL the worker thread runs), so that the test can reach its connection.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import t, { type Test } from 'tap';
import type { Card } from '../../src/cds-hooks.js';
import { createSqlStore, type SqlDriver } from '../../src/audit/sql-store.js';
import { openSqliteDriver } from '../../src/audit/sqlite.js';
import { SPILL_FILE } from '../../src/audit/spill.js';
import { sqliteFile } from '../../src/audit/store.js';
import { verifyStore } from '../../tools/audit-verify.js';
import { buildTestApp, tempDir } from '../helpers/app.js';
import { lesion, patientView, searchset } from '../helpers/hook-request.js';
import type { Config } from '../../src/config.js';

const URL = '/cds-services/melanoma-lesion-triage';
const KEY = 'k'.repeat(32);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not in time`);
    await sleep(20);
  }
}

function call(app: FastifyInstance, patientId: string) {
  const body = patientView({
    lesions: searchset([lesion({ items: { changeSize: true, irregularColour: true, inflammation: true } })]),
    patient: null,
  });
  body.context.patientId = patientId;
  return app.inject({ method: 'POST', url: URL, payload: body });
}

function feedback(app: FastifyInstance, card: Card) {
  return app.inject({
    method: 'POST',
    url: `${URL}/feedback`,
    payload: {
      feedback: [
        {
          card: card.uuid,
          outcome: 'accepted',
          acceptedSuggestions: [{ id: card.suggestions![0]!.uuid }],
          outcomeTimestamp: '2026-11-22T09:35:00Z',
        },
      ],
    },
  });
}

/** An app over an SQLite store on this thread, whose connection the test can fault. */
async function setUp(
  t: Test,
  config: Partial<Config> = {},
  dataDir = tempDir('cds-failsafe-'),
  uuid?: () => string,
) {
  const driver: SqlDriver = openSqliteDriver(sqliteFile(dataDir));
  const store = await createSqlStore(driver, { migrate: true });
  const test = await buildTestApp(
    { dataDir, auditPseudonymKey: KEY, ...config },
    { store, auditRetryMs: 20, ...(uuid ? { uuid } : {}) },
  );
  let closed = false;
  const close = async () => {
    if (!closed) await test.app.close();
    closed = true;
  };
  t.teardown(close);
  const metric = async (name: string) => {
    const text = (await test.app.inject({ method: 'GET', url: '/metrics' })).body;
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.split(' ')[1]);
  };
  const ready = async () => (await test.app.inject({ method: 'GET', url: '/health/ready' })).statusCode;
  const pragma = (text: string) => driver.query(`PRAGMA ${text}`);
  return { ...test, store, driver, dataDir, metric, ready, pragma, close };
}

/** The disk is "full": the file cannot grow past its current size. */
async function fillDisk(pragma: (text: string) => Promise<unknown>) {
  const [{ page_count: pages }] = (await pragma('page_count')) as [{ page_count: number }];
  await pragma(`max_page_count = ${pages}`);
}

t.test('disk full: held records, ready 503, queue full → 503, then written in order', async (t) => {
  const s = await setUp(t, { auditQueueMax: 5 });
  const first = await call(s.app, 'pat-0');
  t.equal(first.statusCode, 200);
  await fillDisk(s.pragma);

  // The last pages may still take a few records; then they are held.
  const answered: Card[] = [(first.json().cards as Card[])[0]!];
  let n = 1;
  while ((await s.metric('cds_audit_pending_events')) === 0) {
    const res = await call(s.app, `pat-${n++}`);
    t.equal(res.statusCode, 200);
    answered.push((res.json().cards as Card[])[0]!);
    if (n > 200) throw new Error('the store never filled');
  }
  const held = answered.at(-1)!;
  t.equal(await s.ready(), 503, '/health/ready: 503 while records cannot be written');
  t.equal(await s.metric('cds_audit_failing'), 1);
  const error = s.logs().find((l) => l.msg === 'audit records cannot be written');
  t.equal(error?.level, 50, 'an error log');
  t.equal(error?.error, 'SQLITE_FULL');

  // The queue holds 5: the 5th is answered, the 6th refused (no card that cannot be audited).
  while ((await s.metric('cds_audit_pending_events'))! < 5) {
    const res = await call(s.app, `pat-${n++}`);
    t.equal(res.statusCode, 200, 'answered while the queue has room');
    answered.push((res.json().cards as Card[])[0]!);
  }
  const refused = await call(s.app, `pat-${n++}`);
  t.equal(refused.statusCode, 503, 'queue full: the call is refused');
  t.equal(refused.headers['retry-after'], '5');
  t.equal(refused.json().issue[0].details.coding[0].code, 'CDS_ERR_STORE_UNAVAILABLE');
  t.equal(await s.metric('cds_audit_refused_events'), 1, 'counted');
  t.ok(s.logs().some((l) => l.msg === 'audit record cannot be written: call refused' && l.level === 50));
  const during = await feedback(s.app, held);
  t.equal(during.statusCode, 503, 'feedback while the disk is full: 503, not 500 nor 404');
  t.equal(during.headers['retry-after'], '5');

  // Space is freed: everything held is written, in order, and feedback on a held card is accepted.
  await s.pragma('max_page_count = 1073741823');
  await until(async () => (await s.ready()) === 200, 'ready again');
  t.equal(await s.metric('cds_audit_pending_events'), 0);
  t.equal((await feedback(s.app, held)).statusCode, 200, 'feedback on a card that was held is accepted');
  const chain = await s.store.readChain(0, 1000);
  t.same(
    chain.filter((r) => r.kind === 'service-call').map((r) => JSON.parse(r.payload).cards[0].uuid),
    answered.map((c) => c.uuid),
    'every answered call is audited, in order; the refused one is not (it showed no card)',
  );
  t.ok((await verifyStore(s.store)).ok, 'the chain verifies');
});

t.test('read-only: records held (policy queue), or calls refused at once (policy refuse)', async (t) => {
  t.test('queue', async (t) => {
    const s = await setUp(t);
    await s.pragma('query_only = 1');
    const res = await call(s.app, 'pat-1');
    t.equal(res.statusCode, 200, 'answered, its record held');
    t.equal(await s.metric('cds_audit_pending_events'), 1);
    t.equal(await s.ready(), 503);
    t.equal(s.logs().find((l) => l.msg === 'audit records cannot be written')?.error, 'SQLITE_READONLY');
    await s.pragma('query_only = 0');
    await until(async () => (await s.ready()) === 200, 'ready again');
    t.equal((await feedback(s.app, res.json().cards[0])).statusCode, 200);
    t.equal(await s.metric('cds_audit_rejected_events'), 0, 'nothing rejected: the record was kept');
  });
  t.test('refuse', async (t) => {
    const s = await setUp(t, { auditFailPolicy: 'refuse' });
    await s.pragma('query_only = 1');
    const res = await call(s.app, 'pat-1');
    t.equal(res.statusCode, 503, 'refused: its record could not be written');
    t.equal(res.json().issue[0].details.coding[0].code, 'CDS_ERR_STORE_UNAVAILABLE');
    t.equal(await s.metric('cds_audit_pending_events'), 0, 'nothing held');
    t.equal(await s.metric('cds_audit_refused_events'), 1);
    t.equal(await s.ready(), 503);
    await s.pragma('query_only = 0');
    await until(async () => (await s.ready()) === 200, 'ready again');
    t.equal((await call(s.app, 'pat-2')).statusCode, 200);
    t.same(
      (await s.store.readChain(0, 10)).map((r) => r.kind),
      ['service-call'],
      'only the answered call is audited',
    );
  });
});

t.test('spill folder: held records survive a restart and are written first', async (t) => {
  const spillDir = tempDir('cds-spill-');
  const dataDir = tempDir('cds-failsafe-');
  const s = await setUp(t, { auditSpillDir: spillDir }, dataDir);
  await s.pragma('query_only = 1');
  const held = await Promise.all(['pat-1', 'pat-2'].map((p) => call(s.app, p)));
  t.same(
    held.map((r) => r.statusCode),
    [200, 200],
  );
  const lines = readFileSync(join(spillDir, SPILL_FILE), 'utf8').trim().split('\n');
  t.equal(lines.length, 2, 'both records are in the spill file before the calls were answered');
  t.equal(await s.metric('cds_audit_spilled_events'), 2);
  await s.close();
  t.ok(
    s
      .logs()
      .some((l) => l.msg === 'audit store unavailable at shutdown: queued records kept in the spill file'),
  );

  // The next start-up, with a writable store: the spilled records are written, then the new call.
  // (Another process: its uuids differ from the first one's.)
  const next = await setUp(t, { auditSpillDir: spillDir }, dataDir, randomUUID);
  const res = await call(next.app, 'pat-3');
  t.equal(res.statusCode, 200);
  await until(async () => (await next.metric('cds_audit_pending_events')) === 0, 'written');
  const calls = (await next.store.readChain(0, 10)).filter((r) => r.kind === 'service-call');
  t.same(
    calls.map((r) => JSON.parse(r.payload).cards[0].uuid),
    [...held.map((r) => r.json().cards[0].uuid), res.json().cards[0].uuid],
  );
  t.ok((await verifyStore(next.store)).ok);
  t.equal(readFileSync(join(spillDir, SPILL_FILE), 'utf8'), '', 'the spill file is emptied');
  t.ok(existsSync(sqliteFile(dataDir)));
});

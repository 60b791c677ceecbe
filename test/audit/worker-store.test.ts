/**
 * The SQLite store in its worker thread, as the main thread sees it: errors arrive as the in-thread store
 * throws them, a dead worker fails the calls waiting for it and is replaced on the next call, close lets
 * the calls made finish and refuses later ones, results keep their types, the chain keeps the order of
 * the writer's appends, an idle store does not keep the process alive, and the event loop keeps turning
 * while events are committed (which the in-thread store does not let it do).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import t, { type Test } from 'tap';
import { createAuditWriter } from '../../src/audit/audit-writer.js';
import { createSqlStore } from '../../src/audit/sql-store.js';
import { openSqliteDriver } from '../../src/audit/sqlite.js';
import { type AuditStore, type NewAuditEvent, openStore, sqliteFile } from '../../src/audit/store.js';
import { verifyStore } from '../../tools/audit-verify.js';
import {
  createSqliteWorker,
  errorFromWire,
  errorToWire,
  STORE_CLOSED,
  WORKER_CLOSED,
  WORKER_EXITED,
} from '../../src/audit/worker-store.js';
import { callEvent, feedbackEvent } from '../helpers/audit-events.js';
import { tempDir, testSqliteWorker } from '../helpers/app.js';
import { LOADER } from '../helpers/child.js';

/** The worker the stores of this file run in (one thread start for the whole file). */
const worker = testSqliteWorker;

const quiet = { warn() {}, error() {}, info() {} };

async function open(t: Test) {
  const dataDir = tempDir('cds-worker-');
  const store = await openStore({ dataDir }, { worker });
  t.teardown(() => store.close());
  return { store, dataDir };
}

/** The fields of an error that callers look at. */
const fields = (error: unknown) => {
  const e = error as Error & { code?: unknown };
  return { name: e.name, message: e.message, code: e.code };
};

t.test('errors come back with the name, message and code the in-thread store throws', async (t) => {
  const { store } = await open(t);
  t.equal(store.kind, 'sqlite');
  const inThread = await createSqlStore(openSqliteDriver(sqliteFile(tempDir('cds-worker-'))), {
    migrate: true,
  });
  t.teardown(() => inThread.close());
  const duplicate = [callEvent({ cards: [{ uuid: 'card-1' }] }), callEvent({ cards: [{ uuid: 'card-1' }] })];
  const expected = await inThread
    .append(duplicate)
    .then(() => t.fail('the in-thread store accepted a duplicate card'), fields);
  t.match(expected, { name: 'SqliteError', code: /^SQLITE_CONSTRAINT/ });
  const error = await store.append(duplicate).catch((e: unknown) => e);
  t.same(fields(error), expected);
  t.notOk(Object.keys(error as object).includes('name'), 'the name is not an enumerable field');
  t.match((error as Error).stack, /sql-store/, "the stack says where in the worker's store it arose");

  // A RangeError stays one (normalizeInstant on a timestamp that is not one).
  const bad = feedbackEvent({ card: 'card-1', outcomeTimestamp: 'yesterday' });
  const range = await store.append([bad]).catch((e: unknown) => e);
  t.type(range, RangeError);
  t.same(fields(range), fields(await inThread.append([bad]).catch((e: unknown) => e)));
  t.same((await store.chainHead())?.seq, 0, 'nothing was written');
});

t.test('errors on the wire: anything thrown becomes an Error', async (t) => {
  t.same(errorToWire('plain text'), { name: 'Error', message: 'plain text' });
  const back = errorFromWire({ name: 'TypeError', message: 'nope' });
  t.type(back, TypeError);
  t.same(fields(back), { name: 'TypeError', message: 'nope', code: undefined });
  t.same(fields(errorFromWire(errorToWire(Object.assign(new Error('x'), { code: 42 })))), {
    name: 'Error',
    message: 'x',
    code: 42,
  });
});

t.test('opening fails with the error opening the file in-thread fails with', async (t) => {
  const dir = tempDir('cds-worker-');
  // The data folder is a file: the folder cannot be created.
  const dataDir = join(dir, 'not-a-folder');
  writeFileSync(dataDir, '');
  const expected = fields(
    await Promise.resolve()
      .then(() => openSqliteDriver(sqliteFile(dataDir)))
      .catch((e: unknown) => e),
  );
  t.match(expected, { code: /^E/ });
  await t.rejects(openStore({ dataDir }), expected);
});

t.test('lookups return their types: a Map of cards, events with their payloads', async (t) => {
  const { store } = await open(t);
  await store.append([
    callEvent({ cards: [{ uuid: 'card-1', suggestions: ['s-1'] }], pseudonym: 'a'.repeat(64) }),
  ]);
  const found = await store.findCards('melanoma-lesion-triage', ['card-1', 'nope']);
  t.type(found, Map);
  t.same(
    [...found.entries()],
    [['card-1', { ...found.get('card-1'), uuid: 'card-1', suggestions: ['s-1'] }]],
  );
  t.same(
    (await store.eventsFor('a'.repeat(64))).map((e) => e.seq),
    [1],
  );
  const now = new Date('2026-11-22T09:30:00Z');
  t.equal(await store.rememberJti('iss', 'jti', new Date('2026-11-22T09:35:00Z'), now), true, 'Dates cross');
  t.equal(await store.rememberJti('iss', 'jti', new Date('2026-11-22T09:35:00Z'), now), false);
});

t.test('a worker that dies fails the calls waiting for it; the next call starts a new one', async (t) => {
  const { store } = await open(t);
  await store.append([callEvent({ cards: [{ uuid: 'card-0' }] })]);
  const first = worker.threadOf(store)!;
  // A large batch first keeps the worker busy (hundreds of milliseconds of inserts and hashing in one
  // transaction), so the calls behind it are still waiting when it dies: without it, a worker scheduled
  // before the main thread could answer a small call before the termination reached it.
  const busy = Array.from({ length: 2000 }, (_, i) => callEvent({ cards: [{ uuid: `card-busy-${i}` }] }));
  const waiting: Promise<unknown>[] = [
    store.append(busy),
    store.append([callEvent({ cards: [{ uuid: 'card-lost' }] })]),
    store.analytics(),
    store.ping(),
  ];
  await first.terminate();
  for (const call of waiting) {
    await t.rejects(call, { code: WORKER_EXITED, message: /audit store worker stopped unexpectedly/ });
  }
  t.equal(worker.threadOf(store), undefined);
  // Calls made together after the crash share one new worker, in order.
  const [head, appended] = await Promise.all([
    store.chainHead(),
    store.append([callEvent({ cards: [{ uuid: 'card-1' }] })]),
    store.ping(),
  ]);
  t.not(worker.threadOf(store), first);
  t.ok(worker.threadOf(store));
  // The append the crash interrupted may have committed just before (the writer's retry then writes it
  // twice, as after a lost connection to PostgreSQL) or not at all: the chain is linear either way.
  t.ok(head!.seq === 1 || head!.seq === 2, `chain head at ${head!.seq}`);
  t.same(appended.seqs, [head!.seq + 1]);
  t.same(await verifyStore(store), { ok: true, rows: head!.seq + 1, last: (await store.chainHead())! });
});

t.test('the writer keeps what a dying worker did not commit and writes it with the next one', async (t) => {
  const { store } = await open(t);
  const writer = createAuditWriter(store, { maxQueue: 100, log: quiet, retryInitialMs: 10 });
  await writer.record(callEvent({ cards: [{ uuid: 'card-0' }] }));
  await worker.threadOf(store)!.terminate();
  await writer.record(callEvent({ cards: [{ uuid: 'card-1' }] }));
  await writer.flush();
  t.same(writer.backlog(), { pending: 0, spilled: 0, refused: 0, rejected: 0, written: 2 });
  t.equal((await verifyStore(store)).rows, 2);
});

t.test('close lets the calls made finish, then refuses new ones; the worker stops', async (t) => {
  const dataDir = tempDir('cds-worker-');
  const store = await openStore({ dataDir }, { worker });
  const thread = worker.threadOf(store)!;
  const exited = new Promise((resolve) => thread.once('exit', resolve));
  const made = [
    store.append([callEvent({ cards: [{ uuid: 'card-1' }] })]),
    store.analytics(),
    store.append([callEvent({ cards: [{ uuid: 'card-2' }] })]),
  ];
  const closed = store.close();
  t.equal(store.close(), closed, 'closing twice is one close');
  await t.rejects(store.ping(), { code: STORE_CLOSED, message: 'the audit store is closed' });
  const [first, analytics, second] = await Promise.all(made);
  t.same((first as { seqs: number[] }).seqs, [1]);
  t.same((second as { seqs: number[] }).seqs, [2]);
  t.ok(analytics);
  await closed;
  t.equal(worker.threadOf(store), undefined);
  // With no store open in it, the worker stops a little later (nothing else keeps this process alive
  // meanwhile, the worker least of all: a timer waits for it).
  const keepAlive = setTimeout(() => undefined, 30_000);
  t.equal(await exited, 1, 'stopped (terminated) once idle');
  clearTimeout(keepAlive);
  await t.rejects(store.append([]), { code: STORE_CLOSED });
  // Everything was committed: a new store finds it.
  const again = await openStore({ dataDir }, { worker });
  t.teardown(() => again.close());
  t.equal((await verifyStore(again)).rows, 2);
});

t.test('close after a crash, with no worker running, just closes', async (t) => {
  const store = await openStore({ dataDir: tempDir('cds-worker-') }, { worker });
  await worker.threadOf(store)!.terminate();
  await store.close();
  await t.rejects(store.ping(), { code: STORE_CLOSED });
});

t.test('two workers run their stores in two threads; closing one leaves the other working', async (t) => {
  const own = createSqliteWorker();
  t.teardown(() => own.close());
  const mine = await openStore({ dataDir: tempDir('cds-worker-') }, { worker: own });
  const left = await openStore({ dataDir: tempDir('cds-worker-') }, { worker: own });
  const { store: other } = await open(t);
  const thread = own.threadOf(mine)!;
  t.ok(thread);
  t.equal(own.threadOf(left), thread, 'the stores of one worker share its thread');
  t.not(worker.threadOf(other), thread, "another worker's store runs in another thread");
  t.equal(own.threadOf(other), undefined, 'a worker knows only its own stores');
  const exited = new Promise((resolve) => thread.once('exit', resolve));
  await mine.append([callEvent({ cards: [{ uuid: 'card-1' }] })]);
  await mine.close();
  const closed = own.close();
  t.equal(own.close(), closed, 'closing twice is one close');
  await closed;
  t.equal(await exited, 1, 'the thread stopped at once, without waiting to be idle');
  // A store left open when its worker closed, and any store opened afterwards, are refused.
  await t.rejects(left.ping(), { code: WORKER_CLOSED, message: 'the audit store worker is closed' });
  await t.rejects(own.open(sqliteFile(tempDir('cds-worker-')), { migrate: true }), { code: WORKER_CLOSED });
  // The other worker's store is untouched.
  t.same((await other.append([callEvent({ cards: [{ uuid: 'card-1' }] })])).seqs, [1]);
});

t.test('a worker closed before or while its thread starts starts none', async (t) => {
  const never = createSqliteWorker();
  await never.close();
  await t.rejects(never.open(sqliteFile(tempDir('cds-worker-')), { migrate: true }), { code: WORKER_CLOSED });
  const starting = createSqliteWorker();
  const opening = starting.open(sqliteFile(tempDir('cds-worker-')), { migrate: true });
  await starting.close();
  await t.rejects(opening, { code: WORKER_CLOSED });
});

t.test('appends from the writer under load keep the order the events were recorded in', async (t) => {
  const { store } = await open(t);
  const writer = createAuditWriter(store, { maxQueue: 10_000, log: quiet, batchSize: 50 });
  const recorded: Promise<void>[] = [];
  for (let i = 0; i < 300; i++) {
    recorded.push(writer.record(callEvent({ cards: [{ uuid: `card-${i}` }] })));
    // Some arrive while batches are being committed.
    if (i % 37 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await Promise.all(recorded);
  t.same(writer.backlog(), { pending: 0, spilled: 0, refused: 0, rejected: 0, written: 300 });
  const rows = await store.readChain(0, 1000);
  t.same(
    rows.map((r) => (JSON.parse(r.payload) as { cards: { uuid: string }[] }).cards[0]!.uuid),
    Array.from({ length: 300 }, (_, i) => `card-${i}`),
  );
  const report = await verifyStore(store);
  t.equal(report.ok, true);
  t.equal(report.rows, 300);
});

t.test('an open store that is idle does not keep the process alive', async (t) => {
  const dir = tempDir('cds-worker-');
  const script = join(dir, 'idle.mts');
  writeFileSync(
    script,
    `import { openStore } from ${JSON.stringify(pathToFileURL(resolve('src/audit/store.ts')).href)};
    const store = await openStore({ dataDir: process.argv[2] });
    const { seqs } = await store.append([
      { kind: 'objection', at: new Date(0).toISOString(), serviceId: 's', pseudonym: null,
        payload: { hook: 'h', hookInstance: 'i', consent: 'Consent/1', caller: { issuer: null, tenant: null } } },
    ]);
    console.log('committed', seqs.join());
    `,
  );
  const run = spawnSync(process.execPath, [`--import=${LOADER}`, script, join(dir, 'data')], {
    encoding: 'utf8',
    // Fails the test rather than the whole file (60 s) if the process never ends.
    timeout: 45_000,
  });
  t.equal(run.stderr, '');
  t.equal(run.stdout, 'committed 1\n', 'the call was answered before the process ended');
  t.equal(run.status, 0, 'exited by itself, without close');
});

/**
 * Records 200 events through the writer with a 1 ms timer running, and returns how many times the timer
 * fired while they were being committed and the longest stretch it could not fire.
 */
async function loopWhileRecording(t: Test, store: AuditStore) {
  const events: NewAuditEvent[] = Array.from({ length: 200 }, (_, i) =>
    callEvent({
      cards: Array.from({ length: 5 }, (_, c) => ({
        uuid: `card-${i}-${c}`,
        risk: 0.5,
        suggestions: [`s-${i}-${c}`],
        topFactors: Array.from({ length: 5 }, (_, f) => ({
          id: `factor-${f}`,
          value: f,
          contribution: f / 10,
        })),
      })),
    }),
  );
  const writer = createAuditWriter(store, { maxQueue: 10_000, log: quiet });
  await writer.record(callEvent({ cards: [] }));
  const delay = monitorEventLoopDelay({ resolution: 1 });
  let ticks = 0;
  let last = performance.now();
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
    ticks += 1;
  }, 1);
  delay.enable();
  const start = performance.now();
  await Promise.all(events.map((e) => writer.record(e)));
  const end = performance.now();
  clearInterval(timer);
  delay.disable();
  longest = Math.max(longest, end - last);
  t.equal(writer.backlog().written, 201, 'every event was written');
  return { ticks, longest, elapsed: end - start, maxDelayMs: delay.max / 1e6 };
}

t.test('the event loop keeps turning while events are committed in the worker', async (t) => {
  const { store } = await open(t);
  const worker = await loopWhileRecording(t, store);
  t.comment(`worker store: ${JSON.stringify(worker)}`);
  // The main thread only hands the events over: the timer fires throughout the commit, and no stretch
  // without it is more than a fraction of the time the commit took.
  t.ok(worker.ticks >= 3, `the timer fired ${worker.ticks} times`);
  t.ok(worker.longest < worker.elapsed / 2, `longest stretch ${worker.longest} ms of ${worker.elapsed} ms`);

  // The measure tells them apart: with the store on this thread, the whole commit is one stretch.
  const inThread = await createSqlStore(openSqliteDriver(sqliteFile(tempDir('cds-worker-'))), {
    migrate: true,
  });
  t.teardown(() => inThread.close());
  const blocked = await loopWhileRecording(t, inThread);
  t.comment(`in-thread store: ${JSON.stringify(blocked)}`);
  t.equal(blocked.ticks, 0, 'the in-thread store does not let the timer fire');
  t.ok(blocked.longest >= blocked.elapsed / 2);
});

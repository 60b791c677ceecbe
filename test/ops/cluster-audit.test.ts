/**
 * The cluster's one SQLite audit writer (`ops/cluster-audit.ts`), in process: batches sent by several
 * workers at once are committed together, each worker gets the sequence numbers of its own events, the
 * chain has every record once and verifies, and an event the store refuses fails its own worker's batch
 * only. (The two-process run is test/ops/cluster.test.ts.)
 */
import t, { type Test } from 'tap';
import { createClusterAppender } from '../../src/ops/cluster-audit.js';
import { type AuditStore, openStore } from '../../src/audit/store.js';
import { verifyStore } from '../../tools/audit-verify.js';
import { callEvent } from '../helpers/audit-events.js';
import { tempDir, testSqliteWorker } from '../helpers/app.js';

interface Reply {
  type: string;
  id: number;
  value?: { seqs: (number | null)[] };
  error?: { code?: unknown };
}

/** A worker as the primary sees it: the replies it was sent. */
function peer() {
  const replies: Reply[] = [];
  let waiting: (() => void) | undefined;
  return {
    replies,
    send(message: unknown) {
      replies.push(message as Reply);
      waiting?.();
    },
    isConnected: () => true,
    /** Resolves once `count` replies have arrived. */
    until: (count: number) =>
      new Promise<void>((resolve) => {
        const check = () => (replies.length >= count ? resolve() : undefined);
        waiting = check;
        check();
      }),
  };
}

async function openCounted(t: Test) {
  const store = await openStore({ dataDir: tempDir('cds-cluster-audit-') }, { worker: testSqliteWorker });
  t.teardown(() => store.close());
  const transactions: number[] = [];
  const counted: AuditStore = {
    ...store,
    append: (events) => {
      transactions.push(events.length);
      return store.append(events);
    },
  };
  return { store, counted, transactions };
}

const event = (n: number) =>
  callEvent({ cards: [{ uuid: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}` }] });

t.test('batches of two workers are committed together, each gets its own sequence numbers', async (t) => {
  const { store, counted, transactions } = await openCounted(t);
  const appender = createClusterAppender(counted);
  const a = peer();
  const b = peer();
  // The first batch starts a transaction; the three sent meanwhile go together into the next one.
  t.ok(appender.handle(a, { type: 'cds:audit-append', id: 1, events: [event(1)] }));
  appender.handle(b, { type: 'cds:audit-append', id: 1, events: [event(2), event(3)] });
  appender.handle(a, { type: 'cds:audit-append', id: 2, events: [event(4)] });
  appender.handle(b, { type: 'cds:audit-append', id: 2, events: [event(5)] });
  t.notOk(appender.handle(a, { type: 'cds:metrics-request', id: 3 }), 'other messages are left alone');
  await Promise.all([a.until(2), b.until(2)]);
  await appender.idle();
  t.same(transactions, [1, 4], 'one transaction for what arrived during the first');
  t.same(a.replies, [
    { type: 'cds:audit-appended', id: 1, value: { seqs: [1] } },
    { type: 'cds:audit-appended', id: 2, value: { seqs: [4] } },
  ]);
  t.same(b.replies, [
    { type: 'cds:audit-appended', id: 1, value: { seqs: [2, 3] } },
    { type: 'cds:audit-appended', id: 2, value: { seqs: [5] } },
  ]);
  const report = await verifyStore(store);
  t.equal(report.ok, true);
  t.equal(report.rows, 5);
  t.same(
    (await store.readChain(0, 10)).map((row) => JSON.parse(row.payload).cards[0].uuid.slice(-1)),
    ['1', '2', '3', '4', '5'],
    'every record once, in the order the batches arrived',
  );
});

t.test("an event the store refuses fails its own worker's batch only", async (t) => {
  const { store, counted, transactions } = await openCounted(t);
  const appender = createClusterAppender(counted);
  const a = peer();
  const b = peer();
  appender.handle(a, { type: 'cds:audit-append', id: 1, events: [event(1)] });
  // The same card uuid twice: the store refuses the second record (a bug in the caller).
  appender.handle(a, { type: 'cds:audit-append', id: 2, events: [event(1)] });
  appender.handle(b, { type: 'cds:audit-append', id: 1, events: [event(2)] });
  await Promise.all([a.until(2), b.until(1)]);
  await appender.idle();
  t.same(transactions, [1, 2, 1, 1], 'the merged transaction failed, then each batch alone');
  t.same(a.replies[0], { type: 'cds:audit-appended', id: 1, value: { seqs: [1] } });
  t.equal(a.replies[1]!.id, 2);
  t.match(a.replies[1]!.error, { code: /^SQLITE_CONSTRAINT/ });
  t.same(b.replies, [{ type: 'cds:audit-appended', id: 1, value: { seqs: [2] } }]);
  const report = await verifyStore(store);
  t.equal(report.ok, true);
  t.equal(report.rows, 2);
});

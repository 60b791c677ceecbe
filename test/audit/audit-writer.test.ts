import t from 'tap';
import { AuditRefusedError, createAuditWriter } from '../../src/audit/audit-writer.js';
import { openSpill, readSpill } from '../../src/audit/spill.js';
import type { AuditStore, NewAuditEvent } from '../../src/audit/store.js';
import { tempDir } from '../helpers/app.js';
import { objectionEvent } from '../helpers/audit-events.js';

/** A store in memory that can be switched down, and can refuse one event while up. */
function fakeStore() {
  const written: string[] = [];
  const transactions: number[] = [];
  const state = { down: false, poison: '' };
  const store = {
    kind: 'sqlite',
    async append(events: readonly NewAuditEvent[]) {
      if (state.down)
        throw Object.assign(new Error('SQLITE_CANTOPEN: unable to open pat-123'), {
          code: 'SQLITE_CANTOPEN',
        });
      if (events.some((e) => e.pseudonym === state.poison)) throw new Error('UNIQUE constraint failed');
      written.push(...events.map((e) => e.pseudonym!));
      transactions.push(events.length);
      return { seqs: events.map((_, i) => written.length - events.length + i + 1) };
    },
    async ping() {
      if (state.down) throw new Error('down');
    },
  } as unknown as AuditStore;
  return { store, written, transactions, state };
}

function captureLog() {
  const lines: { level: string; fields: Record<string, unknown>; message: string }[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, message: string) => {
    lines.push({ level, fields, message });
  };
  return { log: { warn: at('warn'), error: at('error'), info: at('info') }, lines };
}

const event = (n: number) => objectionEvent(String(n));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(5);
  }
}

t.test('events are written in order, several at once in one transaction', async (t) => {
  const { store, written, transactions } = fakeStore();
  const { log } = captureLog();
  const writer = createAuditWriter(store, { maxQueue: 100, log });
  await Promise.all([1, 2, 3, 4, 5].map((n) => writer.record(event(n))));
  t.same(written, ['1', '2', '3', '4', '5']);
  // The first goes alone; the others arrived while it was being written and go together.
  t.same(transactions, [1, 4]);
  t.same(writer.backlog(), { pending: 0, spilled: 0, refused: 0, rejected: 0, written: 5 });
});

t.test('while the store is down, records are kept in order, then written when it returns', async (t) => {
  const { store, written, state } = fakeStore();
  const { log, lines } = captureLog();
  const writer = createAuditWriter(store, { maxQueue: 100, log, retryInitialMs: 10, retryMaxMs: 20 });
  state.down = true;
  // record() still resolves: the caller (a service call) is answered.
  await writer.record(event(1));
  await writer.record(event(2));
  await writer.record(event(3));
  t.same(writer.backlog(), { pending: 3, spilled: 0, refused: 0, rejected: 0, written: 0 });
  t.same(written, []);
  await t.rejects(writer.flush(), /SQLITE_CANTOPEN/);
  await sleep(50);
  t.equal(writer.backlog().pending, 3, 'retries keep failing while it is down');
  state.down = false;
  await until(() => writer.backlog().pending === 0);
  t.same(written, ['1', '2', '3']);
  await writer.record(event(4));
  t.same(written, ['1', '2', '3', '4']);
  t.same(
    lines.map((l) => [l.level, l.message, l.fields.pending]),
    [
      ['error', 'audit records cannot be written', 1],
      ['warn', 'audit store available again; queued records written', 0],
    ],
  );
  t.equal(lines[0]!.fields.error, 'SQLITE_CANTOPEN');
  t.notMatch(JSON.stringify(lines), /pat-123/, 'the error message is not logged, only its code');
});

t.test(
  'flush() writes what is queued at once when the store is back, without waiting for the retry',
  async (t) => {
    const { store, written, state } = fakeStore();
    const { log } = captureLog();
    const writer = createAuditWriter(store, { maxQueue: 100, log, retryInitialMs: 60_000 });
    state.down = true;
    await writer.record(event(1));
    state.down = false;
    await writer.flush();
    t.same(written, ['1']);
    await writer.flush();
    await writer.close();
  },
);

t.test(
  'beyond the bound, calls are refused (never dropped silently), one log line per thousand',
  async (t) => {
    const { store, state } = fakeStore();
    const { log, lines } = captureLog();
    const writer = createAuditWriter(store, { maxQueue: 2, log, retryInitialMs: 60_000 });
    state.down = true;
    await writer.record(event(1));
    await writer.record(event(2));
    for (let n = 3; n <= 5; n++) await t.rejects(writer.record(event(n)), AuditRefusedError);
    t.same(writer.backlog(), { pending: 2, spilled: 0, refused: 3, rejected: 0, written: 0 });
    t.ok(writer.failing());
    t.same(
      lines
        .filter((l) => l.message === 'audit record cannot be written: call refused')
        .map((l) => [l.level, l.fields.refused]),
      [['error', 1]],
    );
    await writer.close();
    t.equal(lines.at(-1)!.message, 'audit store unavailable at shutdown: queued records not written');
    t.equal(lines.at(-1)!.fields.pending, 2);
  },
);

t.test(
  'a store that answers pings but cannot write (disk full, read-only) is failing, not rejecting',
  async (t) => {
    for (const code of ['SQLITE_FULL', 'SQLITE_READONLY', 'SQLITE_IOERR_WRITE', '53100', '57P01', '25006']) {
      const { store, written } = fakeStore();
      const { log } = captureLog();
      let full = true;
      const original = store.append.bind(store);
      store.append = async (events) => {
        if (full) throw Object.assign(new Error('database or disk is full'), { code });
        return original(events);
      };
      const writer = createAuditWriter(store, { maxQueue: 10, log, retryInitialMs: 5, retryMaxMs: 10 });
      await writer.record(event(1));
      await writer.record(event(2));
      t.ok(writer.failing(), `${code}: failing`);
      t.same(writer.backlog(), { pending: 2, spilled: 0, refused: 0, rejected: 0, written: 0 }, code);
      full = false;
      await until(() => writer.backlog().pending === 0);
      t.same(written, ['1', '2'], `${code}: held records written in order once writable`);
      t.notOk(writer.failing());
      await writer.close();
    }
  },
);

t.test(
  'policy refuse: a call whose record cannot be committed fails; the store is tried again by the next',
  async (t) => {
    const { store, written, state } = fakeStore();
    const { log } = captureLog();
    const writer = createAuditWriter(store, { maxQueue: 10, log, policy: 'refuse', retryInitialMs: 60_000 });
    state.down = true;
    await t.rejects(writer.record(event(1)), AuditRefusedError);
    await t.rejects(writer.record(event(2)), AuditRefusedError);
    t.same(writer.backlog(), { pending: 0, spilled: 0, refused: 2, rejected: 0, written: 0 });
    t.ok(writer.failing());
    state.down = false;
    await writer.record(event(3));
    t.same(written, ['3'], 'refused records are not written: their calls showed no card');
    t.notOk(writer.failing());
    await writer.close();
  },
);

t.test(
  'with a spill file, held records are on disk before the call is answered, and survive a restart',
  async (t) => {
    const dir = tempDir('cds-spill-');
    const { store, written, state } = fakeStore();
    const { log } = captureLog();
    const spill = openSpill(dir);
    const writer = createAuditWriter(store, { maxQueue: 10, log, spill, retryInitialMs: 60_000 });
    state.down = true;
    await writer.record(event(1));
    await writer.record(event(2));
    t.same(
      readSpill(dir).map((e) => e.pseudonym),
      ['1', '2'],
      'both records are in the spill file once their calls are answered',
    );
    t.same(writer.backlog(), { pending: 2, spilled: 2, refused: 0, rejected: 0, written: 0 });
    await writer.close();
    await spill.close();

    // The next run finds them and writes them first, then empties the file.
    state.down = false;
    const again = openSpill(dir);
    const next = createAuditWriter(store, { maxQueue: 10, log, spill: again, recovered: readSpill(dir) });
    await next.record(event(3));
    t.same(written, ['1', '2', '3']);
    t.same(readSpill(dir), [], 'the spill file is emptied once its records are written');
    t.same(next.backlog(), { pending: 0, spilled: 0, refused: 0, rejected: 0, written: 3 });
    await next.close();
    await again.close();
  },
);

t.test(
  'a spill file that cannot be written makes the call fail rather than hold it in memory only',
  async (t) => {
    const { store, state } = fakeStore();
    const { log } = captureLog();
    const broken = {
      append: async () => {
        throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
      },
      clear: async () => undefined,
      close: async () => undefined,
    };
    const writer = createAuditWriter(store, { maxQueue: 10, log, spill: broken, retryInitialMs: 60_000 });
    state.down = true;
    await t.rejects(writer.record(event(1)), AuditRefusedError);
    await t.rejects(writer.record(event(2)), AuditRefusedError);
    t.same(writer.backlog(), { pending: 0, spilled: 0, refused: 2, rejected: 0, written: 0 });
    await writer.close();
  },
);

t.test('an event the store refuses while it answers is counted and does not block the others', async (t) => {
  const { store, written, state } = fakeStore();
  const { log, lines } = captureLog();
  const writer = createAuditWriter(store, { maxQueue: 100, log });
  state.poison = '2';
  await Promise.all([1, 2, 3].map((n) => writer.record(event(n))));
  t.same(written, ['1', '3']);
  t.same(writer.backlog(), { pending: 0, spilled: 0, refused: 0, rejected: 1, written: 2 });
  t.same(
    lines.map((l) => [l.level, l.message, l.fields]),
    [['error', 'audit store refused an event', { kind: 'objection', error: 'Error' }]],
  );
});

t.test('a store that goes down while events are written one by one keeps the rest queued', async (t) => {
  const { store, written, state } = fakeStore();
  const { log } = captureLog();
  const writer = createAuditWriter(store, { maxQueue: 100, log, retryInitialMs: 10 });
  state.poison = '2';
  const original = store.append.bind(store);
  let calls = 0;
  store.append = async (events) => {
    calls += 1;
    // The batch [2, 3] fails on the poison, then the store goes down before 3 is retried alone.
    if (calls === 3) state.down = true;
    return original(events);
  };
  await writer.record(event(1));
  await Promise.all([writer.record(event(2)), writer.record(event(3))]);
  t.same(written, ['1']);
  t.same(writer.backlog(), { pending: 2, spilled: 0, refused: 0, rejected: 0, written: 1 });
  state.down = false;
  await until(() => writer.backlog().pending === 0);
  t.same(written, ['1', '3']);
  t.equal(writer.backlog().rejected, 1);
});

t.test('close() writes what is pending, then stops retrying', async (t) => {
  const { store, written, state } = fakeStore();
  const { log, lines } = captureLog();
  const writer = createAuditWriter(store, { maxQueue: 100, log, retryInitialMs: 10 });
  state.down = true;
  await writer.record(event(1));
  state.down = false;
  await writer.close();
  t.same(written, ['1']);
  t.same(
    lines.map((l) => l.message),
    ['audit records cannot be written', 'audit store available again; queued records written'],
  );
});

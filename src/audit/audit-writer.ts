/**
 * Writes audit events in order, and decides what happens to a call whose record cannot be written now
 * (the audit fail-safe policy).
 *
 * Events are appended in batches (whatever arrived while the previous batch was being committed goes in
 * the next transaction: one disk sync for many calls under load). When the store cannot take them (down,
 * disk full, read-only: {@link isStoreFault}), the writer is *failing* until a write succeeds again, and
 * the policy applies to the records waiting and to those that arrive meanwhile:
 * - `queue` (the default): records are held, in order, in a queue of at most `maxQueue` records (also
 *   appended to a spill file in a second folder when one is configured, so that they survive a restart),
 *   the call is answered, and a retry loop with exponential backoff writes them when the store takes them
 *   again. A record that cannot be held (queue full, spill file not writable) makes its call fail:
 *   no card is shown that cannot be audited.
 * - `refuse`: nothing is queued; a call waits for its record's commit and fails when it cannot be made.
 * A failing call's record is never written (the call issued no card) and counted as `refused`. No record
 * is dropped: the writer never answers a call whose record it let go.
 *
 * An event the store refuses while it otherwise takes writes (a bug, e.g. a duplicate card uuid) must not
 * block the events behind it: such a batch is retried one event at a time and the refused event is
 * counted as rejected and logged at error. Logs carry counts and error codes only;
 * {@link AuditWriter.backlog} and {@link AuditWriter.failing} are what /metrics and /health/ready report.
 */
import type { AuditSpill } from './spill.js';
import type { AuditStore, NewAuditEvent } from './store.js';

export type AuditFailPolicy = 'queue' | 'refuse';

export interface AuditBacklog {
  /** Events waiting to be written (held in memory, and in the spill file when there is one). */
  pending: number;
  /** Of those, the events in the spill file. */
  spilled: number;
  /** Calls failed because their record could not be written nor held (policy, queue full). */
  refused: number;
  /** Events the store refused while answering (not retried). */
  rejected: number;
  /** Events written since start. */
  written: number;
}

export interface AuditWriterLog {
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
}

export interface AuditWriterOptions {
  maxQueue: number;
  log: AuditWriterLog;
  /** What a call whose record cannot be written now gets (default `queue`). */
  policy?: AuditFailPolicy;
  /** Where held records are also written, durably (the queue survives a restart). */
  spill?: AuditSpill | undefined;
  /** First retry delay; doubled after each failure up to `retryMaxMs`. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Most events written in one transaction. */
  batchSize?: number;
  /** Records a previous run left in the spill file: queued first, in order, and written at once. */
  recovered?: readonly NewAuditEvent[];
}

/** Thrown to a call whose record could not be written nor held: the call must not show its cards. */
export class AuditRefusedError extends Error {
  constructor(reason: string, options?: ErrorOptions) {
    super(`the audit record cannot be written: ${reason}`, options);
    this.name = 'AuditRefusedError';
  }
}

export interface AuditWriter {
  /**
   * Queues an event; resolves once it is committed, or held in the queue when the store cannot take it
   * and the policy allows.
   * @throws AuditRefusedError when it could be neither (the call must fail)
   */
  record(event: NewAuditEvent): Promise<void>;
  /** Writes everything queued now; rejects when the store still fails. */
  flush(): Promise<void>;
  backlog(): AuditBacklog;
  /** True from a failed write until a write (or, with nothing queued, a ping) succeeds again. */
  failing(): boolean;
  /** Stops retrying after one last attempt; what could not be written is counted in the log. */
  close(): Promise<void>;
}

interface Item {
  event: NewAuditEvent;
  /** In the spill file. */
  spilled: boolean;
  /** The caller waiting for this record, if it still waits. */
  waiting?: { resolve: () => void; reject: (error: Error) => void };
}

/** The error's code or class name: never its message, which may quote values. */
const errorName = (error: unknown) => (error as { code?: string }).code ?? (error as Error).name ?? 'unknown';

/**
 * A failure of the store rather than of one event: the store cannot take writes (disk full, read-only
 * file or folder, I/O error, lock, the worker thread gone; PostgreSQL connection lost, server shutting
 * down, out of resources, read-only transaction). Retried; never counted against the event.
 */
export function isStoreFault(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string') return false;
  return (
    /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|BUSY|LOCKED|NOMEM|PROTOCOL|CORRUPT|NOTADB|NOLFS|AUTH)/.test(
      code,
    ) ||
    /^AUDIT_STORE_/.test(code) ||
    /^(08|53|57|58)[0-9A-Z]{3}$/.test(code) || // PostgreSQL: connection, resources, operator, system
    code === '25006' || // read_only_sql_transaction
    /^E[A-Z]+$/.test(code) // Node system errors (ECONNREFUSED, ENOSPC, EROFS, …)
  );
}

export function createAuditWriter(store: AuditStore, options: AuditWriterOptions): AuditWriter {
  const initialDelay = options.retryInitialMs ?? 100;
  const maxDelay = options.retryMaxMs ?? 30_000;
  const batchSize = options.batchSize ?? 500;
  const policy = options.policy ?? 'queue';
  const { log, spill } = options;
  const queue: Item[] = [];
  const counts = { refused: 0, rejected: 0, written: 0 };
  let spilledPending = 0;
  let failing = false;
  let delay = initialDelay;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;
  for (const event of options.recovered ?? []) queue.push({ event, spilled: true });
  spilledPending = queue.length;

  const resolveItems = (items: Item[]) => {
    for (const item of items) {
      item.waiting?.resolve();
      delete item.waiting;
    }
  };

  const refuse = (items: Item[], reason: string, cause?: unknown) => {
    if (items.length === 0) return;
    counts.refused += items.length;
    // One line on the first refusal and then every 1000, not one per call.
    if (counts.refused % 1000 < items.length || counts.refused === items.length) {
      log.error({ reason, policy, ...backlog() }, 'audit record cannot be written: call refused');
    }
    for (const item of items) {
      item.waiting?.reject(new AuditRefusedError(reason, { cause }));
      delete item.waiting;
    }
  };

  const remove = (items: Set<Item>) => {
    for (let i = queue.length - 1; i >= 0; i--) if (items.has(queue[i]!)) queue.splice(i, 1);
  };

  /** Items that left the queue: their callers are answered, and the spill file emptied once all are out. */
  async function done(items: Item[]): Promise<void> {
    const spilled = items.filter((i) => i.spilled).length;
    if (spilled > 0) {
      spilledPending -= spilled;
      if (spilledPending === 0) {
        await spill!.clear().catch((error: unknown) => {
          log.error({ error: errorName(error) }, 'audit spill file could not be emptied');
        });
      }
    }
    resolveItems(items);
  }

  /** Writes batches until the queue is empty; throws at the first store fault, leaving the rest queued. */
  async function drain(): Promise<void> {
    if (queue.length === 0 && failing) await store.ping();
    while (queue.length > 0) {
      const batch = queue.slice(0, batchSize);
      try {
        await store.append(batch.map((i) => i.event));
      } catch (error) {
        if (!(await takesWrites(error))) throw error;
        await writeOneByOne(batch);
        continue;
      }
      queue.splice(0, batch.length);
      counts.written += batch.length;
      await done(batch);
    }
  }

  /** Whether the store answers, the error being about the event rather than the store. */
  async function takesWrites(error: unknown): Promise<boolean> {
    if (isStoreFault(error)) return false;
    try {
      await store.ping();
      return true;
    } catch {
      return false;
    }
  }

  async function writeOneByOne(batch: Item[]): Promise<void> {
    for (const item of batch) {
      try {
        await store.append([item.event]);
        counts.written += 1;
      } catch (error) {
        if (!(await takesWrites(error))) throw error;
        // A bug, not the caller's doing: the call is answered, the event counted and logged at error.
        counts.rejected += 1;
        log.error({ kind: item.event.kind, error: errorName(error) }, 'audit store refused an event');
      }
      queue.shift();
      await done([item]);
    }
  }

  /** The records waiting when the store failed: held (spilled first, if configured) or refused. */
  async function hold(error: unknown): Promise<void> {
    const waiting = queue.filter((i) => i.waiting);
    if (policy === 'refuse') {
      remove(new Set(waiting));
      refuse(waiting, `store unavailable (${errorName(error)})`, error);
      return;
    }
    if (spill) {
      const toSpill = waiting.filter((i) => !i.spilled);
      try {
        await spill.append(toSpill.map((i) => i.event));
        for (const item of toSpill) item.spilled = true;
        spilledPending += toSpill.length;
      } catch (spillError) {
        remove(new Set(toSpill));
        refuse(toSpill, `store unavailable and spill file not writable (${errorName(spillError)})`, error);
      }
    }
    resolveItems(waiting);
  }

  function run(): Promise<void> {
    running ??= drain()
      .then(() => {
        if (failing) log.warn({ ...backlog() }, 'audit store available again; queued records written');
        failing = false;
        delay = initialDelay;
      })
      .catch(async (error: unknown) => {
        if (!failing) {
          log.error({ error: errorName(error), policy, ...backlog() }, 'audit records cannot be written');
        }
        failing = true;
        await hold(error);
        scheduleRetry();
        throw error;
      })
      .finally(() => {
        running = undefined;
        // Events recorded while the last batch was being written; with `refuse`, calls that wait.
        if (queue.length > 0 && (!failing || queue.some((i) => i.waiting))) void run().catch(() => undefined);
      });
    return running;
  }

  function scheduleRetry(): void {
    if (closed || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      void run().catch(() => undefined);
    }, delay);
    timer.unref();
    delay = Math.min(delay * 2, maxDelay);
  }

  async function flush(): Promise<void> {
    if (running) await running.catch(() => undefined);
    if (queue.length > 0 || failing) await run();
  }

  function backlog(): AuditBacklog {
    return { pending: queue.length, spilled: spilledPending, ...counts };
  }

  /** Holds a record that arrives while the writer is failing, or refuses it. */
  async function recordWhileFailing(item: Item): Promise<void> {
    if (policy === 'refuse') {
      // Each call tries the store itself: the first commit that succeeds ends the outage.
      queue.push(item);
      return new Promise<void>((resolve, reject) => {
        item.waiting = { resolve, reject };
        if (!running) void run().catch(() => undefined);
      });
    }
    if (spill) {
      try {
        await spill.append([item.event]);
      } catch (error) {
        refuse([item], `store unavailable and spill file not writable (${errorName(error)})`, error);
        throw new AuditRefusedError('the spill file is not writable', { cause: error });
      }
      item.spilled = true;
      spilledPending += 1;
    }
    queue.push(item);
    // The store came back while the record was being spilled: nothing else would write it.
    if (!failing && !running) void run().catch(() => undefined);
  }

  if (queue.length > 0) void run().catch(() => undefined);

  return {
    record(event) {
      const item: Item = { event, spilled: false };
      if (queue.length >= options.maxQueue) {
        refuse([item], 'audit queue full');
        return Promise.reject(new AuditRefusedError('the audit queue is full'));
      }
      if (failing) return recordWhileFailing(item);
      return new Promise<void>((resolve, reject) => {
        item.waiting = { resolve, reject };
        queue.push(item);
        if (!running) void run().catch(() => undefined);
      });
    },
    flush,
    backlog,
    failing: () => failing,
    async close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      try {
        await flush();
      } catch {
        log.error(
          { ...backlog() },
          spilledPending === queue.length
            ? 'audit store unavailable at shutdown: queued records kept in the spill file'
            : 'audit store unavailable at shutdown: queued records not written',
        );
      }
    },
  };
}

/**
 * Writes audit events in order, and keeps answering when the store is down.
 *
 * Events are appended in batches (whatever arrived while the previous batch was being committed goes in
 * the next transaction: one disk sync for many calls under load). When the store fails, the events stay
 * in a bounded in-memory queue, in order, and a retry loop with exponential backoff writes them when the
 * store answers again. Beyond `maxQueue` events the newest are counted as dropped. The caller is never
 * failed: a service call is answered whether or not its record could be written yet. Logs carry counts
 * only; {@link AuditWriter.backlog} is the counter /metrics reports.
 *
 * An event the store refuses while it otherwise answers (a bug, e.g. a duplicate card uuid) must not
 * block the events behind it: such a batch is retried one event at a time and the refused event is
 * counted as rejected and logged.
 */
import type { AuditStore, NewAuditEvent } from './store.js';

export interface AuditBacklog {
  /** Events waiting in memory to be written. */
  pending: number;
  /** Events lost because the queue was full. */
  dropped: number;
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
  /** First retry delay; doubled after each failure up to `retryMaxMs`. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Most events written in one transaction. */
  batchSize?: number;
}

export interface AuditWriter {
  /** Queues an event; resolves once it is committed, or kept in memory if the store fails. Never rejects. */
  record(event: NewAuditEvent): Promise<void>;
  /** Writes everything queued now; rejects when the store still fails. */
  flush(): Promise<void>;
  backlog(): AuditBacklog;
  /** Stops retrying after one last attempt; what could not be written is counted in the log. */
  close(): Promise<void>;
}

interface Item {
  event: NewAuditEvent;
  settle?: () => void;
}

/** The error's code or class name: never its message, which may quote values. */
const errorName = (error: unknown) => (error as { code?: string }).code ?? (error as Error).name ?? 'unknown';

export function createAuditWriter(store: AuditStore, options: AuditWriterOptions): AuditWriter {
  const initialDelay = options.retryInitialMs ?? 100;
  const maxDelay = options.retryMaxMs ?? 30_000;
  const batchSize = options.batchSize ?? 500;
  const { log } = options;
  const queue: Item[] = [];
  const counts = { dropped: 0, rejected: 0, written: 0 };
  let failing = false;
  let delay = initialDelay;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let closed = false;

  const settle = (items: Item[]) => {
    for (const item of items) {
      item.settle?.();
      delete item.settle;
    }
  };

  /** Writes batches until the queue is empty; throws at the first failure, leaving the rest queued. */
  async function drain(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, batchSize);
      try {
        await store.append(batch.map((i) => i.event));
      } catch (error) {
        if (!(await answers())) throw error;
        await writeOneByOne(batch);
        continue;
      }
      queue.splice(0, batch.length);
      counts.written += batch.length;
      settle(batch);
    }
  }

  async function answers(): Promise<boolean> {
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
        if (!(await answers())) throw error;
        counts.rejected += 1;
        log.error({ kind: item.event.kind, error: errorName(error) }, 'audit store refused an event');
      }
      queue.shift();
      settle([item]);
    }
  }

  function run(): Promise<void> {
    running ??= drain()
      .then(() => {
        if (failing) log.warn({ ...backlog() }, 'audit store available again; queued records written');
        failing = false;
        delay = initialDelay;
      })
      .catch((error: unknown) => {
        if (!failing) log.warn({ error: errorName(error), ...backlog() }, 'audit store unavailable');
        failing = true;
        settle(queue);
        scheduleRetry();
        throw error;
      })
      .finally(() => {
        running = undefined;
        // Events recorded while the last batch was being written.
        if (!failing && queue.length > 0) void run().catch(() => undefined);
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
    if (queue.length > 0) await run();
  }

  function backlog(): AuditBacklog {
    return { pending: queue.length, ...counts };
  }

  return {
    record(event) {
      if (queue.length >= options.maxQueue) {
        counts.dropped += 1;
        // One line on the first loss and then every 1000, not one per call.
        if (counts.dropped % 1000 === 1) log.error({ ...backlog() }, 'audit queue full: records lost');
        return Promise.resolve();
      }
      return new Promise<void>((resolve) => {
        const item: Item = { event, settle: resolve };
        queue.push(item);
        if (failing) {
          settle([item]);
          return;
        }
        if (!running) void run().catch(() => undefined);
      });
    },
    flush,
    backlog,
    async close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      try {
        await flush();
      } catch {
        log.error({ ...backlog() }, 'audit store unavailable at shutdown: queued records not written');
      }
    },
  };
}

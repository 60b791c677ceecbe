/**
 * One SQLite audit writer for the whole cluster (`ops/cluster.ts`): the primary owns the appends to the
 * chain and the workers send their records over the IPC channel.
 *
 * Why: with each worker appending to the SQLite file itself, the two writers took the file's write lock
 * in turn (`BEGIN IMMEDIATE`, a worker waiting for the other's disk sync and retrying), each committed
 * its own group (half as many records per disk sync) and each re-read the pages the other had just
 * changed. Measured on the 2-core machine with the real writer and worker-thread store, 16 callers:
 * 0.94 ms of CPU per record with one writer, 1.44 ms with two, and 8 records per transaction against 4.
 * Here every worker's batches that arrive while a transaction commits go into the next one together:
 * one writer, one lock holder, one disk sync per group of the whole set.
 *
 * The chain is the store's: the primary's store appends in the order the batches reach it, under the
 * same `BEGIN IMMEDIATE` (so a tool writing to the file meanwhile is still serialized). A worker's
 * `append` resolves once its events are committed, with their sequence numbers, as before; a failure
 * comes back with its `code`, so the worker's writer applies the fail-safe policy as for its own store.
 * Reads (cards, explanations, analytics, the chain for export) stay in each worker's own connection.
 * PostgreSQL needs none of this: its workers append through the database (the head row lock).
 */
import type { AppendResult, AuditStore, NewAuditEvent } from '../audit/store.js';
import { errorFromWire, errorToWire, type WireError } from '../audit/worker-store.js';

const APPEND = 'cds:audit-append';
const APPENDED = 'cds:audit-appended';
/** Code of the error an append rejects with when the primary cannot be reached (a store fault). */
export const PRIMARY_GONE = 'AUDIT_STORE_PRIMARY_GONE';

interface AppendRequest {
  type: typeof APPEND;
  id: number;
  events: readonly NewAuditEvent[];
}

interface AppendReply {
  type: typeof APPENDED;
  id: number;
  value?: AppendResult;
  error?: WireError;
}

function isMessage<T extends { type: string }>(message: unknown, type: T['type']): message is T {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

/** What the primary needs of a worker to answer it. */
export interface AppendPeer {
  send(message: unknown): void;
  isConnected(): boolean;
}

interface Waiting {
  events: readonly NewAuditEvent[];
  settle(reply: Omit<AppendReply, 'type' | 'id'>): void;
}

/**
 * In the primary: appends the batches the workers send to `store`, those that arrive during a commit
 * together in the next transaction.
 * @returns the handler for each worker's messages (true when the message was an append), and `idle`,
 *   which resolves once no append is under way (before the store is closed)
 */
export function createClusterAppender(store: AuditStore): {
  handle(peer: AppendPeer, message: unknown): boolean;
  idle(): Promise<void>;
} {
  const queue: Waiting[] = [];
  let running: Promise<void> | undefined;

  const appendEach = async (batch: Waiting[]) => {
    // A transaction is all or nothing: after a failed merged one, each worker's batch alone, so that an
    // event the store refuses fails its own batch only (the worker's writer then retries it alone).
    for (const waiting of batch) {
      try {
        waiting.settle({ value: await store.append(waiting.events) });
      } catch (error) {
        waiting.settle({ error: errorToWire(error) });
      }
    }
  };

  const drain = async () => {
    while (queue.length > 0) {
      const batch = queue.splice(0, queue.length);
      if (batch.length === 1) {
        await appendEach(batch);
        continue;
      }
      let result: AppendResult;
      try {
        result = await store.append(batch.flatMap((w) => w.events));
      } catch {
        await appendEach(batch);
        continue;
      }
      let at = 0;
      for (const waiting of batch) {
        waiting.settle({ value: { seqs: result.seqs.slice(at, at + waiting.events.length) } });
        at += waiting.events.length;
      }
    }
  };

  return {
    handle(peer, message) {
      if (!isMessage<AppendRequest>(message, APPEND)) return false;
      queue.push({
        events: message.events,
        settle: (reply) => {
          // A worker that died meanwhile is no longer waiting (its records are committed all the same).
          if (peer.isConnected())
            peer.send({ type: APPENDED, id: message.id, ...reply } satisfies AppendReply);
        },
      });
      running ??= drain().finally(() => {
        running = undefined;
      });
      return true;
    },
    idle: async () => {
      while (running) await running;
    },
  };
}

/**
 * In a worker: `store` with its appends made by the primary's store. The IPC channel must use the
 * `advanced` serialization (the structured clone, as the SQLite worker thread receives them), so that
 * the events reach the store exactly as the worker made them.
 */
export function withPrimaryAppends(store: AuditStore): AuditStore {
  let next = 0;
  const pending = new Map<number, { resolve(value: AppendResult): void; reject(error: Error): void }>();
  process.on('message', (message: unknown) => {
    if (!isMessage<AppendReply>(message, APPENDED)) return;
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    if (message.error !== undefined) waiter.reject(errorFromWire(message.error));
    else waiter.resolve(message.value ?? { seqs: [] });
  });
  return {
    ...store,
    append: (events) =>
      new Promise((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve, reject });
        process.send!({ type: APPEND, id, events } satisfies AppendRequest, undefined, undefined, (error) => {
          if (!error) return;
          // The primary is gone: a store fault for the writer (its code says so), which keeps the record.
          pending.delete(id);
          reject(
            Object.assign(new Error(`the cluster's audit writer: ${error.message}`), { code: PRIMARY_GONE }),
          );
        });
      }),
  };
}

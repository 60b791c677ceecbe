/**
 * The SQLite audit store, run in a worker thread. better-sqlite3 is synchronous: on the main thread every
 * statement, every commit's disk sync (`synchronous = FULL`) and the chain's canonical JSON and SHA-256 of
 * each event would hold up every request the server is handling meanwhile. Here the whole store
 * (`createSqlStore` over `openSqliteDriver`) lives in `sqlite-worker.ts`, and the main thread keeps a proxy
 * with the same {@link AuditStore} interface: one message per method call, answered once the worker's
 * store has answered, so `append` still resolves only once the events are committed.
 *
 * Calls reach the worker in the order they are made and its store queues them in that order: the chain
 * order and the writer's group commit are those of the in-thread store. Errors come back with their
 * `name`, `message` and `code` (the writer logs the code; start-up reports the message).
 *
 * Opening starts the worker, which opens the file and applies the migrations; if that fails the worker is
 * stopped and the open rejects with its error. If the worker dies later, the calls waiting for it reject
 * with {@link WORKER_EXITED} and the next call starts a new one (the writer keeps its queue and retries,
 * as for any store outage). `close` lets the calls already made finish, closes the database and stops
 * the worker; later calls reject with {@link STORE_CLOSED}. An idle worker does not keep the process
 * alive, as an idle in-thread database would not.
 */
import { extname } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { AuditStore } from './store.js';

/** Code of the error pending calls reject with when the worker stops unexpectedly. */
export const WORKER_EXITED = 'AUDIT_STORE_WORKER_EXITED';
/** Code of the error a call made after `close` rejects with. */
export const STORE_CLOSED = 'AUDIT_STORE_CLOSED';

/** The store's methods a message can name. */
export type StoreMethod = Exclude<keyof AuditStore, 'kind'>;

/** What the worker is started with. */
export interface WorkerOptions {
  file: string;
  migrate: boolean;
}

export interface WorkerRequest {
  id: number;
  method: StoreMethod;
  args: unknown[];
}

/** An error as it crosses the thread boundary (structured clone keeps neither `code` nor a custom name). */
export interface WireError {
  name: string;
  message: string;
  code?: unknown;
  stack?: string;
}

export type WorkerReply =
  | { opened: true }
  | { opened: false; error: WireError }
  | { id: number; value: unknown }
  | { id: number; error: WireError };

export function errorToWire(error: unknown): WireError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const wire: WireError = { name: error.name, message: error.message };
  const code = (error as { code?: unknown }).code;
  if (code !== undefined) wire.code = code;
  if (error.stack !== undefined) wire.stack = error.stack;
  return wire;
}

const BUILT_IN: Record<string, ErrorConstructor> = { TypeError, RangeError, SyntaxError, ReferenceError };

/** The error again, as the same built-in class where it was one; the worker's stack says where it arose. */
export function errorFromWire(wire: WireError): Error {
  const error = new (BUILT_IN[wire.name] ?? Error)(wire.message);
  if (error.name !== wire.name) {
    // Like better-sqlite3's SqliteError: the name is not an enumerable field.
    Object.defineProperty(error, 'name', { value: wire.name, configurable: true, writable: true });
  }
  if (wire.code !== undefined) (error as Error & { code?: unknown }).code = wire.code;
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
}

const codedError = (message: string, code: string) => Object.assign(new Error(message), { code });

/** The worker's entry: `.ts` when the tests run the sources through the TypeScript loader, else `.js`. */
const ENTRY = new URL(`./sqlite-worker${extname(new URL(import.meta.url).pathname)}`, import.meta.url);

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** The worker behind a store, so that tests can make it die. */
const workers = new WeakMap<AuditStore, () => Worker | undefined>();

/** The worker currently running a store opened by {@link openWorkerStore} (tests). */
export function workerOf(store: AuditStore): Worker | undefined {
  return workers.get(store)?.();
}

/**
 * Starts the worker, which opens the SQLite file and applies pending migrations (unless `migrate` is false).
 * @throws Error the worker's error when the file cannot be opened or was migrated by a newer version
 */
export async function openWorkerStore(file: string, options: { migrate: boolean }): Promise<AuditStore> {
  const workerOptions: WorkerOptions = { file, migrate: options.migrate };
  const pending = new Map<number, Pending>();
  /** Calls made and not settled yet, including those waiting for a worker to start. */
  const outstanding = new Set<Promise<unknown>>();
  let nextId = 1;
  let worker: Worker | undefined;
  let starting: Promise<Worker> | undefined;
  let closing: Promise<void> | undefined;

  function start(): Promise<Worker> {
    return new Promise((resolve, reject) => {
      const thread = new Worker(ENTRY, { workerData: workerOptions });
      let opened = false;
      let failure: Error | undefined;
      thread.on('message', (reply: WorkerReply) => {
        if ('opened' in reply) {
          if (reply.opened) {
            opened = true;
            worker = thread;
            thread.unref();
            resolve(thread);
          } else {
            failure = errorFromWire(reply.error);
            void thread.terminate();
          }
          return;
        }
        const call = pending.get(reply.id);
        if (!call) return;
        pending.delete(reply.id);
        if (pending.size === 0) thread.unref();
        if ('error' in reply) call.reject(errorFromWire(reply.error));
        else call.resolve(reply.value);
      });
      thread.on('error', (error) => (failure ??= error));
      thread.on('exit', (code) => {
        if (!opened) {
          reject(
            failure ??
              codedError(`the audit store worker stopped while opening (exit code ${code})`, WORKER_EXITED),
          );
          return;
        }
        if (worker !== thread) return; // stopped by close
        worker = undefined;
        const error = codedError(
          `the audit store worker stopped unexpectedly (exit code ${code}${failure ? `: ${failure.message}` : ''})`,
          WORKER_EXITED,
        );
        const calls = [...pending.values()];
        pending.clear();
        for (const call of calls) call.reject(error);
      });
    });
  }

  function send(thread: Worker, method: StoreMethod, args: unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      if (pending.size === 1) thread.ref();
      thread.postMessage({ id, method, args } satisfies WorkerRequest);
    });
  }

  function call<T>(method: StoreMethod, args: unknown[]): Promise<T> {
    if (closing) return Promise.reject(codedError('the audit store is closed', STORE_CLOSED));
    const result = (async () => {
      // After a crash, the first call starts a new worker; the calls made meanwhile wait for the same one.
      const thread =
        worker ??
        (await (starting ??= start().finally(() => {
          starting = undefined;
        })));
      return send(thread, method, args);
    })() as Promise<T>;
    outstanding.add(result);
    const forget = () => outstanding.delete(result);
    result.then(forget, forget);
    return result;
  }

  await start();

  const store: AuditStore = {
    kind: 'sqlite',
    append: (events) => call('append', [events]),
    findCards: (serviceId, uuids) => call('findCards', [serviceId, uuids]),
    eventsFor: (pseudonym) => call('eventsFor', [pseudonym]),
    analytics: () => call('analytics', []),
    readChain: (afterSeq, limit) => call('readChain', [afterSeq, limit]),
    chainHead: () => call('chainHead', []),
    rememberJti: (issuer, jti, expiresAt, now) => call('rememberJti', [issuer, jti, expiresAt, now]),
    ping: () => call('ping', []),
    close() {
      closing ??= (async () => {
        await Promise.allSettled([...outstanding]);
        const thread = worker;
        if (!thread) return;
        try {
          await send(thread, 'close', []);
        } finally {
          worker = undefined;
          await thread.terminate();
        }
      })();
      return closing;
    },
  };
  workers.set(store, () => worker);
  return store;
}

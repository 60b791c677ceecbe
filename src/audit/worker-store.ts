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
 * Every SQLite store of the process (one in the server; several in the tests) is open in the same worker,
 * started with the first: starting one costs a module load, seconds long under the tests' TypeScript
 * loader. Opening a store opens its file and applies the migrations in the worker; if that fails the
 * open rejects with the worker's error. If the worker dies, the calls waiting for it reject with
 * {@link WORKER_EXITED} and the next call starts a new one and opens its store there again (the writer
 * keeps its queue and retries, as for any store outage). `close` lets the calls already made finish and
 * closes the database; later calls reject with {@link STORE_CLOSED}. The worker stops once no store has
 * been open in it for {@link IDLE_EXIT_MS}; an idle worker does not keep the process alive, as an idle
 * in-thread database would not.
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

export type WorkerRequest =
  | { id: number; store: number; method: 'open'; args: [file: string, migrate: boolean] }
  | { id: number; store: number; method: StoreMethod; args: unknown[] };

/** An error as it crosses the thread boundary (structured clone keeps neither `code` nor a custom name). */
export interface WireError {
  name: string;
  message: string;
  code?: unknown;
  stack?: string;
}

export type WorkerReply = { ready: true } | { id: number; value: unknown } | { id: number; error: WireError };

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

/** How long the worker stays up once no store is open in it, for the next store opened in the process. */
export const IDLE_EXIT_MS = 1000;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

interface Thread {
  worker: Worker;
  pending: Map<number, Pending>;
  /** The stores open in it. */
  stores: Set<number>;
  idle?: NodeJS.Timeout;
}

let thread: Thread | undefined;
let starting: Promise<Thread> | undefined;
let nextId = 1;
let nextStore = 1;

/** Starts the worker and resolves once it has loaded the store's code. */
function startThread(): Promise<Thread> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(ENTRY);
    const started: Thread = { worker, pending: new Map(), stores: new Set() };
    let ready = false;
    let failure: Error | undefined;
    worker.on('message', (reply: WorkerReply) => {
      if ('ready' in reply) {
        ready = true;
        thread = started;
        worker.unref();
        resolve(started);
        return;
      }
      const call = started.pending.get(reply.id);
      if (!call) return;
      started.pending.delete(reply.id);
      if (started.pending.size === 0) worker.unref();
      if ('error' in reply) call.reject(errorFromWire(reply.error));
      else call.resolve(reply.value);
    });
    worker.on('error', (error) => (failure ??= error));
    worker.on('exit', (code) => {
      clearTimeout(started.idle);
      if (thread === started) thread = undefined;
      const error = codedError(
        `the audit store worker stopped ${ready ? 'unexpectedly' : 'while starting'} (exit code ${code}${
          failure ? `: ${failure.message}` : ''
        })`,
        WORKER_EXITED,
      );
      if (!ready) reject(error);
      const calls = [...started.pending.values()];
      started.pending.clear();
      for (const call of calls) call.reject(error);
    });
  });
}

/** The running worker, started if there is none (calls made meanwhile wait for the same one). */
function currentThread(): Promise<Thread> {
  if (thread) return Promise.resolve(thread);
  starting ??= startThread().finally(() => {
    starting = undefined;
  });
  return starting;
}

function send(to: Thread, request: WorkerRequest): Promise<unknown> {
  return new Promise((resolve, reject) => {
    to.pending.set(request.id, { resolve, reject });
    if (to.pending.size === 1) to.worker.ref();
    clearTimeout(to.idle);
    to.worker.postMessage(request);
  });
}

/** Stops the worker a while after its last store closed, unless another store opens meanwhile. */
function stopWhenIdle(from: Thread): void {
  if (from.stores.size > 0 || from.pending.size > 0) return;
  clearTimeout(from.idle);
  from.idle = setTimeout(() => {
    if (from.stores.size === 0 && from.pending.size === 0) {
      if (thread === from) thread = undefined;
      void from.worker.terminate();
    }
  }, IDLE_EXIT_MS);
  from.idle.unref();
}

/** The worker behind a store, so that tests can make it die. */
const workers = new WeakMap<AuditStore, () => Worker | undefined>();

/** The worker currently running a store opened by {@link openWorkerStore} (tests). */
export function workerOf(store: AuditStore): Worker | undefined {
  return workers.get(store)?.();
}

/**
 * Opens the SQLite file in the worker (started if needed) and applies pending migrations, unless
 * `migrate` is false. Every store of the process shares one worker: starting one costs a module load,
 * which the tests' TypeScript loader makes seconds long.
 * @throws Error the worker's error when the file cannot be opened or was migrated by a newer version
 */
export async function openWorkerStore(file: string, options: { migrate: boolean }): Promise<AuditStore> {
  const id = nextStore++;
  /** Calls made and not settled yet, including those waiting for the worker to start. */
  const outstanding = new Set<Promise<unknown>>();
  /** The worker this store is open in; after a crash, the next call opens it again in a new one. */
  let openIn: Thread | undefined;
  let opening: Promise<Thread> | undefined;
  let closing: Promise<void> | undefined;

  const open = (): Promise<Thread> =>
    (opening ??= (async () => {
      const to = await currentThread();
      try {
        await send(to, { id: nextId++, store: id, method: 'open', args: [file, options.migrate] });
      } catch (error) {
        stopWhenIdle(to);
        throw error;
      }
      to.stores.add(id);
      openIn = to;
      return to;
    })().finally(() => {
      opening = undefined;
    }));

  function call<T>(method: StoreMethod, args: unknown[]): Promise<T> {
    if (closing) return Promise.reject(codedError('the audit store is closed', STORE_CLOSED));
    const result = (
      openIn && openIn === thread
        ? send(openIn, { id: nextId++, store: id, method, args })
        : open().then((to) => send(to, { id: nextId++, store: id, method, args }))
    ) as Promise<T>;
    outstanding.add(result);
    const forget = () => outstanding.delete(result);
    result.then(forget, forget);
    return result;
  }

  await open();

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
        const from = openIn;
        openIn = undefined;
        if (!from || from !== thread) return;
        try {
          await send(from, { id: nextId++, store: id, method: 'close', args: [] });
        } finally {
          from.stores.delete(id);
          stopWhenIdle(from);
        }
      })();
      return closing;
    },
  };
  workers.set(store, () => (openIn && openIn === thread ? openIn.worker : undefined));
  return store;
}

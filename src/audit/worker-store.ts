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
 * The worker is an object ({@link createSqliteWorker}) owned by whoever opens the store: the app creates
 * one and stops it at close, after the store; `openStore` without one gives the store its own, stopped
 * with the store. Nothing is shared at module level, so two apps in one process run their stores in
 * two threads, and closing one leaves the other working. Several stores may be open in one worker (the
 * tests share one per process: starting one costs a module load, seconds long under their TypeScript
 * loader). The thread starts with the first store opened in it.
 *
 * Opening a store opens its file and applies the migrations in the worker; if that fails the open
 * rejects with the worker's error. If the thread dies, the calls waiting for it reject with
 * {@link WORKER_EXITED} and the next call starts a new one and opens its store there again (the writer
 * keeps its queue and retries, as for any store outage). A store's `close` lets the calls already made
 * finish and closes the database; later calls reject with {@link STORE_CLOSED}. The thread stops once no
 * store has been open in it for {@link IDLE_EXIT_MS}, or at once when the worker is closed; an idle
 * thread does not keep the process alive, as an idle in-thread database would not.
 */
import { extname } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { AuditStore } from './store.js';

/** Code of the error pending calls reject with when the worker stops unexpectedly. */
export const WORKER_EXITED = 'AUDIT_STORE_WORKER_EXITED';
/** Code of the error a call made after `close` rejects with. */
export const STORE_CLOSED = 'AUDIT_STORE_CLOSED';
/** Code of the error opening a store (or a call needing the thread again) rejects with once the worker is closed. */
export const WORKER_CLOSED = 'AUDIT_STORE_WORKER_CLOSED';

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

/** The thread the SQLite audit stores of its owner run in. */
export interface SqliteWorker {
  /**
   * Opens the SQLite file in the worker's thread (started if needed) and applies pending migrations,
   * unless `migrate` is false.
   * @throws Error the thread's error when the file cannot be opened or was migrated by a newer version
   */
  open(file: string, options: { migrate: boolean }): Promise<AuditStore>;
  /** The thread currently running a store opened here, if any (tests make it die). */
  threadOf(store: AuditStore): Worker | undefined;
  /**
   * Stops the thread now (close the stores first: calls still waiting reject with {@link WORKER_EXITED});
   * later opens, and calls of stores left open, reject with {@link WORKER_CLOSED}. Closing twice is one close.
   */
  close(): Promise<void>;
}

/** Creates a worker; its thread starts with the first store opened in it. */
export function createSqliteWorker(): SqliteWorker {
  let thread: Thread | undefined;
  let starting: Promise<Thread> | undefined;
  let closing: Promise<void> | undefined;
  let nextId = 1;
  let nextStore = 1;
  /** The thread behind each store, so that tests can make it die. */
  const threads = new WeakMap<AuditStore, () => Worker | undefined>();

  /** Starts the thread and resolves once it has loaded the store's code. */
  const startThread = (): Promise<Thread> =>
    new Promise((resolve, reject) => {
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

  /** The running thread, started if there is none (calls made meanwhile wait for the same one). */
  const currentThread = async (): Promise<Thread> => {
    if (closing) throw codedError('the audit store worker is closed', WORKER_CLOSED);
    if (thread) return thread;
    starting ??= startThread().finally(() => {
      starting = undefined;
    });
    const started = await starting;
    // Closed while the thread was starting: it must not outlive the close.
    if (closing) {
      await started.worker.terminate();
      throw codedError('the audit store worker is closed', WORKER_CLOSED);
    }
    return started;
  };

  const send = (to: Thread, request: WorkerRequest): Promise<unknown> =>
    new Promise((resolve, reject) => {
      to.pending.set(request.id, { resolve, reject });
      if (to.pending.size === 1) to.worker.ref();
      clearTimeout(to.idle);
      to.worker.postMessage(request);
    });

  /** Stops the thread a while after its last store closed, unless another store opens meanwhile. */
  const stopWhenIdle = (from: Thread): void => {
    if (from.stores.size > 0 || from.pending.size > 0) return;
    clearTimeout(from.idle);
    from.idle = setTimeout(() => {
      if (from.stores.size === 0 && from.pending.size === 0) {
        if (thread === from) thread = undefined;
        void from.worker.terminate();
      }
    }, IDLE_EXIT_MS);
    from.idle.unref();
  };

  async function open(file: string, options: { migrate: boolean }): Promise<AuditStore> {
    const id = nextStore++;
    /** Calls made and not settled yet, including those waiting for the thread to start. */
    const outstanding = new Set<Promise<unknown>>();
    /** The thread this store is open in; after a crash, the next call opens it again in a new one. */
    let openIn: Thread | undefined;
    let opening: Promise<Thread> | undefined;
    let closed: Promise<void> | undefined;

    const openHere = (): Promise<Thread> =>
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
      if (closed) return Promise.reject(codedError('the audit store is closed', STORE_CLOSED));
      const result = (
        openIn && openIn === thread
          ? send(openIn, { id: nextId++, store: id, method, args })
          : openHere().then((to) => send(to, { id: nextId++, store: id, method, args }))
      ) as Promise<T>;
      outstanding.add(result);
      const forget = () => outstanding.delete(result);
      result.then(forget, forget);
      return result;
    }

    await openHere();

    const store: AuditStore = {
      kind: 'sqlite',
      append: (events) => call('append', [events]),
      findCards: (serviceId, uuids) => call('findCards', [serviceId, uuids]),
      findExplanation: (uuid, nowS) => call('findExplanation', [uuid, nowS]),
      eventsFor: (pseudonym) => call('eventsFor', [pseudonym]),
      analytics: (scope) => call('analytics', [scope]),
      predictions: (range, after, limit) => call('predictions', [range, after, limit]),
      findingFeedback: (pseudonym, serviceId, findings) =>
        call('findingFeedback', [pseudonym, serviceId, findings]),
      readChain: (afterSeq, limit) => call('readChain', [afterSeq, limit]),
      chainHead: () => call('chainHead', []),
      chainBase: () => call('chainBase', []),
      retentionBoundary: (before) => call('retentionBoundary', [before]),
      removeArchived: (event) => call('removeArchived', [event]),
      rememberJti: (issuer, jti, expiresAt, now) => call('rememberJti', [issuer, jti, expiresAt, now]),
      ping: () => call('ping', []),
      close() {
        closed ??= (async () => {
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
        return closed;
      },
    };
    threads.set(store, () => (openIn && openIn === thread ? openIn.worker : undefined));
    return store;
  }

  return {
    open,
    threadOf: (store) => threads.get(store)?.(),
    close() {
      closing ??= (async () => {
        // A thread still starting is terminated by the open waiting for it.
        const running = thread;
        thread = undefined;
        if (running) {
          clearTimeout(running.idle);
          await running.worker.terminate();
        }
      })();
      return closing;
    },
  };
}

/**
 * Opens a store in `worker`, or, without one, in a worker of its own that the store's `close` stops.
 * @throws Error the thread's error when the file cannot be opened or was migrated by a newer version
 */
export async function openWorkerStore(
  file: string,
  options: { migrate: boolean; worker?: SqliteWorker | undefined },
): Promise<AuditStore> {
  if (options.worker) return options.worker.open(file, options);
  const own = createSqliteWorker();
  let store: AuditStore;
  try {
    store = await own.open(file, options);
  } catch (error) {
    await own.close();
    throw error;
  }
  let closed: Promise<void> | undefined;
  return {
    ...store,
    close: () => (closed ??= store.close().finally(() => own.close())),
  };
}

/**
 * One service process per core (`CDS_WORKERS`): a primary process forks the workers, which each build
 * the whole app and listen on the same port (Node's cluster module hands connections out in turn). The
 * primary serves no request; it only
 * - restarts a worker that dies after it started listening (a crash of one process is logged and
 *   absorbed), and stops everything with exit code 1 when a worker fails before listening (a bad
 *   configuration or an unreadable definition would otherwise be restarted forever);
 * - forwards SIGHUP (reload) and SIGTERM/SIGINT (graceful stop) to every worker;
 * - answers `/metrics` for the whole set: a worker asked for its metrics asks the primary, which
 *   collects and sums the registries of all workers (prom-client's AggregatorRegistry);
 * - with the SQLite store, keeps the JWT replay cache of the whole set in its memory (`replay`) and
 *   answers each worker's claim over the IPC channel: the same bounded cache one process keeps, shared,
 *   where claiming each token id in the SQLite file cost every call a transaction of its own (a disk sync
 *   under the file's write lock, which the other worker then waited for).
 *
 * What else the workers share lives in the audit store: the hash chain (SQLite serializes writers with
 * `BEGIN IMMEDIATE` across processes, PostgreSQL locks the head row), the explanations and, with
 * PostgreSQL (several machines), the replay cache. Each worker keeps its own rate-limit counters (see
 * README "Every core used").
 */
import cluster from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { createMemoryReplayCache, type ReplayCache, ReplayCacheFullError } from '../auth/replay.js';

const METRICS_REQUEST = 'cds:metrics-request';
const METRICS_REPLY = 'cds:metrics-reply';
const REPLAY_CLAIM = 'cds:replay-claim';
const REPLAY_REPLY = 'cds:replay-reply';
/** A worker still alive this long after a stop signal is killed. */
const STOP_GRACE_MS = 10_000;
/** Delay before a crashed worker is replaced (a crash loop then costs little). */
const RESTART_DELAY_MS = 1000;

interface MetricsRequest {
  type: typeof METRICS_REQUEST;
  id: number;
}

interface MetricsReply {
  type: typeof METRICS_REPLY;
  id: number;
  text?: string;
  error?: string;
}

interface ReplayClaim {
  type: typeof REPLAY_CLAIM;
  id: number;
  key: string;
  /** Epoch milliseconds (the IPC channel carries JSON). */
  expiresAt: number;
}

interface ReplayReply {
  type: typeof REPLAY_REPLY;
  id: number;
  first?: boolean;
  /** Set when the cache is full of unexpired keys: its size, for the worker's {@link ReplayCacheFullError}. */
  full?: number;
  error?: string;
}

function isMessage<T extends { type: string }>(message: unknown, type: T['type']): message is T {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;
}

export interface PrimaryLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface PrimaryOptions {
  workers: number;
  log: PrimaryLog;
  /** Called once every worker has stopped (after a stop signal, or a start-up failure). */
  exit: (code: number) => void;
  /** Variables added to each worker's environment. */
  env?: Record<string, string>;
  restartDelayMs?: number;
  /**
   * Keep the workers' JWT replay cache here, of at most this many keys (with the SQLite store; with
   * PostgreSQL the workers share the database's).
   */
  replay?: { maxEntries: number };
}

/**
 * Runs the primary process: forks the workers and supervises them.
 * @returns `stop`, which the caller wires to SIGTERM/SIGINT, and `reload`, wired to SIGHUP
 */
export function runPrimary(options: PrimaryOptions): { stop(signal: string): void; reload(): void } {
  const { log, exit } = options;
  const restartDelayMs = options.restartDelayMs ?? RESTART_DELAY_MS;
  const aggregator = new AggregatorRegistry();
  // Wall time: the workers' clocks are the machine's too, and a replay key's expiry is absolute.
  const replay = options.replay
    ? createMemoryReplayCache({ maxEntries: options.replay.maxEntries, now: () => new Date() })
    : undefined;
  const listening = new Set<number>();
  let stopping = false;
  let exitCode = 0;

  const fork = () => {
    const worker = cluster.fork(options.env);
    worker.on('listening', () => {
      listening.add(worker.id);
      log.info({ worker: worker.id, workerPid: worker.process.pid }, 'worker listening');
    });
    worker.on('message', (message: unknown) => {
      if (replay && isMessage<ReplayClaim>(message, REPLAY_CLAIM)) {
        const answer = (reply: Omit<ReplayReply, 'type' | 'id'>) => {
          // The worker may have died meanwhile: its calls are gone with it.
          if (worker.isConnected())
            worker.send({ type: REPLAY_REPLY, id: message.id, ...reply } satisfies ReplayReply);
        };
        replay.claim(message.key, new Date(message.expiresAt)).then(
          (first) => answer({ first }),
          (error: unknown) =>
            answer(
              error instanceof ReplayCacheFullError
                ? { full: options.replay!.maxEntries }
                : { error: (error as Error).message },
            ),
        );
        return;
      }
      if (!isMessage<MetricsRequest>(message, METRICS_REQUEST)) return;
      aggregator.clusterMetrics().then(
        (text) => worker.send({ type: METRICS_REPLY, id: message.id, text } satisfies MetricsReply),
        (error: unknown) =>
          worker.send({
            type: METRICS_REPLY,
            id: message.id,
            error: (error as Error).message,
          } satisfies MetricsReply),
      );
    });
  };

  const stop = (signal: string, code = 0) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    log.info({ signal, workers: Object.keys(cluster.workers ?? {}).length }, 'stopping the workers');
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    setTimeout(() => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGKILL');
    }, STOP_GRACE_MS).unref();
  };

  cluster.on('exit', (worker, code, signal) => {
    const started = listening.delete(worker.id);
    if (!stopping) {
      if (!started) {
        log.error({ worker: worker.id, code, signal }, 'a worker failed before listening: stopping');
        stop('start-up failure', 1);
      } else {
        log.error({ worker: worker.id, code, signal }, 'a worker died: starting another');
        setTimeout(() => {
          if (!stopping) fork();
        }, restartDelayMs).unref();
      }
    }
    if (stopping && Object.keys(cluster.workers ?? {}).length === 0) exit(exitCode);
  });

  log.info({ workers: options.workers }, 'starting the workers');
  for (let i = 0; i < options.workers; i++) fork();

  return {
    stop: (signal) => stop(signal),
    reload: () => {
      for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
    },
  };
}

/**
 * In a worker: sends requests to the primary over the IPC channel and pairs each reply with its request
 * by a running id. `settle` turns a reply into the request's result or failure. A request the channel
 * cannot carry (the primary is gone) is rejected with the channel's error.
 */
function ipcRequester<Reply extends { type: string; id: number }, Result>(
  replyType: Reply['type'],
  settle: (reply: Reply) => Result | Error,
): (request: { type: string } & Record<string, unknown>) => Promise<Result> {
  let next = 0;
  const pending = new Map<number, { resolve(result: Result): void; reject(error: Error): void }>();
  process.on('message', (message: unknown) => {
    if (!isMessage<Reply>(message, replyType)) return;
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    const outcome = settle(message);
    if (outcome instanceof Error) waiter.reject(outcome);
    else waiter.resolve(outcome);
  });
  return (request) =>
    new Promise((resolve, reject) => {
      const id = next++;
      pending.set(id, { resolve, reject });
      process.send!({ ...request, id }, undefined, undefined, (error: Error | null) => {
        if (!error) return;
        pending.delete(id);
        reject(error);
      });
    });
}

/**
 * In a worker: hands this app's registry to the primary's aggregation and returns the function that
 * fetches the metrics of all workers (through the primary).
 */
export function workerMetrics(registry: Registry): () => Promise<string> {
  AggregatorRegistry.setRegistries([registry]);
  // The constructor adds the listener answering the primary's requests for this worker's metrics.
  new AggregatorRegistry();
  const request = ipcRequester<MetricsReply, string>(METRICS_REPLY, (reply) =>
    reply.error !== undefined ? new Error(`metrics of the workers: ${reply.error}`) : (reply.text ?? ''),
  );
  return () => request({ type: METRICS_REQUEST } satisfies Omit<MetricsRequest, 'id'>);
}

/**
 * In a worker of a cluster on the SQLite store: the replay cache the primary keeps for all workers
 * (`PrimaryOptions.replay`), asked over the IPC channel. A full cache rejects with
 * {@link ReplayCacheFullError}, as one process's own does. When the primary is gone the claim cannot be
 * checked, so the token is not accepted.
 */
export function workerReplayCache(): ReplayCache {
  const request = ipcRequester<ReplayReply, boolean>(REPLAY_REPLY, (reply) => {
    if (reply.full !== undefined) return new ReplayCacheFullError(reply.full);
    if (reply.error !== undefined) return new Error(`replay cache of the workers: ${reply.error}`);
    return reply.first === true;
  });
  return {
    claim: (key, expiresAt) =>
      request({ type: REPLAY_CLAIM, key, expiresAt: expiresAt.getTime() } satisfies Omit<ReplayClaim, 'id'>),
  };
}

/**
 * The worker thread that runs the SQLite audit store (started by `worker-store.ts`, which explains why).
 * It opens the file and applies the migrations, says whether that worked, then answers each message by
 * calling the named method of the in-thread store (`createSqlStore` over `openSqliteDriver`), whose queue
 * keeps the calls in the order they arrived. The main thread stops it after `close`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { createSqlStore } from './sql-store.js';
import { openSqliteDriver } from './sqlite.js';
import type { AuditStore } from './store.js';
import { errorToWire, type WorkerOptions, type WorkerReply, type WorkerRequest } from './worker-store.js';

const port = parentPort;
if (!port) throw new Error('sqlite-worker runs in a worker thread started by worker-store.ts');
const reply = (message: WorkerReply) => port.postMessage(message);

async function open(): Promise<AuditStore | undefined> {
  const { file, migrate } = workerData as WorkerOptions;
  try {
    const store = await createSqlStore(openSqliteDriver(file), { migrate });
    reply({ opened: true });
    return store;
  } catch (error) {
    reply({ opened: false, error: errorToWire(error) });
    return undefined;
  }
}

const store = await open();
if (store) {
  port.on('message', ({ id, method, args }: WorkerRequest) => {
    new Promise((resolve) => resolve((store[method] as (...a: unknown[]) => unknown)(...args))).then(
      (value) => {
        try {
          reply({ id, value });
        } catch (error) {
          // A value that cannot be cloned: a bug, answered as an error rather than left waiting.
          reply({ id, error: errorToWire(error) });
        }
      },
      (error: unknown) => reply({ id, error: errorToWire(error) }),
    );
  });
}

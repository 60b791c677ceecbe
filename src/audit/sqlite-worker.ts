/**
 * The thread that runs the SQLite audit stores of one `SqliteWorker` (`worker-store.ts` starts it and
 * explains why). It says when it is ready, then answers each message by calling the named method of the
 * named store: `open` opens the file and applies the migrations (`createSqlStore` over
 * `openSqliteDriver`); the other methods are the in-thread store's, whose queue keeps the calls in the
 * order they arrived. The main thread stops it when its worker is closed, or once no store has been
 * open in it for a while. The `stores` map is this thread's own state: each thread has its own.
 */
import { parentPort } from 'node:worker_threads';
import { createSqlStore } from './sql-store.js';
import { openSqliteDriver } from './sqlite.js';
import type { AuditStore } from './store.js';
import { errorToWire, type WorkerReply, type WorkerRequest } from './worker-store.js';

const port = parentPort;
if (!port) throw new Error('sqlite-worker runs in a worker thread started by worker-store.ts');
const reply = (message: WorkerReply) => port.postMessage(message);

const stores = new Map<number, AuditStore>();

async function handle(request: WorkerRequest): Promise<unknown> {
  if (request.method === 'open') {
    const [file, migrate] = request.args as [string, boolean];
    stores.set(request.store, await createSqlStore(openSqliteDriver(file), { migrate }));
    return undefined;
  }
  const store = stores.get(request.store);
  if (!store) throw new Error('the audit store is not open in this worker');
  if (request.method === 'close') stores.delete(request.store);
  return (store[request.method] as (...a: unknown[]) => Promise<unknown>)(...request.args);
}

port.on('message', (request: WorkerRequest) => {
  handle(request).then(
    (value) => {
      try {
        reply({ id: request.id, value });
      } catch (error) {
        // A value that cannot be cloned: a bug, answered as an error rather than left waiting.
        reply({ id: request.id, error: errorToWire(error) });
      }
    },
    (error: unknown) => reply({ id: request.id, error: errorToWire(error) }),
  );
});
reply({ ready: true });

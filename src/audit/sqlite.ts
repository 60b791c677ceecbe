/**
 * The embedded SQLite driver (better-sqlite3). The file is opened in WAL mode with
 * `synchronous = FULL`: a transaction that has committed is on disk (the WAL is synced at each commit),
 * so it survives the process being killed or the machine losing power. Writers take the lock at
 * `BEGIN IMMEDIATE`, which serializes appends with any other connection to the file (a second
 * instance). While another connection holds it, the driver waits asynchronously and tries again, rather
 * than through SQLite's busy timeout, which would sleep on the event loop (and, for two connections in
 * one process, never let the holder finish).
 *
 * better-sqlite3 is synchronous and the store's interface is not: every statement and transaction runs
 * in turn through one queue, so that a transaction never sees another request's statements in between.
 * Being synchronous, it blocks the thread it runs on for each statement and each commit's sync: the
 * server therefore runs this driver (and the store over it) in a worker thread (`worker-store.ts`), where
 * the queue orders the calls as the main thread made them.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Query, Row, SqlDriver } from './sql-store.js';

/** How long a writer waits for another connection's transaction before giving up. */
const LOCK_WAIT_MS = 5000;

export function openSqliteDriver(file: string): SqlDriver {
  mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 0');

  const statements = new Map<string, Database.Statement>();
  const run: Query = async (sql, params = []) => {
    let statement = statements.get(sql);
    if (!statement) {
      statement = db.prepare(sql);
      statements.set(sql, statement);
    }
    const values = params.map((p) => (p === undefined ? null : p));
    if (statement.reader) return statement.all(...values) as Row[];
    statement.run(...values);
    return [];
  };

  let tail: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = tail.then(fn, fn);
    tail = next.catch(() => undefined);
    return next;
  };

  const begin = async () => {
    for (let wait = 1, waited = 0; ; waited += wait, wait = Math.min(wait * 2, 50)) {
      try {
        db.exec('BEGIN IMMEDIATE');
        return;
      } catch (error) {
        if ((error as { code?: string }).code !== 'SQLITE_BUSY' || waited >= LOCK_WAIT_MS) throw error;
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  };

  return {
    dialect: 'sqlite',
    query: (sql, params) => exclusive(() => run(sql, params)),
    transaction: (fn) =>
      exclusive(async () => {
        await begin();
        try {
          const result = await fn(run);
          db.exec('COMMIT');
          return result;
        } catch (error) {
          if (db.inTransaction) db.exec('ROLLBACK');
          throw error;
        }
      }),
    close: () =>
      exclusive(async () => {
        if (db.open) db.close();
      }),
  };
}

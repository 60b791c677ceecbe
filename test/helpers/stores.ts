/**
 * Runs a suite against both audit stores. SQLite: a fresh file in a temporary folder per store opened,
 * through the worker thread the server uses, and once more with the store on the test's own thread (what
 * the worker runs; test coverage is only collected on the main thread).
 * PostgreSQL (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/test): a fresh schema with a
 * random name per store opened, all dropped when the test file ends, so concurrent test runs do not see
 * each other. When PostgreSQL cannot be reached its tests are skipped with the reason, except in CI
 * (CI=true), where that is a failure: the PostgreSQL suite must run there.
 */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Test } from 'tap';
import { createSqlStore, type Row } from '../../src/audit/sql-store.js';
import { openSqliteDriver } from '../../src/audit/sqlite.js';
import { type AuditStore, openStore, sqliteFile } from '../../src/audit/store.js';
import { tempDir, testSqliteWorker } from './app.js';

export const PG_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface OpenedStore {
  store: AuditStore;
  /** Runs SQL on the store's database behind its back (tampering, inspection). `?` placeholders. */
  raw(sql: string, params?: unknown[]): Promise<Row[]>;
  /** Opens a second store on the same database (another instance). */
  another(): Promise<AuditStore>;
  /** The configuration that names this database (`dataDir`, or `databaseUrl` and `schema`). */
  where: { dataDir: string; databaseUrl?: string; schema?: string };
}

export interface StoreKind {
  name: 'sqlite' | 'postgres';
  open(): Promise<OpenedStore>;
}

let reachable: Promise<string | null> | undefined;

/** null when PostgreSQL answers, else why not. */
export function postgresProblem(): Promise<string | null> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      return null;
    } catch (error) {
      return (error as Error).message || String(error);
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return reachable;
}

function sqliteKind(inThread: boolean): StoreKind {
  const openSqlite = (dataDir: string) =>
    inThread
      ? createSqlStore(openSqliteDriver(sqliteFile(dataDir)), { migrate: true })
      : openStore({ dataDir }, { worker: testSqliteWorker });
  return { name: 'sqlite', open: () => openSqliteKind(openSqlite) };
}

async function openSqliteKind(openSqlite: (dataDir: string) => Promise<AuditStore>): Promise<OpenedStore> {
  const dataDir = tempDir('cds-store-');
  const store = await openSqlite(dataDir);
  const db = new Database(sqliteFile(dataDir));
  const opened: OpenedStore = {
    store,
    async raw(sql, params = []) {
      const statement = db.prepare(sql);
      if (statement.reader) return statement.all(...params) as Row[];
      statement.run(...params);
      return [];
    },
    another: () => openSqlite(dataDir),
    where: { dataDir },
  };
  return opened;
}

function postgresKind(t: Test): StoreKind {
  const schemas: string[] = [];
  const clients: pg.Client[] = [];
  t.teardown(async () => {
    for (const client of clients) await client.end().catch(() => undefined);
    if (schemas.length === 0) return;
    const admin = new pg.Client({ connectionString: PG_URL });
    await admin.connect();
    for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });
  return {
    name: 'postgres',
    async open() {
      const schema = `cds_test_${randomBytes(6).toString('hex')}`;
      schemas.push(schema);
      const store = await openStore({ dataDir: '', databaseUrl: PG_URL }, { schema });
      const client = new pg.Client({ connectionString: PG_URL, options: `-c search_path=${schema}` });
      await client.connect();
      clients.push(client);
      return {
        store,
        async raw(sql, params = []) {
          let n = 0;
          const result = await client.query(
            sql.replace(/\?/g, () => `$${++n}`),
            params,
          );
          return result.rows as Row[];
        },
        another: () => openStore({ dataDir: '', databaseUrl: PG_URL }, { schema }),
        where: { dataDir: '', databaseUrl: PG_URL, schema },
      };
    },
  };
}

/**
 * Runs `suite` once per store, each in its own subtest named after the store.
 * @param t the test file's top-level tap object
 */
export async function eachStore(t: Test, suite: (t: Test, kind: StoreKind) => Promise<void>): Promise<void> {
  t.test('sqlite', (st) => suite(st, sqliteKind(false)));
  t.test('sqlite in-thread', (st) => suite(st, sqliteKind(true)));
  const problem = await postgresProblem();
  if (problem === null) {
    t.test('postgres', (st) => suite(st, postgresKind(st)));
  } else if (process.env.CI === 'true') {
    t.fail(`PostgreSQL is not reachable at ${PG_URL} (${problem}); with CI=true its tests must run`);
  } else {
    t.test(
      'postgres',
      { skip: `PostgreSQL is not reachable at ${PG_URL} (${problem}); start it to run these tests` },
      async () => undefined,
    );
  }
}

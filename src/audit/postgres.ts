/**
 * The PostgreSQL driver (pg connection pool), for production and for several instances sharing one
 * audit trail. A commit returns once PostgreSQL has made it durable (`synchronous_commit` on, its
 * default). Statements are written with `?` placeholders, numbered `$1…` here.
 */
import type pg from 'pg';
import type { Query, Row, SqlDriver } from './sql-store.js';

/** `a = ? AND b = ?` → `a = $1 AND b = $2` (the store's SQL holds no `?` inside string literals). */
export function numberPlaceholders(sql: string): string {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Opens a pool and checks the server answers.
 * @param schema a schema to create if needed and put first on the search_path (test isolation)
 * @throws Error when the server cannot be reached
 */
export async function openPostgresDriver(url: string, schema?: string): Promise<SqlDriver> {
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) throw new Error(`invalid schema name "${schema}"`);
  // Imported here, not at the top: a service on SQLite (the default) never loads the driver, which
  // took about 45 ms of every start-up.
  const { Pool } = (await import('pg')).default;
  const pool = new Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 5000,
    idleTimeoutMillis: 30_000,
    // Nothing the store runs takes long; a stuck statement must not hold a request forever.
    statement_timeout: 10_000,
    ...(schema ? { options: `-c search_path=${schema}` } : {}),
  });
  // An idle client losing its connection emits 'error' on the pool; unhandled, it would end the process.
  // The next query reports the outage where it is handled.
  pool.on('error', () => undefined);
  // Every client, from its first connection on, has a listener of its own too: a client the pool has
  // handed out (between pg-pool's listeners) must never emit an 'error' nobody hears.
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
  });
  const toQuery =
    (client: pg.Pool | pg.PoolClient): Query =>
    async (sql, params = []) => {
      const result =
        params.length === 0
          ? await client.query(numberPlaceholders(sql))
          : await client.query(numberPlaceholders(sql), params as unknown[]);
      return result.rows as Row[];
    };
  try {
    if (schema) await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    else await pool.query('SELECT 1');
  } catch (error) {
    await pool.end();
    throw new Error(`cannot reach PostgreSQL: ${(error as Error).message}`, { cause: error });
  }
  return {
    dialect: 'postgres',
    query: toQuery(pool),
    async transaction(fn) {
      const client = await pool.connect();
      let broken = false;
      // A client taken from the pool has no 'error' listener of the pool's any more: a connection lost
      // meanwhile (server restart, `pg_terminate_backend`, network cut) would emit an unhandled 'error'
      // and end the process. The statement under way rejects anyway; the client is then discarded.
      const onError = () => {
        broken = true;
      };
      client.on('error', onError);
      try {
        await client.query('BEGIN');
        const result = await fn(toQuery(client));
        await client.query('COMMIT');
        return result;
      } catch (error) {
        await client.query('ROLLBACK').catch(() => {
          broken = true;
        });
        throw error;
      } finally {
        client.release(broken);
        // A discarded client keeps the listener: its socket may still report the loss after release.
        if (!broken) client.removeListener('error', onError);
      }
    },
    async close() {
      if (!pool.ended && !pool.ending) await pool.end();
    },
  };
}

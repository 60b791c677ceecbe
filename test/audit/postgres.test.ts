/**
 * The PostgreSQL driver module: `pg` is loaded only when a PostgreSQL store is opened, so a service on
 * SQLite (the default) does not load it at start-up. Opening a store on PostgreSQL is tested with the
 * stores (test/audit/store*.test.ts, on a real server).
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { numberPlaceholders, openPostgresDriver } from '../../src/audit/postgres.js';

/** The `pg` files loaded while `src/audit/store.ts` is imported, then while `then` runs. */
function pgFilesLoaded(then: string): string[] {
  const hook = `export async function load(url, context, next) {
    if (url.includes('/node_modules/pg/')) process.stdout.write(url.slice(url.indexOf('/node_modules/pg/')) + '\\n');
    return next(url, context);
  }`;
  const script = `import { register } from 'node:module';
    register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});
    const store = await import(${JSON.stringify(pathToFileURL(resolve('src/audit/store.ts')).href)});
    process.stdout.write('imported\\n');
    ${then}`;
  const run = spawnSync(
    process.execPath,
    ['--import=./node_modules/@tapjs/typescript/dist/esm/import.mjs', '--input-type=module', '-e', script],
    { encoding: 'utf8', timeout: 45_000 },
  );
  if (run.status !== 0) throw new Error(run.stderr);
  return run.stdout.split('\n').filter(Boolean);
}

t.test('importing the audit store does not load pg; opening a PostgreSQL store does', async (t) => {
  // Port 9 on loopback: nothing listens, the connection is refused at once, after pg was loaded.
  const lines = pgFilesLoaded(
    `await store.openStore({ dataDir: '', databaseUrl: 'postgres://u@127.0.0.1:9/db' }).catch(() => undefined);`,
  );
  const imported = lines.indexOf('imported');
  t.equal(imported, 0, 'no pg file before the store module was imported');
  t.ok(lines.slice(imported + 1).includes('/node_modules/pg/esm/index.mjs'), 'pg loaded on opening');
});

t.test('an invalid schema name is refused before pg is loaded or a pool created', async (t) => {
  await t.rejects(openPostgresDriver('postgres://u@127.0.0.1:9/db', 'Bad-Name'), {
    message: 'invalid schema name "Bad-Name"',
  });
});

t.test('numberPlaceholders numbers the ? placeholders', async (t) => {
  t.equal(numberPlaceholders('a = ? AND b = ?'), 'a = $1 AND b = $2');
  t.equal(numberPlaceholders('SELECT 1'), 'SELECT 1');
});

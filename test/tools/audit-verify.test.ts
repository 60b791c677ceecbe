/**
 * `npm run audit:verify` as an operator runs it: exit code 0 on an intact chain, 1 naming the first
 * edited or deleted row, 2 when there is no store to read.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import t from 'tap';
import { openStore, sqliteFile } from '../../src/audit/store.js';
import { runVerify } from '../../tools/audit-verify.js';
import { callEvent, feedbackEvent } from '../helpers/audit-events.js';
import { tempDir } from '../helpers/app.js';
import { PG_URL, postgresProblem } from '../helpers/stores.js';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson } from '../../src/audit/hash-chain.js';
import pg from 'pg';
import { childEnv, LOADER } from '../helpers/child.js';

// Asked before any test runs: the child processes below block the event loop for seconds.
const problem = await postgresProblem();
if (problem !== null && process.env.CI === 'true') {
  t.fail(`PostgreSQL is not reachable at ${PG_URL} (${problem}); with CI=true its tests must run`);
}
const skip = problem === null ? {} : { skip: `PostgreSQL is not reachable at ${PG_URL} (${problem})` };

/** The command in this process (fast); one test below runs it as a script. */
async function verify(env: Record<string, string>, args: string[] = []) {
  const out: string[] = [];
  const err: string[] = [];
  const status = await runVerify(
    env,
    { write: (s: string) => out.push(s) },
    { write: (s: string) => err.push(s) },
    args,
  );
  return { status, stdout: out.join(''), stderr: err.join('') };
}

async function threeEvents(where: { dataDir: string; databaseUrl?: string }, schema?: string) {
  const store = await openStore(where, schema ? { schema } : {});
  await store.append([
    callEvent({ cards: [{ uuid: 'card-1' }] }),
    feedbackEvent({ card: 'card-1', reason: 'already-handled' }),
    callEvent({ cards: [{ uuid: 'card-2' }] }),
  ]);
  const head = await store.chainHead();
  await store.close();
  return head!;
}

t.test('SQLite: intact, then an edited row, then a deleted row', async (t) => {
  const dataDir = tempDir();
  const head = await threeEvents({ dataDir });
  let run = await verify({ CDS_DATA_DIR: dataDir });
  t.equal(run.status, 0, run.stderr);
  t.equal(run.stdout, `audit chain intact: 3 rows, head 3 ${head.hash}\n`);

  const db = new Database(sqliteFile(dataDir));
  t.teardown(() => db.close());
  db.exec('DROP TRIGGER audit_event_no_update; DROP TRIGGER audit_event_no_delete');
  db.exec(
    "UPDATE audit_event SET payload = REPLACE(payload, 'already-handled', 'not-relevant-now') WHERE seq = 2",
  );
  run = await verify({ CDS_DATA_DIR: dataDir });
  t.equal(run.status, 1);
  t.equal(
    run.stdout,
    "audit chain BROKEN at row 2 (edited): row 2's content no longer matches its hash. 1 intact rows before it.\n",
  );

  db.exec('DELETE FROM audit_event WHERE seq = 2');
  run = await verify({ CDS_DATA_DIR: dataDir });
  t.equal(run.status, 1);
  t.match(run.stdout, /^audit chain BROKEN at row 2 \(deleted\): row 2 is missing \(row 3 follows row 1\)/);
});

t.test('SQLite: an edited model estimate (audit_prediction) is reported against its event', async (t) => {
  const dataDir = tempDir();
  const store = await openStore({ dataDir });
  const event = callEvent({ cards: [] });
  if (event.kind !== 'service-call') throw new Error('a call event');
  const prediction = {
    model: { id: 'knee-oa-progression', version: '1.1.0' },
    mode: 'silent' as const,
    risk: 0.125,
    band: 'intermediate',
    positive: false,
    topFactors: [{ id: 'bmi', value: 31, contribution: 0.2 }],
    inputs: { bmi: 31 },
    subgroups: { sex: 'female' },
  };
  await store.append([{ ...event, payload: { ...event.payload, predictions: [prediction] } }]);
  await store.close();
  let run = await verify({ CDS_DATA_DIR: dataDir });
  t.equal(run.status, 0, run.stdout + run.stderr);

  const db = new Database(sqliteFile(dataDir));
  t.teardown(() => db.close());
  db.exec('DROP TRIGGER audit_prediction_no_update');
  // A candidate made to look better: the chain itself is intact, the index row is not.
  db.exec('UPDATE audit_prediction SET risk = 0.9, positive = 1');
  run = await verify({ CDS_DATA_DIR: dataDir });
  t.equal(run.status, 1);
  t.equal(
    run.stdout,
    'audit chain BROKEN at row 1 (edited): the model estimates of row 1 (audit_prediction) differ from what the row holds. 1 intact rows before it.\n',
  );
});

t.test('no store to read is exit code 2, and nothing is created', async (t) => {
  const dataDir = tempDir();
  const run = await verify({ CDS_DATA_DIR: dataDir });
  t.equal(run.status, 2);
  t.match(run.stderr, /cannot open the audit store: no audit store at .*audit\.sqlite/);
  const broken = await verify({ CDS_DATA_DIR: dataDir, CDS_PORT: 'x' });
  t.equal(broken.status, 2);
  t.match(broken.stderr, /Invalid configuration: port/);
});

t.test('PostgreSQL through DATABASE_URL (schema given in the URL options)', skip, async (t) => {
  const schema = `cds_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_URL });
  await admin.connect();
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await admin.end();
  });
  await threeEvents({ dataDir: '', databaseUrl: PG_URL }, schema);
  const url = `${PG_URL}?options=${encodeURIComponent(`-c search_path=${schema}`)}`;
  let run = await verify({ DATABASE_URL: url });
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, /^audit chain intact: 3 rows, head 3 [0-9a-f]{64}\n$/);
  await admin.query(`DROP TRIGGER audit_event_append_only ON ${schema}.audit_event`);
  await admin.query(`DELETE FROM ${schema}.audit_event WHERE seq = 3`);
  run = await verify({ DATABASE_URL: url });
  t.equal(run.status, 1);
  t.match(
    run.stdout,
    /^audit chain BROKEN at row 3 \(deleted\): the chain head is at row 3 but the last row is 2/,
  );
});

t.test('npm run audit:verify runs the command as a script, with the exit code', async (t) => {
  const dataDir = tempDir();
  await threeEvents({ dataDir });
  const run = spawnSync(process.execPath, [`--import=${LOADER}`, 'tools/audit-verify.ts'], {
    env: childEnv({ CDS_DATA_DIR: dataDir }),
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.equal(run.status, 0, run.stderr);
  t.match(run.stdout, /^audit chain intact: 3 rows/);
  const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
  t.equal(pkg.scripts['audit:verify'], `node --import=${LOADER} tools/audit-verify.ts`);
});

t.test('--input re-checks a call input against its record, by the method the record names', async (t) => {
  const dataDir = tempDir();
  const body = '{"hook":"patient-view", "hookInstance":"raw-1"}';
  const page = '{"resourceType":"Bundle","type":"searchset"}';
  const data = { patient: null, lesions: { resourceType: 'Bundle', type: 'searchset' } };
  const raw = callEvent({ cards: [] });
  const canonical = callEvent({ cards: [] });
  const payloadOf = (e: typeof raw) => e.payload as unknown as Record<string, unknown>;
  payloadOf(raw).hookInstance = 'raw-1';
  payloadOf(raw).inputs = {
    sha256: createHash('sha256').update(body).update(page).digest('hex'),
    method: 'sha256-raw',
    fetched: ['lesions'],
    references: [],
  };
  // A record written before the raw method: no `method`, the canonical JSON of the data.
  payloadOf(canonical).hookInstance = 'old-1';
  payloadOf(canonical).inputs = {
    sha256: createHash('sha256').update(canonicalJson(data)).digest('hex'),
    references: [],
  };
  const store = await openStore({ dataDir });
  await store.append([raw, canonical]);
  await store.close();
  const files = tempDir();
  const file = (name: string, text: string) => {
    writeFileSync(join(files, name), text);
    return join(files, name);
  };
  const env = { CDS_DATA_DIR: dataDir };
  const bodyFile = file('body.json', body);
  const pageFile = file('page-1.json', page);

  let run = await verify(env, ['--input', 'raw-1', bodyFile, pageFile]);
  t.equal(run.status, 0, run.stderr);
  t.equal(run.stdout, 'input matches the record of raw-1 (sha256-raw) (fetched keys in order: lesions)\n');
  run = await verify(env, ['--input', 'raw-1', pageFile, bodyFile]);
  t.equal(run.status, 1, 'the parts in another order');
  t.match(run.stdout, /^input DIFFERS from the record of raw-1 \(sha256-raw/);
  run = await verify(env, ['--input', 'raw-1', file('spaced.json', `${body} `), pageFile]);
  t.equal(run.status, 1, 'one byte more in the body');

  // Key order and spacing do not matter to the canonical method.
  const reordered = file('data.json', JSON.stringify({ lesions: data.lesions, patient: null }, null, 2));
  run = await verify(env, ['--input', 'old-1', reordered]);
  t.equal(run.status, 0, run.stderr);
  t.equal(run.stdout, 'input matches the record of old-1 (sha256-canonical)\n');

  run = await verify(env, ['--input', 'nobody', bodyFile]);
  t.equal(run.status, 2);
  t.equal(run.stderr, 'audit:verify: no service call with hookInstance nobody\n');
  run = await verify(env, ['--input', 'raw-1']);
  t.equal(run.status, 2, 'no file');
});

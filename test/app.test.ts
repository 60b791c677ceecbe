/**
 * The app's life cycle: start-up is all-or-nothing (every file checked before any resource opens,
 * and what was opened is closed when a later step fails), and two apps built in one process share
 * nothing: each has its own FHIRPath engine (today() and now() read its own clock) and its own SQLite
 * worker thread, stopped when that app closes. The FHIRPath parse trees stored with the build are
 * used when they can be, and start-up says why when they cannot.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import t, { type Test } from 'tap';
import { openStore } from '../src/audit/store.js';
import { verifyStore } from '../tools/audit-verify.js';
import { loadConfig, loadSettings } from '../src/config.js';
import { checkDefinitions } from '../src/ops/live-set.js';
import { FHIRPATH_VERSION, parseFhirPath } from '../src/rules/fhirpath.js';
import { collectParseTrees, serializeParseTrees } from '../src/rules/parse-trees.js';
import { buildTestApp, NOW, tempDir, testSqliteWorker } from './helpers/app.js';
import { lesion, patientView, searchset } from './helpers/hook-request.js';

type Create = (
  bytes: Uint8Array,
  options?: ort.InferenceSession.SessionOptions,
) => Promise<ort.InferenceSession>;

/** Counts the ONNX sessions start-up opens and releases, through onnxruntime's own factory. */
function watchSessions(t: Test) {
  const counts = { opened: 0, released: 0 };
  const create: Create = ort.InferenceSession.create.bind(ort.InferenceSession);
  t.capture(
    ort.InferenceSession,
    'create',
    async (bytes: Uint8Array, options?: ort.InferenceSession.SessionOptions) => {
      const session = await create(bytes, options);
      counts.opened += 1;
      const release = session.release.bind(session);
      session.release = async () => {
        counts.released += 1;
        await release();
      };
      return session;
    },
  );
  return counts;
}

t.test(
  'a bad service definition stops start-up before any session or the audit store is opened',
  async (t) => {
    const sessions = watchSessions(t);
    const servicesDir = tempDir();
    writeFileSync(join(servicesDir, 'bad.yaml'), 'id: bad\n');
    const dataDir = tempDir();
    await t.rejects(buildTestApp({ servicesDir, dataDir }), { code: 'CDS_ERR_DEFINITION_INVALID' });
    t.same(sessions, { opened: 0, released: 0 }, 'no ONNX session was opened');
    t.same(readdirSync(dataDir), [], 'no audit store (nor pseudonym key) was created');
  },
);

t.test('a bad trusted issuers file stops start-up before anything is opened', async (t) => {
  const sessions = watchSessions(t);
  const dataDir = tempDir();
  await t.rejects(
    buildTestApp({
      authDisabled: false,
      publicUrl: 'https://cds.example.org',
      trustedIssuersFile: join(tempDir(), 'missing.json'),
      dataDir,
    }),
    { message: /^Cannot read trusted issuers file / },
  );
  t.same(sessions, { opened: 0, released: 0 });
  t.same(readdirSync(dataDir), []);
});

t.test('when the audit store cannot be opened, the sessions already open are released', async (t) => {
  const sessions = watchSessions(t);
  await t.rejects(
    buildTestApp({ databaseUrl: 'postgres://postgres@127.0.0.1:1/none', auditPseudonymKey: 'k'.repeat(32) }),
    { message: /^cannot reach PostgreSQL: / },
  );
  t.ok(sessions.opened > 0, 'the bundled models were opened');
  t.equal(sessions.released, sessions.opened, 'and all released');
});

const URL = '/cds-services/melanoma-lesion-triage';
/** A lesion examined on 2026-11-20, two days before NOW. */
const request = () => patientView({ lesions: searchset([lesion({ items: { changeSize: true } })]) });

/** Rows of the audit chain in a data folder, read through the tests' shared worker. */
async function rows(dataDir: string): Promise<number> {
  const store = await openStore({ dataDir }, { worker: testSqliteWorker });
  try {
    const report = await verifyStore(store);
    return report.ok ? report.rows : -1;
  } finally {
    await store.close();
  }
}

t.test('two apps in one process: each its own clock, its own audit worker', async (t) => {
  const later = new Date(NOW.getTime() + 365 * 86_400_000);
  const [dirA, dirB] = [tempDir(), tempDir()];
  // No shared worker: each app starts its own, as in production.
  const { app: a } = await buildTestApp({ dataDir: dirA }, { sqliteWorker: undefined });
  const { app: b } = await buildTestApp({ dataDir: dirB }, { sqliteWorker: undefined, now: () => later });
  let aOpen = true;
  t.teardown(() => (aOpen ? a.close() : undefined));
  t.teardown(() => b.close());

  const [resA, resB] = await Promise.all([
    a.inject({ method: 'POST', url: URL, payload: request() }),
    b.inject({ method: 'POST', url: URL, payload: request() }),
  ]);
  t.equal(resA.statusCode, 200);
  t.equal(resB.statusCode, 200);
  // The focus is the examinations of the last 90 days (now() - 90 days): recent for A, history for B.
  // One card for A: its checklist is incomplete (one item recorded), with no model card beside it.
  t.same(resA.json().cards.length, 1);
  t.same(resB.json().cards, []);

  await a.close();
  aOpen = false;
  const again = await b.inject({ method: 'POST', url: URL, payload: request() });
  t.equal(again.statusCode, 200, 'B answers after A closed');
  const ready = await b.inject({ method: 'GET', url: '/health/ready' });
  t.equal(ready.statusCode, 200, "B's store answers");
  t.equal(await rows(dirA), 1);
  t.equal(await rows(dirB), 2, "B's calls were recorded after A closed, in B's own store");
});

t.test('a step failing after the resources were opened closes them all', async (t) => {
  const sessions = watchSessions(t);
  // The explanation links are set up after the sessions, the worker and the audit store are open.
  const { buildApp } = await t.mockImport<typeof import('../src/app.js')>('../src/app.js', {
    '../src/explanation-pages/link.js': {
      createLinkSigner: () => {
        throw new Error('the link signer failed');
      },
    },
  });
  const store = await openStore({ dataDir: tempDir() }, { worker: testSqliteWorker });
  let closed = 0;
  const watched = new Proxy(store, {
    get: (target, key, receiver) =>
      key === 'close'
        ? async () => {
            closed += 1;
            await target.close();
          }
        : (Reflect.get(target, key, receiver) as unknown),
  });
  const config = loadConfig({}, { authDisabled: true, dataDir: tempDir(), logLevel: 'silent' });
  await t.rejects(buildApp(config, { store: watched }), { message: 'the link signer failed' });
  t.ok(sessions.opened >= 2, `the models' sessions were opened (${sessions.opened})`);
  t.equal(sessions.released, sessions.opened, 'and every one was released');
  t.equal(closed, 1, 'the audit store was closed');
});

t.test('the parse trees stored with the build are used, or start-up says why not and parses', async (t) => {
  const dir = tempDir();
  const good = join(dir, 'good.json');
  writeFileSync(
    good,
    serializeParseTrees(collectParseTrees((engine) => checkDefinitions(loadSettings(), engine))),
  );
  const other = join(dir, 'other.json');
  writeFileSync(other, serializeParseTrees(new Map([['1 + 1', parseFhirPath('1 + 1')]]), '0.0.1'));
  const corrupt = join(dir, 'corrupt.json');
  writeFileSync(corrupt, '{"fhirpath":');
  const lineOf = async (file: string) => {
    const { app, logs } = await buildTestApp({}, { parseTreesFile: file });
    await app.close();
    const lines = logs().filter((l) => String(l.msg).startsWith('FHIRPath parse trees'));
    t.equal(lines.length, 1, `${file}: one line`);
    t.equal(lines[0]?.level, 30, 'at info');
    return lines[0]!;
  };
  const used = await lineOf(good);
  t.match(used, { msg: 'FHIRPath parse trees read from the build', file: good, parsed: 0 });
  t.ok((used.stored as number) >= 150, `stored: ${String(used.stored)}`);
  const parsedAll = {
    parsed: used.stored,
    msg: 'FHIRPath parse trees not used: every expression was parsed',
  };
  t.match(await lineOf(other), {
    ...parsedAll,
    file: other,
    reason: `made by fhirpath.js 0.0.1, this is ${FHIRPATH_VERSION}`,
  });
  t.match(await lineOf(corrupt), { ...parsedAll, file: corrupt, reason: /^unreadable: / });
  t.match(await lineOf(join(dir, 'absent.json')), { ...parsedAll, reason: 'absent' });
});

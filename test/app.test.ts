/**
 * Two apps built in one process share nothing: each has its own FHIRPath engine (today() and now()
 * read its own clock) and its own SQLite worker thread, stopped when that app closes.
 */
import t from 'tap';
import { openStore } from '../src/audit/store.js';
import { verifyStore } from '../src/audit/verify.js';
import { buildTestApp, NOW, tempDir, testSqliteWorker } from './helpers/app.js';
import { lesion, patientView, searchset } from './helpers/hook-request.js';

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
  t.same(resA.json().cards.length, 2);
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

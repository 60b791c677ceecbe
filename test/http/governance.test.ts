/**
 * The governance page (issue 19) through inject: behind the analytics credential with a Basic challenge a
 * browser acts on; the model versions with their model cards and approval records (approved-models file);
 * the stored validation reports in English, French and JSON; reports built with too small a minimum cell
 * size, odd names and unknown versions are not served.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { PAGE_CSP } from '../../src/http/analytics.js';
import { buildGovernanceReport } from '../../src/governance/report.js';
import { readApprovedModels, readManifest } from '../../src/scoring/load.js';
import { buildTestApp, tempDir } from '../helpers/app.js';
import { background, cohort } from '../helpers/governance-cohort.js';

const TOKEN = 'governance-token-0123456789abcdef';
const bearer = { authorization: `Bearer ${TOKEN}` };
const KNEE = readManifest('models/knee-oa-progression/1.0.0');
const MELANOMA = readManifest('models/melanoma-risk/1.0.0');

/** A reports folder with one good report, one built with a minimum cell of 5, and one that is not a report. */
function reportsFolder(): string {
  const dir = join(tempDir('cds-reports-'), 'reports');
  mkdirSync(dir);
  const report = (minCellSize: number) =>
    buildGovernanceReport({
      period: { from: '2026-09-28', to: '2026-11-22' },
      predictions: cohort({ n: 600, seed: 11 }),
      rules: [],
      background: { 'knee-oa-progression@1.0.0': background(300, 3) },
      minCellSize,
      generatedAt: new Date('2026-12-01T08:00:00Z'),
    });
  writeFileSync(join(dir, 'knee-2026-q4.json'), JSON.stringify(report(10)));
  writeFileSync(join(dir, 'too-fine.json'), JSON.stringify(report(5)));
  writeFileSync(join(dir, 'notes.json'), '{"hello": 1}');
  return dir;
}

function approvedFile(entries: object[]): string {
  const file = join(tempDir('cds-approved-'), 'approved-models.yaml');
  writeFileSync(file, stringify(entries));
  return file;
}

const APPROVED = [
  {
    id: 'knee-oa-progression',
    version: '1.0.0',
    sha256: KNEE.sha256,
    approvedBy: 'Dr A. Martin, chair of the <AI committee>',
    approvedAt: '2026-12-02',
    report: 'knee-2026-q4.json',
  },
  { id: 'melanoma-risk', version: '1.0.0', sha256: MELANOMA.sha256 },
];

async function governanceApp(t: Test, config: Record<string, unknown> = {}) {
  const built = await buildTestApp({
    analyticsToken: TOKEN,
    reportsDir: reportsFolder(),
    approvedModelsFile: approvedFile(APPROVED),
    ...config,
  });
  t.teardown(() => built.app.close());
  return built.app;
}

t.test('without the credential a browser gets a Basic challenge in its own header, first', async (t) => {
  const app = await governanceApp(t);
  const browser = await app.inject({
    method: 'GET',
    url: '/analytics/governance',
    headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' },
  });
  t.equal(browser.statusCode, 401);
  t.same(browser.headers['www-authenticate'], [
    'Basic realm="cds-analytics", charset="UTF-8"',
    'Bearer realm="cds-analytics"',
  ]);
  const basic = `Basic ${Buffer.from(`governance:${TOKEN}`).toString('base64')}`;
  const res = await app.inject({
    method: 'GET',
    url: '/analytics/governance',
    headers: { authorization: basic },
  });
  t.equal(res.statusCode, 200, 'the password of Basic opens it');
});

t.test('the page lists each version with its model card and approval record, and the reports', async (t) => {
  const app = await governanceApp(t);
  const res = await app.inject({ method: 'GET', url: '/analytics/governance', headers: bearer });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'text/html; charset=utf-8');
  t.equal(res.headers['content-security-policy'], PAGE_CSP);
  t.equal(res.headers['cache-control'], 'no-store');
  const html = res.body;
  t.match(html, /<code>knee-oa-progression 1\.0\.0<\/code>/);
  t.match(html, /<code>melanoma-risk 1\.0\.0<\/code>/);
  t.match(
    html,
    /approved by <strong>Dr A\. Martin, chair of the &lt;AI committee&gt;<\/strong>, on 2026-12-02, report <a href="\/analytics\/reports\/knee-2026-q4\.json\?lang=en">knee-2026-q4\.json<\/a>/,
  );
  t.match(
    html,
    /<a href="\/analytics\/models\/knee-oa-progression\/1\.0\.0\/model-card\?lang=en">model card<\/a>/,
  );
  t.match(html, /Demonstration model trained on simulated data/);
  t.match(
    html,
    /<td><code>knee-2026-q4\.json<\/code><\/td><td>2026-09-28 – 2026-11-22<\/td><td>2026-12-01<\/td><td>knee-oa-progression 1\.0\.0 \(silent\)<\/td>/,
  );
  t.match(
    html,
    /<code>too-fine\.json<\/code><\/td><td colspan="4" class="warn">not shown: built with a minimum cell size of 5; this site requires 10/,
  );
  t.match(
    html,
    /<code>notes\.json<\/code><\/td><td colspan="4" class="warn">not shown: not a governance report/,
  );
  t.notMatch(html, /<script/);

  const fr = await app.inject({ method: 'GET', url: '/analytics/governance?lang=fr', headers: bearer });
  t.match(fr.body, /<h1>Gouvernance des modèles<\/h1>/);
  t.match(fr.body, /approuvé par <strong>Dr A\. Martin/);
  t.equal(fr.headers['content-language'], 'fr');
});

t.test('a report opens as HTML in either language or as JSON; others are not served', async (t) => {
  const app = await governanceApp(t);
  const get = (url: string) => app.inject({ method: 'GET', url, headers: bearer });
  const en = await get('/analytics/reports/knee-2026-q4.json');
  t.equal(en.statusCode, 200);
  t.equal(en.headers['content-security-policy'], PAGE_CSP);
  t.match(en.body, /<h1>Local validation report<\/h1>/);
  t.match(en.body, /<svg class="roc"/);
  const fr = await get('/analytics/reports/knee-2026-q4.json?lang=fr');
  t.match(fr.body, /<h1>Rapport de validation locale<\/h1>/);
  const json = await get('/analytics/reports/knee-2026-q4.json?format=json');
  t.equal(json.statusCode, 200);
  t.equal(json.json().kind, 'cds-governance-report');
  t.equal(json.json().minCellSize, 10);
  for (const url of [
    '/analytics/reports/too-fine.json',
    '/analytics/reports/notes.json',
    '/analytics/reports/missing.json',
    '/analytics/reports/..%2F..%2Fetc%2Fpasswd',
    '/analytics/reports/.hidden.json',
    '/analytics/models/knee-oa-progression/9.9.9/model-card',
  ]) {
    const res = await get(url);
    t.equal(res.statusCode, 404, url);
    t.equal(res.json().issue[0].details.coding[0].code, 'CDS_ERR_ROUTE_NOT_FOUND');
  }
  t.equal((await get('/analytics/reports/knee-2026-q4.json?format=xml')).statusCode, 400);
  const card = await get('/analytics/models/melanoma-risk/1.0.0/model-card?lang=fr');
  t.equal(card.statusCode, 200);
  t.match(card.body, /<html lang="fr"/);
  t.equal((await app.inject({ method: 'GET', url: '/analytics/reports/knee-2026-q4.json' })).statusCode, 401);
});

t.test('without a reports folder or an approved-models file, the page says so', async (t) => {
  const { app } = await buildTestApp({ analyticsToken: TOKEN });
  t.teardown(() => app.close());
  const html = (await app.inject({ method: 'GET', url: '/analytics/governance', headers: bearer })).body;
  t.match(html, /No reports folder configured \(CDS_REPORTS_DIR\)\./);
  t.equal((html.match(/no approved-models file configured/g) ?? []).length, 2, 'said for each version');
  const report = await app.inject({ method: 'GET', url: '/analytics/reports/x.json', headers: bearer });
  t.equal(report.statusCode, 404);
});

t.test('the approval record of the approved-models file is checked', async (t) => {
  const read = (entry: object) => () => readApprovedModels(approvedFile([entry]));
  const base = { id: 'knee-oa-progression', version: '1.0.0', sha256: KNEE.sha256 };
  t.same(
    read({ ...base, approvedAt: '2026-12-02T10:00:00Z', approvedBy: 'x', report: 'r.json' })().models[0],
    {
      ...base,
      approvedAt: '2026-12-02T10:00:00Z',
      approvedBy: 'x',
      report: 'r.json',
    },
  );
  t.throws(
    read({ ...base, approvedAt: '2 December' }),
    /approved list approved-models\.yaml.*\/0\/approvedAt/,
  );
  t.throws(read({ ...base, report: '../r.json' }), /\/0\/report/);
  t.throws(read({ ...base, approvedBy: '' }), /\/0\/approvedBy/);
});

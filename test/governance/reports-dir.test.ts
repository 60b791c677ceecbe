/**
 * The reports folder: reports listed newest first; unreadable files, other JSON and reports built with
 * too small a minimum cell listed with the reason and never served; names with a path refused.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { buildGovernanceReport } from '../../src/governance/report.js';
import { listStoredReports, readStoredReport, REPORT_NAME } from '../../src/governance/reports-dir.js';
import { tempDir } from '../helpers/app.js';
import { cohort } from '../helpers/governance-cohort.js';

const report = (generatedAt: string, minCellSize = 10) =>
  buildGovernanceReport({
    period: { from: '2026-01-01', to: '2026-03-31' },
    predictions: cohort({ n: 50, seed: 1 }),
    rules: [],
    background: {},
    minCellSize,
    generatedAt: new Date(generatedAt),
  });

t.test('listed newest first, with the reason a file is not served', async (t) => {
  const dir = join(tempDir(), 'reports');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a-old.json'), JSON.stringify(report('2026-04-01T00:00:00Z')));
  writeFileSync(join(dir, 'b-new.json'), JSON.stringify(report('2026-07-01T00:00:00Z')));
  writeFileSync(join(dir, 'broken.json'), '{ not json');
  writeFileSync(join(dir, 'fine.json'), JSON.stringify(report('2026-08-01T00:00:00Z', 3)));
  writeFileSync(join(dir, 'other.json'), '[]');
  writeFileSync(join(dir, 'readme.txt'), 'not listed');
  t.same(
    listStoredReports(dir, 10).map((r) => [r.name, r.status]),
    [
      ['b-new.json', 'ok'],
      ['a-old.json', 'ok'],
      ['broken.json', 'unreadable'],
      ['fine.json', 'cells-too-small'],
      ['other.json', 'not-a-report'],
    ],
  );
  t.equal(readStoredReport(dir, 'fine.json', 3)?.status, 'ok', 'served where the floor is 3');
  t.equal(readStoredReport(dir, 'missing.json', 10), undefined);
  t.equal(readStoredReport(dir, '../reports/b-new.json', 10), undefined, 'no path');
  t.same(listStoredReports(join(dir, 'nowhere'), 10), [], 'a missing folder holds none');
  t.notOk(REPORT_NAME.test('.hidden.json'));
  t.notOk(REPORT_NAME.test('a/b.json'));
});

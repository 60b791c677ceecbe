/**
 * `npm run evaluate` end to end (issue 19): a candidate version runs silent beside the live one on the
 * same calls; follow-up records are drawn from the live model's own estimates (tools/synthetic
 * follow-up, seeded, so the truth is known); the linkage finds that truth for both versions, and what
 * it writes holds no patient id, pseudonym or exact date.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createFhirPath } from '../../../src/rules/fhirpath.js';
import { loadModel } from '../../../src/scoring/load.js';
import { followUpOf, type FollowUp } from '../../../tools/synthetic/follow-up.js';
import { generatePatient } from '../../../tools/synthetic/patients.js';
import { createRng } from '../../../tools/synthetic/random.js';
import { openDriver, runEvaluate, serviceCallCounts } from '../../../tools/evaluate/main.js';
import type { LinkedPrediction } from '../../../src/governance/types.js';
import { buildTestApp, NOW, tempDir } from '../../helpers/app.js';
import { KNEE_OA_URL, kneeOaRequest } from '../../helpers/knee-oa-call.js';
import { silentKneeSetup } from '../../helpers/silent-service.js';

const SEED = 19;
const PATIENTS = 10;

const capture = () => {
  let text = '';
  return { write: (s: string) => (text += s), text: () => text };
};

t.test('live and silent estimates are linked to the outcomes recorded later', async (t) => {
  const dataDir = tempDir('cds-evaluate-data-');
  const { servicesDir, modelsDir } = silentKneeSetup();
  const { app } = await buildTestApp({ servicesDir, modelsDir, dataDir });
  const live = await loadModel(join(modelsDir, 'knee-oa-progression', '1.0.0'), createFhirPath());
  t.teardown(() => live.session.release());
  const truth: FollowUp[] = [];
  const ids: string[] = [];
  for (let i = 0; i < PATIENTS; i += 1) {
    const bundle = generatePatient(createRng(SEED, i), { kneeOa: true, lesions: 0, now: NOW });
    const payload = kneeOaRequest(bundle);
    ids.push(payload.context.patientId);
    const res = await app.inject({ method: 'POST', url: KNEE_OA_URL, payload });
    t.equal(res.statusCode, 200);
    const followUp = await followUpOf(live, bundle, SEED, i, NOW);
    if (followUp) truth.push(followUp);
  }
  await app.close();
  t.ok(truth.length >= 5, `${truth.length} patients scored`);
  // The seed gives both outcomes among the patients whose follow-up is recorded.
  t.ok(truth.slice(1).some((f) => f.outcome === 1) && truth.slice(1).some((f) => f.outcome === 0));

  const fhir = tempDir('cds-evaluate-fhir-');
  // One patient's follow-up is left out: its outcome is unknown.
  const [missing, ...recorded] = truth;
  writeFileSync(
    join(fhir, 'Observation.ndjson'),
    recorded.flatMap((f) => f.resources.map((r) => `${JSON.stringify(r)}\n`)).join(''),
  );
  const out = join(tempDir('cds-evaluate-out-'), 'report');
  const rowsFile = join(out, '..', 'rows.json');
  const stdout = capture();
  const stderr = capture();
  const code = await runEvaluate(
    [
      '--store',
      join(dataDir, 'audit.sqlite'),
      '--fhir',
      fhir,
      '--from',
      '2026-11-01',
      '--to',
      '2026-12-01',
      '--out',
      out,
      '--models-dir',
      modelsDir,
      '--rows-out',
      rowsFile,
      '--min-cell',
      '1',
    ],
    {},
    stdout,
    stderr,
    () => NOW,
  );
  t.equal(code, 0, stderr.text());
  t.match(stderr.text(), new RegExp(`evaluate: ${truth.length * 2} estimates from 2026-11-01 to 2026-12-01`));
  t.equal(
    stdout.text(),
    `${truth.length * 2} estimates linked (${(truth.length - 1) * 2} with a known outcome: 0 per focus, ${(truth.length - 1) * 2} per patient); report written to ${out}\n`,
  );
  const text = readFileSync(rowsFile, 'utf8');
  const rows = JSON.parse(text) as LinkedPrediction[];
  const liveRows = rows.filter((r) => r.mode === 'live');
  const silentRows = rows.filter((r) => r.mode === 'silent');
  t.same(
    liveRows.map((r) => r.modelVersion),
    truth.map(() => '1.0.0'),
  );
  t.same(
    silentRows.map((r) => r.modelVersion),
    truth.map(() => '1.1.0'),
  );
  // The truth the follow-up was drawn with, found again through the pseudonym, for both versions.
  const expected = [null, ...recorded.map((f) => f.outcome)];
  t.same(
    liveRows.map((r) => r.outcome),
    expected,
  );
  t.same(
    silentRows.map((r) => r.outcome),
    expected,
  );
  t.same(
    liveRows.map((r) => r.risk),
    truth.map((f) => f.risks[0]),
    "the live rows are the live model's estimates",
  );
  t.not(silentRows[0]!.risk, liveRows[0]!.risk);
  t.ok(rows.every((r) => r.week === '2026-W47'));
  t.same(Object.keys(liveRows[0]!.subgroups).sort(), ['ageBand', 'klGrade', 'sex']);
  // Nothing identifying leaves the linkage.
  for (const id of ids) t.notOk(text.includes(id), 'no patient id');
  t.notMatch(text, /\d{4}-\d{2}-\d{2}|pseudonym|[0-9a-f]{64}|Condition\//);
  t.notMatch(text, missing!.patientId);

  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8'));
  t.same(report.models.map((m: { modelVersion: string; mode: string }) => [m.modelVersion, m.mode]).sort(), [
    ['1.0.0', 'live'],
    ['1.1.0', 'silent'],
  ]);
  // The denominator of the rules' alert rate: every call the service answered in the period.
  const driver = await openDriver(join(dataDir, 'audit.sqlite'));
  t.same(await serviceCallCounts(driver, '2026-11-01', '2026-12-01'), { 'knee-oa-progression': PATIENTS });
  t.same(await serviceCallCounts(driver, '2026-12-01', '2027-01-01'), {}, 'none outside the period');
  await driver.close();
  t.match(readFileSync(join(out, 'report.en.html'), 'utf8'), /^<!doctype html>/);
  t.match(readFileSync(join(out, 'report.fr.html'), 'utf8'), /lang="fr"/);
});

t.test('bad input: exit code 2 and what to fix', async (t) => {
  const run = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const err = capture();
    const code = await runEvaluate(args, env, capture(), err, () => NOW);
    return { code, err: err.text() };
  };
  const base = ['--fhir', tempDir(), '--from', '2026-01-01', '--to', '2026-02-01', '--out', tempDir()];
  let r = await run(base);
  t.equal(r.code, 2);
  t.match(r.err, /^evaluate: --store is required\nUsage: evaluate/);
  r = await run(['--store', 'x.sqlite', ...base.slice(0, 4), '--to', '2026-01-01', '--out', 'o']);
  t.match(r.err, /^evaluate: --to must be after --from/);
  r = await run([
    '--store',
    'x.sqlite',
    ...base.slice(0, 2),
    '--from',
    '2026-02-30',
    '--to',
    '2026-03-01',
    '--out',
    'o',
  ]);
  t.match(r.err, /^evaluate: --from must be a date YYYY-MM-DD \(got "2026-02-30"\)/);
  const dir = tempDir();
  r = await run(['--store', join(dir, 'audit.sqlite'), ...base]);
  t.same(r, {
    code: 2,
    err: `evaluate: no pseudonym key at ${join(dir, 'pseudonym.key')}: the key of the service that wrote the store is needed\n`,
  });
  r = await run(['--store', join(dir, 'audit.sqlite'), ...base], { CDS_AUDIT_PSEUDONYM_KEY: 'k' });
  t.same(r, { code: 2, err: `evaluate: no audit store file at ${join(dir, 'audit.sqlite')}\n` });

  // A FHIR folder with a broken NDJSON line.
  const dataDir = tempDir();
  const { app } = await buildTestApp({ dataDir });
  await app.close();
  const fhir = tempDir();
  mkdirSync(join(fhir, 'sub'));
  writeFileSync(join(fhir, 'a.ndjson'), '{"resourceType":"Patient","id":"p"}\n{oops\n');
  r = await run([
    '--store',
    join(dataDir, 'audit.sqlite'),
    '--fhir',
    fhir,
    '--from',
    '2026-01-01',
    '--to',
    '2026-12-01',
    '--out',
    tempDir(),
  ]);
  t.equal(r.code, 2);
  t.match(r.err, /evaluate: cannot read the FHIR data at .+: a\.ndjson line 2 is not JSON/);
});

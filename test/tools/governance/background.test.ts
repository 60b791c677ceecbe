/**
 * The background of a bundled model as the governance report takes it: one row per line of its
 * background.csv, keyed by feature id, and the model's estimate on each row; against that, the report
 * finds no drift in the background itself.
 */
import t from 'tap';
import { buildGovernanceReport } from '../../../src/governance/report.js';
import { createFhirPath } from '../../../src/rules/fhirpath.js';
import { loadModel, predict } from '../../../src/scoring/load.js';
import { backgroundForReport } from '../../../tools/governance/background.js';

t.test('the knee model: its background rows by feature id and their estimates', async (t) => {
  const model = await loadModel('models/knee-oa-progression/1.0.0', createFhirPath());
  t.teardown(() => model.session.release());
  const got = await backgroundForReport(model);
  t.equal(got.key, 'knee-oa-progression@1.0.0');
  t.equal(got.rows.length, model.background.length);
  t.ok(got.rows.length >= 100, `${got.rows.length} rows`);
  t.same(
    Object.keys(got.rows[0]!),
    model.manifest.features.map((f) => f.id),
  );
  t.same(Object.values(got.rows[0]!), model.background[0]);
  t.same(got.risks.slice(0, 3), Array.from(await predict(model, model.background.slice(0, 3))));

  // The background compared with itself: every figure stable.
  const report = buildGovernanceReport({
    period: { from: '2026-01-01', to: '2026-03-31' },
    predictions: got.rows.map((inputs, i) => ({
      serviceId: 'knee-oa-progression',
      modelId: 'knee-oa-progression',
      modelVersion: '1.0.0',
      mode: 'silent',
      week: '2026-W05',
      risk: got.risks[i]!,
      positive: got.risks[i]! >= model.manifest.threshold,
      inputs,
      subgroups: {},
      outcome: null,
    })),
    rules: [],
    background: { [got.key]: got.rows },
    backgroundRisk: { [got.key]: got.risks },
    minCellSize: 10,
    generatedAt: new Date('2026-04-01T00:00:00Z'),
  });
  const drift = report.models[0]!.drift!;
  t.equal(drift.risk!.psi, 0);
  t.ok(
    drift.inputs.every((d) => d.psi === 0),
    'no input drifts against itself',
  );
  t.equal(drift.inputs.length, model.manifest.features.length);
});

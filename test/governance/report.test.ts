/**
 * The governance report (issue 19) on a seeded cohort with known outcomes: its AUC, calibration slope,
 * intercept and decile table equal independent computations on the same rows; small cells are
 * suppressed; no patient id, birth date or exact date appears in the JSON or the HTML; the HTML is
 * self-contained, in English or French.
 */
import t from 'tap';
import { calibrationByDecile, type Outcome } from '../../src/governance/metrics.js';
import {
  buildGovernanceReport,
  type GovernanceInput,
  renderReportHtml,
  SUPPRESSED,
} from '../../src/governance/report.js';
import type { LinkedPrediction, RuleStats } from '../../src/governance/types.js';
import { background, cohort } from '../helpers/governance-cohort.js';
import { bisectionRecalibration, pairCountAuc } from '../helpers/governance-independent.js';

const GENERATED = new Date('2026-12-01T08:00:00Z');
const PERIOD = { from: '2026-09-28', to: '2026-11-22' };
const KEY = 'knee-oa-progression@1.0.0';

function input(predictions: LinkedPrediction[], extra: Partial<GovernanceInput> = {}): GovernanceInput {
  return {
    period: PERIOD,
    predictions,
    rules: [],
    background: { [KEY]: background(500, 7) },
    minCellSize: 10,
    generatedAt: GENERATED,
    ...extra,
  };
}

const rows = cohort({ n: 2500, seed: 42, unknown: 0.1 });
const known = rows.filter((r) => r.outcome !== null);
const risks = known.map((r) => r.risk);
const outcomes = known.map((r) => r.outcome as Outcome);

t.test("the report's AUC and calibration equal an independent computation on the same rows", async (t) => {
  const report = buildGovernanceReport(input(rows));
  t.equal(report.models.length, 1);
  const m = report.models[0]!;
  t.same(
    [m.modelId, m.modelVersion, m.mode, m.scored, m.outcomeKnown],
    ['knee-oa-progression', '1.0.0', 'silent', 2500, known.length],
  );
  const o = m.overall;
  if (o.auc === null || o.auc === SUPPRESSED) throw new Error('AUC missing');
  const auc = pairCountAuc(risks, outcomes);
  t.ok(Math.abs(o.auc.value - auc) < 1e-12, `AUC ${o.auc.value} = pair counting ${auc}`);
  t.ok(
    o.auc.ci.low < auc && auc < o.auc.ci.high && o.auc.ci.high - o.auc.ci.low < 0.1,
    'a narrow interval around it',
  );
  const fit = bisectionRecalibration(risks, outcomes);
  t.ok(
    Math.abs((o.calibrationSlope as number) - fit.slope) < 1e-7,
    `slope ${String(o.calibrationSlope)} = ${fit.slope}`,
  );
  t.ok(Math.abs((o.calibrationIntercept as number) - fit.intercept) < 1e-8, 'intercept');

  // Decile table recomputed here: sort, cut at floor(k·n/10), count.
  const order = risks.map((_, i) => i).sort((a, b) => risks[a]! - risks[b]! || a - b);
  t.equal(m.deciles.length, 10);
  m.deciles.forEach((d, k) => {
    const members = order.slice(
      Math.floor((k * order.length) / 10),
      Math.floor(((k + 1) * order.length) / 10),
    );
    const events = members.filter((i) => outcomes[i] === 1).length;
    t.equal(d.n, members.length);
    t.ok(
      Math.abs((d.meanPredicted as number) - members.reduce((s, i) => s + risks[i]!, 0) / members.length) <
        1e-12,
    );
    t.equal(d.observedRate, events / members.length, `decile ${k + 1}`);
  });

  // At the card threshold (0.25): counted here from the rows.
  const tp = known.filter((r) => r.positive && r.outcome === 1).length;
  const fn = known.filter((r) => !r.positive && r.outcome === 1).length;
  const fp = known.filter((r) => r.positive && r.outcome === 0).length;
  t.same([o.atThreshold.tp, o.atThreshold.fn, o.atThreshold.fp], [tp, fn, fp]);
  t.same(
    o.atThreshold.sensitivity && o.atThreshold.sensitivity !== SUPPRESSED && o.atThreshold.sensitivity.value,
    tp / (tp + fn),
  );
  t.same(o.atThreshold.ppv && o.atThreshold.ppv !== SUPPRESSED && o.atThreshold.ppv.value, tp / (tp + fp));

  // Subgroups of the model card, each its own computation.
  t.same(
    m.subgroups.map((s) => `${s.variable}=${s.group}`),
    ['ageBand=65+', 'ageBand=<65', 'sex=female', 'sex=male'],
  );
  const women = known.filter((r) => r.subgroups.sex === 'female');
  const female = m.subgroups.find((s) => s.group === 'female')!.figures;
  t.equal(female.n, women.length);
  t.ok(
    Math.abs(
      (female.auc as { value: number }).value -
        pairCountAuc(
          women.map((r) => r.risk),
          women.map((r) => r.outcome!),
        ),
    ) < 1e-12,
  );
  t.equal(m.roc !== null && m.roc !== SUPPRESSED && m.roc.length, 21, 'ROC between 20 groups');
  const counts = new Array<number>(10).fill(0);
  for (const r of rows) counts[Math.min(9, Math.floor(r.risk * 10))]!++;
  t.same(
    m.riskHistogram,
    counts.map((k) => (k > 0 && k < 10 ? SUPPRESSED : k)),
    'histogram: estimates per tenth, bins of 1 to 9 suppressed',
  );
  t.ok(m.riskHistogram.includes(SUPPRESSED), 'a bin of the tail is suppressed');
});

t.test('live and silent estimates, and each model version, are reported apart', async (t) => {
  const report = buildGovernanceReport(
    input([
      ...cohort({ n: 200, seed: 1, mode: 'live' }),
      ...cohort({ n: 200, seed: 2 }),
      ...cohort({ n: 200, seed: 3, modelVersion: '1.1.0' }),
    ]),
  );
  t.same(
    report.models.map((m) => [m.modelVersion, m.mode, m.scored]),
    [
      ['1.0.0', 'live', 200],
      ['1.0.0', 'silent', 200],
      ['1.1.0', 'silent', 200],
    ],
  );
  t.equal(report.models[2]!.drift, null, 'no background sample given for 1.1.0');
});

t.test('drift: stable against a background of the same inputs, major when the inputs moved', async (t) => {
  const same = buildGovernanceReport(input(cohort({ n: 1000, seed: 5 }))).models[0]!.drift!;
  t.equal(same.backgroundRows, 500);
  t.same(
    same.inputs.map((d) => [d.of, d.level]),
    [
      ['age', 'stable'],
      ['female', 'stable'],
    ],
  );
  t.equal(same.risk, null, 'no background risks given');
  const moved = cohort({ n: 1000, seed: 5, shift: 10 });
  const shifted = buildGovernanceReport(
    input(moved, { backgroundRisk: { [KEY]: cohort({ n: 500, seed: 9 }).map((r) => r.risk) } }),
  ).models[0]!.drift!;
  t.equal(shifted.inputs.find((d) => d.of === 'age')!.level, 'major');
  t.equal(shifted.inputs.find((d) => d.of === 'female')!.level, 'stable');
  t.equal(shifted.risk!.of, 'risk');
  t.not(shifted.risk!.level, 'stable', 'older patients, higher estimates');
});

t.test('small cells are suppressed: counts 1 to min-1, rates and figures from fewer rows', async (t) => {
  const row = (risk: number, outcome: 0 | 1 | null, sex: string): LinkedPrediction => ({
    serviceId: 's',
    modelId: 'm',
    modelVersion: '1.0.0',
    mode: 'live',
    week: '2026-W45',
    risk,
    positive: risk >= 0.5,
    inputs: {},
    subgroups: { sex },
    outcome,
  });
  // 30 women (15 with the outcome), 4 men.
  const predictions = [
    ...Array.from({ length: 30 }, (_, i) =>
      row(i % 2 ? 0.7 - i / 100 : 0.3 + i / 100, (i % 2) as 0 | 1, 'female'),
    ),
    ...Array.from({ length: 4 }, (_, i) => row(0.8, (i % 2) as 0 | 1, 'male')),
  ];
  const report = buildGovernanceReport(input(predictions, { background: {} }));
  const m = report.models[0]!;
  t.equal(m.scored, 34);
  const men = m.subgroups.find((s) => s.group === 'male')!.figures;
  t.same(
    [
      men.n,
      men.events,
      men.auc,
      men.calibrationSlope,
      men.atThreshold.tp,
      men.atThreshold.sensitivity,
      men.atThreshold.tn,
    ],
    [SUPPRESSED, SUPPRESSED, SUPPRESSED, null, SUPPRESSED, SUPPRESSED, 0],
    'the 4 men: counts and AUC suppressed, zero shown, slope undefined (one risk value)',
  );
  const women = m.subgroups.find((s) => s.group === 'female')!.figures;
  t.equal(women.n, 30);
  t.type(women.auc, 'object', 'women: 15 with and 15 without the outcome, the AUC is shown');
  t.ok(
    m.deciles.every((d) => d.n === SUPPRESSED && d.observedRate === SUPPRESSED),
    'deciles of 3-4 rows',
  );
  t.equal(m.roc !== null && m.roc !== SUPPRESSED && m.roc.length, 4, 'ROC: 34 rows, 3 groups of 10 or more');
  const bins = new Array<number>(10).fill(0);
  for (const p of predictions) bins[Math.min(9, Math.floor(p.risk * 10))]!++;
  t.same(
    m.riskHistogram,
    bins.map((k) => (k > 0 && k < 10 ? SUPPRESSED : k)),
    'bins of 1 to 9 suppressed, zero and 10 or more shown',
  );
  t.ok(m.riskHistogram.includes(SUPPRESSED) && m.riskHistogram.includes(0));
  const html = renderReportHtml(report, 'en');
  t.match(html, /<span class="suppressed">suppressed<\/span>/);
  t.match(renderReportHtml(report, 'fr'), /<span class="suppressed">masqué<\/span>/);

  const raised = buildGovernanceReport(input(predictions, { background: {}, minCellSize: 40 })).models[0]!;
  t.equal(raised.scored, SUPPRESSED, 'the minimum is configurable');
  t.equal(raised.overall.auc, SUPPRESSED);
  t.equal(raised.roc, SUPPRESSED, 'fewer than two groups of 40');
});

t.test(
  'rules: alert rate, acceptance, override by reason and PPV, with small cells suppressed',
  async (t) => {
    const rules: RuleStats[] = [
      {
        serviceId: 'nsaid-safety',
        template: 'oral-nsaid-elderly',
        cardsShown: 120,
        accepted: 70,
        overridden: 40,
        overrideReasons: { 'patient-preference': 33, 'already-handled': 7, uncoded: 0 },
        withOutcome: { known: 50, positive: 12 },
      },
      {
        serviceId: 'nsaid-safety',
        template: 'a-rare-card',
        cardsShown: 3,
        accepted: 3,
        overridden: 0,
        overrideReasons: {},
      },
    ];
    const report = buildGovernanceReport(input([], { rules, serviceCalls: { 'nsaid-safety': 1000 } }));
    t.same(report.models, []);
    const [rare, nsaid] = report.rules;
    t.same(
      [rare!.template, rare!.cardsShown, rare!.acceptanceRate, rare!.alertRate],
      ['a-rare-card', SUPPRESSED, SUPPRESSED, SUPPRESSED],
    );
    t.equal(rare!.ppv, null, 'no outcome defined');
    t.same(nsaid!.overrideReasons, [
      { reason: 'patient-preference', count: 33 },
      { reason: 'already-handled', count: SUPPRESSED },
      { reason: 'uncoded', count: 0 },
    ]);
    t.match(renderReportHtml(report, 'en'), /No coded reason \(comment only\): 0/);
    t.equal((nsaid!.acceptanceRate as { value: number }).value, 70 / 120);
    t.equal((nsaid!.alertRate as { value: number }).value, 0.12);
    const ppv = nsaid!.ppv as { value: number; ci: { low: number; high: number } };
    t.equal(ppv.value, 0.24);
    t.ok(ppv.ci.low < 0.24 && ppv.ci.high > 0.24);
    const html = renderReportHtml(report, 'fr');
    t.match(html, /Préférence du patient \/ décision partagée: 33/);
    t.match(html, /24,0 %/);
  },
);

t.test('rules: the PPV of accepted and of overridden cards, suppressed together', async (t) => {
  const rule = (withOutcome: RuleStats['withOutcome']): RuleStats => ({
    serviceId: 'nsaid-safety-order-sign',
    template: 'serious',
    cardsShown: 200,
    accepted: 80,
    overridden: 80,
    overrideReasons: {},
    outcome: { label: { en: 'acute kidney injury', fr: 'insuffisance rénale aiguë' }, horizonMonths: 3 },
    withOutcome,
  });
  const build = (w: RuleStats['withOutcome']) => buildGovernanceReport(input([], { rules: [rule(w)] }));
  const report = (w: RuleStats['withOutcome']) => build(w).rules[0]!;
  const value = (r: unknown) => (r as { value: number }).value;
  // Every group of at least 10 cards, each with 10 or more with and without the outcome.
  const large = {
    known: 150,
    positive: 45,
    accepted: { known: 60, positive: 10 },
    overridden: { known: 60, positive: 25 },
  };
  let r = report(large);
  t.same(
    [r.outcomeKnown, value(r.ppv), value(r.ppvAccepted), value(r.ppvOverridden)],
    [150, 0.3, 10 / 60, 25 / 60],
  );
  t.same(r.outcome, {
    label: { en: 'acute kidney injury', fr: 'insuffisance rénale aiguë' },
    horizonMonths: 3,
  });
  const html = renderReportHtml(build(large), 'en');
  t.match(html, /Outcome: acute kidney injury<\/small><br>30\.0 %/);
  t.match(html, /accepted cards: 16\.7 %.*<br>overridden cards: 41\.7 %/);
  // 4 melanomas after an accepted card: that PPV is suppressed, and the overridden one with it (else
  // the overall less the overridden and the cards without feedback would give the 4 back).
  r = report({
    known: 150,
    positive: 39,
    accepted: { known: 60, positive: 4 },
    overridden: { known: 60, positive: 25 },
  });
  t.same([value(r.ppv), r.ppvAccepted, r.ppvOverridden], [0.26, SUPPRESSED, SUPPRESSED]);
  // Both groups large, but 5 cards without feedback: the split would give them back.
  const fewWithout = { ...large, known: 125, positive: 37 };
  r = report(fewWithout);
  t.same([value(r.ppv), r.ppvAccepted, r.ppvOverridden], [37 / 125, SUPPRESSED, SUPPRESSED]);
  t.match(
    renderReportHtml(build(fewWithout), 'fr'),
    /cartes acceptées: <span class="suppressed">masqué<\/span>/,
  );
  // No card of a group with a known outcome: that PPV is undefined, the other stays.
  r = report({
    known: 50,
    positive: 20,
    accepted: { known: 0, positive: 0 },
    overridden: { known: 50, positive: 20 },
  });
  t.same([r.ppvAccepted, value(r.ppvOverridden)], [null, 0.4]);
});

t.test(
  'no patient id, birth date or exact date appears in a report; rows carrying one are refused',
  async (t) => {
    const report = buildGovernanceReport(input(rows, { rules: [] }));
    const outputs = [JSON.stringify(report), renderReportHtml(report, 'en'), renderReportHtml(report, 'fr')];
    const allowed = new Set([PERIOD.from, PERIOD.to, '2026-12-01']);
    for (const text of outputs) {
      const dates = [...text.matchAll(/\d{4}-\d{2}-\d{2}/g)].map((d) => d[0]);
      t.same(
        dates.filter((d) => !allowed.has(d)),
        [],
        'only the period bounds and the day of the report',
      );
      t.notOk(
        rows.some((r) => text.includes(String(r.risk))),
        'no single estimate at full precision (aggregates only)',
      );
    }
    const withDate = { ...rows[0]!, subgroups: { birthDate: '1961-04-12' } };
    t.throws(() => buildGovernanceReport(input([withDate])), {
      message: 'prediction 0: a label looks like a date; the report shows ISO weeks only',
    });
    t.throws(() => buildGovernanceReport(input([{ ...rows[0]!, week: '2026-11-09' }])), {
      message: 'prediction 0: week is not an ISO week (YYYY-Www)',
    });
    t.throws(() => buildGovernanceReport(input([{ ...rows[0]!, risk: 1.5 }])), /risk is not a probability/);
    t.throws(() => buildGovernanceReport(input([], { minCellSize: 0 })), /minCellSize/);
  },
);

t.test('the HTML is self-contained with its three charts, escaped, in English or French', async (t) => {
  const odd = cohort({ n: 400, seed: 3 }).map((r) => ({ ...r, serviceId: '<script>x</script>' }));
  const report = buildGovernanceReport(
    input(odd, {
      modelInfo: {
        [KEY]: { title: 'Knee & OA', statusText: 'Demonstration model trained on simulated data.' },
      },
    }),
  );
  const en = renderReportHtml(report, 'en');
  t.match(en, /^<!doctype html>\n<html lang="en">/);
  t.notMatch(en, /<script|src=|href=|@import|url\(/i, 'no script and nothing fetched');
  t.match(en, /&lt;script&gt;x&lt;\/script&gt;/);
  t.match(en, /Knee &amp; OA <small>knee-oa-progression 1\.0\.0 · silent/);
  t.match(en, /<p class="status">Demonstration model trained on simulated data\.<\/p>/);
  t.match(en, /demonstration models trained on simulated data/);
  for (const chart of ['roc', 'calibration', 'histogram'])
    t.match(en, new RegExp(`<svg class="${chart}" role="img"`));
  const known = odd.filter((r) => r.outcome !== null);
  const shown = calibrationByDecile(
    known.map((r) => r.risk),
    known.map((r) => r.outcome as Outcome),
  ).filter((d) => d.events >= 10 && d.n - d.events >= 10).length;
  t.ok(shown > 0, `${shown} deciles with 10 or more patients with and without the outcome`);
  t.equal((en.match(/<circle class="decile"/g) ?? []).length, shown, 'one point per decile shown');
  const m = report.models[0]!;
  const auc = (m.overall.auc as { value: number }).value;
  t.match(en, new RegExp(`AUC \\(95 % CI, DeLong\\)</th><td class="n">${auc.toFixed(3)}`));
  const fr = renderReportHtml(report, 'fr');
  t.match(fr, /<html lang="fr">/);
  t.match(fr, new RegExp(`AUC \\(IC 95 %, DeLong\\)</th><td class="n">${auc.toFixed(3).replace('.', ',')}`));
  t.match(fr, /Rapport de validation locale/);
  t.notMatch(fr, /Local validation report|Calibration slope/);
});

t.test('calibration table of the metrics and of the report agree', async (t) => {
  const table = calibrationByDecile(risks, outcomes);
  const report = buildGovernanceReport(input(rows));
  t.same(
    report.models[0]!.deciles.map((d) => d.observedRate),
    table.map((d) => d.observedRate),
  );
});

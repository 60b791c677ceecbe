/**
 * Rules-only groups of the override analytics become the report's rule figures; groups with a model are
 * left out (their cards mix rule and model cards).
 */
import t from 'tap';
import type { AnalyticsGroup } from '../../../src/analytics/report.js';
import { ruleStatsFromAnalytics } from '../../../tools/governance/rule-stats.js';

const group = (over: Partial<AnalyticsGroup>): AnalyticsGroup => ({
  serviceId: 'nsaid-prescribing-safety',
  serviceVersion: '1.2.0',
  models: [],
  cardsIssued: 40,
  accepted: 25,
  overridden: 12,
  noFeedback: 3,
  acceptanceRate: 0.625,
  overrideRate: 0.3,
  overrideReasons: { 'patient-preference': 10, uncoded: 2 },
  inputDataWrongRate: 0,
  cardsSuppressed: 0,
  suppressedReasons: {},
  risk: [],
  ...over,
});

t.test('one RuleStats per rules-only service version, with its override reasons', async (t) => {
  const stats = ruleStatsFromAnalytics({
    generatedAt: '2026-12-01T00:00:00.000Z',
    groups: [
      group({}),
      group({ serviceId: 'knee-oa-progression', models: [{ id: 'knee-oa-progression', version: '1.0.0' }] }),
    ],
  });
  t.same(stats, [
    {
      serviceId: 'nsaid-prescribing-safety',
      template: 'all cards (version 1.2.0)',
      cardsShown: 40,
      accepted: 25,
      overridden: 12,
      overrideReasons: { 'patient-preference': 10, uncoded: 2 },
    },
  ]);
});

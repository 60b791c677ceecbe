/**
 * The rules' figures of the governance report from the existing override analytics
 * (src/analytics/report.ts): one RuleStats per rules-only service version. The audit analytics count cards
 * per service version and set of models, not per card template, and carry no outcome: the template is
 * named `all cards (version x.y.z)` and the PPV is left out (`withOutcome` undefined). A service that also
 * runs a model mixes its rule and model cards in those counts, so it is left out here: its model figures
 * come from the linked predictions.
 */
import type { AnalyticsReport } from '../../src/analytics/report.js';
import type { RuleStats } from '../../src/governance/types.js';

export function ruleStatsFromAnalytics(report: AnalyticsReport): RuleStats[] {
  return report.groups
    .filter((g) => g.models.length === 0)
    .map((g) => ({
      serviceId: g.serviceId,
      template: `all cards (version ${g.serviceVersion})`,
      cardsShown: g.cardsIssued,
      accepted: g.accepted,
      overridden: g.overridden,
      overrideReasons: { ...g.overrideReasons },
    }));
}

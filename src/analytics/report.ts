/**
 * Override analytics for the site's governance team, from the store's grouped counts. Pure.
 *
 * Per service version and set of models: cards issued; each card counted once by its latest feedback
 * (a clinician who changes their mind is counted by the last decision); acceptance and override rates
 * over the cards issued (cards with no feedback were ignored, which is a signal too); the coded reasons
 * of the overrides; the share of overrides saying the input data was wrong (a data-quality alarm); and
 * the distribution of risk values week by week, to see a model drift.
 */
import type { AnalyticsKey, AnalyticsRows } from '../audit/store.js';

/** The override reason that says the record, not the model, is wrong (src/codes.ts). */
export const INPUT_DATA_WRONG = 'input-data-wrong';
/** Key of overrides that gave a comment but no coded reason. */
export const UNCODED = 'uncoded';
export const RISK_BINS = 10;

export interface RiskWeek {
  /** Monday of the ISO week (UTC). */
  week: string;
  n: number;
  mean: number;
  /** Counts per tenth of the 0–1 risk range. */
  histogram: number[];
}

export interface AnalyticsGroup {
  serviceId: string;
  serviceVersion: string;
  models: { id: string; version: string }[];
  cardsIssued: number;
  accepted: number;
  overridden: number;
  noFeedback: number;
  /** accepted / cardsIssued; null when no card was issued. */
  acceptanceRate: number | null;
  overrideRate: number | null;
  /** Override count per reason code (`uncoded` for a comment without a code). */
  overrideReasons: Record<string, number>;
  /** Overrides saying the input data was wrong / overrides; null without overrides. */
  inputDataWrongRate: number | null;
  /** Cards the alert fatigue controls did not show. */
  cardsSuppressed: number;
  /** Suppressed cards per reason: `override:<reason code>`, `no-estimate-hidden`, `not-evaluable-hidden`, `card-cap`, `silent`. */
  suppressedReasons: Record<string, number>;
  risk: RiskWeek[];
}

export interface AnalyticsReport {
  generatedAt: string;
  groups: AnalyticsGroup[];
}

const rate = (n: number, d: number) => (d === 0 ? null : Math.round((n / d) * 10_000) / 10_000);
const keyOf = (k: AnalyticsKey) => JSON.stringify([k.serviceId, k.serviceVersion, k.models]);

function parseModels(models: string): { id: string; version: string }[] {
  if (models === '') return [];
  return models.split(',').map((m) => {
    const at = m.lastIndexOf('@');
    return { id: m.slice(0, at), version: m.slice(at + 1) };
  });
}

export function buildReport(rows: AnalyticsRows, now: Date): AnalyticsReport {
  const groups = new Map<string, AnalyticsGroup>();
  const group = (k: AnalyticsKey): AnalyticsGroup => {
    let g = groups.get(keyOf(k));
    if (!g) {
      g = {
        serviceId: k.serviceId,
        serviceVersion: k.serviceVersion,
        models: parseModels(k.models),
        cardsIssued: 0,
        accepted: 0,
        overridden: 0,
        noFeedback: 0,
        acceptanceRate: null,
        overrideRate: null,
        overrideReasons: {},
        inputDataWrongRate: null,
        cardsSuppressed: 0,
        suppressedReasons: {},
        risk: [],
      };
      groups.set(keyOf(k), g);
    }
    return g;
  };
  for (const r of rows.issued) group(r).cardsIssued += r.n;
  for (const r of rows.outcomes) {
    const g = group(r);
    if (r.outcome === 'accepted') g.accepted += r.n;
    else {
      g.overridden += r.n;
      const code = r.reasonCode ?? UNCODED;
      g.overrideReasons[code] = (g.overrideReasons[code] ?? 0) + r.n;
    }
  }
  for (const r of rows.suppressed) {
    const g = group(r);
    g.cardsSuppressed += r.n;
    g.suppressedReasons[r.reason] = (g.suppressedReasons[r.reason] ?? 0) + r.n;
  }
  const weeks = new Map<string, RiskWeek & { sum: number }>();
  for (const r of rows.risk) {
    const id = `${keyOf(r)}|${r.week}`;
    let w = weeks.get(id);
    if (!w) {
      w = { week: r.week, n: 0, mean: 0, sum: 0, histogram: new Array<number>(RISK_BINS).fill(0) };
      weeks.set(id, w);
      group(r).risk.push(w);
    }
    w.n += r.n;
    w.sum += r.sum;
    w.histogram[r.bin] = (w.histogram[r.bin] ?? 0) + r.n;
  }
  for (const g of groups.values()) {
    g.noFeedback = g.cardsIssued - g.accepted - g.overridden;
    g.acceptanceRate = rate(g.accepted, g.cardsIssued);
    g.overrideRate = rate(g.overridden, g.cardsIssued);
    g.inputDataWrongRate = rate(g.overrideReasons[INPUT_DATA_WRONG] ?? 0, g.overridden);
    g.risk = g.risk.map((w) => {
      const { sum, ...week } = w as RiskWeek & { sum: number };
      return { ...week, mean: Math.round((sum / week.n) * 10_000) / 10_000 };
    });
  }
  return { generatedAt: now.toISOString(), groups: [...groups.values()] };
}

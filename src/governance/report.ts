/**
 * PLACEHOLDER, replaced at merge by the governance engineer's report (issue 19): the same two exports
 * with the agreed signatures, so that `npm run evaluate` compiles and runs on this branch. It only
 * counts estimates and known outcomes per model version and mode; the real report computes the
 * metrics, calibration, subgroups, drift and renders the page. Counts under `minCellSize` are hidden.
 */
import type { LinkedPrediction, RuleStats } from './types.js';

export interface GovernanceReport {
  period: { from: string; to: string };
  generatedAt: string;
  minCellSize: number;
  models: {
    modelId: string;
    modelVersion: string;
    mode: 'live' | 'silent';
    /** null: fewer than minCellSize. */
    estimates: number | null;
    outcomesKnown: number | null;
    outcomesPositive: number | null;
  }[];
  rules: RuleStats[];
}

export function buildGovernanceReport(input: {
  period: { from: string; to: string };
  predictions: LinkedPrediction[];
  rules: RuleStats[];
  background: Record<string, Record<string, number>[]>;
  minCellSize: number;
  generatedAt: Date;
}): GovernanceReport {
  const groups = new Map<string, LinkedPrediction[]>();
  for (const p of input.predictions) {
    const key = `${p.modelId}@${p.modelVersion}@${p.mode}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  const cell = (n: number) => (n < input.minCellSize ? null : n);
  return {
    period: input.period,
    generatedAt: input.generatedAt.toISOString(),
    minCellSize: input.minCellSize,
    models: [...groups.values()].map((rows) => ({
      modelId: rows[0]!.modelId,
      modelVersion: rows[0]!.modelVersion,
      mode: rows[0]!.mode,
      estimates: cell(rows.length),
      outcomesKnown: cell(rows.filter((r) => r.outcome !== null).length),
      outcomesPositive: cell(rows.filter((r) => r.outcome === 1).length),
    })),
    rules: input.rules,
  };
}

const escape = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderReportHtml(report: GovernanceReport, lang: 'en' | 'fr'): string {
  const show = (n: number | null) => (n === null ? `&lt;${report.minCellSize}` : String(n));
  const rows = report.models
    .map(
      (m) =>
        `<tr><td>${escape(m.modelId)} ${escape(m.modelVersion)}</td><td>${m.mode}</td><td>${show(m.estimates)}</td><td>${show(m.outcomesKnown)}</td><td>${show(m.outcomesPositive)}</td></tr>`,
    )
    .join('\n');
  const title =
    lang === 'fr'
      ? 'Validation locale (modèles de démonstration)'
      : 'Local validation (demonstration models)';
  return `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><title>${title}</title></head>
<body><h1>${title}</h1>
<p>${escape(report.period.from)} – ${escape(report.period.to)}</p>
<table><tr><th>model</th><th>mode</th><th>n</th><th>known</th><th>outcome</th></tr>
${rows}
</table></body></html>
`;
}

/**
 * The analytics report as one self-contained HTML page: server-rendered, inline CSS, no script, no
 * external asset (the page is served with a Content-Security-Policy that forbids them). Every value
 * from the store is escaped.
 */
import { OVERRIDE_REASONS, type OverrideReasonCode } from '../codes.js';
import type { AnalyticsGroup, AnalyticsReport, RiskWeek } from './report.js';
import { RISK_BINS, UNCODED } from './report.js';

export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

const percent = (r: number | null) => (r === null ? '—' : `${(r * 100).toFixed(1)} %`);

function reasonLabel(code: string): string {
  if (code === UNCODED) return 'No coded reason (comment only)';
  return OVERRIDE_REASONS[code as OverrideReasonCode]?.en ?? code;
}

function histogram(week: RiskWeek): string {
  const max = Math.max(1, ...week.histogram);
  const bars = week.histogram
    .map((n, i) => {
      const label = `${i * 10}–${(i + 1) * 10} %: ${n}`;
      return `<span class="bar" title="${label}" style="height:${Math.round((n / max) * 40)}px"></span>`;
    })
    .join('');
  return `<div class="hist" aria-label="risk histogram in ${RISK_BINS} bins">${bars}</div>`;
}

/** A suppression reason as a person reads it. */
function suppressionLabel(code: string): string {
  if (code.startsWith('override:'))
    return `Overridden earlier: ${reasonLabel(code.slice('override:'.length))}`;
  const labels: Record<string, string> = {
    'no-estimate-hidden': 'No-estimate card turned off',
    'not-evaluable-hidden': 'Not-evaluable card turned off',
    'card-cap': 'Beyond the cap on cards per call',
    silent: 'Card rule in silent mode (recorded, never shown)',
  };
  return labels[code] ?? code;
}

function groupSection(g: AnalyticsGroup): string {
  const models =
    g.models.length === 0
      ? 'rules only'
      : g.models.map((m) => `${escapeHtml(m.id)} ${escapeHtml(m.version)}`).join(', ');
  const reasons = Object.entries(g.overrideReasons)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `<tr><td>${escapeHtml(reasonLabel(code))}</td><td class="n">${n}</td></tr>`)
    .join('');
  const suppressed = Object.entries(g.suppressedReasons)
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `<tr><td>${escapeHtml(suppressionLabel(code))}</td><td class="n">${n}</td></tr>`)
    .join('');
  const weeks = g.risk
    .map(
      (w) =>
        `<tr><td>${escapeHtml(w.week)}</td><td class="n">${w.n}</td><td class="n">${(w.mean * 100).toFixed(1)} %</td><td>${histogram(w)}</td></tr>`,
    )
    .join('');
  return `<section>
<h2>${escapeHtml(g.serviceId)} <small>version ${escapeHtml(g.serviceVersion)} · ${models}</small></h2>
<table class="figures">
<tr><th>Cards issued</th><td class="n">${g.cardsIssued}</td></tr>
<tr><th>Accepted</th><td class="n">${g.accepted} (${percent(g.acceptanceRate)})</td></tr>
<tr><th>Overridden</th><td class="n">${g.overridden} (${percent(g.overrideRate)})</td></tr>
<tr><th>No feedback</th><td class="n">${g.noFeedback}</td></tr>
<tr><th>Overrides saying the input data was wrong</th><td class="n">${percent(g.inputDataWrongRate)}</td></tr>
</table>
<h3>Override reasons</h3>
${reasons ? `<table><tr><th>Reason</th><th>Overrides</th></tr>${reasons}</table>` : '<p>No override.</p>'}
<h3>Cards not shown (alert fatigue controls)</h3>
${suppressed ? `<table><tr><th>Why</th><th>Cards</th></tr>${suppressed}</table>` : '<p>None.</p>'}
<h3>Risk distribution by week</h3>
${weeks ? `<table><tr><th>Week of</th><th>Cards</th><th>Mean risk</th><th>0 → 100 %</th></tr>${weeks}</table>` : '<p>No risk score in this group (rules-only cards carry none).</p>'}
</section>`;
}

export function renderReportPage(report: AnalyticsReport): string {
  const body =
    report.groups.length === 0
      ? '<p>No card has been issued yet.</p>'
      : report.groups.map(groupSection).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CDS override analytics</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2rem;color:#1b1b1b;max-width:60rem}
h2 small{font-weight:normal;color:#555;font-size:.7em}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .75rem;text-align:left;vertical-align:bottom}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.hist{display:flex;align-items:flex-end;gap:2px;height:40px}
.bar{display:inline-block;width:10px;background:#3a6ea5}
footer{color:#555;font-size:.85em;margin-top:2rem}
</style>
</head>
<body>
<h1>Override analytics</h1>
<p>Each card is counted once, by the latest feedback about it. Rates are over the cards issued. Generated ${escapeHtml(report.generatedAt)}.</p>
${body}
<footer>Figures from the audit trail; patient data is not shown. JSON: <code>GET /analytics</code>.</footer>
</body>
</html>
`;
}

/**
 * Terminal output of the hook CLI: the cards of one call (indicator, summary, source, top factors of the
 * model explanation, suggestions) and the summary table of a folder run. Colour and symbols only when
 * the output is a terminal.
 */
import type { Card } from '../../src/cds-hooks.js';
import { EXPLANATION_EXTENSION } from '../../src/explain/explain.js';

const INDICATORS = {
  critical: { symbol: '✖', colour: 31 },
  warning: { symbol: '▲', colour: 33 },
  info: { symbol: '●', colour: 36 },
} as const;

/** How many factors a card line lists. */
export const TOP_FACTORS = 3;

interface Factor {
  label?: { en?: string } | string;
  value?: number;
  unit?: string;
  recorded?: string;
  contribution: number;
}

/** The model factors of a card, largest |contribution| first. */
export function topFactors(card: Card, count = TOP_FACTORS): Factor[] {
  const explanation = card.extension?.[EXPLANATION_EXTENSION] as
    { model?: { contributions?: unknown } } | undefined;
  const contributions = explanation?.model?.contributions;
  if (!Array.isArray(contributions)) return [];
  return (contributions as Factor[])
    .filter((c) => typeof c.contribution === 'number')
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
    .slice(0, count);
}

function factorText(f: Factor): string {
  const label = typeof f.label === 'string' ? f.label : (f.label?.en ?? '?');
  const value =
    f.recorded ??
    (f.value === undefined
      ? ''
      : `${f.value}${f.unit && f.unit !== '1' && !f.unit.startsWith('{') ? ` ${f.unit}` : ''}`);
  const sign = f.contribution >= 0 ? '+' : '−';
  return `${label}${value === '' ? '' : ` ${value}`} (${sign}${Math.abs(f.contribution).toFixed(2)})`;
}

/** The cards of one call, as lines. */
export function renderCards(title: string, cards: readonly Card[], tty: boolean): string {
  const lines = [`${title}: ${cards.length} card${cards.length === 1 ? '' : 's'}`];
  for (const card of cards) {
    const style = INDICATORS[card.indicator] ?? { symbol: '?', colour: 0 };
    const tag = card.indicator.toUpperCase();
    lines.push(
      tty ? `\x1b[${style.colour}m${style.symbol} ${tag}\x1b[0m ${card.summary}` : `[${tag}] ${card.summary}`,
    );
    lines.push(`    source: ${card.source.label}`);
    const factors = topFactors(card);
    if (factors.length > 0) lines.push(`    top factors: ${factors.map(factorText).join('; ')}`);
    const suggestions = (card.suggestions ?? []).map((s) => s.label);
    if (suggestions.length > 0) lines.push(`    suggestions: ${suggestions.join('; ')}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Totals of a folder run. */
export interface RunSummary {
  patients: number;
  /** service id → indicator → count */
  cards: Record<string, Record<string, number>>;
  /** HTTP status (or "network", "input") → count of failed calls */
  errors: Record<string, number>;
  latencyMs: { p50: number; p95: number; max: number } | null;
}

/** Nearest-rank percentiles of the latencies, in whole milliseconds. */
export function latencyStats(ms: readonly number[]): RunSummary['latencyMs'] {
  if (ms.length === 0) return null;
  const sorted = [...ms].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]!;
  return { p50: Math.round(rank(0.5)), p95: Math.round(rank(0.95)), max: Math.round(sorted.at(-1)!) };
}

/** The summary table of a folder run. */
export function renderSummary(summary: RunSummary): string {
  const rows: [string, string][] = [['patients', String(summary.patients)]];
  for (const [service, byIndicator] of Object.entries(summary.cards).sort()) {
    for (const indicator of ['critical', 'warning', 'info']) {
      if (byIndicator[indicator])
        rows.push([`cards ${service} ${indicator}`, String(byIndicator[indicator])]);
    }
  }
  const errors = Object.entries(summary.errors).sort();
  if (errors.length === 0) rows.push(['errors', '0']);
  for (const [status, n] of errors) rows.push([`errors ${status}`, String(n)]);
  const l = summary.latencyMs;
  rows.push(['latency p50/p95/max', l ? `${l.p50} / ${l.p95} / ${l.max} ms` : '-']);
  const width = Math.max(...rows.map(([k]) => k.length));
  return `${rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n')}\n`;
}

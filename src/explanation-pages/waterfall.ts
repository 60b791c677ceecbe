/**
 * The waterfall chart of a scored estimate, drawn on the server as inline SVG (no script, no external
 * asset): the baseline (the mean log-odds over the model's background sample, or the model at its
 * reference patient), then one bar per feature from the running
 * total by its contribution, then the patient's estimate; on the logit scale, where contributions add
 * up. Bars are coloured by direction and every bar has a text alternative (`<title>`); the page also
 * has the same figures as a table.
 */
import { escapeHtml } from '../analytics/page.js';
import type { Contribution, ScoredOutcome } from '../scoring/score.js';
import { riskText } from '../cards/detail.js';
import { colon, decimal, type Language } from '../language.js';
import { formatValue } from '../scoring/display.js';

export const COLOURS = {
  raises: '#b3261e',
  lowers: '#1b6e3a',
  neutral: '#6b6b6b',
  total: '#2f5597',
} as const;

const WIDTH = 760;
const LABEL_W = 330;
const VALUE_W = 70;
const PLOT_W = WIDTH - LABEL_W - VALUE_W;
const ROW_H = 26;
const BAR_H = 16;
const TOP = 8;

const TEXT = {
  en: {
    baseline: 'Reference patient',
    sample: (n: number) => `Average of ${n} reference patients`,
    estimate: 'This patient',
    notRecorded: 'not recorded',
    imputed: 'imputed',
    raises: 'raises',
    lowers: 'lowers',
    neutral: 'no effect',
    title: 'How each factor moved the estimate (log-odds scale)',
  },
  fr: {
    baseline: 'Patient de référence',
    sample: (n: number) => `Moyenne de ${n} patients de référence`,
    estimate: 'Ce patient',
    notRecorded: 'non renseigné',
    imputed: 'imputé',
    raises: 'augmente',
    lowers: 'diminue',
    neutral: 'sans effet',
    title: 'Comment chaque facteur a déplacé l’estimation (échelle des logits)',
  },
} as const;

const fixed = (n: number) => (Math.round(n * 100) / 100).toString();
/** "+1.09", "−0.5"; "0" when it rounds to zero (no "−0"). */
export function signed(n: number): string {
  const abs = fixed(Math.abs(n));
  return abs === '0' ? '0' : `${n > 0 ? '+' : '−'}${abs}`;
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const px = (n: number) => n.toFixed(2);

/** "Body mass index: 36 kg/m²", "Kellgren-Lawrence grade 3: not recorded (imputed)" (scoring/display.ts). */
export function factorLabel(c: Contribution, lang: Language): string {
  const t = TEXT[lang];
  const col = colon(lang);
  if (c.status === 'assumed-absent') return `${c.label[lang]}${col} ${t.notRecorded}`;
  return `${c.label[lang]}${col} ${formatValue(c, lang)}${c.status === 'imputed' ? ` (${t.imputed})` : ''}`;
}

/** The contributions in the order of the chart: largest effect first. */
export function chartOrder(contributions: readonly Contribution[]): Contribution[] {
  return [...contributions].sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
}

interface Row {
  kind: 'baseline' | 'contribution' | 'estimate';
  label: string;
  from: number;
  to: number;
  colour: string;
  value: string;
  alt: string;
}

function rows(outcome: ScoredOutcome, lang: Language): Row[] {
  const t = TEXT[lang];
  const col = colon(lang);
  const risk = (p: number) => riskText(p, lang);
  // The contributions are measured from the mean log-odds of the background sample, or one reference row.
  const baseline = outcome.background.kind === 'sample' ? t.sample(outcome.background.rows) : t.baseline;
  const final = outcome.contributions.reduce((s, c) => s + c.contribution, outcome.baselineLogit);
  const out: Row[] = [
    {
      kind: 'baseline',
      label: `${baseline} (${risk(sigmoid(outcome.baselineLogit))})`,
      from: 0,
      to: outcome.baselineLogit,
      colour: COLOURS.total,
      value: fixed(outcome.baselineLogit),
      alt: `${baseline}${col} ${fixed(outcome.baselineLogit)}`,
    },
  ];
  let running = outcome.baselineLogit;
  for (const c of chartOrder(outcome.contributions)) {
    const label = factorLabel(c, lang);
    out.push({
      kind: 'contribution',
      label,
      from: running,
      to: running + c.contribution,
      colour: COLOURS[c.direction],
      value: signed(c.contribution),
      alt: `${label}${col} ${t[c.direction]} ${signed(c.contribution)}`,
    });
    running += c.contribution;
  }
  out.push({
    kind: 'estimate',
    label: `${t.estimate} (${risk(outcome.probability)})`,
    from: 0,
    to: final,
    colour: COLOURS.total,
    value: fixed(final),
    alt: `${t.estimate}${col} ${fixed(final)} (${risk(outcome.probability)})`,
  });
  return lang === 'fr'
    ? out.map((r) => ({ ...r, value: decimal(r.value, lang), alt: decimal(r.alt, lang) }))
    : out;
}

/** The chart as an `<svg>` element; `scale` is the pixels per logit unit (tests check proportionality). */
export function waterfallSvg(outcome: ScoredOutcome, lang: Language): { svg: string; scale: number } {
  const all = rows(outcome, lang);
  const ends = all.flatMap((r) => [r.from, r.to]);
  const min = Math.min(0, ...ends);
  const max = Math.max(0, ...ends);
  const scale = PLOT_W / Math.max(max - min, 1e-6);
  const x = (v: number) => LABEL_W + (v - min) * scale;
  const height = TOP * 2 + all.length * ROW_H;
  const body = all.map((r, i) => {
    const y = TOP + i * ROW_H;
    const left = x(Math.min(r.from, r.to));
    const width = Math.abs(r.to - r.from) * scale;
    const text = escapeHtml(r.label);
    return [
      `<g class="row ${r.kind}">`,
      `<text x="${LABEL_W - 8}" y="${y + 17}" text-anchor="end" font-size="13" fill="#1a1a1a">${text}</text>`,
      `<rect class="bar ${r.kind}" x="${px(left)}" y="${y + (ROW_H - BAR_H) / 2}" width="${px(width)}" height="${BAR_H}" fill="${r.colour}"><title>${escapeHtml(r.alt)}</title></rect>`,
      `<text x="${WIDTH - 4}" y="${y + 17}" text-anchor="end" font-size="12" fill="#1a1a1a">${escapeHtml(r.value)}</text>`,
      '</g>',
    ].join('');
  });
  const zero = x(0);
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="waterfall" role="img" aria-labelledby="wf-title wf-desc" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}">`,
    `<title id="wf-title">${escapeHtml(TEXT[lang].title)}</title>`,
    `<desc id="wf-desc">${escapeHtml(all.map((r) => r.alt).join(lang === 'fr' ? '\u00a0; ' : '; '))}</desc>`,
    `<line x1="${px(zero)}" y1="0" x2="${px(zero)}" y2="${height}" stroke="#999" stroke-dasharray="3 3"/>`,
    ...body,
    '</svg>',
  ].join('\n');
  return { svg, scale };
}

/**
 * The report's charts as inline SVG (no script, no external asset): the ROC curve, the calibration plot
 * (observed against predicted by decile) and the histogram of the estimates. Every number drawn is an
 * aggregate the report already shows; suppressed cells are drawn as empty outlines.
 */
import type { DecileFigure } from './report.js';
import { type Cell, SUPPRESSED } from './suppression.js';

const SIZE = 220;
const PAD = 36;
const FULL = SIZE + 2 * PAD;

export const CHART_COLOURS = { line: '#1f5f99', point: '#c0392b', bar: '#3a6ea5', grid: '#bbbbbb' } as const;

const x = (v: number, max = 1) => (PAD + (v / max) * SIZE).toFixed(1);
const y = (v: number, max = 1) => (PAD + SIZE - (v / max) * SIZE).toFixed(1);

function frame(
  cls: string,
  title: string,
  xLabel: string,
  yLabel: string,
  max: number,
  body: string,
): string {
  const ticks = [0, 0.5, 1]
    .map(
      (t) =>
        `<text x="${x(t * max, max)}" y="${PAD + SIZE + 14}" text-anchor="middle">${+(t * max).toFixed(2)}</text>` +
        `<text x="${PAD - 4}" y="${y(t * max, max)}" text-anchor="end" dominant-baseline="middle">${+(t * max).toFixed(2)}</text>`,
    )
    .join('');
  return `<svg class="${cls}" role="img" width="${FULL}" height="${FULL}" viewBox="0 0 ${FULL} ${FULL}" xmlns="http://www.w3.org/2000/svg" font-size="10" font-family="system-ui,sans-serif">
<title>${title}</title>
<rect x="${PAD}" y="${PAD}" width="${SIZE}" height="${SIZE}" fill="none" stroke="${CHART_COLOURS.grid}"/>
${ticks}
<text x="${PAD + SIZE / 2}" y="${FULL - 4}" text-anchor="middle">${xLabel}</text>
<text x="10" y="${PAD + SIZE / 2}" text-anchor="middle" transform="rotate(-90 10 ${PAD + SIZE / 2})">${yLabel}</text>
${body}
</svg>`;
}

const diagonal = `<line class="ideal" x1="${x(0)}" y1="${y(0)}" x2="${x(1)}" y2="${y(1)}" stroke="${CHART_COLOURS.grid}" stroke-dasharray="4 3"/>`;

/** ROC curve: true positive rate against false positive rate, with the chance diagonal. */
export function rocChart(
  points: readonly { fpr: number; tpr: number }[],
  labels: { title: string; x: string; y: string },
): string {
  const path = points.map((p) => `${x(p.fpr)},${y(p.tpr)}`).join(' ');
  const line = `<polyline class="curve" points="${path}" fill="none" stroke="${CHART_COLOURS.line}" stroke-width="2"/>`;
  return frame('roc', labels.title, labels.x, labels.y, 1, diagonal + line);
}

/** Observed rate against mean predicted risk per decile, on a common scale, with the ideal diagonal. */
export function calibrationChart(
  deciles: readonly DecileFigure[],
  labels: { title: string; x: string; y: string },
): string {
  const shown = deciles.filter(
    (d): d is DecileFigure & { meanPredicted: number; observedRate: number } =>
      d.meanPredicted !== SUPPRESSED && d.observedRate !== SUPPRESSED,
  );
  const top = Math.max(0.1, ...shown.flatMap((d) => [d.meanPredicted, d.observedRate]));
  const max = Math.min(1, Math.ceil(top * 10) / 10);
  const ideal = `<line class="ideal" x1="${x(0, max)}" y1="${y(0, max)}" x2="${x(max, max)}" y2="${y(max, max)}" stroke="${CHART_COLOURS.grid}" stroke-dasharray="4 3"/>`;
  const dots = shown
    .map(
      (d) =>
        `<circle class="decile" cx="${x(d.meanPredicted, max)}" cy="${y(d.observedRate, max)}" r="4" fill="${CHART_COLOURS.point}"><title>${d.decile}</title></circle>`,
    )
    .join('');
  return frame('calibration', labels.title, labels.x, labels.y, max, ideal + dots);
}

/** Estimates per tenth of the 0-1 range; a suppressed bin is an empty outline at full height. */
export function histogramChart(
  bins: readonly Cell<number>[],
  labels: { title: string; x: string; y: string; suppressed: string },
): string {
  const counts = bins.map((b) => (b === SUPPRESSED ? 0 : b));
  const max = Math.max(1, ...counts);
  const width = SIZE / bins.length;
  const bars = bins
    .map((b, i) => {
      const left = (PAD + i * width + 1).toFixed(1);
      if (b === SUPPRESSED)
        return `<rect class="bar suppressed" x="${left}" y="${PAD}" width="${(width - 2).toFixed(1)}" height="${SIZE}" fill="none" stroke="${CHART_COLOURS.grid}" stroke-dasharray="2 2"><title>${labels.suppressed}</title></rect>`;
      const h = (b / max) * SIZE;
      return `<rect class="bar" x="${left}" y="${(PAD + SIZE - h).toFixed(1)}" width="${(width - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${CHART_COLOURS.bar}"><title>${i * 10}-${(i + 1) * 10} %: ${b}</title></rect>`;
    })
    .join('');
  const xTicks = [0, 0.5, 1]
    .map((t) => `<text x="${x(t)}" y="${PAD + SIZE + 14}" text-anchor="middle">${t * 100} %</text>`)
    .join('');
  return `<svg class="histogram" role="img" width="${FULL}" height="${FULL}" viewBox="0 0 ${FULL} ${FULL}" xmlns="http://www.w3.org/2000/svg" font-size="10" font-family="system-ui,sans-serif">
<title>${labels.title}</title>
<rect x="${PAD}" y="${PAD}" width="${SIZE}" height="${SIZE}" fill="none" stroke="${CHART_COLOURS.grid}"/>
${xTicks}<text x="${PAD - 4}" y="${PAD}" text-anchor="end" dominant-baseline="middle">${max}</text>
<text x="${PAD + SIZE / 2}" y="${FULL - 4}" text-anchor="middle">${labels.x}</text>
<text x="10" y="${PAD + SIZE / 2}" text-anchor="middle" transform="rotate(-90 10 ${PAD + SIZE / 2})">${labels.y}</text>
${bars}
</svg>`;
}

import t from 'tap';
import { COLOURS, waterfallSvg } from '../../src/explanation-pages/waterfall.js';
import { SCORED } from '../helpers/scored-outcome.js';

function bars(svg: string) {
  return [
    ...svg.matchAll(
      /<rect class="bar (\w+)" x="([\d.]+)" y="[\d.]+" width="([\d.]+)" height="16" fill="(#\w+)">/g,
    ),
  ].map((m) => ({ kind: m[1], x: Number(m[2]), width: Number(m[3]), fill: m[4] }));
}

t.test('one bar per contribution, between the baseline and the estimate, widths proportional', async (t) => {
  const { svg, scale } = waterfallSvg(SCORED, 'en');
  const all = bars(svg);
  t.same(
    all.map((b) => b.kind),
    ['baseline', 'contribution', 'contribution', 'contribution', 'contribution', 'estimate'],
  );
  const contributions = all.filter((b) => b.kind === 'contribution');
  t.equal(contributions.length, SCORED.contributions.length);
  // Largest effect first: 1.5, -0.5, 0.25, 0.
  t.same(
    contributions.map((b) => b.width),
    [1.5, 0.5, 0.25, 0].map((c) => Number((c * scale).toFixed(2))),
  );
  t.same(
    contributions.map((b) => b.fill),
    [COLOURS.raises, COLOURS.lowers, COLOURS.raises, COLOURS.neutral],
  );
  t.equal(all[0]!.width, Number((1 * scale).toFixed(2)), 'baseline bar: |−1|');
  t.equal(all[5]!.width, Number((0.25 * scale).toFixed(2)), 'estimate bar: |−1 + 1.5 − 0.5 + 0.25 + 0|');
  // Each step starts where the previous ended: the first raise starts at the baseline's left end.
  t.equal(contributions[0]!.x, all[0]!.x, 'from −1 up');
  t.ok(Math.abs(contributions[1]!.x - (all[0]!.x + 1 * scale)) < 0.02, 'the fall ends at −1 + 1.5 − 0.5 = 0');
});

t.test('labels carry value and unit, escaped, and the chart has a text alternative', async (t) => {
  const { svg } = waterfallSvg(SCORED, 'en');
  t.notMatch(svg, /<script|<b>|<i>/);
  t.match(svg, 'BMI &lt;script&gt;alert(1)&lt;/script&gt;: 36 kg/m²');
  t.match(svg, 'KL grade 3: not recorded (imputed)', 'an imputed share is not shown as a value');
  t.match(svg, 'Knee injury &amp; &quot;trauma&quot;: not recorded');
  t.match(svg, 'Pain: 7 points (2020-01-01), too old (imputed)', 'a stale value with its date, human unit');
  t.notMatch(svg, /\{score\}|0\.54/);
  t.match(svg, '<title>Knee injury &amp; &quot;trauma&quot;: not recorded: no effect 0</title>', 'no "−0"');
  t.match(svg, '<title>BMI &lt;script&gt;alert(1)&lt;/script&gt;: 36 kg/m²: raises +1.5</title>');
  t.match(svg, /role="img" aria-labelledby="wf-title wf-desc"/);
  t.match(svg, /<desc id="wf-desc">Reference patient: -1; BMI/);
  t.match(svg, /This patient: 0.25 \(56%\)/);
  const fr = waterfallSvg(SCORED, 'fr').svg;
  // French typography (no-break space before : ; and %) and decimal comma.
  t.match(fr, 'IMC &lt;b&gt;\u00a0: 36 kg/m²');
  t.match(fr, 'Grade KL 3\u00a0: non renseigné (imputé)');
  t.match(fr, 'Ce patient\u00a0: 0,25 (56\u00a0%)');
  // Measured against a background sample: the baseline says so.
  const sample = { ...SCORED, background: { kind: 'sample' as const, rows: 100 } };
  t.match(waterfallSvg(sample, 'en').svg, /<desc id="wf-desc">Average of 100 reference patients: -1; BMI/);
  t.match(waterfallSvg(sample, 'fr').svg, /Moyenne de 100 patients de référence \(/);
});

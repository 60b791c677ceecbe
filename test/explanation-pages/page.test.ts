import t from 'tap';
import type { Explanation } from '../../src/explain/explain.js';
import { renderExplanationPage } from '../../src/explanation-pages/page.js';
import type { NotScoredOutcome, ScoredOutcome } from '../../src/scoring/score.js';
import { MODEL, SCORED } from '../helpers/scored-outcome.js';

const page = (model: ScoredOutcome | NotScoredOutcome, language: 'en' | 'fr' = 'en') =>
  renderExplanationPage({
    stored: {
      explanation: {
        model,
        unavailable: [
          { key: 'obs', description: { en: 'Observations <x>', fr: 'Observations' }, reason: 'timeout' },
        ],
      } as unknown as Explanation,
      language,
      summary: 'Knee OA: <summary>',
      exp: Date.UTC(2026, 10, 23, 9, 30) / 1000,
    },
    language,
    intendedUse: 'Demo <use>',
    modelCardUrl: 'https://cds.example.org/models/demo/model-card',
    otherLanguageUrl: '?exp=1&sig=x&lang=fr',
  });

t.test(
  'the page: risk, chart, data with dates and statuses, model card, the patient sentence of its language',
  async (t) => {
    const html = page(SCORED);
    t.notMatch(html, /<script|<b>|<i>|<x>|<use>|<summary>|<model>/, 'every value escaped');
    t.match(
      html,
      '<strong>Estimated risk: 56%</strong> — progression within 24 months. Band: <strong>higher risk</strong>',
    );
    t.equal(html.match(/<rect class="bar contribution"/g)?.length, 4);
    t.match(
      html,
      '<td>KL grade 3</td><td class="n">not recorded</td><td></td><td>—</td><td>not recorded: imputed</td>',
    );
    t.match(
      html,
      '<td>Pain</td><td class="n">7 points (2020-01-01), too old</td><td>7 points</td><td>2020-01-01</td><td>too old: imputed</td>',
    );
    t.match(html, '<td>2026-01-02</td><td>recorded</td><td class="n raises">+1.5</td>');
    t.match(html, 'not recorded: taken as absent');
    t.match(html, 'Observations &lt;x&gt; <small>(timeout)</small>');
    t.match(html, 'Demonstration model…');
    t.match(html, `<code>${'a'.repeat(64)}</code>`);
    t.match(html, 'Demo &lt;use&gt;');
    t.match(html, '<a href="https://cds.example.org/models/demo/model-card">Full model card</a>');
    // One language per page: the patient sentence of the page's language only.
    t.match(html, '<p class="patient">About 44% &lt;i&gt;</p>');
    t.notMatch(html, 'Environ');
    t.match(html, 'This link expires on 2026-11-23 09:30 UTC.');
    const fr = page(SCORED, 'fr');
    t.match(fr, '<html lang="fr">');
    t.match(
      fr,
      '<strong>Risque estimé\u00a0: 56\u00a0%</strong> — progression à 24 mois. Niveau\u00a0: <strong>risque plus élevé</strong>',
    );
    // French typography (no-break space before the colon and %) and decimal comma.
    t.match(
      fr,
      '<td>Grade KL 3</td><td class="n">non renseigné</td><td></td><td>—</td><td>non renseigné\u00a0: imputé</td>',
    );
    t.match(fr, '<p class="patient">Environ 44\u00a0% &lt;i&gt;</p>');
    t.notMatch(fr, 'About 44');
  },
);

t.test('a not-scored page gives the reasons instead of the chart', async (t) => {
  const html = page({
    status: 'not-scored',
    model: MODEL,
    reasons: [{ code: 'out-of-population', text: { en: 'aged under 45 <y>', fr: 'moins de 45 ans' } }],
    values: [],
    population: { en: 'adults', fr: 'adultes' },
  });
  t.match(html, '<strong>No estimate</strong>');
  t.match(html, '<ul class="reasons"><li>aged under 45 &lt;y&gt;</li></ul>');
  t.notMatch(html, '<svg');
  t.notMatch(html, 'Data used');
});

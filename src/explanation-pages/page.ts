/**
 * The explanation page of a model-based card, one self-contained HTML document: the estimate with its
 * band and horizon, the waterfall chart, the data used (dates, what was imputed, stale or taken as
 * absent, what could not be obtained), a summary of the model card, and the sentences for the patient
 * in the page's language; for a card without an estimate, the reasons instead of the chart. Inline
 * style only, no script, no external asset; every value is escaped.
 */
import { escapeHtml } from '../analytics/page.js';
import type { FeatureValue } from '../scoring/features.js';
import type { ModelOutcome, ScoredOutcome } from '../scoring/score.js';
import type { StoredExplanation } from './store.js';
import { chartOrder, COLOURS, signed, waterfallSvg } from './waterfall.js';
import { formatRecorded, formatValue } from '../scoring/display.js';
import { colon, decimal, type Language, typeset } from '../language.js';
import { recordedText, riskText } from '../cards/detail.js';

export interface PageInput {
  stored: StoredExplanation;
  language: Language;
  /** The model's intended use, from its model card (when it states one). */
  intendedUse: string | undefined;
  modelCardUrl: string;
  /** This page in the other language. */
  otherLanguageUrl: string;
}

const TEXT = {
  en: {
    title: 'Explanation of the estimate',
    other: 'Version française',
    risk: 'Estimated risk',
    within: 'within',
    months: 'months',
    band: 'Band',
    population: 'Population',
    chart: 'Contributions of each factor',
    chartNote:
      'On the log-odds scale, where the effects add up: the reference (the average of the model’s reference patients), then each factor, largest first, then this patient. Red raises the estimate, green lowers it.',
    noEstimate: 'No estimate',
    reasons: 'Why there is no estimate',
    data: 'Data used',
    factor: 'Factor',
    value: 'Value',
    recorded: 'As recorded',
    date: 'Date',
    status: 'Status',
    effect: 'Effect (log-odds)',
    observed: 'recorded',
    imputedMissing: 'not recorded: imputed',
    imputedStale: 'too old: imputed',
    assumedAbsent: 'not recorded: taken as absent',
    unavailable: 'Data that could not be obtained',
    model: 'Model',
    version: 'Version',
    sha: 'SHA-256 of the model file',
    intendedUse: 'Intended use',
    modelCard: 'Full model card',
    patient: 'For the patient',
    advisory: 'Advisory only: the decision is yours.',
    expires: 'This link expires on',
    card: 'Card',
  },
  fr: {
    title: 'Explication de l’estimation',
    other: 'English version',
    risk: 'Risque estimé',
    within: 'à',
    months: 'mois',
    band: 'Niveau',
    population: 'Population',
    chart: 'Contribution de chaque facteur',
    chartNote:
      'Sur l’échelle des logits, où les effets s’additionnent : la référence (la moyenne des patients de référence du modèle), puis chaque facteur, du plus fort au plus faible, puis ce patient. Rouge : augmente l’estimation ; vert : la diminue.',
    noEstimate: 'Pas d’estimation',
    reasons: 'Pourquoi pas d’estimation',
    data: 'Données utilisées',
    factor: 'Facteur',
    value: 'Valeur',
    recorded: 'Tel que renseigné',
    date: 'Date',
    status: 'Statut',
    effect: 'Effet (logit)',
    observed: 'renseigné',
    imputedMissing: 'non renseigné : imputé',
    imputedStale: 'trop ancien : imputé',
    assumedAbsent: 'non renseigné : considéré comme absent',
    unavailable: 'Données qui n’ont pas pu être obtenues',
    model: 'Modèle',
    version: 'Version',
    sha: 'SHA-256 du fichier du modèle',
    intendedUse: 'Usage prévu',
    modelCard: 'Fiche complète du modèle',
    patient: 'Pour le patient',
    advisory: 'Aide à la décision seulement : la décision vous appartient.',
    expires: 'Ce lien expire le',
    card: 'Carte',
  },
} as const;

const e = escapeHtml;

const STYLE = `body{font:15px/1.45 system-ui,sans-serif;margin:1.5rem auto;max-width:52rem;padding:0 1rem;color:#1a1a1a;background:#fff}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
.status{background:#fff4ce;border:1px solid #c9a400;padding:.5rem .75rem}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:.25rem .4rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.raises{color:${COLOURS.raises}}.lowers{color:${COLOURS.lowers}}.neutral{color:${COLOURS.neutral}}
code{word-break:break-all}small{color:#555}`;

function statusText(v: FeatureValue, lang: Language): string {
  const t = TEXT[lang];
  if (v.status === 'assumed-absent') return t.assumedAbsent;
  if (v.status === 'imputed') return v.imputedBecause === 'stale' ? t.imputedStale : t.imputedMissing;
  return t.observed;
}

function dataTable(
  values: readonly (FeatureValue & { contribution?: number; direction?: string })[],
  lang: Language,
): string {
  const t = TEXT[lang];
  const withEffect = values.some((v) => v.contribution !== undefined);
  const rows = values.map((v) => {
    const value = v.status === 'assumed-absent' ? '—' : formatValue(v, lang);
    // As recorded, in human units; a recorded boolean or code says nothing the value does not.
    const recorded =
      v.recorded === undefined
        ? ''
        : /^-?\d/.test(v.recorded)
          ? formatRecorded(v.recorded, lang)
          : recordedText(v.recorded, lang);
    const effect =
      v.contribution === undefined
        ? ''
        : `<td class="n ${e(v.direction ?? '')}">${decimal(signed(v.contribution), lang)}</td>`;
    return `<tr><td>${e(v.label[lang])}</td><td class="n">${e(value)}</td><td>${e(recorded)}</td><td>${e(v.date?.slice(0, 10) ?? '—')}</td><td>${e(statusText(v, lang))}</td>${effect}</tr>`;
  });
  return `<table><thead><tr><th>${t.factor}</th><th>${t.value}</th><th>${t.recorded}</th><th>${t.date}</th><th>${t.status}</th>${withEffect ? `<th>${t.effect}</th>` : ''}</tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function scoredSection(m: ScoredOutcome, lang: Language): string {
  const t = TEXT[lang];
  const c = colon(lang);
  const horizon = m.horizonMonths > 0 ? ` ${t.within} ${m.horizonMonths} ${t.months}` : '';
  const { svg } = waterfallSvg(m, lang);
  return `<p class="risk"><strong>${t.risk}${c} ${e(riskText(m.probability, lang))}</strong> — ${e(m.outcome[lang])}${e(horizon)}. ${t.band}${c} <strong>${e(m.band.label[lang])}</strong>.</p>
<p>${t.population}${c} ${e(m.population[lang])}</p>
<h2>${t.chart}</h2>
<p><small>${t.chartNote}</small></p>
<figure>${svg}</figure>
<h2>${t.data}</h2>
${dataTable(chartOrder(m.contributions), lang)}
<h2>${t.patient}</h2>
<p class="patient">${e(typeset(m.patientSentence[lang], lang))}</p>`;
}

function notScoredSection(m: ModelOutcome & { status: 'not-scored' }, lang: Language): string {
  const t = TEXT[lang];
  const c = colon(lang);
  const reasons = m.reasons.map((r) => `<li>${e(r.text[lang])}</li>`).join('');
  return `<p class="risk"><strong>${t.noEstimate}</strong></p>
<h2>${t.reasons}</h2><ul class="reasons">${reasons}</ul>
<p>${t.population}${c} ${e(m.population[lang])}</p>
${m.values.length > 0 ? `<h2>${t.data}</h2>${dataTable(m.values, lang)}` : ''}`;
}

/** The whole page. */
export function renderExplanationPage(input: PageInput): string {
  const { stored, language: lang } = input;
  const t = TEXT[lang];
  const c = colon(lang);
  const model = stored.explanation.model!;
  const m = model.model;
  const body =
    model.status === 'scored'
      ? scoredSection(model, lang)
      : model.status === 'not-scored'
        ? notScoredSection(model, lang)
        : '';
  const unavailable = stored.explanation.unavailable.map(
    (u) => `<li>${e(u.description[lang])} <small>(${e(u.reason)})</small></li>`,
  );
  const expires = new Date(stored.exp * 1000).toISOString().replace('T', ' ').slice(0, 16);
  // French typography over the whole page: its own texts and the definitions' (colon, semicolon).
  return typeset(
    `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">
<title>${t.title}${c} ${e(m.title[lang])}</title><style>${STYLE}</style></head>
<body>
<p><a href="${e(input.otherLanguageUrl)}" hreflang="${lang === 'en' ? 'fr' : 'en'}">${t.other}</a></p>
<h1>${t.title}${c} ${e(m.title[lang])}</h1>
<p class="status">${e(m.statusText[lang])}</p>
<p>${t.card}${c} ${e(stored.summary)}</p>
${body}
${unavailable.length > 0 ? `<h2>${t.unavailable}</h2><ul>${unavailable.join('')}</ul>` : ''}
<h2>${t.model}</h2>
<table class="model"><tbody>
<tr><th>${t.model}</th><td>${e(m.title[lang])} (<code>${e(m.id)}</code>)</td></tr>
<tr><th>${t.version}</th><td>${e(m.version)}</td></tr>
<tr><th>${t.status}</th><td>${e(m.statusText[lang])}</td></tr>
${input.intendedUse ? `<tr><th>${t.intendedUse}</th><td>${e(input.intendedUse)}</td></tr>` : ''}
<tr><th>${t.sha}</th><td><code>${e(m.sha256)}</code></td></tr>
</tbody></table>
<p><a href="${e(input.modelCardUrl)}">${t.modelCard}</a></p>
<p><small>${t.advisory} ${t.expires} ${e(expires)} UTC.</small></p>
</body></html>
`,
    lang,
  );
}

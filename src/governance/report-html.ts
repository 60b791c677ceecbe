/**
 * The governance report as one self-contained HTML page in English or French: inline CSS and SVG charts
 * (./charts.ts), no script, no external asset, every label from the data escaped. It shows what the JSON
 * holds, in the same order; suppressed cells read "suppressed" / "masqué".
 */
import { escapeHtml } from '../analytics/page.js';
import { UNCODED } from '../analytics/report.js';
import { OVERRIDE_REASONS, type OverrideReasonCode } from '../codes.js';
import type { Interval } from './metrics.js';
import { calibrationChart, histogramChart, rocChart } from './charts.js';
import type {
  ClassificationFigures,
  DriftFigure,
  GovernanceReport,
  ModelSection,
  PerformanceFigures,
  RuleSection,
} from './report.js';
import { type Cell, type Rate, SUPPRESSED } from './suppression.js';

type Lang = 'en' | 'fr';

const TEXT = {
  en: {
    title: 'Local validation report',
    intro: (from: string, to: string, min: number) =>
      `Estimates and cards from ${from} to ${to}, linked to the outcomes found later in the records. Figures describing fewer than ${min} patients are suppressed. No patient identifier, birth date or exact date is shown: times are ISO weeks.`,
    generated: 'Generated',
    demo: 'The bundled models are demonstration models trained on simulated data: their figures describe the platform, not a clinical performance.',
    models: 'Models',
    noModel: 'No model estimate in this period.',
    live: 'live (cards shown)',
    silent: 'silent (recorded, no card shown)',
    services: 'Services',
    weeks: 'Weeks',
    scored: 'Estimates',
    outcomeKnown: 'With a known outcome',
    events: 'Outcome occurred',
    auc: 'AUC (95 % CI, DeLong)',
    slope: 'Calibration slope (ideal 1)',
    intercept: 'Calibration intercept, in the large (ideal 0)',
    sensitivity: 'Sensitivity at the card threshold',
    specificity: 'Specificity',
    ppv: 'Positive predictive value',
    npv: 'Negative predictive value',
    confusion: 'True / false positives, true / false negatives',
    deciles: 'Calibration by decile of predicted risk',
    decile: 'Decile',
    rows: 'Patients',
    predicted: 'Mean predicted',
    observed: 'Observed',
    subgroups: 'By subgroup of the model card',
    subgroup: 'Subgroup',
    drift: 'Drift against the background sample (PSI: below 0.1 stable, 0.1-0.25 moderate, above 0.25 major)',
    noBackground: 'No background sample: drift not computed.',
    of: 'Of',
    risk: 'the estimated risk',
    level: { stable: 'stable', moderate: 'moderate shift', major: 'major shift' },
    roc: { title: 'ROC curve', x: 'False positive rate', y: 'True positive rate' },
    calibration: { title: 'Calibration', x: 'Predicted risk', y: 'Observed rate' },
    histogram: {
      title: 'Distribution of the estimates',
      x: 'Estimated risk',
      y: 'Estimates',
      suppressed: 'suppressed',
    },
    rocNone: 'ROC curve: not enough patients with and without the outcome.',
    rules: 'Rules',
    noRule: 'No rule card in this period.',
    template: 'Card',
    shown: 'Cards shown',
    alertRate: 'Alert rate (share of calls)',
    accepted: 'Accepted',
    overridden: 'Overridden',
    reasons: 'Override reasons',
    ruleOutcome: 'Outcome',
    outcomeKnownShort: 'known',
    ppvAccepted: 'accepted cards',
    ppvOverridden: 'overridden cards',
    ruleNote:
      'PPV of a card: among its cards whose outcome is known (the patient’s later data was present), the share followed by the outcome the service defines, counted per card. Following a card can prevent the harm it warns of, or bring the test that finds it: the PPV of accepted and of overridden cards is shown apart.',
    suppressed: 'suppressed',
    uncoded: 'No coded reason (comment only)',
    undefined: '—',
  },
  fr: {
    title: 'Rapport de validation locale',
    intro: (from: string, to: string, min: number) =>
      `Estimations et cartes du ${from} au ${to}, reliées aux évènements retrouvés ensuite dans les dossiers. Les chiffres portant sur moins de ${min} patients sont masqués. Aucun identifiant de patient, date de naissance ni date exacte n’apparaît : les périodes sont des semaines ISO.`,
    generated: 'Produit le',
    demo: 'Les modèles fournis sont des modèles de démonstration entraînés sur des données simulées : leurs chiffres illustrent la plateforme, pas une performance clinique.',
    models: 'Modèles',
    noModel: 'Aucune estimation sur cette période.',
    live: 'en service (cartes affichées)',
    silent: 'silencieux (enregistré, aucune carte affichée)',
    services: 'Services',
    weeks: 'Semaines',
    scored: 'Estimations',
    outcomeKnown: 'Avec évolution connue',
    events: 'Évènement survenu',
    auc: 'AUC (IC 95 %, DeLong)',
    slope: 'Pente de calibration (idéal 1)',
    intercept: 'Ordonnée de calibration globale (idéal 0)',
    sensitivity: 'Sensibilité au seuil de la carte',
    specificity: 'Spécificité',
    ppv: 'Valeur prédictive positive',
    npv: 'Valeur prédictive négative',
    confusion: 'Vrais / faux positifs, vrais / faux négatifs',
    deciles: 'Calibration par décile de risque prédit',
    decile: 'Décile',
    rows: 'Patients',
    predicted: 'Prédit moyen',
    observed: 'Observé',
    subgroups: 'Par sous-groupe de la fiche du modèle',
    subgroup: 'Sous-groupe',
    drift:
      'Dérive par rapport à l’échantillon de référence (PSI : sous 0,1 stable, 0,1-0,25 modérée, au-delà de 0,25 majeure)',
    noBackground: 'Pas d’échantillon de référence : dérive non calculée.',
    of: 'De',
    risk: 'le risque estimé',
    level: { stable: 'stable', moderate: 'dérive modérée', major: 'dérive majeure' },
    roc: { title: 'Courbe ROC', x: 'Taux de faux positifs', y: 'Taux de vrais positifs' },
    calibration: { title: 'Calibration', x: 'Risque prédit', y: 'Taux observé' },
    histogram: {
      title: 'Distribution des estimations',
      x: 'Risque estimé',
      y: 'Estimations',
      suppressed: 'masqué',
    },
    rocNone: 'Courbe ROC : pas assez de patients avec et sans l’évènement.',
    rules: 'Règles',
    noRule: 'Aucune carte de règle sur cette période.',
    template: 'Carte',
    shown: 'Cartes affichées',
    alertRate: 'Taux d’alerte (part des appels)',
    accepted: 'Acceptées',
    overridden: 'Écartées',
    reasons: 'Motifs d’écart',
    ruleOutcome: 'Évènement',
    outcomeKnownShort: 'connus',
    ppvAccepted: 'cartes acceptées',
    ppvOverridden: 'cartes écartées',
    ruleNote:
      'VPP d’une carte : parmi ses cartes dont l’évolution est connue (données ultérieures du patient présentes), la part suivie de l’évènement que le service définit, comptée par carte. Suivre une carte peut prévenir le risque qu’elle signale, ou amener l’examen qui le révèle : la VPP des cartes acceptées et celle des cartes écartées sont données à part.',
    suppressed: 'masqué',
    uncoded: 'Sans motif codé (commentaire seul)',
    undefined: '—',
  },
} as const;

type Text = (typeof TEXT)[Lang];

function formatters(lang: Lang, t: Text) {
  const num = (v: number, digits: number) => {
    const s = v.toFixed(digits);
    return lang === 'fr' ? s.replace('.', ',') : s;
  };
  const cell = <T>(v: Cell<T> | null, show: (x: T) => string) =>
    v === null ? t.undefined : v === SUPPRESSED ? `<span class="suppressed">${t.suppressed}</span>` : show(v);
  const ci = (i: Interval, f: (x: number) => string) => `${f(i.low)}–${f(i.high)}`;
  const pct = (v: number) => `${num(v * 100, 1)} %`;
  const rate = (r: Cell<Rate> | null) => cell(r, (x) => `${pct(x.value)} <small>(${ci(x.ci, pct)})</small>`);
  const count = (c: Cell<number>) => cell(c, (x) => String(x));
  return { num, cell, ci, pct, rate, count };
}

function performanceRows(p: PerformanceFigures, f: ReturnType<typeof formatters>, t: Text): string {
  const c: ClassificationFigures = p.atThreshold;
  const rows: [string, string][] = [
    [t.outcomeKnown, f.count(p.n)],
    [t.events, f.count(p.events)],
    [t.auc, f.cell(p.auc, (a) => `${f.num(a.value, 3)} <small>(${f.ci(a.ci, (x) => f.num(x, 3))})</small>`)],
    [t.slope, f.cell(p.calibrationSlope, (v) => f.num(v, 2))],
    [t.intercept, f.cell(p.calibrationIntercept, (v) => f.num(v, 2))],
    [t.sensitivity, f.rate(c.sensitivity)],
    [t.specificity, f.rate(c.specificity)],
    [t.ppv, f.rate(c.ppv)],
    [t.npv, f.rate(c.npv)],
    [t.confusion, [c.tp, c.fp, c.tn, c.fn].map(f.count).join(' / ')],
  ];
  return rows.map(([label, value]) => `<tr><th>${label}</th><td class="n">${value}</td></tr>`).join('');
}

function driftRow(d: DriftFigure, f: ReturnType<typeof formatters>, t: Text): string {
  const name = d.of === 'risk' ? t.risk : `<code>${escapeHtml(d.of)}</code>`;
  return `<tr><td>${name}</td><td class="n">${f.cell(d.psi, (v) => f.num(v, 3))}</td><td>${f.cell(d.level, (l) => t.level[l])}</td></tr>`;
}

function modelSection(m: ModelSection, f: ReturnType<typeof formatters>, t: Text): string {
  const heading = `${escapeHtml(m.title ?? m.modelId)} <small>${escapeHtml(m.modelId)} ${escapeHtml(m.modelVersion)} · ${m.mode === 'live' ? t.live : t.silent}</small>`;
  const deciles = m.deciles
    .map(
      (d) =>
        `<tr><td>${d.decile}</td><td class="n">${f.count(d.n)}</td><td class="n">${f.cell(d.meanPredicted, f.pct)}</td><td class="n">${f.cell(d.observedRate, f.pct)}</td></tr>`,
    )
    .join('');
  const figure = (title: string, svg: string) => `<figure><figcaption>${title}</figcaption>${svg}</figure>`;
  const roc =
    m.roc === null || m.roc === SUPPRESSED
      ? `<p class="note">${t.rocNone}</p>`
      : figure(t.roc.title, rocChart(m.roc, t.roc));
  const subgroups = m.subgroups
    .map(
      (s) =>
        `<h4>${t.subgroup}: ${escapeHtml(s.variable)} = ${escapeHtml(s.group)}</h4><table class="figures">${performanceRows(s.figures, f, t)}</table>`,
    )
    .join('');
  const drift = m.drift
    ? `<table><tr><th>${t.of}</th><th>PSI</th><th></th></tr>${[...(m.drift.risk ? [m.drift.risk] : []), ...m.drift.inputs].map((d) => driftRow(d, f, t)).join('')}</table>`
    : `<p class="note">${t.noBackground}</p>`;
  return `<section class="model">
<h3>${heading}</h3>
${m.statusText ? `<p class="status">${escapeHtml(m.statusText)}</p>` : ''}
<table class="figures">
<tr><th>${t.services}</th><td>${m.serviceIds.map(escapeHtml).join(', ')}</td></tr>
<tr><th>${t.weeks}</th><td>${escapeHtml(m.weeks.first)} – ${escapeHtml(m.weeks.last)}</td></tr>
<tr><th>${t.scored}</th><td class="n">${f.count(m.scored)}</td></tr>
${performanceRows(m.overall, f, t)}
</table>
<div class="charts">${roc}${figure(t.calibration.title, calibrationChart(m.deciles, t.calibration))}${figure(t.histogram.title, histogramChart(m.riskHistogram, t.histogram))}</div>
<h4>${t.deciles}</h4>
<table><tr><th>${t.decile}</th><th>${t.rows}</th><th>${t.predicted}</th><th>${t.observed}</th></tr>${deciles}</table>
<h4>${t.drift}</h4>
${drift}
<details><summary>${t.subgroups}</summary>${subgroups}</details>
</section>`;
}

/** A coded override reason as a person reads it (`uncoded`: a comment without a code, see src/analytics). */
function reasonLabel(code: string, lang: Lang): string {
  if (code === UNCODED) return TEXT[lang].uncoded;
  return OVERRIDE_REASONS[code as OverrideReasonCode]?.[lang] ?? code;
}

function ruleRow(r: RuleSection, f: ReturnType<typeof formatters>, lang: Lang): string {
  const reasons = r.overrideReasons
    .map((x) => `${escapeHtml(reasonLabel(x.reason, lang))}: ${f.count(x.count)}`)
    .join('<br>');
  return `<tr><td>${escapeHtml(r.serviceId)}<br><small>${escapeHtml(r.template)}</small></td><td class="n">${f.count(r.cardsShown)}</td><td class="n">${f.rate(r.alertRate)}</td><td class="n">${f.rate(r.acceptanceRate)}</td><td class="n">${f.rate(r.overrideRate)}</td><td>${reasons || '—'}</td><td class="n">${ruleOutcome(r, f, lang)}</td></tr>`;
}

/** The PPV cell of a rule: the outcome it counts, the PPV, and the PPV of accepted and overridden cards. */
function ruleOutcome(r: RuleSection, f: ReturnType<typeof formatters>, lang: Lang): string {
  const t = TEXT[lang];
  // A report stored before the outcome fields existed has the PPV only.
  const outcome = r.outcome ?? null;
  const outcomeKnown = r.outcomeKnown ?? null;
  if (outcome === null && outcomeKnown === null) return f.rate(r.ppv);
  const label = outcome ? `<small>${t.ruleOutcome}: ${escapeHtml(outcome.label[lang])}</small><br>` : '';
  const known =
    outcomeKnown === null ? '' : ` <small>(${t.outcomeKnownShort}: ${f.count(outcomeKnown)})</small>`;
  return `${label}${f.rate(r.ppv)}${known}<br><small>${t.ppvAccepted}: ${f.rate(r.ppvAccepted ?? null)}<br>${t.ppvOverridden}: ${f.rate(r.ppvOverridden ?? null)}</small>`;
}

/**
 * Renders the report as a self-contained HTML page.
 * @param lang the language of every label (the data's own labels are shown as they are)
 */
export function renderReportHtml(report: GovernanceReport, lang: Lang): string {
  const t = TEXT[lang];
  const f = formatters(lang, t);
  const models = report.models.length
    ? report.models.map((m) => modelSection(m, f, t)).join('\n')
    : `<p>${t.noModel}</p>`;
  const rules = report.rules.length
    ? `<table><tr><th>${t.template}</th><th>${t.shown}</th><th>${t.alertRate}</th><th>${t.accepted}</th><th>${t.overridden}</th><th>${t.reasons}</th><th>${t.ppv}</th></tr>${report.rules.map((r) => ruleRow(r, f, lang)).join('')}</table><p class="note">${t.ruleNote}</p>`
    : `<p>${t.noRule}</p>`;
  return `<!doctype html>
<html lang="${lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${t.title}</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:2rem;color:#1b1b1b;max-width:64rem}
h3 small{font-weight:normal;color:#555;font-size:.75em}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border-bottom:1px solid #ddd;padding:.25rem .75rem;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.suppressed{color:#777;font-style:italic}
.charts{display:flex;flex-wrap:wrap;gap:1rem}
figure{margin:0}figcaption{font-weight:600;text-align:center}
.status,.demo{background:#fff4d6;border-left:4px solid #e0a800;padding:.4rem .8rem}
section.model{border-top:2px solid #3a6ea5;margin-top:2rem}
</style>
</head>
<body>
<h1>${t.title}</h1>
<p>${escapeHtml(t.intro(report.period.from, report.period.to, report.minCellSize))}</p>
<p class="demo">${t.demo}</p>
<h2>${t.models}</h2>
${models}
<h2>${t.rules}</h2>
${rules}
<footer><small>${t.generated} ${escapeHtml(report.generatedAt.slice(0, 10))}</small></footer>
</body>
</html>
`;
}

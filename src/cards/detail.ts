/**
 * The markdown of `card.detail`: the service's own text, then why the card says what it says (each
 * rule with its score and the items that scored, or the values that made it fire; rules that could
 * not be evaluated and why), the data that was not available, and the provenance. Values from the
 * record are escaped so they cannot inject markdown or HTML into the EHR's rendering.
 */
import type { Explanation } from '../explain/explain.js';
import { formatRisk, type ModelOutcome } from '../scoring/score.js';
import type { RuleResult } from '../rules/evaluate.js';
import { colon, decimal, inLanguage, type Language, semicolon } from '../language.js';

const TEXT = {
  en: {
    threshold: 'threshold',
    reached: 'referral threshold reached',
    notReached: 'below the threshold',
    incomplete: 'incomplete: the items not recorded could reach the threshold',
    item: 'Item',
    points: 'Points',
    noItemScored: 'No item scored.',
    notRecorded: 'Not recorded',
    notEvaluated: 'not evaluated',
    staleData: 'not evaluated, data too old',
    fired: 'applies',
    doesNotApply: 'does not apply',
    source: 'Source',
    unavailable: 'Data not available',
    examined: 'Recorded on',
    ruleSet: 'Rule set',
    sources: 'Sources',
    advisory: 'Advisory only: the decision is yours. You can dismiss this card and give a reason.',
    risk: 'estimated risk',
    within: 'within',
    months: 'months',
    noEstimate: 'no estimate',
    population: 'Population',
    factor: 'Factor',
    value: 'Value',
    date: 'Date',
    effect: 'Effect on the estimate',
    raises: 'raises',
    lowers: 'lowers',
    neutral: 'no effect',
    imputed: 'Imputed (a stated value was used)',
    becauseMissing: 'not recorded',
    becauseStale: 'too old',
    assumedAbsent: 'Not recorded, taken as absent',
    otherFactors: (n: number) =>
      n === 1
        ? '1 smaller factor is listed in the full explanation'
        : `${n} smaller factors are listed in the full explanation`,
    yes: 'yes',
    no: 'no',
    recordedValue: 'recorded',
    why: 'Why no estimate',
    beyond: 'Beyond the calibrated range of the model card',
    calibrated: 'calibrated',
    lessReliable: 'the estimate is less reliable there',
    forPatient: 'For the patient',
  },
  fr: {
    threshold: 'seuil',
    reached: 'seuil d’orientation atteint',
    notReached: 'sous le seuil',
    incomplete: 'incomplète : les critères non renseignés pourraient atteindre le seuil',
    item: 'Critère',
    points: 'Points',
    noItemScored: 'Aucun critère ne rapporte de point.',
    notRecorded: 'Non renseigné',
    notEvaluated: 'non évalué',
    staleData: 'non évalué, donnée trop ancienne',
    fired: 's’applique',
    doesNotApply: 'ne s’applique pas',
    source: 'Source',
    unavailable: 'Données non disponibles',
    examined: 'Renseigné le',
    ruleSet: 'Règles',
    sources: 'Sources',
    advisory:
      'Aide à la décision seulement : la décision vous appartient. Vous pouvez écarter cette carte en indiquant un motif.',
    risk: 'risque estimé',
    within: 'à',
    months: 'mois',
    noEstimate: 'pas d’estimation',
    population: 'Population',
    factor: 'Facteur',
    value: 'Valeur',
    date: 'Date',
    effect: 'Effet sur l’estimation',
    raises: 'augmente',
    lowers: 'diminue',
    neutral: 'sans effet',
    imputed: 'Imputé (une valeur déclarée a été utilisée)',
    becauseMissing: 'non renseigné',
    becauseStale: 'trop ancien',
    assumedAbsent: 'Non renseigné, considéré comme absent',
    otherFactors: (n: number) =>
      n === 1
        ? 'un facteur plus faible figure dans l’explication complète'
        : `${n} facteurs plus faibles figurent dans l’explication complète`,
    yes: 'oui',
    no: 'non',
    recordedValue: 'renseigné',
    why: 'Pourquoi pas d’estimation',
    beyond: 'Hors de l’intervalle calibré de la fiche du modèle',
    calibrated: 'calibré',
    lessReliable: 'l’estimation y est moins fiable',
    forPatient: 'Pour le patient',
  },
} as const;

/** Escapes markdown and HTML metacharacters in a value taken from the record. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}

function ruleSection(rule: RuleResult, lang: Language): string {
  const t = TEXT[lang];
  const c = colon(lang);
  const title = rule.title[lang];
  if (rule.status === 'not-evaluable') {
    return `**${title}${c} ${t.notEvaluated}** (${escapeMarkdown(rule.reason?.[lang] ?? '')})`;
  }
  if (rule.status === 'stale') {
    return `**${title}${c} ${t.staleData}** (${escapeMarkdown(rule.reason?.[lang] ?? '')})`;
  }
  if (rule.kind === 'checklist') {
    const verdict = rule.status === 'fired' ? t.reached : rule.incomplete ? t.incomplete : t.notReached;
    const lines = [`**${title}${c} ${rule.score} (${t.threshold} ${rule.threshold}) — ${verdict}**`];
    const scored = (rule.items ?? []).filter((i) => i.status === 'present');
    if (scored.length === 0) lines.push('', t.noItemScored);
    else {
      lines.push('', `| ${t.item} | ${t.points} |`, '|---|---:|');
      for (const item of scored) lines.push(`| ${item.label[lang]} | ${item.points} |`);
    }
    const missing = (rule.items ?? []).filter((i) => i.status === 'not-recorded');
    if (missing.length > 0)
      lines.push('', `${t.notRecorded}${c} ${missing.map((i) => i.label[lang]).join(', ')}.`);
    return lines.join('\n');
  }
  // Evidence with no value (e.g. "ordered in this session" when nothing is) says nothing: left out.
  const evidence = (rule.evidence ?? [])
    .filter((e) => e.values.length > 0)
    .map((e) => `${e.label[lang]}${c} ${e.values.map(escapeMarkdown).join(', ')}`)
    .join(semicolon(lang));
  if (rule.status !== 'fired') return `**${title}${c} ${t.doesNotApply}**`;
  const { url } = rule.source;
  const label = inLanguage(rule.source.label, lang);
  const source = `${t.source}${c} ${url ? `[${label}](${url})` : label}`;
  return `**${title}${c} ${t.fired}**${evidence ? ` — ${evidence}` : ''}. _${source}_`;
}

/** How many factors the card lists; all of them are in the extension and the explanation page. */
export const TOP_FACTORS = 5;

/** UCUM units as a clinician reads them: dimensionless units are not shown. */
function unitText(unit: string): string {
  return unit === '1' || unit === '{score}' ? '' : ` ${unit}`;
}

function number(value: number, lang: Language): string {
  return decimal(String(Math.round(value * 100) / 100), lang);
}

/** A risk as written in `lang`: French puts a no-break space before `%` (Imprimerie nationale). */
export function riskText(probability: number, lang: Language): string {
  const text = formatRisk(probability);
  return lang === 'fr' ? decimal(text, lang).replace(/ ?%/, '\u00a0%') : text;
}

/** A value as recorded, in `lang` (booleans read yes/no, a presence "recorded"). */
export function recordedText(recorded: string, lang: Language): string {
  if (recorded === 'true') return TEXT[lang].yes;
  if (recorded === 'false') return TEXT[lang].no;
  if (recorded === 'recorded') return TEXT[lang].recordedValue;
  return decimal(lang === 'fr' ? recorded.replace(/\b(\d+) values\)/, '$1 valeurs)') : recorded, lang);
}

function modelSection(model: ModelOutcome, lang: Language): string {
  const t = TEXT[lang];
  const c = colon(lang);
  const m = model.model;
  const head = `${m.title[lang]} \`${m.id}\` ${m.version}`;
  if (model.status === 'objection') return '';
  if (model.status === 'not-scored') {
    return [
      `**${head}${c} ${t.noEstimate}**`,
      `_${m.statusText[lang]}_`,
      `${t.why}${c} ${model.reasons.map((r) => escapeMarkdown(r.text[lang])).join(semicolon(lang))}.`,
      `${t.population}${c} ${model.population[lang]}`,
    ].join('\n\n');
  }
  const lines = [
    `**${head}${c} ${t.risk} ${riskText(model.probability, lang)} (${model.band.label[lang]}), ${model.outcome[lang]}${model.horizonMonths > 0 ? `, ${t.within} ${model.horizonMonths} ${t.months}` : ''}**`,
    '',
    `_${m.statusText[lang]}_`,
    '',
    `${t.population}${c} ${model.population[lang]}`,
  ];
  const beyond = model.beyondCalibratedRange;
  if (beyond) {
    const items = [
      ...(beyond.risk
        ? [
            `${t.risk} ${formatRisk(beyond.risk.value)} (${t.calibrated} ${formatRisk(beyond.risk.min)}–${formatRisk(beyond.risk.max)})`,
          ]
        : []),
      ...beyond.inputs.map(
        (i) =>
          `${i.label[lang]} ${number(i.value, lang)}${unitText(i.unit)} (${t.calibrated} ${i.min}–${i.max})`,
      ),
    ];
    lines.push('', `**${t.beyond}**${c} ${items.join(semicolon(lang))}${c} ${t.lessReliable}.`);
  }
  const ranked = model.contributions
    .filter((c) => c.status !== 'assumed-absent' || c.direction !== 'neutral')
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution));
  const top = ranked.slice(0, TOP_FACTORS);
  if (top.length > 0) {
    lines.push('', `| ${t.factor} | ${t.value} | ${t.date} | ${t.effect} |`, '|---|---|---|---|');
    for (const f of top) {
      const value =
        f.status === 'assumed-absent' ? t.becauseMissing : `${number(f.value, lang)}${unitText(f.unit)}`;
      const recorded = f.recorded ? ` (${escapeMarkdown(recordedText(f.recorded, lang))})` : '';
      const arrow = f.direction === 'raises' ? '↑' : f.direction === 'lowers' ? '↓' : '·';
      lines.push(
        `| ${f.label[lang]} | ${escapeMarkdown(value)}${recorded} | ${f.date ? escapeMarkdown(f.date.slice(0, 10)) : '—'} | ${arrow} ${t[f.direction]} (${f.contribution >= 0 ? '+' : ''}${number(f.contribution, lang)}) |`,
      );
    }
    if (ranked.length > top.length) lines.push('', `(${t.otherFactors(ranked.length - top.length)}.)`);
  }
  const imputed = model.contributions.filter((c) => c.status === 'imputed');
  if (imputed.length > 0) {
    const items = imputed.map(
      (f) =>
        `${f.label[lang]} = ${number(f.value, lang)}${unitText(f.unit)} (${f.imputedBecause === 'stale' ? t.becauseStale : t.becauseMissing})`,
    );
    lines.push('', `${t.imputed}${c} ${items.join(semicolon(lang))}.`);
  }
  const absent = model.contributions.filter((c) => c.status === 'assumed-absent');
  if (absent.length > 0)
    lines.push('', `${t.assumedAbsent}${c} ${absent.map((f) => f.label[lang]).join(', ')}.`);
  // One language per card: the sentence for the patient in the card's language only.
  lines.push('', `${t.forPatient}${c} ${model.patientSentence[lang]}`);
  return lines.join('\n');
}

/** Renders the full detail in one language. */
export function renderDetail(explanation: Explanation, intro: string | undefined, lang: Language): string {
  const t = TEXT[lang];
  const c = colon(lang);
  const parts: string[] = [];
  if (intro) parts.push(intro.trim());
  if (explanation.model) parts.push(modelSection(explanation.model, lang));
  else for (const rule of explanation.rules) parts.push(ruleSection(rule, lang));
  for (const missing of explanation.unavailable) {
    parts.push(`_${t.unavailable}_${c} ${missing.description[lang]} (${escapeMarkdown(missing.reason)}).`);
  }
  const footer: string[] = [];
  if (explanation.focus?.date)
    footer.push(`${t.examined} ${escapeMarkdown(explanation.focus.date.slice(0, 10))}.`);
  const { id, version } = explanation.ruleSet;
  const sources = explanation.guideline
    .map((s) => {
      const label = inLanguage(s.label, lang);
      return (s.url ? `[${label}](${s.url})` : label) + (s.version ? ` (${s.version})` : '');
    })
    .join(semicolon(lang));
  footer.push(`${t.ruleSet} \`${id}\` ${version}. ${t.sources}${c} ${sources}.`);
  footer.push(t.advisory);
  parts.push(`---\n${footer.join(' ')}`);
  return parts.join('\n\n');
}

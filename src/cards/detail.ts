/**
 * The markdown of `card.detail`, short enough to read in five seconds (issue 15): the service's own
 * text, then the three to five facts that matter — the rules that apply with their values and source,
 * a checklist's score with the items that scored, the rules that could not be evaluated and why; for a
 * model, the factors that moved the estimate most and what was missing or too old — then one advisory
 * line. Rules that do not apply, the full factor table, imputed values, the patient sentences and the
 * sources stay in the card's `extension` and on the explanation page. Values read as a person reads them
 * (scoring/display.ts), and values from the record are escaped so they cannot inject markdown or HTML
 * into the EHR's rendering.
 */
import type { Explanation } from '../explain/explain.js';
import { type Contribution, formatRisk, type ModelOutcome } from '../scoring/score.js';
import { displayUnit, formatNumber, formatRecorded, formatValue } from '../scoring/display.js';
import { datumLine, type RuleResult } from '../rules/evaluate.js';
import { colon, decimal, inLanguage, type Language, semicolon } from '../language.js';

const TEXT = {
  en: {
    threshold: 'threshold',
    reached: 'referral threshold reached',
    notReached: 'below the threshold',
    incomplete: 'incomplete: the items not recorded could reach the threshold',
    noItemScored: 'no item scored',
    notRecorded: 'Not recorded',
    itemsNotRecorded: 'Not recorded',
    notEvaluated: 'not evaluated',
    staleData: 'not evaluated, data too old',
    criteriaNotEvaluated: (n: number) => `${n} criteria not evaluated`,
    more: (n: number) => `… and ${n} more, in the card's data.`,
    others: (n: number) => `${n} more`,
    unavailable: 'Data not available',
    examined: 'Recorded on',
    advisory: 'Advisory only: the decision is yours.',
    noEstimate: 'No estimate',
    population: 'Population',
    raisedBy: 'Raised by',
    loweredBy: 'Lowered by',
    typicalValue: 'typical value used',
    takenAsAbsent: 'taken as absent',
    tooOld: 'Too old',
    beyond: 'Beyond the calibrated range of the model card',
    calibrated: 'calibrated',
    lessReliable: 'the estimate is less reliable there',
    yes: 'yes',
    no: 'no',
    recordedValue: 'recorded',
  },
  fr: {
    threshold: 'seuil',
    reached: 'seuil d’adressage atteint',
    notReached: 'sous le seuil',
    incomplete: 'incomplète : les critères non renseignés pourraient atteindre le seuil',
    noItemScored: 'aucun critère ne marque de point',
    notRecorded: 'Non renseigné',
    itemsNotRecorded: 'Critères non renseignés',
    notEvaluated: 'non évalué',
    staleData: 'non évalué, donnée trop ancienne',
    criteriaNotEvaluated: (n: number) => `${n} critères non évalués`,
    more: (n: number) => `… et ${n} autres, dans les données de la carte.`,
    others: (n: number) => `${n} autres`,
    unavailable: 'Données non disponibles',
    examined: 'Renseigné le',
    advisory: 'Aide à la décision seulement : la décision vous appartient.',
    noEstimate: 'Pas d’estimation',
    population: 'Population',
    raisedBy: 'Augmentée par',
    loweredBy: 'Diminuée par',
    typicalValue: 'valeur habituelle utilisée',
    takenAsAbsent: 'considéré comme absent',
    tooOld: 'Trop ancien',
    beyond: 'Hors de l’intervalle calibré de la fiche du modèle',
    calibrated: 'calibré',
    lessReliable: 'l’estimation y est moins fiable',
    yes: 'oui',
    no: 'non',
    recordedValue: 'renseigné',
  },
} as const;

/** Escapes markdown and HTML metacharacters in a value taken from the record. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}

/** How many factors the card names; all of them are in the extension and on the explanation page. */
export const TOP_FACTORS = 3;

/** At most this many facts about rules; the others are counted (all are in the extension). */
const MAX_FACTS = 4;

/** Values of one piece of evidence shown at most (e.g. the anticoagulants on record). */
const MAX_VALUES = 2;

/** Not-evaluable rules named one by one up to this many; beyond, the card gives their number. */
const NAMED_NOT_EVALUABLE = 3;

function checklistSection(rule: RuleResult, lang: Language): string {
  const t = TEXT[lang];
  const verdict = rule.status === 'fired' ? t.reached : rule.incomplete ? t.incomplete : t.notReached;
  const scored = (rule.items ?? []).filter((i) => i.status === 'present');
  const items =
    scored.length === 0 ? t.noItemScored : scored.map((i) => `${i.label[lang]} ${i.points}`).join(', ');
  const missing = (rule.items ?? []).filter((i) => i.status === 'not-recorded');
  const notRecorded =
    missing.length > 0
      ? ` ${t.itemsNotRecorded}${colon(lang)} ${shownValues(
          missing.map((i) => i.label[lang]),
          lang,
          false,
        )}.`
      : '';
  return `**${rule.title[lang]}${colon(lang)} ${rule.score} (${t.threshold} ${rule.threshold}), ${verdict}** — ${items}.${notRecorded}`;
}

/** Beyond this many characters a source's label is cut to its first part. */
const SOURCE_LABEL_MAX = 50;

/**
 * A source as a card names it: its first part ("AGS Beers Criteria 2023", "ESC 2021 heart failure
 * guideline, section 11", "EMA 2018"); the full label is in the extension.
 */
export function shortSource(label: string): string {
  const head = label.split(/[:;]/)[0]!.trim();
  if (head.length <= SOURCE_LABEL_MAX) return head;
  const before = head.split(' (')[0]!.trim();
  return before.length <= SOURCE_LABEL_MAX ? before : label;
}

/** The first values of a list, and how many more (values from the record are escaped). */
function shownValues(values: readonly string[], lang: Language, fromRecord = true): string {
  const shown = values
    .slice(0, MAX_VALUES)
    .map((v) => (fromRecord ? escapeMarkdown(formatRecorded(v, lang)) : v));
  const more = values.length - shown.length;
  return [...shown, ...(more > 0 ? [TEXT[lang].others(more)] : [])].join(', ');
}

function firedSection(rule: RuleResult, lang: Language): string {
  // Evidence with no value (e.g. "ordered in this session" when nothing is) says nothing: left out.
  // A rule fired on a datum too old (`dataMayBeAbsent`) names it with its date: "(2025-06-01), older
  // than 12 months" is the finding (a datum the rule needs current never is). Not recorded goes without
  // saying: the rule's title says it ("no brain MRI on record"); it is in the extension.
  const absent = (rule.data ?? [])
    .filter((d) => d.state === 'stale')
    .map((d) => datumLine(d, false)[lang])
    .map((line) => escapeMarkdown(line.charAt(0).toUpperCase() + line.slice(1)));
  const evidence = [
    ...absent,
    ...(rule.evidence ?? [])
      .filter((e) => e.values.length > 0)
      .map((e) => `${e.label[lang]}${colon(lang)} ${shownValues(e.values, lang)}`),
  ].join(semicolon(lang));
  const { url } = rule.source;
  const label = shortSource(inLanguage(rule.source.label, lang));
  const source = url ? `[${label}](${url})` : label;
  // Only rules that apply are listed: "applies" goes without saying.
  return `**${rule.title[lang]}**${evidence ? ` — ${evidence}` : ''} _(${source})_`;
}

/**
 * Rules that could not be evaluated (`verb`: not evaluated, or not evaluated because a datum is too old),
 * grouped by reason: one line per reason.
 */
function notEvaluableSections(rules: readonly RuleResult[], lang: Language, verb: string): string[] {
  const t = TEXT[lang];
  const byReason = new Map<string, RuleResult[]>();
  for (const rule of rules) {
    const reason = rule.reason?.[lang] ?? '';
    byReason.set(reason, [...(byReason.get(reason) ?? []), rule]);
  }
  return [...byReason].map(([reason, group]) => {
    const why = reason ? ` (${escapeMarkdown(reason)})` : '';
    if (group.length > NAMED_NOT_EVALUABLE) return `**${t.criteriaNotEvaluated(group.length)}**${why}`;
    return `**${group.map((r) => r.title[lang]).join(', ')}${colon(lang)} ${verb}**${why}`;
  });
}

/**
 * What the card says about its rules: checklists with their score, the rules that apply, and those that
 * could not be evaluated. A rule that does not apply is left out (it is in the extension).
 */
function ruleSections(rules: readonly RuleResult[], lang: Language): string[] {
  const parts: string[] = [];
  for (const rule of rules) {
    if (rule.status === 'not-evaluable' || rule.status === 'stale') continue;
    if (rule.kind === 'checklist') parts.push(checklistSection(rule, lang));
    else if (rule.status === 'fired') parts.push(firedSection(rule, lang));
  }
  const all = [
    ...parts,
    ...notEvaluableSections(
      rules.filter((r) => r.status === 'stale'),
      lang,
      TEXT[lang].staleData,
    ),
    ...notEvaluableSections(
      rules.filter((r) => r.status === 'not-evaluable'),
      lang,
      TEXT[lang].notEvaluated,
    ),
  ];
  if (all.length <= MAX_FACTS) return all;
  return [...all.slice(0, MAX_FACTS - 1), TEXT[lang].more(all.length - MAX_FACTS + 1)];
}

function named(c: Contribution, lang: Language): string {
  const date =
    c.date && c.status === 'observed' && c.display?.kind === 'number' ? ` (${c.date.slice(0, 10)})` : '';
  return `${c.label[lang]} ${escapeMarkdown(formatValue(c, lang))}${escapeMarkdown(date)}`;
}

/** The factors that moved the estimate most, raising then lowering it. */
function topFactors(contributions: readonly Contribution[], lang: Language): string[] {
  const t = TEXT[lang];
  const top = contributions
    .filter((c) => c.status === 'observed' && c.direction !== 'neutral')
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
    .slice(0, TOP_FACTORS);
  const line = (label: string, direction: Contribution['direction'], arrow: string) => {
    const listed = top.filter((c) => c.direction === direction).map((c) => named(c, lang));
    return listed.length > 0 ? [`${arrow} ${label}${colon(lang)} ${listed.join(semicolon(lang))}`] : [];
  };
  return [...line(t.raisedBy, 'raises', '↑'), ...line(t.loweredBy, 'lowers', '↓')];
}

/** What the model did not have: values not recorded (imputed or taken as absent), or too old. */
function gaps(values: readonly Contribution[], lang: Language): string[] {
  const t = TEXT[lang];
  const labels = (items: readonly Contribution[]) => items.map((c) => c.label[lang]).join(', ');
  const missing = values.filter((c) => c.status === 'imputed' && c.imputedBecause !== 'stale');
  const absent = values.filter((c) => c.status === 'assumed-absent');
  const notRecorded = [
    ...(missing.length > 0 ? [`${labels(missing)} (${t.typicalValue})`] : []),
    ...(absent.length > 0 ? [`${labels(absent)} (${t.takenAsAbsent})`] : []),
  ];
  const stale = values
    .filter((c) => c.status === 'imputed' && c.imputedBecause === 'stale')
    .map((c) => {
      const was = c.recorded ? ` ${formatRecorded(c.recorded, lang)}` : '';
      const date = c.date ? ` (${c.date.slice(0, 10)})` : '';
      return escapeMarkdown(`${c.label[lang]}${was}${date}`);
    });
  return [
    ...(notRecorded.length > 0
      ? [`${t.notRecorded}${colon(lang)} ${notRecorded.join(semicolon(lang))}`]
      : []),
    ...(stale.length > 0 ? [`${t.tooOld}${colon(lang)} ${stale.join(', ')} (${t.typicalValue})`] : []),
  ];
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

/** An estimate, or an input, outside the range the model card states it is calibrated on. */
function beyondRange(model: ModelOutcome & { status: 'scored' }, lang: Language): string[] {
  const t = TEXT[lang];
  const beyond = model.beyondCalibratedRange;
  if (!beyond) return [];
  const items = [
    ...(beyond.risk
      ? [
          `${riskText(beyond.risk.value, lang)} (${t.calibrated} ${riskText(beyond.risk.min, lang)}–${riskText(beyond.risk.max, lang)})`,
        ]
      : []),
    ...beyond.inputs.map((i) => {
      const unit = displayUnit(i.unit, lang);
      const n = (v: number) => formatNumber(v, 1, lang);
      return `${i.label[lang]} ${n(i.value)}${unit ? ` ${unit}` : ''} (${t.calibrated} ${n(i.min)}–${n(i.max)})`;
    }),
  ];
  return [`**${t.beyond}**${colon(lang)} ${items.join(semicolon(lang))}${colon(lang)} ${t.lessReliable}`];
}

function modelSection(model: ModelOutcome, lang: Language): string[] {
  const t = TEXT[lang];
  if (model.status === 'objection') return [];
  // The model's status (demonstration, validated) is in the card's source label and its summary.
  const population = `${t.population}${colon(lang)} ${model.population[lang]}`;
  if (model.status === 'not-scored') {
    const reasons = model.reasons.map((r) => escapeMarkdown(r.text[lang])).join(semicolon(lang));
    return [`**${t.noEstimate}**${colon(lang)} ${reasons}.`, population];
  }
  const facts = [
    ...topFactors(model.contributions, lang),
    ...gaps(model.contributions, lang),
    ...beyondRange(model, lang),
  ];
  return [facts.map((f) => `- ${f}`).join('\n'), population].filter((p) => p !== '');
}

/** Renders the detail in one language. */
export function renderDetail(explanation: Explanation, intro: string | undefined, lang: Language): string {
  const t = TEXT[lang];
  const parts: string[] = [];
  if (intro) parts.push(intro.trim());
  if (explanation.model) parts.push(...modelSection(explanation.model, lang));
  else parts.push(...ruleSections(explanation.rules, lang));
  // The reason is recorded in English only (an integrator's message): a French card names the data.
  for (const missing of explanation.unavailable) {
    const why = lang === 'en' ? ` (${escapeMarkdown(missing.reason)})` : '';
    parts.push(`_${t.unavailable}_${colon(lang)} ${missing.description[lang]}${why}.`);
  }
  // A card about a model dates each factor; a card about rules dates the examination it read.
  const examined =
    !explanation.model && explanation.focus?.date
      ? `${t.examined} ${escapeMarkdown(explanation.focus.date.slice(0, 10))}. `
      : '';
  // Rule-set and model versions, hashes and sources are provenance: in the extension and on the page.
  parts.push(`---\n${examined}${t.advisory}`);
  return parts.join('\n\n');
}

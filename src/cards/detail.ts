/**
 * The markdown of `card.detail`: the service's own text, then why the card says what it says (each
 * rule with its score and the items that scored, or the values that made it fire; rules that could
 * not be evaluated and why), the data that was not available, and the provenance. Values from the
 * record are escaped so they cannot inject markdown or HTML into the EHR's rendering.
 */
import type { Explanation } from '../explain/explain.js';
import type { RuleResult } from '../rules/evaluate.js';
import type { Localized } from '../services/definition-schema.js';

export type Language = keyof Localized;

const TEXT = {
  en: {
    threshold: 'threshold',
    reached: 'referral threshold reached',
    notReached: 'below the threshold',
    item: 'Item',
    points: 'Points',
    noItemScored: 'No item scored.',
    notRecorded: 'Not recorded',
    notEvaluated: 'not evaluated',
    fired: 'applies',
    doesNotApply: 'does not apply',
    source: 'Source',
    unavailable: 'Data not available',
    examined: 'Recorded on',
    ruleSet: 'Rule set',
    sources: 'Sources',
    advisory: 'Advisory only: the decision is yours. You can dismiss this card and give a reason.',
  },
  fr: {
    threshold: 'seuil',
    reached: 'seuil d’orientation atteint',
    notReached: 'sous le seuil',
    item: 'Critère',
    points: 'Points',
    noItemScored: 'Aucun critère ne marque de point.',
    notRecorded: 'Non renseigné',
    notEvaluated: 'non évalué',
    fired: 's’applique',
    doesNotApply: 'ne s’applique pas',
    source: 'Source',
    unavailable: 'Données non disponibles',
    examined: 'Renseigné le',
    ruleSet: 'Règles',
    sources: 'Sources',
    advisory:
      'Aide à la décision seulement : la décision vous appartient. Vous pouvez écarter cette carte en indiquant un motif.',
  },
} as const;

/** Escapes markdown and HTML metacharacters in a value taken from the record. */
export function escapeMarkdown(text: string): string {
  return text.replace(/[\\`*_{}[\]()#+\-.!|<>~]/g, (c) => `\\${c}`).replace(/\r?\n/g, ' ');
}

function ruleSection(rule: RuleResult, lang: Language): string {
  const t = TEXT[lang];
  const title = rule.title[lang];
  if (rule.status === 'not-evaluable') {
    return `**${title}: ${t.notEvaluated}** (${rule.reason?.[lang] ?? ''})`;
  }
  if (rule.kind === 'checklist') {
    const verdict = rule.status === 'fired' ? t.reached : t.notReached;
    const lines = [`**${title}: ${rule.score} (${t.threshold} ${rule.threshold}) — ${verdict}**`];
    const scored = (rule.items ?? []).filter((i) => i.status === 'present');
    if (scored.length === 0) lines.push('', t.noItemScored);
    else {
      lines.push('', `| ${t.item} | ${t.points} |`, '|---|---:|');
      for (const item of scored) lines.push(`| ${item.label[lang]} | ${item.points} |`);
    }
    const missing = (rule.items ?? []).filter((i) => i.status === 'not-recorded');
    if (missing.length > 0)
      lines.push('', `${t.notRecorded}: ${missing.map((i) => i.label[lang]).join(', ')}.`);
    return lines.join('\n');
  }
  // Evidence with no value (e.g. "ordered in this session" when nothing is) says nothing: left out.
  const evidence = (rule.evidence ?? [])
    .filter((e) => e.values.length > 0)
    .map((e) => `${e.label[lang]}: ${e.values.map(escapeMarkdown).join(', ')}`)
    .join('; ');
  if (rule.status !== 'fired') return `**${title}: ${t.doesNotApply}**`;
  const { label, url } = rule.source;
  const source = `${t.source}: ${url ? `[${label}](${url})` : label}`;
  return `**${title}: ${t.fired}**${evidence ? ` — ${evidence}` : ''}. _${source}_`;
}

/** Renders the full detail in one language. */
export function renderDetail(explanation: Explanation, intro: string | undefined, lang: Language): string {
  const t = TEXT[lang];
  const parts: string[] = [];
  if (intro) parts.push(intro.trim());
  for (const rule of explanation.rules) parts.push(ruleSection(rule, lang));
  for (const missing of explanation.unavailable) {
    parts.push(`_${t.unavailable}_: ${missing.description[lang]} (${escapeMarkdown(missing.reason)}).`);
  }
  const footer: string[] = [];
  if (explanation.focus?.date)
    footer.push(`${t.examined} ${escapeMarkdown(explanation.focus.date.slice(0, 10))}.`);
  const { id, version } = explanation.ruleSet;
  const sources = explanation.guideline
    .map((s) => (s.url ? `[${s.label}](${s.url})` : s.label) + (s.version ? ` (${s.version})` : ''))
    .join('; ');
  footer.push(`${t.ruleSet} \`${id}\` ${version}. ${t.sources}: ${sources}.`);
  footer.push(t.advisory);
  parts.push(`---\n${footer.join(' ')}`);
  return parts.join('\n\n');
}

/**
 * The answer of a service whose `malformedPrefetch` policy is `not-evaluable` when data it reads is not
 * well-formed FHIR R4: no rule runs, and one warning card says the service could not evaluate, naming
 * each key and the path of the problem. The clinician sees that no check was made, rather than the
 * silence of a check that found nothing; the card is audited and can be overridden like any other.
 */
import { OVERRIDE_REASONS, type OverrideReasonCode, SYSTEM } from '../codes.js';
import { EXPLANATION_EXTENSION, explain } from '../explain/explain.js';
import type { Finding } from '../finding.js';
import type { Language, Localized } from '../language.js';
import { type MalformedData, malformedExpression, type UnavailableData } from '../prefetch/resolve.js';
import type { FocusResult } from '../rules/evaluate.js';
import type { CompiledService } from '../services/load.js';
import { renderDetail } from './detail.js';
import { type IssuedCard, SUMMARY_MAX, textIn, truncate } from './render.js';
import { typeset } from '../language.js';

/** The template id this card is filed under (its finding key, the alert fatigue controls). */
const MALFORMED_SPEC_ID = 'malformed-prefetch';

const TEXT = {
  en: {
    summary: (title: string) => `Not evaluated, malformed data: ${title}`,
    detail: 'The record sent to this service holds data that is not valid FHIR: no check was made.',
    reason: (where: string) => `malformed data at ${where}`,
    fix: 'Have the record corrected, then open it again. This card does not mean that nothing was found.',
  },
  fr: {
    // The service's title is given in English only: a French card names no English title.
    summary: (_title: string) => 'Non évalué, données mal formées : aucune vérification faite',
    detail:
      'Le dossier transmis à ce service contient des données FHIR non valides : aucune vérification n’a été faite.',
    reason: (where: string) => `données mal formées en ${where}`,
    fix: 'Faites corriger le dossier puis rouvrez-le. Cette carte ne signifie pas que rien n’a été trouvé.',
  },
} as const;

/**
 * Where the data is malformed, and in English what is wrong with it. The structural check words its
 * problem in English only (`not a date`), so a French card names the path, not the English problem.
 */
const reasonOf = (m: MalformedData): Localized => {
  const where = malformedExpression(m.key, m.path);
  return { en: `${TEXT.en.reason(where)}: ${m.problem}`, fr: TEXT.fr.reason(where) };
};

/**
 * The one card of a call whose data is malformed. Every rule of the service is reported not
 * evaluable with the reason, and each malformed key is listed with the data not available.
 */
export function notEvaluableCard(input: {
  service: CompiledService;
  malformed: readonly MalformedData[];
  unavailable: readonly UnavailableData[];
  language: Language;
  uuid: () => string;
}): IssuedCard {
  const { service, malformed, language: lang } = input;
  const first = reasonOf(malformed[0]!);
  const focus: FocusResult = {
    subject: {},
    reference: undefined,
    resource: undefined,
    label: undefined,
    date: undefined,
    rules: service.rules.map((rule) => ({
      id: rule.spec.id,
      kind: rule.kind,
      title: rule.spec.title,
      source: rule.spec.source,
      status: 'not-evaluable',
      reason: first,
    })),
  };
  const unavailable: UnavailableData[] = [
    ...malformed.map((m) => ({
      key: m.key,
      description: m.description,
      code: 'malformed' as const,
      reason: reasonOf(m).en,
    })),
    ...input.unavailable,
  ];
  const explanation = explain(service, focus, unavailable);
  const finding: Finding = { ...focus, models: [], explanations: { rules: explanation, models: new Map() } };
  const text = `${TEXT[lang].detail}\n\n${malformed.map((m) => `- ${reasonOf(m)[lang]}`).join('\n')}\n\n${TEXT[lang].fix}`;
  const guideline = service.definition.guideline[0]!;
  const codes = (service.definition.overrideReasons ?? Object.keys(OVERRIDE_REASONS)) as OverrideReasonCode[];
  return {
    card: {
      uuid: input.uuid(),
      summary: truncate(typeset(TEXT[lang].summary(service.definition.title), lang), SUMMARY_MAX),
      detail: typeset(renderDetail(explanation, text, lang), lang),
      indicator: 'warning',
      source: { label: textIn(guideline.label, lang), ...(guideline.url ? { url: guideline.url } : {}) },
      overrideReasons: codes.map((code) => ({
        system: SYSTEM.overrideReason,
        code,
        display: textIn(OVERRIDE_REASONS[code], lang),
      })),
      extension: { [EXPLANATION_EXTENSION]: explanation },
    },
    finding,
    model: undefined,
    // Not a template of the service: alert fatigue settings treat it as a not-evaluable card.
    findingKey: `${MALFORMED_SPEC_ID}@patient`,
    spec: {
      id: MALFORMED_SPEC_ID,
      when: { noneEvaluated: service.rules.map((r) => r.spec.id) },
      indicator: 'warning',
      summary: {
        en: TEXT.en.summary(service.definition.title),
        fr: TEXT.fr.summary(service.definition.title),
      },
    },
    explanation,
  };
}

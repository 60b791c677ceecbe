/**
 * Card rendering: findings + the service's card templates → CDS Hooks 2.0 cards. One card per
 * (finding, card template whose condition holds). Every card carries a fresh uuid (needed for feedback),
 * the coded override reasons, its explanation (in `detail` and in `extension`), and never a
 * systemAction: the service is advisory only. The link to a card's explanation page is added after
 * rendering, when the page is published (`withExplanationLink`).
 */
import type { Action, Card, Coding, Suggestion } from '../cds-hooks.js';
import { OVERRIDE_REASONS, type OverrideReasonCode, SYSTEM } from '../codes.js';
import { EXPLANATION_EXTENSION, type Explanation } from '../explain/explain.js';
import type { Finding, ScoredFocus } from '../finding.js';
import type { ModelOutcome } from '../scoring/score.js';
import type { CardCondition, CardSpec } from '../services/definition-schema.js';
import type { CompiledService } from '../services/load.js';
import { renderDetail, riskText } from './detail.js';
import { datumLine, type DatumResult } from '../rules/evaluate.js';
import {
  type AnyLanguage,
  colon,
  inLanguage,
  type Language,
  type Localized,
  semicolon,
  typeset,
} from '../language.js';

export interface RenderInput {
  service: CompiledService;
  /** Base URL of this service as its clients reach it (links to model cards). */
  publicUrl: string;
  findings: readonly Finding[];
  context: Readonly<Record<string, unknown>>;
  language: Language;
  now: Date;
  uuid: () => string;
}

/** A rendered card with what it is about: the audit and the explanation pages read these, not the card. */
export interface IssuedCard {
  readonly card: Card;
  readonly finding: Finding;
  /** The model estimate the card is about (one of `finding.models`); none for a card about rules. */
  readonly model: ModelOutcome | undefined;
  /** The explanation the card carries in its `extension`. */
  readonly explanation: Explanation;
  /**
   * What the card is about, stable from call to call: `<card template id>@<focus reference>` (or
   * `@patient` for a service without focus). Override suppression matches on it (`suppression.ts`).
   */
  readonly findingKey: string;
  /** The card template it was rendered from. */
  readonly spec: CardSpec;
}

/** CDS Hooks 2.0 §Card: "summary … SHOULD be less than 140 characters". */
export const SUMMARY_MAX = 139;

const NOT_RECORDED = { en: 'not recorded', fr: 'non renseigné' } as const;

/** The outcome of the model a card is about, on one focus. */
export function modelOutcomeOf(
  when: CardCondition,
  focus: Pick<ScoredFocus, 'models'>,
): ModelOutcome | undefined {
  return when.model === undefined ? undefined : focus.models.find((m) => m.model.id === when.model);
}

/**
 * Does a card's condition hold on one focus's rule and model results? All listed clauses must hold.
 * A card about a model never shows when the patient objected: the model did not run.
 */
export function conditionHolds(
  when: CardCondition,
  focus: Pick<ScoredFocus, 'rules' | 'models'> & { data?: readonly DatumResult[] },
): boolean {
  const status = new Map(focus.rules.map((r) => [r.id, r.status]));
  // Stale or unreadable: recorded, but not usable as current (not recorded is not "unusable").
  const data = new Map((focus.data ?? []).map((d) => [d.id, d.state]));
  const unusable = (id: string) => data.get(id) === 'stale' || data.get(id) === 'unreadable';
  const evaluated = (id: string) => status.get(id) === 'fired' || status.get(id) === 'not-fired';
  const fired = (id: string) => status.get(id) === 'fired';
  const incomplete = (id: string) => focus.rules.some((r) => r.id === id && r.incomplete === true);
  if (when.model !== undefined) {
    const outcome = modelOutcomeOf(when, focus);
    if (!outcome || outcome.status === 'objection') return false;
    if (when.scored !== undefined && when.scored !== (outcome.status === 'scored')) return false;
    if (when.bands && !(outcome.status === 'scored' && when.bands.includes(outcome.band.id))) return false;
  }
  return (
    (when.anyFired === undefined || when.anyFired.some(fired)) &&
    (when.allFired === undefined || when.allFired.every(fired)) &&
    (when.noneFired === undefined || !when.noneFired.some(fired)) &&
    (when.anyEvaluated === undefined || when.anyEvaluated.some(evaluated)) &&
    (when.noneEvaluated === undefined || !when.noneEvaluated.some(evaluated)) &&
    (when.anyDataUnusable === undefined || when.anyDataUnusable.some(unusable)) &&
    (when.noneDataUnusable === undefined || !when.noneDataUnusable.some(unusable)) &&
    (when.anyIncomplete === undefined || when.anyIncomplete.some(incomplete)) &&
    (when.noneIncomplete === undefined || !when.noneIncomplete.some(incomplete))
  );
}

type Values = Record<string, string | undefined>;

/**
 * The focus label in the card's language: a label the service's `focus.labelTranslations` knows
 * (e.g. a body site as the record writes it) reads in the card's language, any other as recorded.
 */
function translatedLabel(label: string | undefined, input: RenderInput): string | undefined {
  const entries = input.service.definition.focus?.labelTranslations;
  if (label === undefined || !entries) return label;
  const key = label.trim().toLowerCase();
  const entry = entries.find((e) => e.en.toLowerCase() === key || e.fr.toLowerCase() === key);
  return entry ? entry[input.language] : label;
}

function placeholderValues(input: RenderInput, focus: Finding, model?: ModelOutcome): Values {
  const fired = focus.rules
    .filter((r) => r.status === 'fired' && r.role !== 'context')
    .map((r) => r.title[input.language]);
  const incomplete = focus.rules.filter((r) => r.incomplete === true);
  const notRecorded = incomplete.flatMap((r) =>
    (r.items ?? []).filter((i) => i.status === 'not-recorded').map((i) => i.label[input.language]),
  );
  const values: Values = {
    firedRules: fired.length > 0 ? fired.join(', ') : undefined,
    incompleteRules:
      incomplete.length > 0 ? incomplete.map((r) => r.title[input.language]).join(', ') : undefined,
    notRecordedItems: notRecorded.length > 0 ? [...new Set(notRecorded)].join(', ') : undefined,
    'focus.label': translatedLabel(focus.label, input),
    'focus.date': focus.date?.slice(0, 10),
    'focus.reference': focus.reference,
    today: input.now.toISOString().slice(0, 10),
    now: input.now.toISOString(),
  };
  // `{{data.<id>}}`: the datum with its value and date, or why it cannot be used (too old, unreadable).
  for (const d of focus.data ?? []) values[`data.${d.id}`] = datumLine(d, false)[input.language];
  for (const field of ['patientId', 'userId', 'encounterId']) {
    const v = input.context[field];
    values[`context.${field}`] = typeof v === 'string' ? v : undefined;
  }
  if (model) {
    const lang = input.language;
    values['model.title'] = model.model.title[lang];
    if (model.status === 'scored') {
      values['model.risk'] = riskText(model.probability, lang);
      values['model.band'] = model.band.label[lang];
      if (model.horizonMonths > 0)
        values['model.horizon'] = `${model.horizonMonths} ${lang === 'fr' ? 'mois' : 'months'}`;
    } else if (model.status === 'not-scored') {
      values['model.reason'] = model.reasons.map((r) => r.text[lang]).join(semicolon(lang));
      // The summary states the reason (issue 15): the first one, and how many more the detail lists.
      const more = model.reasons.length - 1;
      values['model.mainReason'] =
        `${model.reasons[0]?.text[lang] ?? NOT_RECORDED[lang]}${more > 0 ? ` (+${more})` : ''}`;
    }
  }
  for (const rule of focus.rules) {
    if (rule.score !== undefined) values[`rules.${rule.id}.score`] = String(rule.score);
    if (rule.threshold !== undefined) values[`rules.${rule.id}.threshold`] = String(rule.threshold);
  }
  return values;
}

const PLACEHOLDER = /\{\{\s*([\w.]+)\s*\}\}/g;

/** Fills `{{name}}` placeholders in display text; a missing value reads "not recorded". */
export function fillText(text: string, values: Values, lang: Language): string {
  return text.replace(PLACEHOLDER, (_, name: string) => values[name] ?? NOT_RECORDED[lang]);
}

/** Cuts a text to `max` characters, at a word boundary when there is one in its second half. */
export function truncate(text: string, max: number): string {
  const chars = [...text];
  if (chars.length <= max) return text;
  const head = chars.slice(0, max - 1).join('');
  const space = head.lastIndexOf(' ');
  const cut = space > head.length / 2 ? head.slice(0, space).replace(/[\s,;:(]+$/, '') : head;
  return `${cut}…`;
}

/**
 * Fills placeholders inside a FHIR resource template. A string that is only a placeholder without a
 * value is dropped with its property, and objects or arrays left empty are dropped too, so the
 * resource never carries an empty element (FHIR JSON forbids them).
 */
export function fillResource(template: unknown, values: Values, lang: Language): unknown {
  if (isLocalized(template)) return fillResource(typeset(template[lang], lang), values, lang);
  if (typeof template === 'string') {
    const only = /^\{\{\s*([\w.]+)\s*\}\}$/.exec(template);
    if (only) return values[only[1]!];
    return template.replace(PLACEHOLDER, (_, name: string) => values[name] ?? '');
  }
  if (Array.isArray(template)) {
    const items = template.map((t) => fillResource(t, values, lang)).filter((t) => t !== undefined);
    return items.length > 0 ? items : undefined;
  }
  if (template && typeof template === 'object') {
    const entries = Object.entries(template)
      .map(([k, v]) => [k, fillResource(v, values, lang)] as const)
      .filter(([, v]) => v !== undefined);
    return entries.length > 0 ? Object.fromEntries(entries) : undefined;
  }
  return template;
}

/**
 * A text of a resource template given in each language: an object with exactly the keys `en` and `fr`
 * (no FHIR element has these names, so it cannot be mistaken for one).
 */
function isLocalized(value: unknown): value is Localized {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  // Run on every object of every resource template: the two keys in either order, without a sort.
  const keys = Object.keys(value);
  const v = value as Record<string, unknown>;
  return (
    keys.length === 2 &&
    ((keys[0] === 'en' && keys[1] === 'fr') || (keys[0] === 'fr' && keys[1] === 'en')) &&
    typeof v.en === 'string' &&
    typeof v.fr === 'string'
  );
}

/** A definition's text in `lang`, with the typography of `lang`. */
export function textIn(text: AnyLanguage, lang: Language): string {
  return typeset(inLanguage(text, lang), lang);
}

function overrideReasons(service: CompiledService, lang: Language): Coding[] {
  const codes = (service.definition.overrideReasons ?? Object.keys(OVERRIDE_REASONS)) as OverrideReasonCode[];
  return codes.map((code) => ({
    system: SYSTEM.overrideReason,
    code,
    display: textIn(OVERRIDE_REASONS[code], lang),
  }));
}

/**
 * The resource of an action built from the focus resource: a deep copy with the action's top-level
 * changes applied (`null` removes an element). A created resource is new: no id, meta or identifier.
 */
export function changedFocus(
  focus: object,
  changes: Record<string, unknown>,
  values: Values,
  type: 'create' | 'update',
  lang: Language,
): Record<string, unknown> {
  const resource = structuredClone(focus) as Record<string, unknown>;
  if (type === 'create') {
    delete resource.id;
    delete resource.meta;
    delete resource.identifier;
  }
  const filled = (fillResource(changes, values, lang) ?? {}) as Record<string, unknown>;
  for (const [key, value] of Object.entries(filled)) {
    if (value === null) delete resource[key];
    else resource[key] = value;
  }
  return resource;
}

function suggestions(
  spec: CardSpec,
  focus: Finding,
  values: Values,
  input: RenderInput,
): Suggestion[] | undefined {
  const offered = spec.suggestions?.filter((s) => s.when === undefined || conditionHolds(s.when, focus));
  if (!offered || offered.length === 0) return undefined;
  return offered.map((s) => {
    const suggestion: Suggestion = { label: textIn(s.label, input.language), uuid: input.uuid() };
    if (s.isRecommended !== undefined) suggestion.isRecommended = s.isRecommended;
    if (s.actions) {
      suggestion.actions = s.actions.map((a) => {
        const action: Action = {
          type: a.type,
          description: typeset(
            fillText(a.description[input.language], values, input.language),
            input.language,
          ),
        };
        if (a.resource)
          action.resource = fillResource(a.resource, values, input.language) as Action['resource'];
        if (a.focusChanges && focus.resource && a.type !== 'delete') {
          const changed: unknown = changedFocus(
            focus.resource,
            a.focusChanges,
            values,
            a.type,
            input.language,
          );
          action.resource = changed as Action['resource'];
        }
        if (a.resourceId) action.resourceId = fillText(a.resourceId, values, input.language);
        return action;
      });
    }
    return suggestion;
  });
}

/** The card's source: the model (with its status and model card) for a model card, else the guideline. */
function sourceOf(input: RenderInput, model: ModelOutcome | undefined): { label: string; url?: string } {
  if (!model) {
    const guideline = input.service.definition.guideline[0]!;
    return {
      label: textIn(guideline.label, input.language),
      ...(guideline.url ? { url: guideline.url } : {}),
    };
  }
  const m = model.model;
  const lang = input.language;
  return {
    label: truncate(typeset(`${m.title[lang]} ${m.version}${colon(lang)} ${m.statusText[lang]}`, lang), 200),
    url: modelCardUrl(input.publicUrl, m.id),
  };
}

/** Where the service serves a model's card (http/models.ts). */
export function modelCardUrl(publicUrl: string, modelId: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/models/${encodeURIComponent(modelId)}/model-card`;
}

function renderCard(spec: CardSpec, focus: Finding, input: RenderInput): IssuedCard {
  const lang = input.language;
  const model = modelOutcomeOf(spec.when, focus);
  const values = placeholderValues(input, focus, model);
  const explanation = model ? focus.explanations.models.get(model.model.id)! : focus.explanations.rules;
  const card: Card = {
    uuid: input.uuid(),
    summary: truncate(typeset(fillText(spec.summary[lang], values, lang), lang), SUMMARY_MAX),
    detail: typeset(
      renderDetail(explanation, spec.detail && fillText(spec.detail[lang], values, lang), lang),
      lang,
    ),
    indicator: spec.indicator,
    source: {
      ...sourceOf(input, model),
      ...(spec.topic
        ? {
            topic: {
              system: SYSTEM.cardTopic,
              code: spec.topic.code,
              display: textIn(spec.topic.display, lang),
            },
          }
        : {}),
    },
    overrideReasons: overrideReasons(input.service, lang),
    extension: { [EXPLANATION_EXTENSION]: explanation },
  };
  const suggested = suggestions(spec, focus, values, input);
  if (suggested) {
    card.suggestions = suggested;
    card.selectionBehavior = spec.selectionBehavior ?? 'at-most-one';
  }
  const links = (spec.links ?? []).map((l) => ({
    label: typeset(l.label[lang], lang),
    url: l.url,
    type: l.type,
  }));
  if (model) {
    links.push({
      label: `${lang === 'fr' ? 'Fiche du modèle' : 'Model card'}${colon(lang)} ${model.model.title[lang]}`,
      url: modelCardUrl(input.publicUrl, model.model.id),
      type: 'absolute',
    });
  }
  if (links.length > 0) card.links = links;
  const findingKey = `${spec.id}@${focus.reference ?? 'patient'}`;
  return { card, finding: focus, model, explanation, findingKey, spec };
}

/**
 * One voice per focus (issue 15): beside a checklist that reached its threshold, a model estimate below
 * the model's threshold (its lower band, with a patient sentence) would read as reassurance next to a
 * referral. Its card is never issued, whatever the service's templates say.
 */
export function reassuringBesideReferral(spec: CardSpec, finding: Pick<ScoredFocus, 'rules' | 'models'>) {
  const model = modelOutcomeOf(spec.when, finding);
  return (
    model?.status === 'scored' &&
    !model.aboveThreshold &&
    finding.rules.some((r) => r.kind === 'checklist' && r.status === 'fired')
  );
}

/** Renders every card whose condition holds, finding by finding, in the order of the service's templates. */
export function issueCards(input: RenderInput): IssuedCard[] {
  return input.findings.flatMap((finding) =>
    input.service.definition.cards
      .filter((spec) => conditionHolds(spec.when, finding) && !reassuringBesideReferral(spec, finding))
      .map((spec) => renderCard(spec, finding, input)),
  );
}

/** The cards alone, as `issueCards` renders them. */
export function renderCards(input: RenderInput): Card[] {
  return issueCards(input).map((issued) => issued.card);
}

/**
 * The card with the link to its explanation page, placed before the link to the model card (a card
 * about a model always ends with that one).
 */
export function withExplanationLink(card: Card, url: string, lang: Language): Card {
  const links = card.links ?? [];
  const label =
    lang === 'fr'
      ? 'Explication (graphique, données, fiche du modèle)'
      : 'Explanation (chart, data, model card)';
  return {
    ...card,
    links: [...links.slice(0, -1), { label, url, type: 'absolute' }, ...links.slice(-1)],
  };
}

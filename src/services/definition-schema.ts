/**
 * JSON Schema (draft 2020-12) of one `cds-services/*.yaml` file, checked at load. The same schema is
 * published in openapi.yaml (components.schemas.ServiceDefinition) for authors of definitions.
 *
 * The schema is the one source of truth: the TypeScript types below are derived from it
 * (json-schema-to-ts `FromSchema`), and a definition that passes the ajv validator compiled from it
 * narrows to `ServiceDefinitionFile` through the validator's type guard.
 */
import type { FromSchema } from 'json-schema-to-ts';
import { type HookName, KNOWN_HOOKS } from '../cds-hooks.js';
import { OVERRIDE_REASONS } from '../codes.js';

/** JSON Schema pieces shared with the model manifest schema (src/scoring/manifest.ts). */
export const localized = {
  type: 'object',
  additionalProperties: false,
  required: ['en', 'fr'],
  properties: { en: { type: 'string', minLength: 1 }, fr: { type: 'string', minLength: 1 } },
} as const;

/** Card summaries must stay under 140 characters (CDS Hooks 2.0 §Card); placeholders make room. */
const summary = {
  type: 'object',
  additionalProperties: false,
  required: ['en', 'fr'],
  properties: {
    en: { type: 'string', minLength: 1, maxLength: 139 },
    fr: { type: 'string', minLength: 1, maxLength: 139 },
  },
} as const;

/**
 * A text given once for every language (a title quoted as published) or in each language. A card's
 * source label and the labels of rule sources are read by clinicians: give them in both languages.
 */
export const anyLanguage = { anyOf: [{ type: 'string', minLength: 1 }, localized] } as const;

export const identifier = { type: 'string', pattern: '^[a-z][A-Za-z0-9]*$' } as const;
export const fhirPath = { type: 'string', minLength: 1 } as const;
const source = {
  type: 'object',
  additionalProperties: false,
  required: ['label'],
  properties: {
    label: anyLanguage,
    url: { type: 'string', format: 'uri' },
    version: { type: 'string' },
  },
} as const;
const ruleList = { type: 'array', items: identifier, minItems: 1 } as const;
const cardCondition = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    anyFired: ruleList,
    allFired: ruleList,
    noneFired: ruleList,
    anyEvaluated: ruleList,
    noneEvaluated: ruleList,
    // A checklist below its threshold with items not recorded that could reach it (rules/evaluate.ts).
    anyIncomplete: ruleList,
    noneIncomplete: ruleList,
    anyDataUnusable: {
      ...ruleList,
      description:
        'Ids of `data` entries: holds when one of them is recorded but cannot be used (older than its ' +
        'window, or unreadable). A card saying a datum is unknown shows on it.',
    },
    noneDataUnusable: {
      ...ruleList,
      description: 'Ids of `data` entries: none of them is stale or unreadable.',
    },
  },
} as const;
/** A card's condition: rule clauses, and for a card about a model, the model and its outcome. */
const cardWhen = {
  ...cardCondition,
  properties: {
    ...cardCondition.properties,
    model: {
      type: 'string',
      pattern: '^[a-z0-9][a-z0-9-]{0,63}$',
      description:
        "A model of the service (`models[].id`): the card is about that model's estimate for the focus.",
    },
    scored: {
      type: 'boolean',
      description:
        'With `model`: true = the model scored (in one of `bands` when given); false = it could not score.',
    },
    bands: { type: 'array', items: identifier, minItems: 1 },
  },
  dependentRequired: { scored: ['model'], bands: ['model', 'scored'] },
} as const;
const hookName = { enum: [...KNOWN_HOOKS] } as const;
const hooks = { type: 'array', minItems: 1, uniqueItems: true, items: hookName } as const;
const prefetchSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['query', 'onFailure', 'description'],
  properties: {
    query: {
      type: 'string',
      minLength: 1,
      description: 'Relative FHIR read or search URL with CDS Hooks tokens, as published in discovery.',
    },
    onFailure: {
      enum: ['fail', 'omit'],
      description:
        '`fail`: answer 412 naming the key; `omit`: go on without the data and say so on the card.',
    },
    description: localized,
  },
} as const;
/** `mode` of a model entry or a card: `silent` is evaluated and recorded, never shown (issue 19). */
function silentMode(description: string) {
  return { enum: ['live', 'silent'], description } as const;
}
const modelReference = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'version'],
  description: 'A model the service runs, by id and exact version (`models/<id>/<version>/`).',
  properties: {
    id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
    mode: silentMode(
      'The model is run on every call and its estimate recorded in the audit trail (audit_prediction), ' +
        'but no card is about it: a candidate version beside the live one, for local validation. ' +
        'Default live. Cards (`when.model`) name live models only.',
    ),
  },
} as const;
const checklistItem = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'label', 'points', 'value'],
  properties: {
    id: identifier,
    label: localized,
    points: { type: 'number' },
    value: {
      ...fhirPath,
      description: 'FHIRPath on the focus: `true` present (scores), `false` absent, empty = not recorded.',
    },
  },
} as const;
const checklistRule = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'kind', 'title', 'threshold', 'source', 'items'],
  properties: {
    id: identifier,
    kind: { const: 'checklist' },
    title: localized,
    threshold: { type: 'number', description: 'The score fires the rule when it is at least this.' },
    applicableWhen: {
      ...fhirPath,
      description:
        'FHIRPath on the focus; when not `true`, the rule cannot be evaluated (e.g. no dermoscopy).',
    },
    notApplicable: localized,
    source,
    items: { type: 'array', minItems: 1, items: checklistItem },
  },
} as const;
const conditionRule = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'kind', 'title', 'when', 'source'],
  properties: {
    id: identifier,
    kind: { const: 'condition' },
    title: localized,
    role: {
      enum: ['factor', 'context'],
      description:
        '`factor` (default): a finding the card names in `{{firedRules}}`; `context`: a fact that only adapts ' +
        'the card (which suggestion, which note), shown in the explanation but not in the summary.',
    },
    when: { ...fhirPath, description: 'FHIRPath on the focus; the rule fires when it evaluates to `true`.' },
    data: {
      ...ruleList,
      description:
        'Ids of `data` entries the rule reads. When one is not recorded or unreadable the rule is not ' +
        'evaluable (with the reason); when one is older than its window the rule is stale (shown with the ' +
        'value and date, never evaluated as if current).',
    },
    dataMayBeAbsent: {
      ...ruleList,
      description:
        'Ids of `data` entries the rule reads whose absence it handles itself (no programme documented ' +
        'in its window, no brain MRI on record): when one is not recorded or older than its window, the ' +
        'rule is evaluated with `%<name>` empty; only an unreadable one makes it not evaluable. Their ' +
        'states are reported with the rule, and a fired rule names those not current.',
    },
    source,
    evidence: {
      type: 'array',
      description: 'Values shown as the reason the rule fired: a label and a FHIRPath on the focus.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['label', 'value'],
        properties: { label: localized, value: fhirPath },
      },
    },
  },
} as const;
/**
 * One datum a service reads, with its freshness window: the records it may come from, how to date and
 * read each, and how long a value stays current. Its four states (current, stale, unreadable, not
 * recorded) are reported on the card and in `extension`; present but unreadable data is never absent.
 */
const datumSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['label', 'records', 'readable'],
  properties: {
    label: localized,
    records: {
      ...fhirPath,
      description:
        'FHIRPath on the focus: every record of this datum, readable or not (e.g. every final eGFR ' +
        'Observation, whatever its value type or unit). The latest one (by `date`) is the datum.',
    },
    date: { ...fhirPath, description: 'FHIRPath on a record: its date (required with `window`).' },
    readable: {
      type: 'array',
      minItems: 1,
      description:
        'Checks on the latest record, in order: the first whose `test` is not `true` makes the datum ' +
        'unreadable, with its reason and the value as recorded.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['test', 'reason'],
        properties: { test: fhirPath, reason: localized },
      },
    },
    show: { ...fhirPath, description: 'FHIRPath on a record: the value as shown (with its unit).' },
    pick: {
      enum: ['latest', 'earliest'],
      description:
        'Which dated record is the datum: `latest` (default) or `earliest` (a first MRI, the start of a ' +
        'treatment: a date a schedule counts from; no `window` then, such a date does not age).',
    },
    checkEvery: {
      type: 'boolean',
      description:
        'true: every record within the window (all of them without one; undated ones included) must ' +
        'have a date and pass the `readable` checks, not only the datum: one that does not makes the ' +
        'datum unreadable. For data whose rules read every record (a pregnancy from any of its records) ' +
        'or whose earliest record counts (an undated record may be the first).',
    },
    window: {
      type: 'object',
      additionalProperties: false,
      required: ['source'],
      description: 'How long a value stays current; older, it is stale. Exactly one of days and months.',
      properties: {
        days: { type: 'integer', minimum: 1 },
        months: { type: 'integer', minimum: 1 },
        source,
      },
      oneOf: [
        { type: 'object', required: ['days'], properties: { days: { type: 'integer' } } },
        { type: 'object', required: ['months'], properties: { months: { type: 'integer' } } },
      ],
    },
  },
  dependentRequired: { window: ['date'] },
} as const;
const actionSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'description'],
  properties: {
    type: { enum: ['create', 'update', 'delete'] },
    description: localized,
    resource: {
      type: 'object',
      required: ['resourceType'],
      properties: { resourceType: { type: 'string' } },
      description: 'FHIR resource template; `{{…}}` placeholders in its strings are filled per card.',
    },
    focusChanges: {
      type: 'object',
      minProperties: 1,
      description:
        'The resource is a copy of the focus resource (e.g. the draft order) with these top-level elements ' +
        'replaced (`null` removes one); placeholders are filled as in `resource`. An `update` keeps the ' +
        'focus id; a `create` drops the id, `meta` and `identifier` (it is a new resource).',
    },
    // A relative reference, or the focus resource's own.
    resourceId: {
      type: 'string',
      pattern: '^([A-Z][A-Za-z]+/.+|\\{\\{\\s*focus\\.reference\\s*\\}\\})$',
    },
  },
} as const;
const suggestionSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'label'],
  properties: {
    id: identifier,
    label: localized,
    isRecommended: { type: 'boolean' },
    when: {
      ...cardCondition,
      description: "Offered only when this condition holds on the card's rule results (default: always).",
    },
    actions: { type: 'array', minItems: 1, items: actionSpec },
  },
} as const;
/**
 * What `npm run evaluate` counts as the outcome of a rule's card (issue 19: the PPV of a rule where an
 * outcome is defined): the same shape and rule as a model's `outcomeDefinition` (models/README.md) — a
 * resource of `resourceType` of the same patient on which `expression` is true, dated (by `date`) after the
 * card and within `horizonMonths` of it — with what the outcome is (`label`) and why it is the one that
 * tells whether the card was right (`source`). Read by the evaluation only: never shown on the card.
 */
const cardOutcome = {
  type: 'object',
  additionalProperties: false,
  required: ['label', 'resourceType', 'expression', 'date', 'horizonMonths', 'source'],
  properties: {
    label: localized,
    resourceType: { type: 'string', pattern: '^[A-Z][A-Za-z]+$' },
    expression: {
      ...fhirPath,
      description:
        'FHIRPath over one later resource of the patient, true when it shows the outcome. No `%variable` ' +
        'and no `inValueSet`: the evaluation reads it without the call or the value sets, so name the codes.',
    },
    date: { ...fhirPath, description: 'FHIRPath giving the date of the resource.' },
    horizonMonths: { type: 'integer', minimum: 1, maximum: 240 },
    source,
  },
} as const;
const cardSpec = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'when', 'indicator', 'summary'],
  properties: {
    id: identifier,
    when: cardWhen,
    indicator: { enum: ['info', 'warning', 'critical'] },
    summary,
    detail: localized,
    topic: {
      type: 'object',
      additionalProperties: false,
      required: ['code', 'display'],
      properties: { code: { type: 'string' }, display: anyLanguage },
    },
    selectionBehavior: { enum: ['at-most-one', 'any'] },
    mode: silentMode(
      'The card is evaluated on every call and recorded in the audit trail as not shown (suppressed, ' +
        'reason `silent`), but never returned to the EHR: a new rule tried out before go-live. Default live.',
    ),
    suggestions: { type: 'array', minItems: 1, items: suggestionSpec },
    outcome: cardOutcome,
    links: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['label', 'url', 'type'],
        properties: {
          label: localized,
          url: { type: 'string', format: 'uri' },
          type: { const: 'absolute' },
        },
      },
    },
  },
  // CDS Hooks 2.0 §Card: selectionBehavior is required when suggestions are present.
  dependentRequired: { suggestions: ['selectionBehavior'] },
} as const;

export const DEFINITION_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'CDS service definition',
  type: 'object',
  additionalProperties: false,
  required: ['id', 'version', 'title', 'description', 'guideline', 'prefetch', 'rules', 'cards'],
  // Exactly one of `hook` and `hooks`.
  oneOf: [
    { type: 'object', required: ['hook'], properties: { hook: hookName } },
    { type: 'object', required: ['hooks'], properties: { hooks: hooks } },
  ],
  properties: {
    id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' },
    version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
    hook: {
      ...hookName,
      description:
        'The hook of this service. A file may instead list several `hooks`: the loader then makes one ' +
        'service per hook, with the id `<id>-<hook>`.',
    },
    hooks,
    title: { type: 'string', minLength: 1 },
    description: { type: 'string', minLength: 1 },
    usageRequirements: { type: 'string', minLength: 1 },
    guideline: { type: 'array', minItems: 1, items: source },
    prefetch: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z][A-Za-z0-9]*$' },
      additionalProperties: prefetchSpec,
    },
    malformedPrefetch: {
      enum: ['reject', 'not-evaluable'],
      description:
        'What a call whose prefetch data (sent or fetched) is not well-formed FHIR R4 gets: `reject` (the ' +
        'default) answers 400 CDS_ERR_PREFETCH_MALFORMED naming the key and the path; `not-evaluable` ' +
        'answers 200 with one card saying the service could not evaluate, naming the key and the path, ' +
        'and runs no rule. Malformed data is never read as absent.',
    },
    focus: {
      type: 'object',
      additionalProperties: false,
      required: ['expression', 'label'],
      properties: {
        expression: fhirPath,
        label: fhirPath,
        date: fhirPath,
        labelTranslations: {
          type: 'array',
          minItems: 1,
          items: localized,
          description:
            'Translations of focus labels as records write them (e.g. body sites): a label equal to one ' +
            'side of an entry (ignoring case) reads as its other side on a card in the other language. ' +
            'A label found in no entry is shown as recorded.',
        },
      },
    },
    models: { type: 'array', minItems: 1, items: modelReference },
    patientObjection: {
      type: 'string',
      pattern: '^[A-Za-z][A-Za-z0-9]*$',
      description:
        "Prefetch key holding the patient's Consent resources; required with `models`: an active " +
        'objection to algorithmic processing means no model runs for that patient.',
    },
    define: {
      type: 'object',
      description:
        'Named FHIRPath expressions evaluated on each focus, in order, before the rules; each result is ' +
        'the variable `%<name>` of the later definitions, the rules, their evidence and the focus label ' +
        'and date.',
      propertyNames: { pattern: '^[a-z][A-Za-z0-9]*$' },
      additionalProperties: fhirPath,
    },
    data: {
      type: 'object',
      description:
        'The data the rules read, each with its freshness window and source. Each entry `<name>` is the ' +
        'variable `%<name>` (the latest record, only when current and readable) of the `define` entries ' +
        'and the rules; evaluated on each focus before the `define` entries.',
      propertyNames: { pattern: '^[a-z][A-Za-z0-9]*$' },
      additionalProperties: datumSpec,
    },
    rules: { type: 'array', items: { oneOf: [checklistRule, conditionRule] } },
    cards: { type: 'array', minItems: 1, items: cardSpec },
    overrideReasons: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { enum: Object.keys(OVERRIDE_REASONS) },
    },
    alertFatigue: {
      type: 'object',
      additionalProperties: false,
      description:
        'Alert fatigue controls (defaults in cards/suppression.ts): how long a card overridden with a ' +
        'given coded reason stays hidden for the same patient and finding, whether no-estimate and ' +
        'not-evaluable cards are shown, and a cap on cards per call.',
      properties: {
        afterOverride: {
          type: 'object',
          description:
            'Per override reason code, the window during which the same finding is not shown again to ' +
            'the same patient: `days` or `hours`, and with `untilNextEncounter` it ends earlier when a ' +
            'call names another encounter. A reason not listed suppresses nothing. Default: ' +
            'already-handled 30 days; not-relevant-now 24 hours or until the next encounter.',
          propertyNames: { enum: Object.keys(OVERRIDE_REASONS) },
          additionalProperties: {
            type: 'object',
            additionalProperties: false,
            minProperties: 1,
            properties: {
              days: { type: 'integer', minimum: 1, maximum: 3650 },
              hours: { type: 'integer', minimum: 1, maximum: 8760 },
              untilNextEncounter: { type: 'boolean' },
            },
            // Exactly one of days and hours (both present: both branches hold, and oneOf fails).
            oneOf: [
              { type: 'object', required: ['days'], properties: { days: { type: 'integer' } } },
              { type: 'object', required: ['hours'], properties: { hours: { type: 'integer' } } },
            ],
          },
        },
        showNoEstimate: {
          type: 'boolean',
          description: 'Show the cards of a model that gave no estimate (`scored: false`). Default true.',
        },
        showNotEvaluable: {
          type: 'boolean',
          description: 'Show the cards whose rules could not be evaluated (`noneEvaluated`). Default true.',
        },
        maxCards: {
          type: 'integer',
          minimum: 1,
          maximum: 50,
          description: 'At most this many cards per call, the most urgent kept. Default 10.',
        },
      },
    },
  },
} as const;

/** A definition file as it passed DEFINITION_SCHEMA: exactly one of `hook` and `hooks`. */
export type ServiceDefinitionFile = FromSchema<typeof DEFINITION_SCHEMA>;

/**
 * One loaded service: a file's definition with its one hook (a file listing `hooks` yields one service
 * per hook, see services/load.ts).
 */
export type ServiceDefinition = Omit<ServiceDefinitionFile, 'hook' | 'hooks'> & { hook: HookName };

export type PrefetchSpec = FromSchema<typeof prefetchSpec>;
export type SourceSpec = FromSchema<typeof source>;
export type ModelReference = FromSchema<typeof modelReference>;
export type ChecklistItem = FromSchema<typeof checklistItem>;
export type ChecklistRule = FromSchema<typeof checklistRule>;
export type ConditionRule = FromSchema<typeof conditionRule>;
export type RuleSpec = ChecklistRule | ConditionRule;
/** A card's condition on rule results (and, for `CardSpec.when`, on a model's outcome). */
export type CardCondition = FromSchema<typeof cardWhen>;
export type ActionSpec = FromSchema<typeof actionSpec>;
export type DatumSpec = FromSchema<typeof datumSpec>;
export type SuggestionSpec = FromSchema<typeof suggestionSpec>;
export type CardSpec = FromSchema<typeof cardSpec>;
/** The outcome of a rule's card for `npm run evaluate` (`cards[].outcome`). */
export type CardOutcome = FromSchema<typeof cardOutcome>;

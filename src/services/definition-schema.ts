/**
 * JSON Schema (draft 2020-12) of one `cds-services/*.yaml` file, checked at load. The same schema is
 * published in openapi.yaml (components.schemas.ServiceDefinition) for authors of definitions.
 */
import { KNOWN_HOOKS } from '../cds-hooks.js';
import { OVERRIDE_REASONS } from '../codes.js';
import type { Localized } from '../language.js';

export interface PrefetchSpec {
  /** Relative FHIR read or search URL with CDS Hooks tokens, as published in discovery. */
  query: string;
  /** `fail`: answer 412 naming the key; `omit`: go on without the data and say so on the card. */
  onFailure: 'fail' | 'omit';
  /** What the data is, for the card when it is missing. */
  description: Localized;
}

export interface ChecklistItem {
  id: string;
  label: Localized;
  points: number;
  /** FHIRPath on the focus: `true` present (scores), `false` absent, empty = not recorded. */
  value: string;
}

export interface ChecklistRule {
  id: string;
  kind: 'checklist';
  title: Localized;
  /** The score fires the rule when it is at least this. */
  threshold: number;
  /** Optional FHIRPath on the focus; when not `true`, the rule cannot be evaluated (e.g. no dermoscopy). */
  applicableWhen?: string;
  notApplicable?: Localized;
  source: SourceSpec;
  items: ChecklistItem[];
}

export interface ConditionRule {
  id: string;
  kind: 'condition';
  title: Localized;
  /** FHIRPath on the focus; the rule fires when it evaluates to `true`. */
  when: string;
  source: SourceSpec;
  /** Values shown as the reason the rule fired: name → FHIRPath on the focus. */
  evidence?: { label: Localized; value: string }[];
}

export type RuleSpec = ChecklistRule | ConditionRule;

export interface SourceSpec {
  label: string;
  url?: string;
  version?: string;
}

export interface CardCondition {
  anyFired?: string[];
  allFired?: string[];
  noneFired?: string[];
  anyEvaluated?: string[];
  noneEvaluated?: string[];
  /** A model of the service (`models[].id`): the card is about that model's estimate for the focus. */
  model?: string;
  /** With `model`: true = the model scored (in one of `bands` when given); false = it could not score. */
  scored?: boolean;
  bands?: string[];
}

/** A model the service runs, by id and exact version (`models/<id>/manifest.yaml`). */
export interface ModelReference {
  id: string;
  version: string;
}

export interface ActionSpec {
  type: 'create' | 'update' | 'delete';
  description: Localized;
  /** FHIR resource template; `{{…}}` placeholders in its strings are filled per card. */
  resource?: Record<string, unknown>;
  /**
   * The resource is a copy of the focus resource (e.g. the draft order) with these top-level elements
   * replaced (`null` removes one); placeholders are filled as in `resource`. An `update` keeps the focus
   * id; a `create` drops the id, `meta` and `identifier` (it is a new resource).
   */
  focusChanges?: Record<string, unknown>;
  resourceId?: string;
}

export interface SuggestionSpec {
  id: string;
  label: Localized;
  isRecommended?: boolean;
  /** Offered only when this condition holds on the card's rule results (default: always). */
  when?: CardCondition;
  actions?: ActionSpec[];
}

export interface CardSpec {
  id: string;
  when: CardCondition;
  indicator: 'info' | 'warning' | 'critical';
  summary: Localized;
  detail?: Localized;
  topic?: { code: string; display: string };
  suggestions?: SuggestionSpec[];
  selectionBehavior?: 'at-most-one' | 'any';
  links?: { label: Localized; url: string; type: 'absolute' }[];
}

export interface ServiceDefinition {
  id: string;
  version: string;
  /**
   * The hook of this service. A file may instead list several `hooks`: the loader then makes one service
   * per hook, with the id `<id>-<hook>` (see services/load.ts); `hook` is always set after loading.
   */
  hook: string;
  hooks?: string[];
  title: string;
  description: string;
  usageRequirements?: string;
  guideline: SourceSpec[];
  prefetch: Record<string, PrefetchSpec>;
  focus?: { expression: string; label: string; date?: string };
  /**
   * Named FHIRPath expressions evaluated on each focus, in order, before the rules; each result is the
   * variable `%<name>` of the later definitions, the rules, their evidence and the focus label and date.
   */
  define?: Record<string, string>;
  rules: RuleSpec[];
  models?: ModelReference[];
  /**
   * Prefetch key holding the patient's Consent resources; required with `models`: an active objection
   * to algorithmic processing means no model runs for that patient (README, "Patient objection").
   */
  patientObjection?: string;
  cards: CardSpec[];
  overrideReasons?: string[];
}

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

export const identifier = { type: 'string', pattern: '^[a-z][A-Za-z0-9]*$' } as const;
export const fhirPath = { type: 'string', minLength: 1 } as const;
const source = {
  type: 'object',
  additionalProperties: false,
  required: ['label'],
  properties: {
    label: { type: 'string', minLength: 1 },
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
  },
} as const;
/** A card's condition: rule clauses, and for a card about a model, the model and its outcome. */
const cardWhen = {
  ...cardCondition,
  properties: {
    ...cardCondition.properties,
    model: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' },
    scored: { type: 'boolean' },
    bands: { type: 'array', items: identifier, minItems: 1 },
  },
  dependentRequired: { scored: ['model'], bands: ['model', 'scored'] },
} as const;
const hookName = { enum: [...KNOWN_HOOKS] } as const;
const hooks = { type: 'array', minItems: 1, uniqueItems: true, items: hookName } as const;

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
    hook: hookName,
    hooks,
    title: { type: 'string', minLength: 1 },
    description: { type: 'string', minLength: 1 },
    usageRequirements: { type: 'string', minLength: 1 },
    guideline: { type: 'array', minItems: 1, items: source },
    prefetch: {
      type: 'object',
      propertyNames: { pattern: '^[A-Za-z][A-Za-z0-9]*$' },
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: ['query', 'onFailure', 'description'],
        properties: {
          query: { type: 'string', minLength: 1 },
          onFailure: { enum: ['fail', 'omit'] },
          description: localized,
        },
      },
    },
    focus: {
      type: 'object',
      additionalProperties: false,
      required: ['expression', 'label'],
      properties: { expression: fhirPath, label: fhirPath, date: fhirPath },
    },
    models: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['id', 'version'],
        properties: {
          id: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]{0,63}$' },
          version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
        },
      },
    },
    patientObjection: { type: 'string', pattern: '^[A-Za-z][A-Za-z0-9]*$' },
    define: {
      type: 'object',
      propertyNames: { pattern: '^[a-z][A-Za-z0-9]*$' },
      additionalProperties: fhirPath,
    },
    rules: {
      type: 'array',
      items: {
        oneOf: [
          {
            type: 'object',
            additionalProperties: false,
            required: ['id', 'kind', 'title', 'threshold', 'source', 'items'],
            properties: {
              id: identifier,
              kind: { const: 'checklist' },
              title: localized,
              threshold: { type: 'number' },
              applicableWhen: fhirPath,
              notApplicable: localized,
              source,
              items: {
                type: 'array',
                minItems: 1,
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['id', 'label', 'points', 'value'],
                  properties: {
                    id: identifier,
                    label: localized,
                    points: { type: 'number' },
                    value: fhirPath,
                  },
                },
              },
            },
          },
          {
            type: 'object',
            additionalProperties: false,
            required: ['id', 'kind', 'title', 'when', 'source'],
            properties: {
              id: identifier,
              kind: { const: 'condition' },
              title: localized,
              when: fhirPath,
              source,
              evidence: {
                type: 'array',
                items: {
                  type: 'object',
                  additionalProperties: false,
                  required: ['label', 'value'],
                  properties: { label: localized, value: fhirPath },
                },
              },
            },
          },
        ],
      },
    },
    cards: {
      type: 'array',
      minItems: 1,
      items: {
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
            properties: { code: { type: 'string' }, display: { type: 'string' } },
          },
          selectionBehavior: { enum: ['at-most-one', 'any'] },
          suggestions: {
            type: 'array',
            minItems: 1,
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['id', 'label'],
              properties: {
                id: identifier,
                label: localized,
                isRecommended: { type: 'boolean' },
                when: cardCondition,
                actions: {
                  type: 'array',
                  minItems: 1,
                  items: {
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
                      },
                      focusChanges: { type: 'object', minProperties: 1 },
                      // A relative reference, or the focus resource's own.
                      resourceId: {
                        type: 'string',
                        pattern: '^([A-Z][A-Za-z]+/.+|\\{\\{\\s*focus\\.reference\\s*\\}\\})$',
                      },
                    },
                  },
                },
              },
            },
          },
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
      },
    },
    overrideReasons: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { enum: Object.keys(OVERRIDE_REASONS) },
    },
  },
} as const;

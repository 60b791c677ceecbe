/**
 * JSON Schemas (draft 2020-12) written from the CDS Hooks 2.0.1 tables (HL7/cds-hooks v2.0.1,
 * input/pagecontent/index.md) and the hook definitions (HL7/cds-hooks-library). The server validates
 * requests with them; the tests validate every response with them; openapi.yaml is generated from them
 * (`npm run openapi`) and a test fails when the two drift apart.
 */
import type { HookName } from '../cds-hooks.js';

const FHIR_ID = '[A-Za-z0-9\\-.]{1,64}';
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` }) as const;

/** A FHIR resource as far as the edge checks it: an object with a resourceType. */
const Resource = {
  type: 'object',
  required: ['resourceType'],
  properties: { resourceType: { type: 'string', pattern: '^[A-Z][A-Za-z]+$' } },
} as const;

const Bundle = {
  type: 'object',
  required: ['resourceType'],
  properties: { resourceType: { const: 'Bundle' }, entry: { type: 'array' } },
} as const;

/**
 * `draftOrders` of the ordering hooks: a Bundle of request resources, each with the id that
 * `selections` and the suggestions acting on a draft (update, delete) refer to.
 */
const DraftOrders = {
  type: 'object',
  required: ['resourceType'],
  properties: {
    resourceType: { const: 'Bundle' },
    entry: {
      type: 'array',
      items: {
        type: 'object',
        required: ['resource'],
        properties: {
          resource: {
            type: 'object',
            required: ['resourceType', 'id'],
            properties: {
              resourceType: { type: 'string', pattern: '^[A-Z][A-Za-z]+$' },
              id: { type: 'string', pattern: `^${FHIR_ID}$` },
            },
          },
        },
      },
    },
  },
} as const;

const Coding = {
  type: 'object',
  required: ['system', 'code'],
  properties: {
    system: { type: 'string', minLength: 1 },
    code: { type: 'string', minLength: 1 },
    display: { type: 'string' },
  },
} as const;

const userId = (types: string[]) =>
  ({ type: 'string', pattern: `^(${types.join('|')})/${FHIR_ID}$` }) as const;
const fhirId = { type: 'string', pattern: `^${FHIR_ID}$` } as const;
const ANY_USER = ['Practitioner', 'PractitionerRole', 'Patient', 'RelatedPerson'];
const CLINICIAN = ['Practitioner', 'PractitionerRole'];

/** Context of each standard hook; fields beyond those listed are tolerated (extensions, newer versions). */
export const CONTEXT_SCHEMAS: Record<HookName, object> = {
  'patient-view': {
    type: 'object',
    required: ['userId', 'patientId'],
    properties: { userId: userId(ANY_USER), patientId: fhirId, encounterId: fhirId },
  },
  'order-select': {
    type: 'object',
    required: ['userId', 'patientId', 'selections', 'draftOrders'],
    properties: {
      userId: userId(CLINICIAN),
      patientId: fhirId,
      encounterId: fhirId,
      selections: {
        type: 'array',
        minItems: 1,
        items: { type: 'string', pattern: `^[A-Z][A-Za-z]+/${FHIR_ID}$` },
      },
      // The public sandbox sends draftOrders without Bundle.type (reference/cds-hooks-2.0.md §1.13).
      draftOrders: DraftOrders,
    },
  },
  'order-sign': {
    type: 'object',
    required: ['userId', 'patientId', 'draftOrders'],
    properties: {
      userId: userId(CLINICIAN),
      patientId: fhirId,
      encounterId: fhirId,
      draftOrders: DraftOrders,
    },
  },
  'appointment-book': {
    type: 'object',
    required: ['userId', 'patientId', 'appointments'],
    properties: { userId: userId(ANY_USER), patientId: fhirId, encounterId: fhirId, appointments: Bundle },
  },
  'encounter-start': {
    type: 'object',
    required: ['userId', 'patientId', 'encounterId'],
    properties: { userId: userId(CLINICIAN), patientId: fhirId, encounterId: fhirId },
  },
  'encounter-discharge': {
    type: 'object',
    required: ['userId', 'patientId', 'encounterId'],
    properties: { userId: userId(CLINICIAN), patientId: fhirId, encounterId: fhirId },
  },
};

const HookRequest = {
  type: 'object',
  required: ['hook', 'hookInstance', 'context'],
  properties: {
    hook: { type: 'string', minLength: 1, maxLength: 128 },
    hookInstance: { type: 'string', minLength: 1, maxLength: 256 },
    fhirServer: { type: 'string', format: 'uri' },
    fhirAuthorization: {
      type: 'object',
      required: ['access_token', 'token_type', 'expires_in', 'scope', 'subject'],
      properties: {
        access_token: { type: 'string', minLength: 1 },
        token_type: { const: 'Bearer' },
        expires_in: { type: 'integer', minimum: 0 },
        scope: { type: 'string' },
        subject: { type: 'string' },
        patient: { type: 'string' },
      },
    },
    context: { type: 'object' },
    prefetch: { type: 'object', additionalProperties: { oneOf: [{ type: 'null' }, ref('Resource')] } },
    extension: { type: 'object' },
  },
  // 2.0.1: fhirServer is REQUIRED when fhirAuthorization is present.
  dependentRequired: { fhirAuthorization: ['fhirServer'] },
} as const;

const Source = {
  type: 'object',
  additionalProperties: false,
  required: ['label'],
  properties: {
    label: { type: 'string', minLength: 1 },
    url: { type: 'string', format: 'uri' },
    icon: { type: 'string', format: 'uri' },
    topic: ref('Coding'),
  },
} as const;

const Action = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'description'],
  properties: {
    type: { enum: ['create', 'update', 'delete'] },
    description: { type: 'string', minLength: 1 },
    resource: ref('Resource'),
    resourceId: { type: 'string', pattern: `^[A-Z][A-Za-z]+/${FHIR_ID}$` },
  },
  allOf: [
    {
      if: { type: 'object', properties: { type: { enum: ['create', 'update'] } } },
      then: { type: 'object', required: ['resource'] },
    },
    {
      if: { type: 'object', properties: { type: { const: 'delete' } } },
      then: { type: 'object', required: ['resourceId'] },
    },
  ],
} as const;

const Suggestion = {
  type: 'object',
  additionalProperties: false,
  required: ['label'],
  properties: {
    label: { type: 'string', minLength: 1 },
    uuid: { type: 'string', format: 'uuid' },
    isRecommended: { type: 'boolean' },
    actions: { type: 'array', minItems: 1, items: ref('Action') },
  },
} as const;

const Link = {
  type: 'object',
  additionalProperties: false,
  required: ['label', 'url', 'type'],
  properties: {
    label: { type: 'string', minLength: 1 },
    url: { type: 'string', format: 'uri' },
    type: { enum: ['absolute', 'smart'] },
    appContext: { type: 'string' },
    autolaunchable: { type: 'boolean' },
  },
  // appContext is only meaningful for SMART links (3.0 invariant cds-resp-…; 2.0 text).
  if: { type: 'object', properties: { type: { const: 'absolute' } } },
  then: { type: 'object', not: { type: 'object', required: ['appContext'] } },
} as const;

const Card = {
  type: 'object',
  additionalProperties: false,
  required: ['summary', 'indicator', 'source'],
  properties: {
    uuid: { type: 'string', format: 'uuid' },
    summary: { type: 'string', minLength: 1, maxLength: 139 },
    detail: { type: 'string', minLength: 1 },
    indicator: { enum: ['info', 'warning', 'critical'] },
    source: ref('Source'),
    suggestions: { type: 'array', minItems: 1, items: ref('Suggestion') },
    selectionBehavior: { enum: ['at-most-one', 'any'] },
    overrideReasons: {
      type: 'array',
      minItems: 1,
      // Override reasons supplied by a service MUST carry a display (2.0.1 §Coding).
      items: { allOf: [ref('Coding'), { type: 'object', required: ['display'] }] },
    },
    links: { type: 'array', minItems: 1, items: ref('Link') },
    extension: { type: 'object' },
  },
  dependentRequired: { suggestions: ['selectionBehavior'] },
} as const;

/** The service never returns systemActions: the response admits cards only. */
const HookResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['cards'],
  properties: { cards: { type: 'array', items: ref('Card') } },
} as const;

const DiscoveryService = {
  type: 'object',
  additionalProperties: false,
  required: ['hook', 'description', 'id'],
  properties: {
    hook: { type: 'string', minLength: 1 },
    title: { type: 'string', minLength: 1 },
    description: { type: 'string', minLength: 1 },
    id: { type: 'string', minLength: 1 },
    prefetch: { type: 'object', additionalProperties: { type: 'string', minLength: 1 } },
    usageRequirements: { type: 'string', minLength: 1 },
    extension: { type: 'object' },
  },
} as const;

const DiscoveryResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['services'],
  properties: { services: { type: 'array', items: ref('DiscoveryService') } },
} as const;

const OperationOutcome = {
  type: 'object',
  required: ['resourceType', 'issue'],
  properties: {
    resourceType: { const: 'OperationOutcome' },
    issue: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['severity', 'code'],
        properties: {
          severity: { enum: ['fatal', 'error', 'warning', 'information'] },
          code: { type: 'string' },
          details: { type: 'object' },
          diagnostics: { type: 'string' },
          expression: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
} as const;

/**
 * One feedback item (§Feedback). 3.0 ballot invariants applied: cds-fb-1, accepted needs
 * acceptedSuggestions; an override carries no accepted suggestion and an acceptance no override reason;
 * cds-fb-3, an overrideReason holds a reason or a comment.
 */
const Feedback = {
  type: 'object',
  required: ['card', 'outcome', 'outcomeTimestamp'],
  properties: {
    card: { type: 'string', minLength: 1, maxLength: 128 },
    outcome: { enum: ['accepted', 'overridden'] },
    acceptedSuggestions: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['id'],
        properties: { id: { type: 'string', minLength: 1, maxLength: 128 } },
      },
    },
    overrideReason: {
      type: 'object',
      properties: { reason: ref('Coding'), userComment: { type: 'string', maxLength: 4000 } },
      anyOf: [{ required: ['reason'] }, { required: ['userComment'] }],
    },
    outcomeTimestamp: { type: 'string', format: 'date-time' },
  },
  allOf: [
    {
      if: { type: 'object', properties: { outcome: { const: 'accepted' } } },
      then: {
        type: 'object',
        required: ['acceptedSuggestions'],
        not: { type: 'object', required: ['overrideReason'] },
      },
    },
    {
      if: { type: 'object', properties: { outcome: { const: 'overridden' } } },
      then: { type: 'object', not: { type: 'object', required: ['acceptedSuggestions'] } },
    },
  ],
} as const;

/** `POST /cds-services/{id}/feedback` body: a batch, possibly about several cards and hook calls. */
const FeedbackRequest = {
  type: 'object',
  required: ['feedback'],
  properties: { feedback: { type: 'array', minItems: 1, maxItems: 1000, items: ref('Feedback') } },
} as const;

/** The spec defines no feedback response body; this one says what was stored and what was a retry. */
const FeedbackResponse = {
  type: 'object',
  additionalProperties: false,
  required: ['stored', 'duplicates'],
  properties: { stored: { type: 'integer', minimum: 0 }, duplicates: { type: 'integer', minimum: 0 } },
} as const;

const rate = { anyOf: [{ type: 'number', minimum: 0, maximum: 1 }, { type: 'null' }] } as const;
const count = { type: 'integer', minimum: 0 } as const;

/** `GET /analytics` (src/analytics/report.ts). */
const AnalyticsReport = {
  type: 'object',
  additionalProperties: false,
  required: ['generatedAt', 'groups'],
  properties: {
    generatedAt: { type: 'string', format: 'date-time' },
    scope: {
      type: 'object',
      additionalProperties: false,
      description: 'The client the figures are restricted to (?issuer=…&tenant=…); empty: every card',
      properties: { issuer: { type: 'string' }, tenant: { type: 'string' } },
    },
    groups: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: [
          'serviceId',
          'serviceVersion',
          'models',
          'cardsIssued',
          'accepted',
          'overridden',
          'noFeedback',
          'acceptanceRate',
          'overrideRate',
          'overrideReasons',
          'inputDataWrongRate',
          'cardsSuppressed',
          'suppressedReasons',
          'risk',
        ],
        properties: {
          serviceId: { type: 'string' },
          serviceVersion: { type: 'string' },
          models: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['id', 'version'],
              properties: { id: { type: 'string' }, version: { type: 'string' } },
            },
          },
          cardsIssued: count,
          accepted: count,
          overridden: count,
          noFeedback: count,
          acceptanceRate: rate,
          overrideRate: rate,
          overrideReasons: { type: 'object', additionalProperties: count },
          inputDataWrongRate: rate,
          cardsSuppressed: count,
          suppressedReasons: {
            type: 'object',
            description:
              'Cards not shown by the alert fatigue controls, per reason: `override:<reason code>` (a ' +
              'suppression window after an override), `no-estimate-hidden`, `not-evaluable-hidden`, `card-cap`, ' +
              'and `silent` (a card rule in silent mode: evaluated and recorded, never shown).',
            additionalProperties: count,
          },
          risk: {
            type: 'array',
            items: {
              type: 'object',
              additionalProperties: false,
              required: ['week', 'n', 'mean', 'histogram'],
              properties: {
                week: { type: 'string', format: 'date' },
                n: count,
                mean: { type: 'number' },
                histogram: { type: 'array', minItems: 10, maxItems: 10, items: count },
              },
            },
          },
        },
      },
    },
  },
} as const;

/** `POST /analytics/patient-export` body: the patient id travels in the body, never in the URL. */
const PatientExportRequest = {
  type: 'object',
  additionalProperties: false,
  required: ['patientId'],
  properties: { patientId: fhirId },
} as const;

/** A patient's audit events, in chain order (payloads as stored: src/audit/store.ts). */
const PatientExport = {
  type: 'object',
  additionalProperties: false,
  required: ['generatedAt', 'pseudonym', 'events'],
  properties: {
    generatedAt: { type: 'string', format: 'date-time' },
    pseudonym: { type: 'string', pattern: '^[0-9a-f]{64}$' },
    events: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['seq', 'kind', 'at', 'serviceId', 'pseudonym', 'payload'],
        properties: {
          seq: { type: 'integer', minimum: 1 },
          kind: { enum: ['service-call', 'feedback', 'objection'] },
          at: { type: 'string', format: 'date-time' },
          serviceId: { type: 'string' },
          pseudonym: { type: 'string' },
          payload: { type: 'object' },
        },
      },
    },
  },
} as const;

/** Every schema, by the name it has in openapi.yaml `components.schemas`. */
export const SCHEMAS = {
  Resource,
  Coding,
  HookRequest,
  Source,
  Action,
  Suggestion,
  Link,
  Card,
  HookResponse,
  DiscoveryService,
  DiscoveryResponse,
  OperationOutcome,
  Feedback,
  FeedbackRequest,
  FeedbackResponse,
  AnalyticsReport,
  PatientExportRequest,
  PatientExport,
} as const;

export type SchemaName = keyof typeof SCHEMAS;

/** The name a hook's context validator has in src/generated/request.ts: `patient-view` → `patientViewContext`. */
export function contextExportName(hook: HookName): string {
  return `${hook.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())}Context`;
}

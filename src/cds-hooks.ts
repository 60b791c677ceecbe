/**
 * CDS Hooks 2.0.1 wire types (HL7/cds-hooks v2.0.1, input/pagecontent/index.md). No logic here.
 * The JSON Schemas that validate these shapes are in `request/schemas.ts`.
 */
import type { FhirResource } from 'fhir/r4.js';

/** Hooks this service knows the context of (HL7/cds-hooks-library). */
export const KNOWN_HOOKS = [
  'patient-view',
  'order-select',
  'order-sign',
  'appointment-book',
  'encounter-start',
  'encounter-discharge',
] as const;
export type HookName = (typeof KNOWN_HOOKS)[number];

/** The user tokens a prefetch template may use (§ Prefetch tokens), derived from `context.userId`. */
export const USER_TOKENS = {
  userPractitionerId: 'Practitioner',
  userPractitionerRoleId: 'PractitionerRole',
  userPatientId: 'Patient',
  userRelatedPersonId: 'RelatedPerson',
} as const;
export type UserToken = keyof typeof USER_TOKENS;

/** Context fields each hook marks "Prefetch Token: Yes" (only root-level primitives). */
export const PREFETCH_TOKEN_FIELDS: Readonly<Record<HookName, readonly string[]>> = {
  'patient-view': ['userId', 'patientId', 'encounterId'],
  'order-select': ['userId', 'patientId', 'encounterId'],
  'order-sign': ['userId', 'patientId', 'encounterId'],
  'appointment-book': ['userId', 'patientId', 'encounterId'],
  'encounter-start': ['userId', 'patientId', 'encounterId'],
  'encounter-discharge': ['userId', 'patientId', 'encounterId'],
};

export type Extension = Record<string, unknown>;

export interface Coding {
  system: string;
  code: string;
  display?: string;
}

export interface FhirAuthorization {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  scope: string;
  subject: string;
  patient?: string;
}

/** A prefetch value: a resource (often a searchset Bundle), `null` (known absent) or an OperationOutcome. */
export type PrefetchValue = FhirResource | null;

export interface HookRequest {
  hook: string;
  hookInstance: string;
  fhirServer?: string;
  fhirAuthorization?: FhirAuthorization;
  context: Record<string, unknown> & { userId?: string; patientId?: string; encounterId?: string };
  prefetch?: Record<string, PrefetchValue>;
  extension?: Extension;
}

export interface DiscoveryService {
  hook: string;
  title?: string;
  description: string;
  id: string;
  prefetch?: Record<string, string>;
  usageRequirements?: string;
  extension?: Extension;
}

export interface DiscoveryResponse {
  services: DiscoveryService[];
}

export interface Source {
  label: string;
  url?: string;
  icon?: string;
  topic?: Coding;
}

export interface Action {
  type: 'create' | 'update' | 'delete';
  description: string;
  resource?: FhirResource;
  resourceId?: string;
}

export interface Suggestion {
  label: string;
  uuid?: string;
  isRecommended?: boolean;
  actions?: Action[];
}

export interface Link {
  label: string;
  url: string;
  type: 'absolute' | 'smart';
  appContext?: string;
  autolaunchable?: boolean;
}

export interface Card {
  uuid?: string;
  summary: string;
  detail?: string;
  indicator: 'info' | 'warning' | 'critical';
  source: Source;
  suggestions?: Suggestion[];
  selectionBehavior?: 'at-most-one' | 'any';
  overrideReasons?: Coding[];
  links?: Link[];
  extension?: Extension;
}

/** The service answers with cards only: clinical `systemActions` are never produced (advisory only). */
export interface HookResponse {
  cards: Card[];
}

export interface Feedback {
  card: string;
  outcome: 'accepted' | 'overridden';
  acceptedSuggestions?: { id: string }[];
  overrideReason?: { reason?: Coding; userComment?: string };
  outcomeTimestamp: string;
}

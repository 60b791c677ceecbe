/**
 * Builds the audit events from what the pipeline found (the findings behind each card, never the
 * rendered card's extension). Pure: the pseudonym function and the clock's reading are passed in. What goes in is listed in `store.ts`; what stays out is
 * everything else: resource bodies, card detail text, the patient id in clear, tokens.
 */
import type { IssuedCard } from '../cards/render.js';
import type { Feedback, HookRequest } from '../cds-hooks.js';
import type { ModelOutcome } from '../scoring/score.js';
import type { CompiledService } from '../services/load.js';
import type { InputsDigest } from './inputs.js';
import { focusKeyOf, type PredictionRecord } from './predictions.js';
import type { Pseudonymise } from './pseudonym.js';
import type { SuppressedCard } from '../cards/suppression.js';
import type {
  AuditedCard,
  AuditedPrediction,
  Caller,
  ExplanationPageRow,
  ModelRef,
  NewAuditEvent,
} from './store.js';

export interface ServiceCallRecord {
  service: CompiledService;
  request: HookRequest;
  /** The cards answered, each with the model estimate and the finding it is about. */
  cards: readonly (Pick<IssuedCard, 'card' | 'model'> & { findingKey?: string })[];
  /** Cards the alert fatigue controls did not show. */
  suppressed?: readonly SuppressedCard[];
  /** Hash of the prefetch data used and the references of its resources. */
  inputs: InputsDigest;
  caller: Caller;
  /** When the call arrived. */
  at: Date;
  latencyMs: number;
  /** Models that scored the call (none for a rules-only service). */
  models?: ModelRef[];
  /** The explanation pages of its cards, kept with the record for every instance (not hashed). */
  pages?: ExplanationPageRow[];
  /** Every model estimate, live and silent (`predictions.ts`); focus identities become keys here. */
  predictions?: readonly PredictionRecord[];
}

export interface ObjectionRecord {
  service: CompiledService;
  request: HookRequest;
  /** The Consent's id (as `findObjection` returns it). */
  consentId: string;
  caller: Caller;
  at: Date;
}

/** The risk and top factors (id, value, contribution) of the model estimate a card is about, if any. */
function modelFacts(model: ModelOutcome | undefined): Pick<AuditedCard, 'risk' | 'topFactors'> {
  if (model?.status !== 'scored') return {};
  const topFactors = [...model.contributions]
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
    .slice(0, 5)
    .map(({ id, value, contribution }) => ({ id, value, contribution }));
  return { risk: model.probability, topFactors };
}

/** A card as the audit keeps it: the card's own fields, and the risk of the estimate it is about. */
export function auditedCard({
  card,
  model,
  findingKey,
}: Pick<IssuedCard, 'card' | 'model'> & { findingKey?: string }): AuditedCard {
  return {
    uuid: card.uuid ?? '',
    indicator: card.indicator,
    summary: card.summary,
    suggestions: (card.suggestions ?? []).flatMap((s) => (s.uuid ? [s.uuid] : [])),
    ...modelFacts(model),
    ...(findingKey === undefined ? {} : { finding: findingKey }),
  };
}

/** Keyed hash of the call's encounter, so that a window may end with the next encounter. */
export const encounterOf = (request: HookRequest, pseudonymise: Pseudonymise): string | null =>
  typeof request.context.encounterId === 'string'
    ? pseudonymise(`Encounter/${request.context.encounterId}`)
    : null;

const patientOf = (request: HookRequest, pseudonymise: Pseudonymise) =>
  typeof request.context.patientId === 'string' ? pseudonymise(request.context.patientId) : null;

export function serviceCallEvent(record: ServiceCallRecord, pseudonymise: Pseudonymise): NewAuditEvent {
  const d = record.service.definition;
  return {
    kind: 'service-call',
    at: record.at.toISOString(),
    serviceId: d.id,
    pseudonym: patientOf(record.request, pseudonymise),
    payload: {
      hook: record.request.hook,
      hookInstance: record.request.hookInstance,
      caller: record.caller,
      service: { id: d.id, version: d.version, sha256: record.service.sha256 },
      models: record.models ?? [],
      inputs: record.inputs,
      cards: record.cards.map(auditedCard),
      latencyMs: Math.round(record.latencyMs * 1000) / 1000,
      ...encounterField(record, pseudonymise),
      ...(record.suppressed?.length
        ? {
            suppressed: record.suppressed.map((s) => ({
              finding: s.findingKey,
              reason: s.reason,
              ...(s.overriddenCard === undefined ? {} : { overriddenCard: s.overriddenCard }),
              ...(s.until === undefined ? {} : { until: s.until }),
            })),
          }
        : {}),
      ...(record.predictions?.length
        ? { predictions: record.predictions.map((p) => auditedPrediction(p, record.request, pseudonymise)) }
        : {}),
    },
    ...(record.pages?.length ? { pages: record.pages } : {}),
  };
}

/** An estimate as the audit keeps it: its focus identity replaced with the keyed pseudonym. */
function auditedPrediction(
  { focusIdentity, ...prediction }: PredictionRecord,
  request: HookRequest,
  pseudonymise: Pseudonymise,
): AuditedPrediction {
  const patientId = request.context.patientId;
  const focusKey =
    typeof patientId === 'string' ? focusKeyOf(pseudonymise, patientId, focusIdentity) : undefined;
  return focusKey === undefined ? prediction : { ...prediction, focusKey };
}

/** The encounter is kept only with cards (the windows that end with the next encounter need it). */
function encounterField(record: ServiceCallRecord, pseudonymise: Pseudonymise): { encounter?: string } {
  if (record.cards.length === 0) return {};
  const encounter = encounterOf(record.request, pseudonymise);
  return encounter === null ? {} : { encounter };
}

export function objectionEvent(record: ObjectionRecord, pseudonymise: Pseudonymise): NewAuditEvent {
  return {
    kind: 'objection',
    at: record.at.toISOString(),
    serviceId: record.service.definition.id,
    pseudonym: patientOf(record.request, pseudonymise),
    payload: {
      hook: record.request.hook,
      hookInstance: record.request.hookInstance,
      consent: `Consent/${record.consentId}`,
      caller: record.caller,
    },
  };
}

/** One feedback item about a card already looked up (its pseudonym is the card's). */
export function feedbackEvent(
  serviceId: string,
  item: Feedback,
  pseudonym: string | null,
  caller: Caller,
  at: Date,
): NewAuditEvent {
  return {
    kind: 'feedback',
    at: at.toISOString(),
    serviceId,
    pseudonym,
    payload: {
      card: item.card,
      outcome: item.outcome,
      acceptedSuggestions: (item.acceptedSuggestions ?? []).map((s) => s.id),
      ...(item.overrideReason ? { overrideReason: item.overrideReason } : {}),
      outcomeTimestamp: item.outcomeTimestamp,
      caller,
    },
  };
}

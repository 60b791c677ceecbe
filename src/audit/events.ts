/**
 * Builds the audit events from what the pipeline and the HTTP shell know. Pure: the pseudonym function
 * and the clock's reading are passed in. What goes in is listed in `store.ts`; what stays out is
 * everything else: resource bodies, card detail text, the patient id in clear, tokens.
 */
import type { Card, Feedback, HookRequest } from '../cds-hooks.js';
import { EXPLANATION_EXTENSION } from '../explain/explain.js';
import type { ServiceOutcome } from '../pipeline.js';
import type { CompiledService } from '../services/load.js';
import type { Pseudonymise } from './pseudonym.js';
import type { AuditedCard, Caller, ModelRef, NewAuditEvent } from './store.js';

export interface ServiceCallRecord {
  service: CompiledService;
  request: HookRequest;
  outcome: Pick<ServiceOutcome, 'response' | 'inputs'>;
  caller: Caller;
  /** When the call arrived. */
  at: Date;
  latencyMs: number;
  /** Models that scored the call (none for a rules-only service). */
  models?: ModelRef[];
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
function modelFacts(card: Card): Pick<AuditedCard, 'risk' | 'topFactors'> {
  const explanation = card.extension?.[EXPLANATION_EXTENSION] as
    { model?: { status?: string; probability?: unknown; contributions?: unknown } } | undefined;
  const model = explanation?.model;
  if (model?.status !== 'scored' || typeof model.probability !== 'number') return {};
  const contributions = Array.isArray(model.contributions)
    ? (model.contributions as { id: string; value: number; contribution: number }[])
    : [];
  const topFactors = [...contributions]
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
    .slice(0, 5)
    .map(({ id, value, contribution }) => ({ id, value, contribution }));
  return { risk: model.probability, topFactors };
}

export function auditedCard(card: Card): AuditedCard {
  return {
    uuid: card.uuid ?? '',
    indicator: card.indicator,
    summary: card.summary,
    suggestions: (card.suggestions ?? []).flatMap((s) => (s.uuid ? [s.uuid] : [])),
    ...modelFacts(card),
  };
}

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
      inputs: record.outcome.inputs,
      cards: record.outcome.response.cards.map(auditedCard),
      latencyMs: Math.round(record.latencyMs * 1000) / 1000,
    },
  };
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

/**
 * Audit events built directly (without a hook call), for store and analytics tests.
 */
import { SYSTEM } from '../../src/codes.js';
import type { AuditedCard, ModelRef, NewAuditEvent } from '../../src/audit/store.js';

export const SERVICE = 'melanoma-lesion-triage';
export const CALLER = { issuer: null, tenant: null };

export interface CallSpec {
  serviceId?: string;
  version?: string;
  at?: string;
  pseudonym?: string | null;
  models?: ModelRef[];
  cards: (Partial<AuditedCard> & { uuid: string })[];
}

export function callEvent(spec: CallSpec): NewAuditEvent {
  const serviceId = spec.serviceId ?? SERVICE;
  return {
    kind: 'service-call',
    at: spec.at ?? '2026-11-22T09:30:00.000Z',
    serviceId,
    pseudonym: spec.pseudonym === undefined ? 'p'.repeat(64) : spec.pseudonym,
    payload: {
      hook: 'patient-view',
      hookInstance: 'd1577c69-dfbe-44ad-ba6d-3e05e953b2ea',
      caller: CALLER,
      service: { id: serviceId, version: spec.version ?? '1.0.0', sha256: 'a'.repeat(64) },
      models: spec.models ?? [],
      inputs: { sha256: 'b'.repeat(64), references: ['Observation/lesion-1'] },
      cards: spec.cards.map((c) => ({ indicator: 'warning', summary: 'A card', suggestions: [], ...c })),
      latencyMs: 1.5,
    },
  };
}

export interface FeedbackSpec {
  card: string;
  outcome?: 'accepted' | 'overridden';
  reason?: string;
  comment?: string;
  accepted?: string[];
  outcomeTimestamp?: string;
  serviceId?: string;
  pseudonym?: string | null;
}

export function feedbackEvent(spec: FeedbackSpec): NewAuditEvent {
  const outcome = spec.outcome ?? (spec.reason || spec.comment ? 'overridden' : 'accepted');
  return {
    kind: 'feedback',
    at: '2026-11-22T09:31:00.000Z',
    serviceId: spec.serviceId ?? SERVICE,
    pseudonym: spec.pseudonym === undefined ? 'p'.repeat(64) : spec.pseudonym,
    payload: {
      card: spec.card,
      outcome,
      acceptedSuggestions: spec.accepted ?? [],
      ...(spec.reason || spec.comment
        ? {
            overrideReason: {
              ...(spec.reason ? { reason: { system: SYSTEM.overrideReason, code: spec.reason } } : {}),
              ...(spec.comment ? { userComment: spec.comment } : {}),
            },
          }
        : {}),
      outcomeTimestamp: spec.outcomeTimestamp ?? '2026-11-22T09:31:00Z',
      caller: CALLER,
    },
  };
}

export function objectionEvent(pseudonym: string): NewAuditEvent {
  return {
    kind: 'objection',
    at: '2026-11-22T09:30:00.000Z',
    serviceId: SERVICE,
    pseudonym,
    payload: { hook: 'patient-view', hookInstance: 'h-1', consent: 'Consent/c-1', caller: CALLER },
  };
}

/**
 * POST /cds-services/{id}/feedback (CDS Hooks 2.0 §Feedback): what the clinician did with each card.
 *
 * The whole batch is checked before anything is stored, and stored in one transaction: each item must
 * name a card this service issued to the same client, issuer and tenant (404 otherwise, the same answer
 * whether the card does not exist or is another client's), accepted suggestions must be that card's, and an
 * override reason must be one the service offers (422). A retry of an item already stored (same card,
 * outcome and outcome instant) is not stored again. The 200 is sent only after the transaction has
 * committed, so an acknowledged item is on disk; a store that does not answer gives a 503 and stores
 * nothing.
 */
import type { FastifyRequest } from 'fastify';
import type { Feedback } from '../cds-hooks.js';
import { OVERRIDE_REASONS, SYSTEM } from '../codes.js';
import { CdsError } from '../errors.js';
import type { CompiledService } from '../services/load.js';
import type { Registry } from '../services/registry.js';
import type { AuditTrail } from '../audit/audit-trail.js';
import { feedbackEvent } from '../audit/events.js';
import { normalizeInstant } from '../audit/sql-store.js';
import type { Caller, IssuedCard } from '../audit/store.js';
import { describeError, validatorFor } from '../request/validate.js';

/** Checks one item against the card it names. */
function checkItem(service: CompiledService, item: Feedback, card: IssuedCard, index: number): void {
  const invalid = (reason: string, expression: string) =>
    new CdsError(
      'CDS_ERR_FEEDBACK_INVALID',
      { index, reason },
      { expression: [`feedback[${index}].${expression}`] },
    );
  try {
    normalizeInstant(item.outcomeTimestamp);
  } catch {
    throw invalid('outcomeTimestamp is not a valid instant', 'outcomeTimestamp');
  }
  for (const [i, accepted] of (item.acceptedSuggestions ?? []).entries()) {
    if (!card.suggestions.includes(accepted.id)) {
      throw invalid(
        `suggestion "${accepted.id.slice(0, 128)}" is not one of the card's suggestions`,
        `acceptedSuggestions[${i}].id`,
      );
    }
  }
  const reason = item.overrideReason?.reason;
  if (reason) {
    const offered = service.definition.overrideReasons ?? Object.keys(OVERRIDE_REASONS);
    if (reason.system !== SYSTEM.overrideReason || !offered.includes(reason.code)) {
      throw invalid(
        `override reason ${reason.system.slice(0, 200)}#${reason.code.slice(0, 64)} is not one the service offers (system ${SYSTEM.overrideReason}, codes ${offered.join(', ')})`,
        'overrideReason.reason',
      );
    }
  }
}

const sameClient = (card: IssuedCard, caller: Caller) =>
  card.issuer === caller.issuer && card.tenant === caller.tenant;

export function feedbackHandler(registry: Registry, audit: Pick<AuditTrail, 'use'>, now: () => Date) {
  return async (request: FastifyRequest<{ Params: { id: string } }>) => {
    const service = registry.get(request.params.id);
    if (!service)
      throw new CdsError('CDS_ERR_SERVICE_NOT_FOUND', { serviceId: request.params.id.slice(0, 64) });
    const validate = validatorFor('FeedbackRequest');
    if (!validate(request.body)) {
      throw new CdsError('CDS_ERR_REQUEST_INVALID', { reason: describeError(validate.errors, 'body') });
    }
    const items = (request.body as { feedback: Feedback[] }).feedback;
    const serviceId = service.definition.id;
    const caller: Caller = {
      issuer: request.cdsClient?.iss ?? null,
      tenant: request.cdsClient?.tenant ?? null,
    };
    const result = await audit.use(async (store) => {
      const cards = await store.findCards(serviceId, [...new Set(items.map((i) => i.card))]);
      const events = items.map((item, index) => {
        const found = cards.get(item.card);
        // Tenancy: a card takes feedback only from the client (issuer and tenant) it was issued to.
        // Another client's card is answered exactly as a card that does not exist: no oracle.
        const other = found !== undefined && !sameClient(found, caller);
        if (other) request.log.warn({ serviceId, index }, 'feedback refused: card issued to another client');
        const card = other ? undefined : found;
        if (!card) {
          throw new CdsError(
            'CDS_ERR_FEEDBACK_UNKNOWN_CARD',
            { index, serviceId, card: item.card },
            { expression: [`feedback[${index}].card`] },
          );
        }
        checkItem(service, item, card, index);
        return feedbackEvent(serviceId, item, card.pseudonym, caller, now());
      });
      return store.append(events);
    });
    const stored = result.seqs.filter((s) => s !== null).length;
    request.log.info({ serviceId, stored, duplicates: result.seqs.length - stored }, 'feedback stored');
    return { stored, duplicates: result.seqs.length - stored };
  };
}

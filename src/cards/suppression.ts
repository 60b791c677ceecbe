/**
 * Alert fatigue controls, applied to the cards of one call before they leave (design.md: "few cards, no
 * repeats after an override"), in this order:
 *
 * 1. cards of a model that gave no estimate (`when.scored: false`) or of rules that could not be
 *    evaluated (`when.noneEvaluated`) are dropped when the service turns them off;
 * 2. a card whose finding (`IssuedCard.findingKey`: card template + focus) was overridden for the same
 *    patient with a coded reason that has a window is dropped while the window lasts: from the instant
 *    the feedback was recorded (the service's clock), for `days` or `hours`; with `untilNextEncounter`
 *    the window also ends when the call names an encounter other than the one the overridden card was
 *    issued in (when either is unknown, only the duration applies). The window is half-open: at its
 *    last millisecond the card is still hidden, at its end it shows again. Only the latest feedback on
 *    a card counts (an override later turned into an acceptance suppresses nothing);
 * 3. at most `maxCards` cards: the most urgent (critical, then warning, then info; in the order of the
 *    templates within one level) are kept, in their original order.
 *
 * Every dropped card is reported with its reason, for the audit trail and the analytics.
 */
import type { OverrideReasonCode } from '../codes.js';
import type { CardSpec, ServiceDefinition } from '../services/definition-schema.js';
import type { IssuedCard } from './render.js';

export interface OverrideWindow {
  days?: number;
  hours?: number;
  untilNextEncounter?: boolean;
}

export interface AlertFatigue {
  afterOverride: Partial<Record<OverrideReasonCode, OverrideWindow>>;
  showNoEstimate: boolean;
  showNotEvaluable: boolean;
  maxCards: number;
}

/** The bundled defaults, for a service whose YAML does not say otherwise. */
export const DEFAULT_ALERT_FATIGUE: AlertFatigue = {
  afterOverride: {
    'already-handled': { days: 30 },
    'not-relevant-now': { hours: 24, untilNextEncounter: true },
  },
  showNoEstimate: true,
  showNotEvaluable: true,
  maxCards: 10,
};

/** The service's settings, each absent one taken from the defaults. */
export function alertFatigueOf(definition: Pick<ServiceDefinition, 'alertFatigue'>): AlertFatigue {
  const declared = definition.alertFatigue ?? {};
  return {
    afterOverride: (declared.afterOverride ??
      DEFAULT_ALERT_FATIGUE.afterOverride) as AlertFatigue['afterOverride'],
    showNoEstimate: declared.showNoEstimate ?? DEFAULT_ALERT_FATIGUE.showNoEstimate,
    showNotEvaluable: declared.showNotEvaluable ?? DEFAULT_ALERT_FATIGUE.showNotEvaluable,
    maxCards: declared.maxCards ?? DEFAULT_ALERT_FATIGUE.maxCards,
  };
}

/** An earlier override of a card about one of the findings of this call, as the audit store has it. */
export interface PastOverride {
  findingKey: string;
  /** The overridden card. */
  cardUuid: string;
  /** The override reason code; null when the clinician gave none. */
  reasonCode: string | null;
  /** When the feedback was recorded (ISO 8601). */
  at: string;
  /** Keyed hash of the encounter the card was issued in, if the call named one. */
  encounter: string | null;
  /** An acceptance recorded after an override ends it (default: overridden). */
  outcome?: 'accepted' | 'overridden';
}

/** Why a card was not shown. */
export type SuppressionReason =
  | `override:${string}`
  | 'no-estimate-hidden'
  | 'not-evaluable-hidden'
  | 'card-cap'
  /** A card in `mode: silent`: evaluated and recorded, never shown (issue 19). */
  | 'silent';

export interface SuppressedCard {
  findingKey: string;
  reason: SuppressionReason;
  /** For an override: the overridden card and the end of the window (ISO 8601). */
  overriddenCard?: string;
  until?: string;
}

const HOUR_MS = 3_600_000;

/** The end of the window an override opens, or undefined when its reason has none. */
export function windowEnd(override: PastOverride, settings: AlertFatigue): Date | undefined {
  const window = override.reasonCode
    ? settings.afterOverride[override.reasonCode as OverrideReasonCode]
    : undefined;
  if (!window) return undefined;
  const hours = window.days !== undefined ? window.days * 24 : (window.hours ?? 0);
  return new Date(new Date(override.at).getTime() + hours * HOUR_MS);
}

/** `no-estimate` / `not-evaluable` cards, by their template's condition. */
export function unassessedKind(spec: CardSpec): 'no-estimate' | 'not-evaluable' | undefined {
  if (spec.when.model !== undefined && spec.when.scored === false) return 'no-estimate';
  if (spec.when.noneEvaluated !== undefined) return 'not-evaluable';
  return undefined;
}

const URGENCY = { critical: 0, warning: 1, info: 2 } as const;

export interface SuppressionInput {
  cards: readonly IssuedCard[];
  settings: AlertFatigue;
  /** Earlier feedback on this patient's findings (any order; several per card possible). */
  overrides: readonly (PastOverride & { seq: number })[];
  /** Keyed hash of the encounter this call names, if any. */
  encounter: string | null;
  now: Date;
}

/** Splits the cards of a call into those shown and those suppressed (with why). */
export function suppressCards(input: SuppressionInput): {
  shown: IssuedCard[];
  suppressed: SuppressedCard[];
} {
  const { settings, now } = input;
  const suppressed: SuppressedCard[] = [];
  // Latest feedback per card: only an override that still stands suppresses.
  const latest = new Map<string, PastOverride & { seq: number }>();
  for (const o of input.overrides) {
    const seen = latest.get(o.cardUuid);
    if (!seen || o.seq > seen.seq) latest.set(o.cardUuid, o);
  }
  const active = (findingKey: string): { override: PastOverride; until: Date } | undefined => {
    let found: { override: PastOverride; until: Date } | undefined;
    for (const o of latest.values()) {
      if (o.findingKey !== findingKey || o.outcome === 'accepted' || o.reasonCode === null) continue;
      const until = windowEnd(o, settings);
      if (!until || now.getTime() >= until.getTime()) continue;
      const window = settings.afterOverride[o.reasonCode as OverrideReasonCode];
      if (window?.untilNextEncounter && input.encounter && o.encounter && input.encounter !== o.encounter)
        continue;
      if (!found || until > found.until) found = { override: o, until };
    }
    return found;
  };

  const kept: IssuedCard[] = [];
  for (const issued of input.cards) {
    const kind = unassessedKind(issued.spec);
    if (kind === 'no-estimate' && !settings.showNoEstimate) {
      suppressed.push({ findingKey: issued.findingKey, reason: 'no-estimate-hidden' });
      continue;
    }
    if (kind === 'not-evaluable' && !settings.showNotEvaluable) {
      suppressed.push({ findingKey: issued.findingKey, reason: 'not-evaluable-hidden' });
      continue;
    }
    const hit = active(issued.findingKey);
    if (hit) {
      suppressed.push({
        findingKey: issued.findingKey,
        reason: `override:${hit.override.reasonCode!}`,
        overriddenCard: hit.override.cardUuid,
        until: hit.until.toISOString(),
      });
      continue;
    }
    kept.push(issued);
  }

  if (kept.length <= settings.maxCards) return { shown: kept, suppressed };
  const ranked = kept
    .map((issued, index) => ({ issued, index }))
    .sort((a, b) => URGENCY[a.issued.card.indicator] - URGENCY[b.issued.card.indicator] || a.index - b.index);
  const keep = new Set(ranked.slice(0, settings.maxCards).map((r) => r.index));
  const shown = kept.filter((_, index) => keep.has(index));
  for (const r of ranked.slice(settings.maxCards)) {
    suppressed.push({ findingKey: r.issued.findingKey, reason: 'card-cap' });
  }
  return { shown, suppressed };
}

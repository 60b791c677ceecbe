/**
 * One model estimate from the audit trail, linked to the outcome found later in FHIR data.
 * Pseudonymised: no patient id, birth date or exact date leaves the linkage step.
 */
export interface LinkedPrediction {
  serviceId: string;
  modelId: string;
  modelVersion: string;
  /** live: its cards were shown; silent: evaluated and recorded, no card shown. */
  mode: 'live' | 'silent';
  /** ISO week of the estimate (YYYY-Www), the only time detail a report may show. */
  week: string;
  /** Predicted probability of the outcome, 0..1. */
  risk: number;
  /** The band the model assigned (e.g. lower / intermediate / higher), if any. */
  band?: string;
  /** Whether the estimate reached the card threshold of the service (the "positive" call). */
  positive: boolean;
  /** Model input values used (feature id -> value), for drift against the background sample. */
  inputs: Record<string, number>;
  /** Subgroups of the model card the patient belongs to (e.g. { sex: 'female', ageBand: '65-74' }). */
  subgroups: Record<string, string>;
  /** 1 when the outcome occurred within the horizon, 0 when the follow-up shows it did not, null unknown. */
  outcome: 0 | 1 | null;
}

/** A rule's (non-model card's) statistics for the report, per service and card template. */
export interface RuleStats {
  serviceId: string;
  template: string;
  cardsShown: number;
  accepted: number;
  overridden: number;
  overrideReasons: Record<string, number>;
  /**
   * Cards with an outcome defined and known, and how many of those had the outcome (for PPV); the same
   * for the cards whose latest feedback was accepted and overridden (the others had no feedback).
   */
  withOutcome?: OutcomeCount & { accepted?: OutcomeCount; overridden?: OutcomeCount };
  /** What the card's outcome is (the service YAML's `cards[].outcome.label`) and its horizon. */
  outcome?: { label: { en: string; fr: string }; horizonMonths: number };
}

/** Cards whose outcome is known, and of those, with the outcome. */
export interface OutcomeCount {
  known: number;
  positive: number;
}

/**
 * The value that flows through the pipeline, one per focus (one lesion examination, one draft order,
 * or the patient for a service without a focus). Each stage returns a new, read-only value that adds
 * what it found; nothing is filled in afterwards.
 */
import type { FindingExplanations } from './explain/explain.js';
import type { FocusResult } from './rules/evaluate.js';
import type { ModelOutcome } from './scoring/score.js';

/** A focus after the model stage: its rule results, and one outcome per model of the service. */
export interface ScoredFocus extends Readonly<FocusResult> {
  /** In the order of the service's models. */
  readonly models: readonly ModelOutcome[];
}

/** A focus after the explanation stage: what cards about it explain. */
export interface Finding extends ScoredFocus {
  readonly explanations: FindingExplanations;
}

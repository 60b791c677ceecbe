/**
 * Assembles the explanation of one card: which rules were evaluated on which data and with what
 * result, what data was not available, and the provenance (rule-set id, version and hash, guideline
 * sources). The card detail is rendered from it, and it travels machine-readable in the card's
 * `extension` so that an EHR or an auditor reads the same facts the clinician does.
 */
import type { ScoredFocus } from '../finding.js';
import type { ModelOutcome } from '../scoring/score.js';
import type { UnavailableData } from '../prefetch/resolve.js';
import type { FocusResult, RuleResult } from '../rules/evaluate.js';
import type { SourceSpec } from '../services/definition-schema.js';
import type { CompiledService } from '../services/load.js';
import type { Localized } from '../language.js';

/** Key of the explanation in `card.extension` (CDS Hooks: extension keys SHOULD be reverse-DNS). */
export const EXPLANATION_EXTENSION = 'org.example.explainable-cds.explanation';

export interface Explanation {
  ruleSet: { id: string; version: string; sha256: string };
  guideline: SourceSpec[];
  focus: { reference?: string; label?: string; date?: string } | undefined;
  rules: RuleResult[];
  unavailable: { key: string; description: Localized; reason: string }[];
  /** The model estimate the card is about (cards about rules only have none). */
  model?: ModelOutcome;
  advisory: true;
}

/** Builds the explanation of a card about one focus. */
export function explain(
  service: CompiledService,
  focus: FocusResult,
  unavailable: readonly UnavailableData[],
  model?: ModelOutcome,
): Explanation {
  const d = service.definition;
  return {
    ruleSet: { id: d.id, version: d.version, sha256: service.sha256 },
    guideline: d.guideline,
    focus: service.focus
      ? {
          ...(focus.reference ? { reference: focus.reference } : {}),
          ...(focus.label ? { label: focus.label } : {}),
          ...(focus.date ? { date: focus.date } : {}),
        }
      : undefined,
    rules: focus.rules,
    unavailable: unavailable.map(({ key, description, reason }) => ({ key, description, reason })),
    ...(model ? { model } : {}),
    advisory: true,
  };
}

/** The explanations a focus's cards carry: one for a card about rules only, one per model outcome. */
export interface FindingExplanations {
  readonly rules: Explanation;
  /** By model id. */
  readonly models: ReadonlyMap<string, Explanation>;
}

/** The explanation stage: every explanation a card about this focus can carry. */
export function explainFinding(
  service: CompiledService,
  focus: ScoredFocus,
  unavailable: readonly UnavailableData[],
): FindingExplanations {
  return {
    rules: explain(service, focus, unavailable),
    models: new Map(focus.models.map((m) => [m.model.id, explain(service, focus, unavailable, m)])),
  };
}

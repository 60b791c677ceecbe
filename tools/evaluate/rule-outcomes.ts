/**
 * The outcomes of rules' cards (issue 19: "for rules, … the positive predictive value where an outcome is
 * defined"). A card template of a service YAML may define an `outcome` (src/services/definition-schema.ts:
 * the shape of a model's `outcomeDefinition`, plus what it is and its source). Each rule card of the
 * audit trail shown in the period is linked to the later data of its patient by the same keyed pseudonym
 * as the model estimates, and given its outcome by the rule of ./linkage.ts (`outcomeOf`) from the
 * instant the card was issued: 1 within the horizon, 0 when follow-up past the horizon shows none,
 * unknown otherwise. What leaves this step is `RuleStats`: counts per service and card template only.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import type { SqlDriver } from '../../src/audit/sql-store.js';
import * as generated from '../../src/generated/service-definition.js';
import type { RuleStats } from '../../src/governance/types.js';
import type { FhirPath } from '../../src/rules/fhirpath.js';
import type { CardOutcome, ServiceDefinitionFile } from '../../src/services/definition-schema.js';
import { generatedValidator } from '../../src/validators.js';
import { compileOutcome, type CompiledOutcome, type OutcomeEvidence, outcomeOf } from './linkage.js';

/** One rule card of the audit trail (no model estimate), with its latest feedback. */
export interface RuleCard {
  serviceId: string;
  /** The card template's id (`cards[].id` of the service YAML). */
  template: string;
  pseudonym: string | null;
  /** When the card was issued (ISO instant): the start of its outcome's horizon. */
  issuedAt: string;
  feedback: 'accepted' | 'overridden' | null;
  reasonCode: string | null;
}

/** A card template's outcome, compiled, with what it is. */
export interface RuleOutcome extends CompiledOutcome {
  label: CardOutcome['label'];
}

/** `serviceId|template`: the key of a card template across the audit trail and the definitions. */
export const templateKey = (serviceId: string, template: string) => `${serviceId}|${template}`;

/** The rule cards shown in the period [from, to), with their latest feedback. */
export async function ruleCards(driver: SqlDriver, from: string, to: string): Promise<RuleCard[]> {
  const rows = await driver.query(
    `SELECT c.service_id, c.finding, c.pseudonym, c.issued_at, f.outcome, f.reason_code FROM audit_card c
     LEFT JOIN (
       SELECT card_uuid, outcome, reason_code,
         ROW_NUMBER() OVER (PARTITION BY card_uuid ORDER BY outcome_instant DESC, event_seq DESC) AS rn
       FROM audit_feedback
     ) f ON f.card_uuid = c.card_uuid AND f.rn = 1
     WHERE c.risk IS NULL AND c.finding IS NOT NULL AND c.issued_at >= ? AND c.issued_at < ?
     ORDER BY c.issued_at, c.card_uuid`,
    [from, to],
  );
  return rows.map((r) => ({
    serviceId: String(r.service_id),
    template: String(r.finding).split('@')[0]!,
    pseudonym: r.pseudonym === null ? null : String(r.pseudonym),
    issuedAt: String(r.issued_at),
    feedback: r.outcome === 'accepted' || r.outcome === 'overridden' ? r.outcome : null,
    reasonCode: r.reason_code === null ? null : String(r.reason_code),
  }));
}

// DEFINITION_SCHEMA as the service checks it (src/services/load.ts), compiled by `npm run schemas`.
const validateDefinition = generatedValidator<ServiceDefinitionFile>(generated.serviceDefinition);

/**
 * The outcomes the card templates of a services folder define, by `serviceId|template` (a file listing
 * several `hooks` gives one service per hook, `<id>-<hook>`, as at start-up). The definitions are checked
 * against the service schema; the models they run are not needed.
 * @throws Error naming the file (and the JSON pointer) of a definition that is not valid
 */
export function readCardOutcomes(dir: string, fhirpath: FhirPath): Map<string, RuleOutcome> {
  const outcomes = new Map<string, RuleOutcome>();
  if (!existsSync(dir)) return outcomes;
  for (const name of readdirSync(dir)
    .filter((n) => /\.ya?ml$/.test(n))
    .sort()) {
    const document = parseDocument(readFileSync(join(dir, name), 'utf8'), { uniqueKeys: true });
    if (document.errors.length > 0) throw new Error(`${name}: YAML: ${document.errors[0]!.message}`);
    const definition: unknown = document.toJS();
    if (!validateDefinition(definition)) {
      const error = validateDefinition.errors![0]!;
      throw new Error(`${name}#${error.instancePath}: ${error.message}`);
    }
    const ids = definition.hook
      ? [definition.id]
      : (definition.hooks ?? []).map((hook) => `${definition.id}-${hook}`);
    definition.cards.forEach((card, i) => {
      if (!card.outcome) return;
      let compiled: CompiledOutcome;
      try {
        compiled = compileOutcome(card.outcome, fhirpath);
      } catch (error) {
        throw new Error(`${name}#/cards/${i}/outcome: ${(error as Error).message}`);
      }
      for (const id of ids)
        outcomes.set(templateKey(id, card.id), { ...compiled, label: card.outcome.label });
    });
  }
  return outcomes;
}

/**
 * The statistics of each card template: cards shown, accepted and overridden (latest feedback), override
 * reasons, and for a template with an outcome, how many cards have a known outcome and how many the
 * outcome, overall and by feedback.
 * @param evidence the later data of a patient about an outcome (`pseudonym`, `serviceId|template`);
 *   undefined when the patient is not in the data
 */
export function ruleStatsOf(
  cards: readonly RuleCard[],
  outcomes: ReadonlyMap<string, RuleOutcome>,
  evidence: (pseudonym: string, key: string) => readonly OutcomeEvidence[] | undefined,
): RuleStats[] {
  const stats = new Map<string, RuleStats>();
  for (const card of cards) {
    const key = templateKey(card.serviceId, card.template);
    const outcome = outcomes.get(key);
    let s = stats.get(key);
    if (!s) {
      s = {
        serviceId: card.serviceId,
        template: card.template,
        cardsShown: 0,
        accepted: 0,
        overridden: 0,
        overrideReasons: {},
        ...(outcome && {
          outcome: { label: outcome.label, horizonMonths: outcome.definition.horizonMonths },
          withOutcome: {
            known: 0,
            positive: 0,
            accepted: { known: 0, positive: 0 },
            overridden: { known: 0, positive: 0 },
          },
        }),
      };
      stats.set(key, s);
    }
    s.cardsShown += 1;
    if (card.feedback === 'accepted') s.accepted += 1;
    if (card.feedback === 'overridden') {
      s.overridden += 1;
      const reason = card.reasonCode ?? 'none';
      s.overrideReasons[reason] = (s.overrideReasons[reason] ?? 0) + 1;
    }
    if (!outcome || card.pseudonym === null) continue;
    const found = evidence(card.pseudonym, key) ?? [];
    const y = outcomeOf(new Date(card.issuedAt), outcome.definition.horizonMonths, found);
    if (y === null) continue;
    const counts = [s.withOutcome!, ...(card.feedback ? [s.withOutcome![card.feedback]!] : [])];
    for (const c of counts) {
      c.known += 1;
      c.positive += y;
    }
  }
  return [...stats.values()];
}

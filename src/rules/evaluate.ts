/**
 * Runs a service's compiled rules over the prefetched data. Pure: the only inputs are the compiled
 * service, the FHIRPath variables and the clock reading.
 *
 * A service with a `focus` evaluates its rules once per focus resource (one lesion examination, one
 * draft order); without one, once for the patient. Checklists score exactly: the sum of the points of
 * the items recorded as present. An item with no recorded value is listed as not recorded and scores
 * nothing; a checklist with no item recorded at all cannot be evaluated (it is never reported as 0),
 * and one below its threshold whose items not recorded could reach it is `incomplete`, not below it.
 */
import type {
  ChecklistItem,
  ChecklistRule,
  ConditionRule,
  SourceSpec,
} from '../services/definition-schema.js';
import type { CompiledExpression } from './fhirpath.js';
import type { Localized } from '../language.js';

export interface CompiledChecklist {
  kind: 'checklist';
  spec: ChecklistRule;
  applicableWhen: CompiledExpression | undefined;
  items: { spec: ChecklistItem; value: CompiledExpression }[];
}

export interface CompiledCondition {
  kind: 'condition';
  spec: ConditionRule;
  when: CompiledExpression;
  evidence: { label: Localized; value: CompiledExpression }[];
}

export type CompiledRule = CompiledChecklist | CompiledCondition;

/** A `define` entry: a named FHIRPath expression evaluated on each focus before the rules. */
export interface CompiledDefine {
  name: string;
  expression: CompiledExpression;
}

export interface CompiledFocus {
  expression: CompiledExpression;
  label: CompiledExpression;
  date: CompiledExpression | undefined;
}

export interface ItemResult {
  id: string;
  label: Localized;
  points: number;
  status: 'present' | 'absent' | 'not-recorded';
}

export interface RuleResult {
  id: string;
  kind: 'checklist' | 'condition';
  title: Localized;
  source: SourceSpec;
  status: 'fired' | 'not-fired' | 'not-evaluable';
  /**
   * `context`: a fact that adapts the card (a suggestion's dose, a note) without being a risk factor of
   * its own; left out of `{{firedRules}}`.
   */
  role?: 'context';
  /** Why the rule could not be evaluated. */
  reason?: Localized;
  score?: number;
  threshold?: number;
  /**
   * A checklist below its threshold whose items not recorded could still bring it to the threshold:
   * the result is not "below the threshold" but incomplete (the items are in `items`, `not-recorded`).
   */
  incomplete?: true;
  items?: ItemResult[];
  evidence?: { label: Localized; values: string[] }[];
}

export interface FocusResult {
  /** The focus resource (or `{}` for a service without focus): models read their inputs from it. */
  subject: object;
  /** `Observation/123` when the focus resource has an id. */
  reference: string | undefined;
  /** The focus resource itself (cards may act on it); undefined for a service without a focus. */
  resource: object | undefined;
  label: string | undefined;
  date: string | undefined;
  rules: RuleResult[];
}

export interface RuleErrorReport {
  /** The rule id, or `%name` for a `define` entry. */
  ruleId: string;
  error: unknown;
}

type Env = Readonly<Record<string, unknown>>;

const NOT_RECORDED: Localized = {
  en: 'no item of the checklist is recorded',
  fr: 'aucun critère n’est renseigné',
};
const EVALUATION_ERROR: Localized = {
  en: 'the record holds data this rule cannot read',
  fr: 'le dossier contient des données que cette règle ne sait pas lire',
};

/**
 * Evaluates every rule on every focus.
 * @param onError called for a rule that throws on unexpected data; the rule is then reported as not
 *   evaluable instead of failing the whole call (a `define` that throws is an empty collection)
 * @param defines the service's `define` entries, evaluated per focus in order into `%name` variables
 */
export function evaluateRules(
  rules: readonly CompiledRule[],
  focus: CompiledFocus | undefined,
  env: Env,
  now: Date,
  onError: (report: RuleErrorReport) => void,
  defines: readonly CompiledDefine[] = [],
): FocusResult[] {
  const subjects = focus ? focus.expression.evaluate({}, env, now).filter(isObject) : [{}];
  return subjects.map((subject) => {
    const local = withDefines(defines, subject, env, now, onError);
    return {
      subject,
      reference: referenceOf(subject),
      resource: focus ? subject : undefined,
      label: focus ? firstText(focus.label.evaluate(subject, local, now)) : undefined,
      date: focus?.date ? firstText(focus.date.evaluate(subject, local, now)) : undefined,
      rules: rules.map((rule) => {
        try {
          return rule.kind === 'checklist'
            ? scoreChecklist(rule, subject, local, now)
            : checkCondition(rule, subject, local, now);
        } catch (error) {
          onError({ ruleId: rule.spec.id, error });
          return { ...header(rule), status: 'not-evaluable', reason: EVALUATION_ERROR };
        }
      }),
    };
  });
}

function withDefines(
  defines: readonly CompiledDefine[],
  subject: object,
  env: Env,
  now: Date,
  onError: (report: RuleErrorReport) => void,
): Env {
  // A new variables object per step, never one changed after use: evaluations are remembered per
  // variables object (rules/fhirpath.ts).
  let local: Env = env;
  for (const { name, expression } of defines) {
    let value: unknown[];
    try {
      value = expression.evaluate(subject, local, now);
    } catch (error) {
      onError({ ruleId: `%${name}`, error });
      value = [];
    }
    local = { ...local, [name]: value };
  }
  return local;
}

function header(rule: CompiledRule): Pick<RuleResult, 'id' | 'kind' | 'title' | 'source' | 'role'> {
  const base = { id: rule.spec.id, kind: rule.kind, title: rule.spec.title, source: rule.spec.source };
  return rule.kind === 'condition' && rule.spec.role === 'context' ? { ...base, role: 'context' } : base;
}

function scoreChecklist(rule: CompiledChecklist, subject: object, env: Env, now: Date): RuleResult {
  if (rule.applicableWhen && rule.applicableWhen.evaluate(subject, env, now)[0] !== true) {
    return { ...header(rule), status: 'not-evaluable', reason: rule.spec.notApplicable ?? NOT_RECORDED };
  }
  const items = rule.items.map(({ spec, value }): ItemResult => {
    const result = value.evaluate(subject, env, now);
    const status = result[0] === true ? 'present' : result[0] === false ? 'absent' : 'not-recorded';
    return { id: spec.id, label: spec.label, points: spec.points, status };
  });
  if (items.every((item) => item.status === 'not-recorded')) {
    return { ...header(rule), status: 'not-evaluable', reason: NOT_RECORDED, items };
  }
  const score = items.reduce((sum, item) => sum + (item.status === 'present' ? item.points : 0), 0);
  const threshold = rule.spec.threshold;
  if (score >= threshold) return { ...header(rule), status: 'fired', score, threshold, items };
  // Below the threshold only if the items not recorded could not reach it (issue 14: one item of
  // seven recorded was summarised as "below the referral threshold").
  const open = items.reduce((sum, item) => sum + (item.status === 'not-recorded' ? item.points : 0), 0);
  const incomplete = score + open >= threshold ? { incomplete: true as const } : {};
  return { ...header(rule), status: 'not-fired', score, threshold, ...incomplete, items };
}

function checkCondition(rule: CompiledCondition, subject: object, env: Env, now: Date): RuleResult {
  const fired = rule.when.evaluate(subject, env, now)[0] === true;
  const evidence = fired
    ? rule.evidence.map(({ label, value }) => ({
        label,
        values: value.evaluate(subject, env, now).map(display),
      }))
    : undefined;
  return { ...header(rule), status: fired ? 'fired' : 'not-fired', ...(evidence ? { evidence } : {}) };
}

function isObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

function referenceOf(subject: object): string | undefined {
  const { resourceType, id } = subject as { resourceType?: unknown; id?: unknown };
  return typeof resourceType === 'string' && typeof id === 'string' ? `${resourceType}/${id}` : undefined;
}

function firstText(values: unknown[]): string | undefined {
  return values.length > 0 ? display(values[0]) : undefined;
}

/** Human-readable form of a FHIRPath result: a Quantity with its unit, a concept by its text or display. */
export function display(value: unknown): string {
  if (!isObject(value)) return String(value);
  const v = value as Record<string, unknown>;
  if ('value' in v && ('unit' in v || 'code' in v)) return `${v.value} ${v.unit ?? v.code}`;
  if (typeof v.text === 'string') return v.text;
  if (typeof v.display === 'string') return v.display;
  if (Array.isArray(v.coding) && v.coding.length > 0) return display(v.coding[0]);
  if (typeof v.code === 'string') return v.code;
  return JSON.stringify(value);
}

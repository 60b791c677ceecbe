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
  DatumSpec,
  SourceSpec,
} from '../services/definition-schema.js';
import type { CompiledExpression } from './fhirpath.js';
import { decimal, type Localized } from '../language.js';

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

/** A `data` entry: the records of one datum, how to date, read and show them, and its window. */
export interface CompiledDatum {
  name: string;
  spec: DatumSpec;
  records: CompiledExpression;
  /** The same expression keeping fhirpath.js's typed nodes: the `%name` variable is one of them. */
  typedRecords: CompiledExpression;
  date: CompiledExpression | undefined;
  readable: { test: CompiledExpression; reason: Localized }[];
  show: CompiledExpression | undefined;
}

/**
 * The state of one datum on one focus: `current` (recorded, readable, within its window), `stale`
 * (readable but older than its window: shown with its value and date, never used as current),
 * `unreadable` (recorded, but of the wrong type, unit or without a date: never read as absent) and
 * `not-recorded`.
 */
export interface DatumResult {
  id: string;
  label: Localized;
  state: 'current' | 'stale' | 'unreadable' | 'not-recorded';
  /** The value as shown (or, unreadable, as recorded). */
  value?: string;
  /** The date of the latest record (YYYY-MM-DD or a dateTime). */
  date?: string;
  /** Why the datum cannot be used (stale, unreadable, not recorded). */
  reason?: Localized;
  /** The freshness window, e.g. `12 months`, and its source. */
  window?: { days?: number; months?: number; source: SourceSpec };
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
  /**
   * The four states of a criterion: `fired` (met), `not-fired` (not met), `not-evaluable` (a datum it
   * reads is not recorded or unreadable, see `reason`), `stale` (a datum it reads is older than its
   * window: the rule was not evaluated as if it were current).
   */
  status: 'fired' | 'not-fired' | 'not-evaluable' | 'stale';
  /** The states of the `data` entries the rule reads. */
  data?: DatumResult[];
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
  /** The state of each `data` entry of the service on this focus (none when it declares no data). */
  data?: DatumResult[];
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
  data: readonly CompiledDatum[] = [],
): FocusResult[] {
  const subjects = focus ? focus.expression.evaluate({}, env, now).filter(isObject) : [{}];
  return subjects.map((subject) => {
    const { results: dataResults, env: withData } = evaluateData(data, subject, env, now, onError);
    const local = withDefines(defines, subject, withData, now, onError);
    const byId = new Map(dataResults.map((d) => [d.id, d]));
    return {
      subject,
      reference: referenceOf(subject),
      resource: focus ? subject : undefined,
      label: focus ? firstText(focus.label.evaluate(subject, local, now)) : undefined,
      date: focus?.date ? firstText(focus.date.evaluate(subject, local, now)) : undefined,
      rules: rules.map((rule) => {
        const ids = (key: 'data' | 'dataMayBeAbsent') =>
          rule.kind === 'condition' ? (rule.spec[key] ?? []).map((id) => byId.get(id)!) : [];
        const required = ids('data');
        // Data whose absence is the finding: only an unreadable one stops the rule.
        const mayBeAbsent = ids('dataMayBeAbsent');
        const read = [...required, ...mayBeAbsent];
        const withRead = read.length > 0 ? { data: read } : {};
        const unusable = notUsable([...required, ...mayBeAbsent.filter((d) => d.state === 'unreadable')]);
        if (unusable) {
          return { ...header(rule), status: unusable.status, reason: unusable.reason, ...withRead };
        }
        try {
          const result =
            rule.kind === 'checklist'
              ? scoreChecklist(rule, subject, local, now)
              : checkCondition(rule, subject, local, now);
          return { ...result, ...withRead };
        } catch (error) {
          onError({ ruleId: rule.spec.id, error });
          return { ...header(rule), status: 'not-evaluable', reason: EVALUATION_ERROR, ...withRead };
        }
      }),
      ...(data.length > 0 ? { data: dataResults } : {}),
    };
  });
}

/**
 * A rule reading data that cannot be used is not evaluated: unreadable or not recorded makes it not
 * evaluable, older than its window makes it stale (unreadable first: it is the one to fix).
 */
function notUsable(
  read: readonly DatumResult[],
): { status: 'not-evaluable' | 'stale'; reason: Localized } | undefined {
  const worst =
    read.find((d) => d.state === 'unreadable') ??
    read.find((d) => d.state === 'not-recorded') ??
    read.find((d) => d.state === 'stale');
  if (!worst) return undefined;
  return { status: worst.state === 'stale' ? 'stale' : 'not-evaluable', reason: datumLine(worst) };
}

const DATUM_TEXT = {
  en: {
    notRecorded: 'not recorded',
    unreadable: 'unreadable',
    olderThan: 'older than',
    days: 'days',
    months: 'months',
    noDate: 'the record has no date',
  },
  fr: {
    notRecorded: 'non renseigné',
    unreadable: 'illisible',
    olderThan: 'datant de plus de',
    days: 'jours',
    months: 'mois',
    noDate: 'la donnée n’est pas datée',
  },
} as const;

/** `12 months` / `12 mois`. */
export function windowText(window: NonNullable<DatumResult['window']>, lang: 'en' | 'fr'): string {
  const t = DATUM_TEXT[lang];
  return window.months !== undefined ? `${window.months} ${t.months}` : `${window.days} ${t.days}`;
}

/**
 * One line saying why a datum cannot be used: "eGFR 25 mL/min/1.73 m² (2012-03-01), older than
 * 12 months", "eGFR unreadable (2026-11-01): value not a number with a unit (valueString: "25")", "eGFR not
 * recorded".
 * @param withRecorded add the value as recorded to an unreadable datum's line (left out of summaries)
 */
export function datumLine(d: DatumResult, withRecorded = true): Localized {
  const line = (lang: 'en' | 'fr'): string => {
    const t = DATUM_TEXT[lang];
    const label = d.label[lang];
    // The value as shown in the card's language: French writes a decimal comma (1,73 m²; 62,5 kg).
    const value = d.value === undefined ? undefined : decimal(d.value, lang);
    const date = d.date ? ` (${d.date.slice(0, 10)})` : '';
    switch (d.state) {
      case 'stale':
        return `${label}${value ? ` ${value}` : ''}${date}, ${t.olderThan} ${windowText(d.window!, lang)}`;
      case 'unreadable':
        return `${label} ${t.unreadable}${date}: ${d.reason?.[lang] ?? ''}${withRecorded && value ? ` (${value})` : ''}`;
      case 'not-recorded':
        // French agrees "renseigné" with the datum (une date, un poids): "pas de … dans le dossier" needs no agreement.
        return lang === 'fr' ? `pas de ${label} dans le dossier` : `${label} ${t.notRecorded}`;
      case 'current':
        return `${label}${value ? ` ${value}` : ''}${date}`;
    }
  };
  return { en: line('en'), fr: line('fr').replace(/: /, ' : ') };
}

const MONTH_MS = (365.25 / 12) * 86_400_000;
const DAY_MS = 86_400_000;

function isStale(date: string, window: NonNullable<DatumSpec['window']>, now: Date): boolean {
  const limit = window.months !== undefined ? window.months * MONTH_MS : (window.days ?? 0) * DAY_MS;
  return now.getTime() - Date.parse(date) > limit;
}

/** What a record holds, for a reason: `valueString: "25"`, `valueQuantity: 25 mg/dL`. */
function recordedValue(record: object): string | undefined {
  for (const [key, value] of Object.entries(record)) {
    if (!/^value[A-Z]/.test(key)) continue;
    if (isObject(value) && 'value' in value) {
      const q = value as { value?: unknown; unit?: unknown; code?: unknown };
      return `${key}: ${String(q.value)} ${String(q.unit ?? q.code ?? '')}`.trim();
    }
    // A concept reads by its text, display or code (`valueCodeableConcept: LA15173-0`), not as JSON.
    return `${key}: ${isObject(value) ? display(value) : JSON.stringify(value)}`;
  }
  return undefined;
}

function evaluateData(
  data: readonly CompiledDatum[],
  subject: object,
  env: Env,
  now: Date,
  onError: (report: RuleErrorReport) => void,
): { results: DatumResult[]; env: Env } {
  const results: DatumResult[] = [];
  const values: Record<string, unknown[]> = {};
  for (const datum of data) {
    let result: DatumResult;
    let current: unknown[] = [];
    try {
      ({ result, current } = evaluateDatum(datum, subject, env, now));
    } catch (error) {
      onError({ ruleId: `%${datum.name}`, error });
      result = { id: datum.name, label: datum.spec.label, state: 'unreadable', reason: EVALUATION_ERROR };
    }
    results.push(result);
    values[datum.name] = current;
  }
  return { results, env: data.length > 0 ? { ...env, ...values } : env };
}

function evaluateDatum(
  datum: CompiledDatum,
  subject: object,
  env: Env,
  now: Date,
): { result: DatumResult; current: unknown[] } {
  const base = {
    id: datum.name,
    label: datum.spec.label,
    ...(datum.spec.window ? { window: datum.spec.window } : {}),
  };
  // Indexes are those of `typedRecords` (records are resources: objects, none filtered out).
  const dated = datum.records
    .evaluate(subject, env, now)
    .map((record, index) => ({ record, index }))
    .filter((r): r is { record: object; index: number } => isObject(r.record))
    .map(({ record, index }) => ({
      record,
      index,
      date: datum.date ? firstText(datum.date.evaluate(record, env, now)) : undefined,
    }));
  if (dated.length === 0) return { result: { ...base, state: 'not-recorded' }, current: [] };
  // Latest (or earliest) first; undated records last, in record order.
  const sign = datum.spec.pick === 'earliest' ? -1 : 1;
  const time = (d: string | undefined) => (d === undefined ? Number.NaN : Date.parse(d));
  dated.sort((a, b) => {
    const [ta, tb] = [time(a.date), time(b.date)];
    if (Number.isNaN(ta) !== Number.isNaN(tb)) return Number.isNaN(ta) ? 1 : -1;
    return (Number.isNaN(ta) ? 0 : sign * (tb - ta)) || a.index - b.index;
  });
  // `checkEvery`: every record of the window (undated ones too) is checked, the datum first.
  const checked = datum.spec.checkEvery
    ? dated.filter(
        (d) => d.date === undefined || !datum.spec.window || !isStale(d.date, datum.spec.window, now),
      )
    : [];
  for (const candidate of checked.length > 0 ? checked : [dated[0]!]) {
    const unreadable = unreadableReason(datum, candidate.record, candidate.date, env, now);
    if (unreadable) return { result: { ...base, ...unreadable }, current: [] };
  }
  const { record, date, index } = dated[0]!;
  const withDate = date ? { date } : {};
  const shown = datum.show ? firstText(datum.show.evaluate(record, env, now)) : undefined;
  const withValue = shown ? { value: shown } : {};
  if (datum.spec.window) {
    if (date === undefined) {
      const reason = { en: DATUM_TEXT.en.noDate, fr: DATUM_TEXT.fr.noDate };
      return { result: { ...base, state: 'unreadable', reason, ...withValue }, current: [] };
    }
    if (isStale(date, datum.spec.window, now)) {
      return { result: { ...base, state: 'stale', ...withDate, ...withValue }, current: [] };
    }
  }
  const typed = datum.typedRecords.evaluate(subject, env, now)[index];
  return { result: { ...base, state: 'current', ...withDate, ...withValue }, current: [typed] };
}

/**
 * Why one record of a datum cannot be read (the first `readable` check it fails, or, with
 * `checkEvery` and a `date`, no date), with its date and the value as recorded; undefined when readable.
 */
function unreadableReason(
  datum: CompiledDatum,
  record: object,
  date: string | undefined,
  env: Env,
  now: Date,
): Pick<DatumResult, 'state' | 'reason' | 'date' | 'value'> | undefined {
  const failed = datum.readable.find((check) => check.test.evaluate(record, env, now)[0] !== true);
  const undated = datum.spec.checkEvery === true && datum.date !== undefined && date === undefined;
  if (!failed && !undated) return undefined;
  // Undated, the value is not what is wrong with the record: it is left out of the reason.
  const raw = failed ? recordedValue(record) : undefined;
  return {
    state: 'unreadable',
    reason: failed ? failed.reason : { en: DATUM_TEXT.en.noDate, fr: DATUM_TEXT.fr.noDate },
    ...(date ? { date } : {}),
    ...(raw ? { value: raw } : {}),
  };
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

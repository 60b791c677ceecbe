/**
 * Feature extraction: one subject (the patient, or one focus such as a lesion examination) and the
 * prefetched record → the model's input row, with the provenance of every value (as recorded, unit,
 * date, observed / imputed / assumed absent) and the reasons not to score.
 *
 * The training script (tools/training/train.ts) runs this same code over generated FHIR records, so
 * the model is trained on exactly what it will see in service.
 */
import type { CompiledExpression } from '../rules/fhirpath.js';
import type { FeatureSpec, GuardSpec } from './manifest.js';
import { convert, unitOf } from './units.js';
import { displayOf, formatRecorded, type ValueDisplay } from './display.js';
import type { Language, Localized } from '../language.js';

export interface CompiledFeature {
  spec: FeatureSpec;
  source: CompiledExpression;
  value: CompiledExpression | undefined;
  date: CompiledExpression | undefined;
  /** bmi only: weight and height sources. */
  weight: CompiledExpression | undefined;
  height: CompiledExpression | undefined;
  /** What extraction reads where the manifest gives no expression. */
  defaults: FeatureDefaults;
}

/** The sub-expressions a feature falls back on when its manifest gives none. */
export interface FeatureDefaults {
  /** The date of an observation-like candidate. */
  readonly date: CompiledExpression;
  /** The quantity of an observation-like candidate (quantity, trend and bmi features). */
  readonly quantity: CompiledExpression;
  /** The date of a condition-like candidate (flag features). */
  readonly flagDate: CompiledExpression;
  /** The value of a code or number feature's candidate. */
  readonly number: CompiledExpression;
}

export interface CompiledGuard {
  spec: GuardSpec;
  when: CompiledExpression;
}

export type FeatureStatus = 'observed' | 'imputed' | 'assumed-absent';

/**
 * The four states of a model input, as for a rule's criterion: `met` (recorded and current: its value
 * and date are given), `not-met` (a condition flag not recorded, taken as absent), `not-evaluable` (not
 * recorded: the stated value was imputed) and `stale` (older than the input's window: not used as
 * current, the stated value was imputed; the old value and its date are given). An unreadable input
 * (wrong type, unit not convertible) is never read as absent: the model does not score and says why.
 */
export type InputState = 'met' | 'not-met' | 'not-evaluable' | 'stale';

export interface FeatureValue {
  id: string;
  label: Localized;
  unit: string;
  /** The number given to the model. */
  value: number;
  status: FeatureStatus;
  state: InputState;
  /** The value as recorded, with its unit, when it differs from `value` (unit conversion, codes). */
  recorded?: string;
  /** Date of the data the value comes from (YYYY-MM-DD or a dateTime). */
  date?: string;
  /** Why the value was imputed. */
  imputedBecause?: 'missing' | 'stale';
  /** How the value reads to a person (scoring/display.ts): precision, human unit, yes/no. */
  display?: ValueDisplay;
}

/** `incomplete`: fewer inputs recorded than the manifest's `minimumRecorded` asks (scoring/minimum-recorded.ts). */
export type RefusalCode =
  'out-of-population' | 'missing' | 'stale' | 'implausible' | 'unit' | 'unreadable' | 'incomplete';

export interface Refusal {
  code: RefusalCode;
  featureId?: string;
  text: Localized;
}

export interface Extraction {
  values: FeatureValue[];
  refusals: Refusal[];
}

type Env = Readonly<Record<string, unknown>>;

const DAY_MS = 86_400_000;
const YEAR_DAYS = 365.25;

interface Reading {
  value: number;
  recorded: string;
  date: string | undefined;
}

/** What one kind of extraction found before the range and missing-value policies apply. */
type Found =
  | { kind: 'value'; reading: Reading }
  | { kind: 'none'; stale?: Reading }
  | { kind: 'unit'; unit: string }
  | { kind: 'unmapped'; code: string }
  /** The latest candidate holds a value of the wrong type (e.g. a valueString where a number is read). */
  | { kind: 'unreadable'; recorded: string }
  | { kind: 'absent' };

/** What a candidate holds when it is not what the feature reads: `valueString: "7"`; none without a value. */
function recordedValue(item: unknown): string | undefined {
  if (!isRecord(item)) return undefined;
  const key = Object.keys(item).find((k) => /^value[A-Z]/.test(k));
  return key === undefined ? undefined : `${key}: ${JSON.stringify(item[key])}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

function time(date: string | undefined): number {
  return date === undefined ? Number.NEGATIVE_INFINITY : Date.parse(date);
}

function firstString(values: unknown[]): string | undefined {
  const first = values[0];
  return typeof first === 'string' ? first : undefined;
}

function format(value: number): string {
  return String(Math.round(value * 100) / 100);
}

/** Candidates of a source, each with its date, latest first (undated last, in record order). */
function candidates(
  feature: CompiledFeature,
  source: CompiledExpression,
  subject: unknown,
  env: Env,
  now: Date,
) {
  const items = source.evaluate(subject, env, now);
  return items
    .map((item, index) => ({
      item,
      index,
      date: firstString((feature.date ?? feature.defaults.date).evaluate(item, env, now)),
    }))
    .sort((a, b) => time(b.date) - time(a.date) || a.index - b.index);
}

/**
 * Compiles the default sub-expressions (the loader calls it, as it owns compilation, and gives the
 * result to every feature it compiles).
 */
export function compileFeatureDefaults(compile: (source: string) => CompiledExpression): FeatureDefaults {
  return {
    date: compile('effective.ofType(dateTime) | effective.ofType(Period).start | issued'),
    quantity: compile('value.ofType(Quantity)'),
    flagDate: compile('onset.ofType(dateTime) | recordedDate'),
    number: compile('value'),
  };
}

function isStale(date: string | undefined, staleAfterDays: number | undefined, now: Date): boolean {
  if (staleAfterDays === undefined || date === undefined) return false;
  return now.getTime() - Date.parse(date) > staleAfterDays * DAY_MS;
}

function readQuantity(q: unknown, unit: string): { value: number; recorded: string } | { unit: string } {
  if (!isRecord(q) || typeof q.value !== 'number') return { unit: '?' };
  const from = unitOf(q as { unit?: string; code?: string; system?: string });
  const value = convert(q.value, from, unit);
  if (value === undefined) return { unit: from || '(none)' };
  return { value, recorded: `${q.value} ${from}`.trim() };
}

/** The latest convertible quantity among the candidates; a fresh one wins over a stale one. */
function latestQuantity(
  feature: CompiledFeature,
  source: CompiledExpression,
  valueExpression: CompiledExpression,
  unit: string,
  staleAfterDays: number | undefined,
  subject: unknown,
  env: Env,
  now: Date,
): Found {
  let stale: Reading | undefined;
  for (const { item, date } of candidates(feature, source, subject, env, now)) {
    const read = readQuantity(valueExpression.evaluate(item, env, now)[0], unit);
    if (!('value' in read)) {
      if (read.unit !== '?') return { kind: 'unit', unit: read.unit };
      // A value of another type is unreadable, never absent; a candidate with no value is skipped.
      const recorded = recordedValue(item);
      if (recorded !== undefined) return { kind: 'unreadable', recorded };
      continue;
    }
    const reading = { value: read.value, recorded: read.recorded, date };
    if (isStale(date, staleAfterDays, now)) {
      stale ??= reading;
      continue;
    }
    return { kind: 'value', reading };
  }
  return stale ? { kind: 'none', stale } : { kind: 'none' };
}

function ageInYears(birthDate: string, now: Date): number {
  const [y, m = 1, d = 1] = birthDate.split('-').map(Number) as [number, number?, number?];
  let age = now.getUTCFullYear() - y;
  const beforeBirthday = now.getUTCMonth() + 1 < m || (now.getUTCMonth() + 1 === m && now.getUTCDate() < d);
  if (beforeBirthday) age -= 1;
  return age;
}

function find(feature: CompiledFeature, subject: unknown, env: Env, now: Date): Found {
  const spec = feature.spec;
  switch (spec.kind) {
    case 'age': {
      const patient = feature.source.evaluate(subject, env, now).find(isRecord);
      const birthDate = patient?.birthDate;
      if (typeof birthDate !== 'string' || !/^\d{4}(-\d{2}(-\d{2})?)?$/.test(birthDate))
        return { kind: 'none' };
      const age = ageInYears(birthDate, now);
      return { kind: 'value', reading: { value: age, recorded: `${age} a`, date: undefined } };
    }
    case 'quantity':
      return latestQuantity(
        feature,
        feature.source,
        feature.value ?? feature.defaults.quantity,
        spec.unit,
        spec.staleAfterDays,
        subject,
        env,
        now,
      );
    case 'bmi': {
      const direct = latestQuantity(
        feature,
        feature.source,
        feature.defaults.quantity,
        spec.unit,
        spec.staleAfterDays,
        subject,
        env,
        now,
      );
      if (direct.kind !== 'none') return direct;
      const weight = latestQuantity(
        feature,
        feature.weight!,
        feature.defaults.quantity,
        'kg',
        spec.staleAfterDays,
        subject,
        env,
        now,
      );
      const height = latestQuantity(
        feature,
        feature.height!,
        feature.defaults.quantity,
        'm',
        spec.staleAfterDays,
        subject,
        env,
        now,
      );
      if (weight.kind === 'unit') return weight;
      if (height.kind === 'unit') return height;
      if (weight.kind !== 'value' || height.kind !== 'value' || height.reading.value <= 0) {
        // Say "too old" when an old BMI, or an old weight and height, is all there is.
        if (direct.kind === 'none' && direct.stale) return direct;
        const stale =
          weight.kind === 'none' ? weight.stale : height.kind === 'none' ? height.stale : undefined;
        return stale ? { kind: 'none', stale } : direct;
      }
      const w = weight.reading;
      const h = height.reading;
      return {
        kind: 'value',
        reading: {
          value: w.value / h.value ** 2,
          recorded: `${w.recorded} / (${h.recorded})²`,
          date: time(w.date) <= time(h.date) ? w.date : h.date,
        },
      };
    }
    case 'trend': {
      const points: { t: number; v: number; date: string }[] = [];
      const valueExpression = feature.value ?? feature.defaults.quantity;
      for (const { item, date } of candidates(feature, feature.source, subject, env, now)) {
        if (date === undefined || now.getTime() - Date.parse(date) > spec.windowDays * DAY_MS) continue;
        const read = readQuantity(valueExpression.evaluate(item, env, now)[0], spec.valueUnit);
        if (!('value' in read)) {
          if (read.unit !== '?') return { kind: 'unit', unit: read.unit };
          const recorded = recordedValue(item);
          if (recorded !== undefined) return { kind: 'unreadable', recorded };
          continue;
        }
        points.push({ t: Date.parse(date) / (YEAR_DAYS * DAY_MS), v: read.value, date });
      }
      if (points.length < 2) return { kind: 'none' };
      const span = (points[0]!.t - points[points.length - 1]!.t) * YEAR_DAYS;
      if (span < spec.minSpanDays) return { kind: 'none' };
      const meanT = points.reduce((s, p) => s + p.t, 0) / points.length;
      const meanV = points.reduce((s, p) => s + p.v, 0) / points.length;
      let sxy = 0;
      let sxx = 0;
      for (const p of points) {
        sxy += (p.t - meanT) * (p.v - meanV);
        sxx += (p.t - meanT) ** 2;
      }
      const slope = sxy / sxx;
      return {
        kind: 'value',
        reading: {
          value: slope,
          recorded: `${format(slope)} ${spec.valueUnit}/a (${points.length} values)`,
          date: points[0]!.date,
        },
      };
    }
    case 'flag': {
      const found = candidatesFlag(feature, subject, env, now);
      return found;
    }
    case 'code':
    case 'number': {
      let stale: Reading | undefined;
      let best: Reading | undefined;
      const pickMax = spec.kind === 'code' && spec.pick === 'max';
      for (const { item, date } of candidates(feature, feature.source, subject, env, now)) {
        const raw = (feature.value ?? feature.defaults.number).evaluate(item, env, now)[0];
        let reading: Reading;
        if (spec.kind === 'code') {
          const code = codeOf(raw);
          if (code === undefined) {
            const recorded = raw === undefined ? recordedValue(item) : JSON.stringify(raw);
            if (recorded !== undefined) return { kind: 'unreadable', recorded };
            continue;
          }
          const mapped = spec.map[code];
          if (mapped === undefined) return { kind: 'unmapped', code };
          reading = { value: mapped, recorded: code, date };
        } else {
          if (typeof raw === 'boolean') reading = { value: raw ? 1 : 0, recorded: String(raw), date };
          else if (typeof raw === 'number') reading = { value: raw, recorded: String(raw), date };
          else {
            const recorded = raw === undefined ? recordedValue(item) : JSON.stringify(raw);
            if (recorded !== undefined) return { kind: 'unreadable', recorded };
            continue;
          }
        }
        if (isStale(date, spec.staleAfterDays, now)) {
          stale ??= reading;
          continue;
        }
        if (!pickMax) return { kind: 'value', reading };
        if (!best || reading.value > best.value) best = reading;
      }
      if (best) return { kind: 'value', reading: best };
      return stale ? { kind: 'none', stale } : { kind: 'none' };
    }
  }
}

function candidatesFlag(feature: CompiledFeature, subject: unknown, env: Env, now: Date): Found {
  const items = feature.source.evaluate(subject, env, now);
  if (items.length === 0) return { kind: 'absent' };
  const dates = items
    .map((item) => firstString((feature.date ?? feature.defaults.flagDate).evaluate(item, env, now)))
    .filter((d): d is string => d !== undefined)
    .sort();
  return { kind: 'value', reading: { value: 1, recorded: 'recorded', date: dates[0] } };
}

function codeOf(raw: unknown): string | undefined {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  if (!isRecord(raw)) return undefined;
  if (typeof raw.code === 'string') return raw.code;
  if (Array.isArray(raw.coding)) return codeOf(raw.coding[0]);
  return undefined;
}

const TEXT = {
  missing: { en: 'not recorded', fr: 'non renseigné' },
  stale: { en: 'too old', fr: 'trop ancien' },
  unit: { en: 'recorded in a unit that cannot be converted', fr: 'saisi dans une unité non convertible' },
  unmapped: {
    en: 'recorded with a code the model does not know',
    fr: 'saisi avec un code inconnu du modèle',
  },
  implausible: { en: 'outside the plausible range', fr: 'hors de l’intervalle plausible' },
  unreadable: {
    en: 'recorded, but not as a value the model can read',
    fr: 'renseigné, mais pas sous une forme lisible par le modèle',
  },
} as const;

function refusal(
  code: Refusal['code'],
  spec: FeatureSpec,
  why: Localized,
  detail: string | ((lang: Language) => string) = '',
): Refusal {
  const shown = (lang: Language) => (typeof detail === 'string' ? detail : detail(lang));
  return {
    code,
    featureId: spec.id,
    text: {
      en: `${spec.label.en}: ${why.en}${shown('en')}`,
      fr: `${spec.label.fr} : ${why.fr}${shown('fr')}`,
    },
  };
}

function indicatorOf(value: number, band: { min?: number; max?: number }): number {
  return (band.min === undefined || value >= band.min) && (band.max === undefined || value <= band.max)
    ? 1
    : 0;
}

/**
 * Extracts every feature of a model for one subject and checks the population guards.
 * A refusal means no score: the card says why instead.
 */
export function extractFeatures(
  features: readonly CompiledFeature[],
  guards: readonly CompiledGuard[],
  subject: unknown,
  baseEnv: Env,
  now: Date,
): Extraction {
  const env = { ...baseEnv, focus: subject };
  const refusals: Refusal[] = [];
  for (const guard of guards) {
    if (guard.when.evaluate(subject, env, now)[0] !== true) {
      refusals.push({ code: 'out-of-population', text: guard.spec.reason });
    }
  }
  // Outside the population the inputs do not matter: the card gives the population reason only.
  if (refusals.length > 0) return { values: [], refusals };
  const values: FeatureValue[] = [];
  for (const feature of features) {
    const spec = feature.spec;
    const base = { id: spec.id, label: spec.label, unit: spec.unit, display: displayOf(spec) };
    const found = find(feature, subject, env, now);
    if (found.kind === 'absent') {
      values.push({ ...base, value: 0, status: 'assumed-absent', state: 'not-met' });
      continue;
    }
    if (found.kind === 'unreadable') {
      refusals.push(refusal('unreadable', spec, TEXT.unreadable, ` (${found.recorded})`));
      continue;
    }
    if (found.kind === 'unit') {
      refusals.push(refusal('unit', spec, TEXT.unit, ` (${found.unit})`));
      continue;
    }
    if (found.kind === 'unmapped') {
      refusals.push(refusal('implausible', spec, TEXT.unmapped, ` (${found.code})`));
      continue;
    }
    if (found.kind === 'value') {
      const { value, recorded, date } = found.reading;
      const range = spec.range;
      if (range && (value < range.min || value > range.max || !Number.isFinite(value))) {
        refusals.push(
          refusal(
            'implausible',
            spec,
            TEXT.implausible,
            (lang) => ` (${formatRecorded(recorded, lang)}; ${range.min}–${range.max})`,
          ),
        );
        continue;
      }
      const modelValue = spec.indicator ? indicatorOf(value, spec.indicator) : value;
      values.push({
        ...base,
        value: modelValue,
        status: 'observed',
        state: 'met',
        ...(recorded !== `${format(modelValue)} ${spec.unit}` ? { recorded } : {}),
        ...(date ? { date } : {}),
      });
      continue;
    }
    const because = found.stale ? 'stale' : 'missing';
    const policy = spec.missing ?? { policy: 'refuse' as const };
    if (policy.policy === 'refuse') {
      const stale = found.stale;
      const detail = (lang: Language) =>
        stale ? ` (${formatRecorded(stale.recorded, lang)}, ${stale.date?.slice(0, 10)})` : '';
      refusals.push(refusal(because, spec, TEXT[because], detail));
      continue;
    }
    values.push({
      ...base,
      value: policy.value,
      status: 'imputed',
      state: because === 'stale' ? 'stale' : 'not-evaluable',
      imputedBecause: because,
      ...(found.stale ? { recorded: found.stale.recorded, date: found.stale.date } : {}),
    } as FeatureValue);
  }
  return { values, refusals };
}

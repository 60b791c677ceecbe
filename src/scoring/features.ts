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

function timeOf(date: string | undefined): number {
  return date === undefined ? Number.NEGATIVE_INFINITY : Date.parse(date);
}

function asString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function format(value: number): string {
  return String(Math.round(value * 100) / 100);
}

/** A candidate of a source with its date, read once. */
interface Candidate {
  readonly item: unknown;
  /** Position in the source's result: undated candidates, and candidates of one date, keep it. */
  readonly index: number;
  readonly date: string | undefined;
  /** `Date.parse(date)` (minus infinity when undated): sorting, staleness and trend windows read it. */
  readonly time: number;
}

/** A source's candidates, latest first, with what value expressions gave on them so far. */
interface CandidateList {
  readonly candidates: readonly Candidate[];
  /** By value expression text: the first item it gave on each candidate (`NOT_READ` until read). */
  readonly reads: Map<string, unknown[]>;
}

/** A candidate whose value was not read yet (any value, `undefined` included, is a reading). */
const NOT_READ: unique symbol = Symbol('not read');

/**
 * One extraction: the subject, its variables and clock, and what was already read from them. Features
 * often read the same source (the knee model's BMI and BMI trend; %patient for age and sex; %focus for
 * each checklist item of a lesion): its result, the dates of its candidates and their values are
 * evaluated once and shared. Keys are expression texts, as each is compiled by the same engine into
 * one function per text; the object lives for one extraction, so it holds at most one entry per
 * expression of the model.
 */
interface Reader {
  readonly subject: unknown;
  readonly env: Env;
  readonly now: Date;
  readonly nowMs: number;
  /** A source's result, by source text. */
  readonly sources: Map<string, unknown[]>;
  /** A source's dated candidates, by date expression and source text. */
  readonly lists: Map<string, CandidateList>;
}

/** The result of a source on the subject (shared: read it, never change it). */
function sourceItems(reader: Reader, source: CompiledExpression): unknown[] {
  let items = reader.sources.get(source.source);
  if (items === undefined) {
    items = source.evaluate(reader.subject, reader.env, reader.now);
    reader.sources.set(source.source, items);
  }
  return items;
}

/** Candidates of a source, each with its date, latest first (undated last, in record order). */
function candidates(reader: Reader, source: CompiledExpression, dateExpression: CompiledExpression) {
  // The length keeps two pairs of texts from ever giving one key.
  const key = `${dateExpression.source.length}:${dateExpression.source}${source.source}`;
  let list = reader.lists.get(key);
  if (list === undefined) {
    const items = sourceItems(reader, source);
    const found: Candidate[] = [];
    for (let index = 0; index < items.length; index += 1) {
      const item = items[index];
      const date = asString(dateExpression.first(item, reader.env, reader.now));
      found.push({ item, index, date, time: timeOf(date) });
    }
    found.sort((a, b) => b.time - a.time || a.index - b.index);
    list = { candidates: found, reads: new Map() };
    reader.lists.set(key, list);
  }
  return list;
}

/** The first item `expression` gives on the candidate at `position` of `list`, evaluated once. */
function readValue(reader: Reader, list: CandidateList, position: number, expression: CompiledExpression) {
  let reads = list.reads.get(expression.source);
  if (reads === undefined) {
    reads = new Array<unknown>(list.candidates.length).fill(NOT_READ);
    list.reads.set(expression.source, reads);
  }
  let value = reads[position];
  if (value === NOT_READ) {
    value = expression.first(list.candidates[position]!.item, reader.env, reader.now);
    reads[position] = value;
  }
  return value;
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

function isStale(candidate: Candidate, staleAfterDays: number | undefined, nowMs: number): boolean {
  if (staleAfterDays === undefined || candidate.date === undefined) return false;
  return nowMs - candidate.time > staleAfterDays * DAY_MS;
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
  reader: Reader,
  feature: CompiledFeature,
  source: CompiledExpression,
  valueExpression: CompiledExpression,
  unit: string,
  staleAfterDays: number | undefined,
): Found {
  let stale: Reading | undefined;
  const list = candidates(reader, source, feature.date ?? feature.defaults.date);
  const all = list.candidates;
  for (let position = 0; position < all.length; position += 1) {
    const candidate = all[position]!;
    const read = readQuantity(readValue(reader, list, position, valueExpression), unit);
    if (!('value' in read)) {
      if (read.unit !== '?') return { kind: 'unit', unit: read.unit };
      // A value of another type is unreadable, never absent; a candidate with no value is skipped.
      const recorded = recordedValue(candidate.item);
      if (recorded !== undefined) return { kind: 'unreadable', recorded };
      continue;
    }
    const reading = { value: read.value, recorded: read.recorded, date: candidate.date };
    if (isStale(candidate, staleAfterDays, reader.nowMs)) {
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

function find(reader: Reader, feature: CompiledFeature): Found {
  const spec = feature.spec;
  const now = reader.now;
  switch (spec.kind) {
    case 'age': {
      const patient = sourceItems(reader, feature.source).find(isRecord);
      const birthDate = patient?.birthDate;
      if (typeof birthDate !== 'string' || !/^\d{4}(-\d{2}(-\d{2})?)?$/.test(birthDate))
        return { kind: 'none' };
      const age = ageInYears(birthDate, now);
      return { kind: 'value', reading: { value: age, recorded: `${age} a`, date: undefined } };
    }
    case 'quantity':
      return latestQuantity(
        reader,
        feature,
        feature.source,
        feature.value ?? feature.defaults.quantity,
        spec.unit,
        spec.staleAfterDays,
      );
    case 'bmi': {
      const quantity = feature.defaults.quantity;
      const direct = latestQuantity(
        reader,
        feature,
        feature.source,
        quantity,
        spec.unit,
        spec.staleAfterDays,
      );
      if (direct.kind !== 'none') return direct;
      const weight = latestQuantity(reader, feature, feature.weight!, quantity, 'kg', spec.staleAfterDays);
      const height = latestQuantity(reader, feature, feature.height!, quantity, 'm', spec.staleAfterDays);
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
          date: timeOf(w.date) <= timeOf(h.date) ? w.date : h.date,
        },
      };
    }
    case 'trend': {
      const points: { t: number; v: number; date: string }[] = [];
      const valueExpression = feature.value ?? feature.defaults.quantity;
      const list = candidates(reader, feature.source, feature.date ?? feature.defaults.date);
      const all = list.candidates;
      const windowMs = spec.windowDays * DAY_MS;
      for (let position = 0; position < all.length; position += 1) {
        const { item, date, time } = all[position]!;
        if (date === undefined || reader.nowMs - time > windowMs) continue;
        const read = readQuantity(readValue(reader, list, position, valueExpression), spec.valueUnit);
        if (!('value' in read)) {
          if (read.unit !== '?') return { kind: 'unit', unit: read.unit };
          const recorded = recordedValue(item);
          if (recorded !== undefined) return { kind: 'unreadable', recorded };
          continue;
        }
        points.push({ t: time / (YEAR_DAYS * DAY_MS), v: read.value, date });
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
    case 'flag':
      return flagOf(reader, feature);
    case 'code':
    case 'number': {
      let stale: Reading | undefined;
      let best: Reading | undefined;
      const pickMax = spec.kind === 'code' && spec.pick === 'max';
      const valueExpression = feature.value ?? feature.defaults.number;
      const list = candidates(reader, feature.source, feature.date ?? feature.defaults.date);
      const all = list.candidates;
      for (let position = 0; position < all.length; position += 1) {
        const candidate = all[position]!;
        const { item, date } = candidate;
        const raw = readValue(reader, list, position, valueExpression);
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
        if (isStale(candidate, spec.staleAfterDays, reader.nowMs)) {
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

/** A condition flag: recorded (dated by its earliest onset or record date) or taken as absent. */
function flagOf(reader: Reader, feature: CompiledFeature): Found {
  const items = sourceItems(reader, feature.source);
  if (items.length === 0) return { kind: 'absent' };
  const dateExpression = feature.date ?? feature.defaults.flagDate;
  // The earliest date as text (what sorting the dates and taking the first gave).
  let first: string | undefined;
  for (const item of items) {
    const date = asString(dateExpression.first(item, reader.env, reader.now));
    if (date !== undefined && (first === undefined || date < first)) first = date;
  }
  return { kind: 'value', reading: { value: 1, recorded: 'recorded', date: first } };
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
  const reader: Reader = { subject, env, now, nowMs: now.getTime(), sources: new Map(), lists: new Map() };
  const values: FeatureValue[] = [];
  for (const feature of features) {
    const spec = feature.spec;
    const found = find(reader, feature);
    if (found.kind === 'absent') {
      values.push({
        id: spec.id,
        label: spec.label,
        unit: spec.unit,
        display: displayOf(spec),
        value: 0,
        status: 'assumed-absent',
        state: 'not-met',
      });
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
      // Built field by field in the order the spreads gave (the card's extension keeps this order).
      const observed: FeatureValue = {
        id: spec.id,
        label: spec.label,
        unit: spec.unit,
        display: displayOf(spec),
        value: modelValue,
        status: 'observed',
        state: 'met',
      };
      if (recorded !== `${format(modelValue)} ${spec.unit}`) observed.recorded = recorded;
      if (date) observed.date = date;
      values.push(observed);
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
    const imputed: FeatureValue = {
      id: spec.id,
      label: spec.label,
      unit: spec.unit,
      display: displayOf(spec),
      value: policy.value,
      status: 'imputed',
      state: because === 'stale' ? 'stale' : 'not-evaluable',
      imputedBecause: because,
    };
    if (found.stale) {
      imputed.recorded = found.stale.recorded;
      // A reading is stale only when dated (isStale).
      imputed.date = found.stale.date!;
    }
    values.push(imputed);
  }
  return { values, refusals };
}

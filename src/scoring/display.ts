/**
 * The display layer of model inputs: how a value reads to a person. The model sees numbers in UCUM
 * units (`a`, `kg/m2/a`, `{score}`, `1` for flags); a clinician reads "68 years", "+0.4 kg/m² per year",
 * "7 out of 10", "present", "yes (type II)". Each feature gets its display from its manifest entry
 * (kind, UCUM unit, map, indicator) unless the manifest says otherwise (`display`): the precision, the
 * human unit and, for a coded value, how the code reads. The UCUM code itself stays in the card's
 * `extension` (the explanation keeps every value as the model saw it).
 */
import type { Language, Localized } from '../language.js';
import type { FeatureSpec } from './manifest.js';

/** How one feature's values read. */
export interface ValueDisplay {
  /** `number`: a figure with its unit; `yes-no` and `present-absent`: a 0/1 value. */
  kind: 'number' | 'yes-no' | 'present-absent';
  /** Decimals shown at most (trailing zeros are dropped). */
  precision: number;
  /** The unit as a clinician reads it (empty: none). */
  unit: Localized;
  /** A slope or change: shown with its sign. */
  signed?: boolean;
  /** How a recorded code reads beside yes/no, `{code}` replaced (e.g. "grade {code}"). */
  code?: Localized;
}

const NONE: Localized = { en: '', fr: '' };

/** UCUM codes a person reads, with the precision a value in them is shown with. */
const UNITS: Record<string, { unit: Localized; precision: number; signed?: boolean }> = {
  a: { unit: { en: 'years', fr: 'ans' }, precision: 0 },
  mo: { unit: { en: 'months', fr: 'mois' }, precision: 0 },
  wk: { unit: { en: 'weeks', fr: 'semaines' }, precision: 0 },
  d: { unit: { en: 'days', fr: 'jours' }, precision: 0 },
  kg: { unit: { en: 'kg', fr: 'kg' }, precision: 1 },
  g: { unit: { en: 'g', fr: 'g' }, precision: 0 },
  m: { unit: { en: 'm', fr: 'm' }, precision: 2 },
  cm: { unit: { en: 'cm', fr: 'cm' }, precision: 0 },
  mm: { unit: { en: 'mm', fr: 'mm' }, precision: 0 },
  '[lb_av]': { unit: { en: 'lb', fr: 'lb' }, precision: 0 },
  '[in_i]': { unit: { en: 'in', fr: 'in' }, precision: 0 },
  'kg/m2': { unit: { en: 'kg/m²', fr: 'kg/m²' }, precision: 1 },
  'kg/m^2': { unit: { en: 'kg/m²', fr: 'kg/m²' }, precision: 1 },
  'kg/m2/a': { unit: { en: 'kg/m² per year', fr: 'kg/m² par an' }, precision: 1, signed: true },
  'mL/min/{1.73_m2}': { unit: { en: 'mL/min/1.73 m²', fr: 'mL/min/1,73 m²' }, precision: 0 },
  'mL/min/1.73m2': { unit: { en: 'mL/min/1.73 m²', fr: 'mL/min/1,73 m²' }, precision: 0 },
  '{score}': { unit: { en: 'points', fr: 'points' }, precision: 1 },
  '{count}': { unit: NONE, precision: 0 },
  '1': { unit: NONE, precision: 2 },
};

/** The human unit of a UCUM code (the code itself when it is not in the table). */
export function displayUnit(ucum: string, lang: Language): string {
  return UNITS[ucum]?.unit[lang] ?? ucum;
}

/**
 * A number as a person reads it: at most `precision` decimals, trailing zeros dropped, a decimal comma
 * in French, a sign when asked.
 */
export function formatNumber(value: number, precision: number, lang: Language, signed = false): string {
  const factor = 10 ** precision;
  const rounded = Math.round(value * factor) / factor;
  const text = String(Object.is(rounded, -0) ? 0 : rounded);
  const sign = signed && rounded > 0 ? '+' : '';
  return sign + (lang === 'fr' ? text.replace('.', ',') : text);
}

type SpecDisplay = Partial<Pick<ValueDisplay, 'kind' | 'precision' | 'unit' | 'code'>>;

/** The display of a feature: from its kind and unit, then the manifest's own `display` entries. */
export function displayOf(spec: FeatureSpec): ValueDisplay {
  const unit = UNITS[spec.unit];
  const base: ValueDisplay = {
    kind: 'number',
    precision: unit?.precision ?? 2,
    unit: unit?.unit ?? { en: spec.unit, fr: spec.unit },
    ...(unit?.signed ? { signed: true } : {}),
  };
  if (spec.kind === 'flag') base.kind = 'present-absent';
  // A 0/1 input: an indicator (age band), a code mapped to 0/1, or a boolean read as a number.
  else if (spec.indicator !== undefined) base.kind = 'yes-no';
  else if (spec.kind === 'code' && spec.unit === '1') base.kind = 'yes-no';
  else if (spec.kind === 'number' && spec.unit === '1' && spec.range === undefined) base.kind = 'yes-no';
  const own = (spec as { display?: SpecDisplay }).display;
  return { ...base, ...own };
}

const TEXT = {
  en: {
    yes: 'yes',
    no: 'no',
    present: 'present',
    absent: 'absent',
    notRecorded: 'not recorded',
    assumedAbsent: 'not recorded (taken as absent)',
    tooOld: 'too old',
  },
  fr: {
    yes: 'oui',
    no: 'non',
    present: 'présent',
    absent: 'absent',
    notRecorded: 'non renseigné',
    assumedAbsent: 'non renseigné (considéré comme absent)',
    tooOld: 'trop ancien',
  },
} as const;

/** A value with what the display layer needs; feature values and contributions are such values. */
export interface ShownValue {
  unit: string;
  value: number;
  status: 'observed' | 'imputed' | 'assumed-absent';
  recorded?: string;
  date?: string;
  imputedBecause?: 'missing' | 'stale';
  display?: ValueDisplay;
}

/** A number with its unit, as the display reads it. */
function numberText(value: number, d: ValueDisplay, lang: Language): string {
  const unit = d.unit[lang];
  return `${formatNumber(value, d.precision, lang, d.signed)}${unit ? ` ${unit}` : ''}`;
}

const BOOLEAN_TEXT = /^(true|false|recorded)$/;

/** What stands beside yes/no: the age behind an age band, the code behind a coded value. */
function behind(v: ShownValue, d: ValueDisplay, lang: Language): string {
  if (v.recorded === undefined || BOOLEAN_TEXT.test(v.recorded)) return '';
  if (d.code) return ` (${d.code[lang].replaceAll('{code}', v.recorded)})`;
  // A recorded figure with its unit (an age behind an age band) reads in human units; a bare code
  // (e.g. an administrative gender) is not shown: it is in the language of the record, not the card's.
  return /^-?\d/.test(v.recorded) ? ` (${formatRecorded(v.recorded, lang)})` : '';
}

/**
 * The value as a person reads it: "68 years", "30.1 kg/m²", "present", "yes (type II)", "not recorded";
 * a value too old to use reads with its date: "30 kg/m² (2020-05-02), too old".
 */
export function formatValue(v: ShownValue, lang: Language): string {
  const t = TEXT[lang];
  const d = v.display ?? displayOf({ kind: 'number', unit: v.unit } as FeatureSpec);
  if (v.status === 'assumed-absent') return t.assumedAbsent;
  if (v.status === 'imputed') {
    if (v.imputedBecause !== 'stale' || v.recorded === undefined) return t.notRecorded;
    const date = v.date ? ` (${v.date.slice(0, 10)})` : '';
    return `${formatRecorded(v.recorded, lang)}${date}, ${t.tooOld}`;
  }
  if (d.kind === 'present-absent') return v.value >= 0.5 ? t.present : t.absent;
  if (d.kind === 'yes-no') return `${v.value >= 0.5 ? t.yes : t.no}${behind(v, d, lang)}`;
  return numberText(v.value, d, lang);
}

const UNIT_CODES = Object.keys(UNITS)
  .filter((u) => u !== '1')
  .sort((a, b) => b.length - a.length)
  .map((u) => u.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));
/** A number followed by a UCUM code, as records and rule evidence write them ("47 a", "28.5 kg/m2"). */
const NUMBER_WITH_UNIT = new RegExp(`(-?\\d+(?:\\.\\d+)?) ?(${UNIT_CODES.join('|')})(?=$|[\\s),;/²])`, 'g');
const LONG_DECIMAL = /(-?\d+\.\d{3,})/g;

/**
 * Text taken from a record or a rule's evidence, as a person reads it: a number followed by a UCUM
 * code gets the unit's precision and human unit ("30.03214556830332 kg/m2" → "30 kg/m²",
 * "47 a" → "47 years"), and any other number with more than two decimals is rounded to two.
 */
export function formatRecorded(text: string, lang: Language): string {
  return text
    .replace(NUMBER_WITH_UNIT, (_, n: string, code: string) => {
      const unit = UNITS[code]!;
      return `${formatNumber(Number(n), unit.precision, lang)}${unit.unit[lang] ? ` ${unit.unit[lang]}` : ''}`;
    })
    .replace(LONG_DECIMAL, (n) => formatNumber(Number(n), 2, lang));
}

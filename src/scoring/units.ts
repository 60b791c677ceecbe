/**
 * The few UCUM conversions model inputs need. A full UCUM engine would accept units no model here
 * expects; a short explicit table makes every accepted unit visible and testable, and an unknown unit
 * is refused (the card says which) rather than silently misread.
 *
 * Records do not always use UCUM codes: a Quantity's `code` is used when its `system` is UCUM, else its
 * `unit` text, matched against the aliases below (e.g. `lb`, `lbs`, `in`).
 */

/** Factor to multiply a value in the key unit by to get the base unit of its dimension. */
const DIMENSIONS: Record<string, Record<string, number>> = {
  mass: { kg: 1, g: 0.001, '[lb_av]': 0.45359237, '[oz_av]': 0.028349523125 },
  length: { m: 1, cm: 0.01, mm: 0.001, '[in_i]': 0.0254, '[ft_i]': 0.3048 },
  bmi: { 'kg/m2': 1, 'kg/m^2': 1 },
  // Scores and counts are dimensionless: one dimension, so `1`, `{score}` and `{count}` convert freely.
  dimensionless: { '1': 1, '{score}': 1, '{count}': 1 },
  time: { a: 1, mo: 1 / 12, wk: 7 / 365.25, d: 1 / 365.25 },
  egfr: { 'mL/min/{1.73_m2}': 1, 'mL/min/1.73m2': 1 },
};

/** Non-UCUM spellings seen in records, mapped to their UCUM code. */
const ALIASES: Record<string, string> = {
  lb: '[lb_av]',
  lbs: '[lb_av]',
  pound: '[lb_av]',
  pounds: '[lb_av]',
  oz: '[oz_av]',
  in: '[in_i]',
  inch: '[in_i]',
  inches: '[in_i]',
  ft: '[ft_i]',
  'kg/m²': 'kg/m2',
  score: '{score}',
  '': '1',
};

export const UCUM_SYSTEM = 'http://unitsofmeasure.org';

function dimensionOf(code: string): [string, number] | undefined {
  // A for-in walk (the table's own keys, in the same order): Object.entries built 6 arrays per
  // conversion, and feature extraction converts every candidate quantity it reads.
  for (const name in DIMENSIONS) {
    const factor = DIMENSIONS[name]![code];
    if (factor !== undefined) return [name, factor];
  }
  return undefined;
}

/** The UCUM code a recorded unit stands for. */
export function normaliseUnit(unit: string): string {
  const trimmed = unit.trim();
  return ALIASES[trimmed] ?? ALIASES[trimmed.toLowerCase()] ?? trimmed;
}

/**
 * Converts `value` from `from` to `to`.
 * @returns the converted value, or undefined when the units are unknown or of different dimensions
 */
export function convert(value: number, from: string, to: string): number | undefined {
  const a = dimensionOf(normaliseUnit(from));
  const b = dimensionOf(normaliseUnit(to));
  if (!a || !b || a[0] !== b[0]) return undefined;
  return (value * a[1]) / b[1];
}

/** True when `unit` is a unit this table knows (the manifest's units are checked at load). */
export function isKnownUnit(unit: string): boolean {
  return dimensionOf(normaliseUnit(unit)) !== undefined;
}

/** The unit of a FHIR Quantity: its code when coded in UCUM, else its unit text. */
export function unitOf(quantity: { unit?: string; code?: string; system?: string }): string {
  if (quantity.code !== undefined && (quantity.system === undefined || quantity.system === UCUM_SYSTEM)) {
    return quantity.code;
  }
  return quantity.unit ?? '';
}

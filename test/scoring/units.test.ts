import t, { type Test } from 'tap';
import { convert, isKnownUnit, normaliseUnit, UCUM_SYSTEM, unitOf } from '../../src/scoring/units.js';

/** Equal to within floating-point rounding of the factors (1e-9 relative). */
function close(t: Test, actual: number | undefined, expected: number, what: string): void {
  t.type(actual, 'number', `${what}: a number`);
  t.ok(
    Math.abs((actual as number) - expected) <= 1e-9 * Math.max(1, Math.abs(expected)),
    `${what}: ${actual} ≈ ${expected}`,
  );
}

t.test('mass: pounds, grams and ounces to kilograms and back', async (t) => {
  // 1 [lb_av] = 0.45359237 kg exactly (international avoirdupois pound).
  close(t, convert(190, '[lb_av]', 'kg'), 86.1825503, '190 [lb_av] → kg');
  close(t, convert(86.1825503, 'kg', '[lb_av]'), 190, 'kg → [lb_av]');
  close(t, convert(1500, 'g', 'kg'), 1.5, '1500 g → kg');
  close(t, convert(2.5, 'kg', 'g'), 2500, '2.5 kg → g');
  close(t, convert(16, '[oz_av]', '[lb_av]'), 1, '16 oz → 1 lb');
  t.equal(convert(70, 'kg', 'kg'), 70, 'same unit: unchanged');
});

t.test('length: inches, centimetres, millimetres and feet to metres', async (t) => {
  close(t, convert(70, '[in_i]', 'm'), 1.778, '70 [in_i] → m');
  close(t, convert(175, 'cm', 'm'), 1.75, '175 cm → m');
  close(t, convert(7.5, 'mm', 'cm'), 0.75, '7.5 mm → cm');
  close(t, convert(6, '[ft_i]', '[in_i]'), 72, '6 ft → 72 in');
  close(t, convert(1.8, 'm', 'cm'), 180, 'm → cm');
});

t.test('aliases used by records that do not code in UCUM', async (t) => {
  close(t, convert(190, 'lb', 'kg'), 86.1825503, 'lb');
  close(t, convert(190, 'lbs', 'kg'), 86.1825503, 'lbs');
  close(t, convert(190, 'LBS', 'kg'), 86.1825503, 'LBS (case-insensitive)');
  close(t, convert(190, ' pounds ', 'kg'), 86.1825503, 'pounds, trimmed');
  close(t, convert(70, 'in', 'm'), 1.778, 'in');
  close(t, convert(70, 'inches', 'm'), 1.778, 'inches');
  close(t, convert(6, 'ft', 'm'), 1.8288, 'ft');
  close(t, convert(16, 'oz', 'kg'), 0.45359237, 'oz');
  t.equal(convert(31.2, 'kg/m²', 'kg/m2'), 31.2, 'kg/m² (superscript)');
  t.equal(convert(31.2, 'kg/m^2', 'kg/m2'), 31.2, 'kg/m^2');
  t.equal(convert(6, 'score', '{score}'), 6, 'score → {score}');
  t.equal(convert(6, '', '{score}'), 6, 'no unit is the unity 1, a score');
  t.equal(normaliseUnit('lbs'), '[lb_av]');
  t.equal(normaliseUnit(' in '), '[in_i]');
  t.equal(normaliseUnit('mL/min/1.73m2'), 'mL/min/1.73m2', 'a unit without alias is kept, trimmed');
  t.equal(normaliseUnit('Kg'), 'Kg', 'case is only folded for aliases');
});

t.test('other dimensions: time and eGFR', async (t) => {
  close(t, convert(18, 'mo', 'a'), 1.5, '18 months → 1.5 years');
  close(t, convert(365.25, 'd', 'a'), 1, '365.25 days → 1 year');
  close(t, convert(1, 'a', 'wk'), 365.25 / 7, 'year → weeks');
  t.equal(convert(55, 'mL/min/1.73m2', 'mL/min/{1.73_m2}'), 55, 'eGFR spellings');
});

t.test('units of different dimensions do not convert', async (t) => {
  t.equal(convert(70, 'kg', 'm'), undefined, 'mass → length');
  t.equal(convert(70, 'lb', 'in'), undefined, 'aliases of different dimensions');
  t.equal(convert(30, 'kg/m2', 'kg'), undefined, 'bmi → mass');
  t.equal(convert(5, '{score}', 'a'), undefined, 'score → time');
  t.equal(convert(1, 'cm', 'mL/min/{1.73_m2}'), undefined, 'length → eGFR');
});

t.test('unknown units do not convert', async (t) => {
  t.equal(convert(10, 'stone', 'kg'), undefined, 'unknown source unit');
  t.equal(convert(10, 'kg', 'stone'), undefined, 'unknown target unit');
  t.equal(convert(10, 'KG', 'kg'), undefined, 'UCUM is case-sensitive: KG is not kg');
  t.equal(convert(10, 'lb/in2', 'kg/m2'), undefined, 'a compound unit outside the table');
  t.equal(convert(10, 'furlong', 'parsec'), undefined, 'both unknown');
});

t.test('isKnownUnit', async (t) => {
  for (const unit of [
    'kg',
    'g',
    '[lb_av]',
    'lb',
    'lbs',
    'm',
    'cm',
    'mm',
    '[in_i]',
    'in',
    'kg/m2',
    '{score}',
    '1',
    'a',
    'mL/min/{1.73_m2}',
  ]) {
    t.equal(isKnownUnit(unit), true, `${unit} is known`);
  }
  for (const unit of ['stone', 'KG', 'kg/m3', 'mmol/L', '[lb_i]', 'meter']) {
    t.equal(isKnownUnit(unit), false, `${unit} is not known`);
  }
});

t.test('unitOf: the UCUM code when coded in UCUM, else the unit text', async (t) => {
  t.equal(UCUM_SYSTEM, 'http://unitsofmeasure.org');
  t.equal(
    unitOf({ unit: 'lbs', system: UCUM_SYSTEM, code: '[lb_av]' }),
    '[lb_av]',
    'UCUM code wins over text',
  );
  t.equal(unitOf({ unit: 'pounds', code: '[lb_av]' }), '[lb_av]', 'a code without system is taken as UCUM');
  t.equal(
    unitOf({ unit: 'lbs', system: 'http://snomed.info/sct', code: '258693003' }),
    'lbs',
    'non-UCUM system: the unit text',
  );
  t.equal(unitOf({ unit: 'cm' }), 'cm', 'text only');
  t.equal(
    unitOf({ system: 'http://snomed.info/sct', code: '258672001' }),
    '',
    'non-UCUM code and no text: empty',
  );
  t.equal(unitOf({}), '', 'nothing: empty');
  t.equal(
    convert(190, unitOf({ unit: 'lbs', system: 'http://example.org/units', code: 'LB' }), 'kg'),
    86.1825503,
    'text of a non-UCUM quantity converts',
  );
});

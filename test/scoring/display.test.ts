/**
 * The display layer: every value a person reads has a human unit and a sensible precision (issue 15's
 * examples: "30.03214556830332 kg/m2", "Age 68 a", "0.3041217446161526 {score}", "Female sex 1",
 * "Irregular colour 1 (true)", "Kellgren-Lawrence grade 3 = 0.54 (imputed)").
 */
import t from 'tap';
import { displayOf, formatNumber, formatRecorded, formatValue } from '../../src/scoring/display.js';
import type { FeatureSpec } from '../../src/scoring/manifest.js';

const spec = (s: Record<string, unknown>) =>
  ({
    id: 'x',
    label: { en: 'X', fr: 'X' },
    reference: 0,
    source: '%patient',
    ...s,
  }) as unknown as FeatureSpec;

t.test('numbers: at most the precision, trailing zeros dropped, a decimal comma in French', async (t) => {
  t.equal(formatNumber(30.03214556830332, 1, 'en'), '30');
  t.equal(formatNumber(30.16, 1, 'en'), '30.2');
  t.equal(formatNumber(30.16, 1, 'fr'), '30,2');
  t.equal(formatNumber(0.4, 1, 'en', true), '+0.4');
  t.equal(formatNumber(-0.01, 1, 'en', true), '0', 'no "-0" and no sign on zero');
});

t.test('each kind of input reads in human words and units', async (t) => {
  const age = displayOf(spec({ kind: 'age', unit: 'a' }));
  t.equal(formatValue({ unit: 'a', value: 68, status: 'observed', display: age }, 'en'), '68 years');
  t.equal(formatValue({ unit: 'a', value: 68, status: 'observed', display: age }, 'fr'), '68 ans');
  const bmi = displayOf(spec({ kind: 'bmi', unit: 'kg/m2' }));
  t.equal(
    formatValue({ unit: 'kg/m2', value: 30.03214556830332, status: 'observed', display: bmi }, 'en'),
    '30 kg/m²',
  );
  const trend = displayOf(spec({ kind: 'trend', unit: 'kg/m2/a' }));
  t.equal(
    formatValue({ unit: 'kg/m2/a', value: 0.43, status: 'observed', display: trend }, 'fr'),
    '+0,4 kg/m² par an',
  );
  const pain = displayOf(
    spec({
      kind: 'quantity',
      unit: '{score}',
      display: { precision: 0, unit: { en: 'out of 10', fr: 'sur 10' } },
    }),
  );
  t.equal(formatValue({ unit: '{score}', value: 7, status: 'observed', display: pain }, 'en'), '7 out of 10');
  const flag = displayOf(spec({ kind: 'flag', unit: '1' }));
  t.equal(
    formatValue({ unit: '1', value: 1, status: 'observed', recorded: 'recorded', display: flag }, 'fr'),
    'présent',
  );
  const female = displayOf(spec({ kind: 'code', unit: '1', map: { female: 1, male: 0 } }));
  t.equal(
    formatValue({ unit: '1', value: 1, status: 'observed', recorded: 'female', display: female }, 'fr'),
    'oui',
    'a record code in English is not shown',
  );
  const kl = displayOf(
    spec({
      kind: 'code',
      unit: '1',
      map: { '2': 0, '3': 1 },
      display: { code: { en: 'grade {code}', fr: 'grade {code}' } },
    }),
  );
  t.equal(
    formatValue({ unit: '1', value: 0, status: 'observed', recorded: '2', display: kl }, 'en'),
    'no (grade 2)',
  );
  const colour = displayOf(spec({ kind: 'number', unit: '1' }));
  t.equal(
    formatValue({ unit: '1', value: 1, status: 'observed', recorded: 'true', display: colour }, 'en'),
    'yes',
  );
  const naevi = displayOf(spec({ kind: 'number', unit: '1', range: { min: 0, max: 1000 } }));
  t.equal(formatValue({ unit: '1', value: 30, status: 'observed', display: naevi }, 'en'), '30');
  const band = displayOf(spec({ kind: 'age', unit: '1', indicator: { min: 61 } }));
  t.equal(
    formatValue({ unit: '1', value: 0, status: 'observed', recorded: '47 a', display: band }, 'en'),
    'no (47 years)',
  );
});

t.test(
  'imputed and absent values say so, with no imputed number; a stale value keeps its date',
  async (t) => {
    const kl = displayOf(spec({ kind: 'code', unit: '1', map: { '3': 1 } }));
    t.equal(
      formatValue(
        { unit: '1', value: 0.54, status: 'imputed', imputedBecause: 'missing', display: kl },
        'en',
      ),
      'not recorded',
    );
    t.equal(
      formatValue({ unit: '1', value: 0, status: 'assumed-absent' }, 'fr'),
      'non renseigné (considéré comme absent)',
    );
    const pain = displayOf(spec({ kind: 'quantity', unit: '{score}' }));
    t.equal(
      formatValue(
        {
          unit: '{score}',
          value: 4.2,
          status: 'imputed',
          imputedBecause: 'stale',
          recorded: '7 {score}',
          date: '2020-01-01T00:00:00Z',
          display: pain,
        },
        'en',
      ),
      '7 points (2020-01-01), too old',
    );
  },
);

t.test(
  'text from a record: UCUM codes after a number become human units, long decimals are rounded',
  async (t) => {
    t.equal(formatRecorded('30.03214556830332 kg/m2', 'en'), '30 kg/m²');
    t.equal(formatRecorded('47 a', 'fr'), '47 ans');
    t.equal(formatRecorded('28 wk (2026-01-02)', 'en'), '28 weeks (2026-01-02)');
    t.equal(formatRecorded('0.3041217446161526 {score}', 'en'), '0.3 points');
    t.equal(formatRecorded('85 kg / (1.7018 m)²', 'en'), '85 kg / (1.7 m)²');
    t.equal(formatRecorded('ratio 0.123456', 'fr'), 'ratio 0,12');
    t.equal(
      formatRecorded('a grade and a date 2026-01-02', 'en'),
      'a grade and a date 2026-01-02',
      'words are left alone',
    );
  },
);

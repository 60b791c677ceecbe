import type { Condition, Observation, Patient, Resource } from 'fhir/r4.js';
import t from 'tap';
import { LOCAL_OBSERVATION, SYSTEM } from '../../src/codes.js';
import { type Extraction, extractFeatures, type FeatureValue } from '../../src/scoring/features.js';
import { compileManifest, readManifest } from '../../src/scoring/load.js';
import { searchset } from '../../tools/synthetic/bundle.js';
import { lesion } from '../helpers/hook-request.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const NOW = new Date('2026-11-22T09:30:00Z');
const DAY_MS = 86_400_000;

const knee = compileManifest(readManifest('models/knee-oa-progression/1.0.0'), engine);
const melanoma = compileManifest(readManifest('models/melanoma-risk/1.0.0'), engine);

// ---- builders ----

function patient(birthDate: string | undefined, gender?: Patient['gender']): Patient {
  return {
    resourceType: 'Patient',
    id: 'pat-1',
    ...(birthDate === undefined ? {} : { birthDate }),
    ...(gender === undefined ? {} : { gender }),
  };
}

let serial = 0;
function observation(
  system: string,
  code: string,
  date: string,
  value: Partial<Observation>,
  status: Observation['status'] = 'final',
): Observation {
  serial += 1;
  return {
    resourceType: 'Observation',
    id: `obs-${serial}`,
    status,
    code: { coding: [{ system, code }] },
    subject: { reference: 'Patient/pat-1' },
    effectiveDateTime: date,
    ...value,
  };
}

function ucum(value: number, code: string) {
  return { valueQuantity: { value, unit: code, system: SYSTEM.ucum, code } };
}

const bmi = (value: number, date: string, unit = 'kg/m2', status: Observation['status'] = 'final') =>
  observation(SYSTEM.loinc, '39156-5', date, ucum(value, unit), status);
const weight = (value: number, date: string, quantity: Observation['valueQuantity']) =>
  observation(SYSTEM.loinc, '29463-7', date, { valueQuantity: { value, ...quantity } });
const height = (value: number, date: string, quantity: Observation['valueQuantity']) =>
  observation(SYSTEM.loinc, '8302-2', date, { valueQuantity: { value, ...quantity } });
const pain = (value: number, date: string) =>
  observation(SYSTEM.loinc, '72514-3', date, ucum(value, '{score}'));
const kl = (grade: number, date = '2025-03-01T10:00:00Z', status: Observation['status'] = 'final') =>
  observation(SYSTEM.localObservation, LOCAL_OBSERVATION.klGrade, date, { valueInteger: grade }, status);

function condition(system: string, code: string, extra: Partial<Condition> = {}): Condition {
  serial += 1;
  return {
    resourceType: 'Condition',
    id: `cond-${serial}`,
    code: { coding: [{ system, code }] },
    subject: { reference: 'Patient/pat-1' },
    ...extra,
  };
}

function verification(code: string): Condition['verificationStatus'] {
  return { coding: [{ system: SYSTEM.conditionVerification, code }] };
}

/** A knee record inside the population: 59 years old, KL 2, a fresh BMI. */
const BIRTH_59 = '1966-12-01'; // 60 on 2026-12-01, after NOW

interface KneeRecord {
  patient?: Patient;
  observations?: Resource[];
  conditions?: Resource[];
}

function extractKnee(record: KneeRecord = {}): Extraction {
  const env = {
    patient: record.patient ?? patient(BIRTH_59, 'female'),
    conditions: searchset(record.conditions ?? []),
    observations: searchset(record.observations ?? [kl(2), bmi(31.2, '2026-06-01T08:00:00Z')]),
  };
  return extractFeatures(knee.features, knee.guards, {}, env, NOW);
}

function value(extraction: Extraction, id: string): FeatureValue {
  const found = extraction.values.find((v) => v.id === id);
  if (!found) throw new Error(`no value ${id} in ${JSON.stringify(extraction)}`);
  return found;
}

/** The state an input must have given its status (the four states, checked on every value stripped). */
function expectedState(v: FeatureValue): FeatureValue['state'] {
  if (v.status === 'observed') return 'met';
  if (v.status === 'assumed-absent') return 'not-met';
  return v.imputedBecause === 'stale' ? 'stale' : 'not-evaluable';
}

/**
 * The value without its label and display (the manifest's, checked once each) and its state (checked
 * here against its status: met, not met, not evaluable or stale).
 */
function strip(v: FeatureValue): Omit<FeatureValue, 'label' | 'display' | 'state'> {
  const { label: _label, display: _display, state, ...rest } = v;
  if (state !== expectedState(v)) throw new Error(`${v.id}: state ${state}, expected ${expectedState(v)}`);
  return rest;
}

// ---- knee OA progression ----

t.test('the knee manifest compiles: 9 features, 2 guards, in manifest order', async (t) => {
  t.same(
    knee.features.map((f) => f.spec.id),
    ['age', 'female', 'bmi', 'bmiTrend', 'pain', 'klGrade3', 'kneeInjury', 'handOa', 'diabetes'],
  );
  t.same(
    knee.guards.map((g) => g.spec.id),
    ['ageBand', 'klGrade'],
  );
});

t.test('a complete record inside the population: every value, in order, no refusal', async (t) => {
  const e = extractKnee({
    observations: [kl(2), bmi(31.2, '2026-06-01T08:00:00Z'), pain(6, '2026-10-01T08:00:00Z')],
  });
  t.same(e.refusals, []);
  t.same(
    e.values.map((v) => [v.id, v.value, v.status]),
    [
      ['age', 59, 'observed'],
      ['female', 1, 'observed'],
      ['bmi', 31.2, 'observed'],
      ['bmiTrend', 0, 'imputed'],
      ['pain', 6, 'observed'],
      ['klGrade3', 0, 'observed'],
      ['kneeInjury', 0, 'assumed-absent'],
      ['handOa', 0, 'assumed-absent'],
      ['diabetes', 0, 'assumed-absent'],
    ],
  );
  t.same(value(e, 'age').label, { en: 'Age', fr: 'Âge' });
});

t.test('age: whole years, the birthday of this year not yet reached', async (t) => {
  t.same(strip(value(extractKnee(), 'age')), { id: 'age', unit: 'a', value: 59, status: 'observed' });
  // Birthday today: the year counts.
  t.equal(value(extractKnee({ patient: patient('1966-11-22', 'female') }), 'age').value, 60);
  // Birthday tomorrow: it does not.
  t.equal(value(extractKnee({ patient: patient('1966-11-23', 'female') }), 'age').value, 59);
  // Birthday earlier in the month.
  t.equal(value(extractKnee({ patient: patient('1966-11-21', 'female') }), 'age').value, 60);
});

t.test('age guard: 44 and 80 are outside 45-79, and no value is extracted', async (t) => {
  const ageReason = {
    en: 'age outside 45-79 years, the population the model was trained on',
    fr: 'âge hors de 45-79 ans, la population sur laquelle le modèle a été entraîné',
  };
  for (const [birthDate, age] of [
    ['1982-06-01', 44],
    ['1946-06-01', 80],
    ['1981-11-23', 44], // 45 tomorrow
  ] as const) {
    const e = extractKnee({ patient: patient(birthDate, 'female') });
    t.same(
      e,
      { values: [], refusals: [{ code: 'out-of-population', text: ageReason }] },
      `age ${age} (${birthDate})`,
    );
  }
  // The edges inside: 45 today, 79 until tomorrow.
  t.same(extractKnee({ patient: patient('1981-11-22', 'female') }).refusals, [], '45 today is inside');
  t.same(
    extractKnee({ patient: patient('1946-11-23', 'female') }).refusals,
    [],
    '79 (80 tomorrow) is inside',
  );
  t.same(
    extractKnee({ patient: patient('1946-11-22', 'female') }).refusals.map((r) => r.code),
    ['out-of-population'],
    '80 today is outside',
  );
  t.same(
    extractKnee({ patient: patient(undefined, 'female') }).refusals,
    [{ code: 'out-of-population', text: ageReason }],
    'no birth date',
  );
});

t.test('BMI from a BMI observation: the latest fresh one', async (t) => {
  const e = extractKnee({
    observations: [
      kl(2),
      bmi(29, '2025-01-10T08:00:00Z'),
      bmi(31.2, '2026-06-01T08:00:00Z'),
      bmi(40, '2026-07-01T08:00:00Z', 'kg/m2', 'entered-in-error'),
    ],
  });
  t.same(strip(value(e, 'bmi')), {
    id: 'bmi',
    unit: 'kg/m2',
    value: 31.2,
    status: 'observed',
    date: '2026-06-01T08:00:00Z',
  });
});

t.test('BMI computed from weight in [lb_av] and height in cm when no BMI observation', async (t) => {
  const e = extractKnee({
    observations: [
      kl(2),
      weight(190, '2026-05-01T08:00:00Z', { unit: 'lbs', system: SYSTEM.ucum, code: '[lb_av]' }),
      height(175, '2026-02-01T08:00:00Z', { unit: 'cm', system: SYSTEM.ucum, code: 'cm' }),
    ],
  });
  t.same(e.refusals, []);
  const v = value(e, 'bmi');
  // 190 × 0.45359237 kg / 1.75² m²
  t.ok(Math.abs(v.value - 86.1825503 / 1.75 ** 2) < 1e-9, `BMI ${v.value} = 28.1412409...`);
  t.ok(Math.abs(v.value - 28.141240914285714) < 1e-9);
  t.same(strip({ ...v, value: 0 }), {
    id: 'bmi',
    unit: 'kg/m2',
    value: 0,
    status: 'observed',
    recorded: '190 [lb_av] / (175 cm)²',
    // The older of the two measurements dates the computed value.
    date: '2026-02-01T08:00:00Z',
  });
});

t.test('BMI computed from weight and height given as unit text only (lbs, in)', async (t) => {
  const e = extractKnee({
    observations: [
      kl(2),
      weight(190, '2026-05-01T08:00:00Z', { unit: 'lbs' }),
      height(70, '2026-06-01T08:00:00Z', { unit: 'in' }),
    ],
  });
  const v = value(e, 'bmi');
  t.ok(Math.abs(v.value - 86.1825503 / 1.778 ** 2) < 1e-9, `BMI ${v.value}`);
  t.equal(v.recorded, '190 lbs / (70 in)²');
  t.equal(v.date, '2026-05-01T08:00:00Z');
});

t.test('a fresh BMI observation wins over weight and height', async (t) => {
  const e = extractKnee({
    observations: [
      kl(2),
      bmi(27.5, '2026-01-01T08:00:00Z'),
      weight(100, '2026-10-01T08:00:00Z', { unit: 'kg', system: SYSTEM.ucum, code: 'kg' }),
      height(150, '2026-10-01T08:00:00Z', { unit: 'cm', system: SYSTEM.ucum, code: 'cm' }),
    ],
  });
  t.equal(value(e, 'bmi').value, 27.5);
  t.equal(value(e, 'bmi').recorded, undefined);
});

t.test('stale BMI (older than 730 days) is refused, with the stale value and date named', async (t) => {
  const e = extractKnee({ observations: [kl(2), bmi(31.2, '2024-11-01T08:00:00Z')] });
  t.same(e.refusals, [
    {
      code: 'stale',
      featureId: 'bmi',
      text: {
        en: 'Body mass index: too old (31.2 kg/m², 2024-11-01)',
        fr: 'Indice de masse corporelle : trop ancien (31,2 kg/m², 2024-11-01)',
      },
    },
  ]);
  t.equal(
    e.values.find((v) => v.id === 'bmi'),
    undefined,
    'no BMI value',
  );
  t.equal(value(e, 'bmiTrend').value, 0, 'the other features are still extracted');
  // Exactly 730 days old is still fresh.
  const edge = new Date(NOW.getTime() - 730 * DAY_MS).toISOString();
  t.equal(value(extractKnee({ observations: [kl(2), bmi(30, edge)] }), 'bmi').value, 30, '730 days: fresh');
  // Stale weight and height do not make a BMI.
  const old = extractKnee({
    observations: [
      kl(2),
      weight(80, '2023-01-01T08:00:00Z', { unit: 'kg', system: SYSTEM.ucum, code: 'kg' }),
      height(170, '2023-01-01T08:00:00Z', { unit: 'cm', system: SYSTEM.ucum, code: 'cm' }),
    ],
  });
  t.same(
    old.refusals.map((r) => r.featureId),
    ['bmi'],
  );
  t.equal(
    old.values.find((v) => v.id === 'bmi'),
    undefined,
  );
});

t.test('stale weight and height with no BMI observation are refused as stale, not as missing', async (t) => {
  const old = extractKnee({
    observations: [
      kl(2),
      weight(80, '2023-01-01T08:00:00Z', { unit: 'kg', system: SYSTEM.ucum, code: 'kg' }),
      height(170, '2023-01-01T08:00:00Z', { unit: 'cm', system: SYSTEM.ucum, code: 'cm' }),
    ],
  });
  t.same(
    old.refusals.map((r) => [r.code, r.featureId]),
    [['stale', 'bmi']],
  );
});

t.test('no BMI and no weight/height: refused as missing', async (t) => {
  const e = extractKnee({ observations: [kl(2)] });
  t.same(e.refusals, [
    {
      code: 'missing',
      featureId: 'bmi',
      text: { en: 'Body mass index: not recorded', fr: 'Indice de masse corporelle : non renseigné' },
    },
  ]);
  // Weight without height is not enough.
  const half = extractKnee({
    observations: [
      kl(2),
      weight(80, '2026-01-01T08:00:00Z', { unit: 'kg', system: SYSTEM.ucum, code: 'kg' }),
    ],
  });
  t.same(
    half.refusals.map((r) => [r.code, r.featureId]),
    [['missing', 'bmi']],
  );
});

t.test('BMI in a unit that cannot be converted is refused (the trend reads it too)', async (t) => {
  const e = extractKnee({ observations: [kl(2), bmi(45, '2026-06-01T08:00:00Z', 'lb/in2')] });
  t.same(e.refusals, [
    {
      code: 'unit',
      featureId: 'bmi',
      text: {
        en: 'Body mass index: recorded in a unit that cannot be converted (lb/in2)',
        fr: 'Indice de masse corporelle : saisi dans une unité non convertible (lb/in2)',
      },
    },
    {
      code: 'unit',
      featureId: 'bmiTrend',
      text: {
        en: 'BMI trend: recorded in a unit that cannot be converted (lb/in2)',
        fr: 'Évolution de l’IMC : saisi dans une unité non convertible (lb/in2)',
      },
    },
  ]);
  // A weight in an unknown unit, when BMI must be computed.
  const w = extractKnee({
    observations: [
      kl(2),
      weight(12, '2026-05-01T08:00:00Z', { unit: 'stone' }),
      height(175, '2026-05-01T08:00:00Z', { unit: 'cm', system: SYSTEM.ucum, code: 'cm' }),
    ],
  });
  t.same(
    w.refusals.map((r) => [r.code, r.featureId, r.text.en]),
    [['unit', 'bmi', 'Body mass index: recorded in a unit that cannot be converted (stone)']],
  );
});

t.test('implausible BMI 150 is refused with the range', async (t) => {
  const e = extractKnee({ observations: [kl(2), bmi(150, '2026-06-01T08:00:00Z')] });
  t.same(e.refusals, [
    {
      code: 'implausible',
      featureId: 'bmi',
      text: {
        en: 'Body mass index: outside the plausible range (150 kg/m²; 12–80)',
        fr: 'Indice de masse corporelle : hors de l’intervalle plausible (150 kg/m²; 12–80)',
      },
    },
  ]);
  // The range bounds are inside.
  t.equal(value(extractKnee({ observations: [kl(2), bmi(80, '2026-06-01T08:00:00Z')] }), 'bmi').value, 80);
  t.equal(value(extractKnee({ observations: [kl(2), bmi(12, '2026-06-01T08:00:00Z')] }), 'bmi').value, 12);
  t.same(
    extractKnee({ observations: [kl(2), bmi(11.9, '2026-06-01T08:00:00Z')] }).refusals.map((r) => r.code),
    ['implausible'],
  );
});

t.test('pain: observed, missing → imputed 4.2, stale → imputed with the stale value kept', async (t) => {
  const observed = extractKnee({
    observations: [kl(2), bmi(30, '2026-06-01T08:00:00Z'), pain(6, '2026-10-01T08:00:00Z')],
  });
  t.same(strip(value(observed, 'pain')), {
    id: 'pain',
    unit: '{score}',
    value: 6,
    status: 'observed',
    date: '2026-10-01T08:00:00Z',
  });

  const missing = extractKnee();
  t.same(missing.refusals, []);
  t.same(strip(value(missing, 'pain')), {
    id: 'pain',
    unit: '{score}',
    value: 4.2,
    status: 'imputed',
    imputedBecause: 'missing',
  });

  const stale = extractKnee({
    observations: [kl(2), bmi(30, '2026-06-01T08:00:00Z'), pain(7, '2025-06-01T08:00:00Z')],
  });
  t.same(stale.refusals, []);
  t.same(strip(value(stale, 'pain')), {
    id: 'pain',
    unit: '{score}',
    value: 4.2,
    status: 'imputed',
    imputedBecause: 'stale',
    recorded: '7 {score}',
    date: '2025-06-01T08:00:00Z',
  });

  // A fresh value wins over a later-listed stale one; the latest fresh value wins.
  const both = extractKnee({
    observations: [
      kl(2),
      bmi(30, '2026-06-01T08:00:00Z'),
      pain(3, '2026-01-01T08:00:00Z'),
      pain(7, '2025-06-01T08:00:00Z'),
      pain(5, '2026-09-01T08:00:00Z'),
    ],
  });
  t.equal(value(both, 'pain').value, 5);
  t.equal(value(both, 'pain').status, 'observed');
});

t.test('KL grade: the worse knee decides', async (t) => {
  const both = extractKnee({
    observations: [
      kl(2, '2025-01-01T08:00:00Z'),
      kl(3, '2024-06-01T08:00:00Z'),
      bmi(30, '2026-06-01T08:00:00Z'),
    ],
  });
  t.same(both.refusals, []);
  t.same(strip(value(both, 'klGrade3')), {
    id: 'klGrade3',
    unit: '1',
    value: 1,
    status: 'observed',
    recorded: '3',
    date: '2024-06-01T08:00:00Z',
  });

  const oneAndThree = extractKnee({ observations: [kl(3), kl(1), bmi(30, '2026-06-01T08:00:00Z')] });
  t.same(oneAndThree.refusals, []);
  t.equal(value(oneAndThree, 'klGrade3').value, 1);

  const two = extractKnee({ observations: [kl(2), bmi(30, '2026-06-01T08:00:00Z')] });
  t.same(strip(value(two, 'klGrade3')), {
    id: 'klGrade3',
    unit: '1',
    value: 0,
    status: 'observed',
    recorded: '2',
    date: '2025-03-01T10:00:00Z',
  });

  const none = extractKnee({ observations: [bmi(30, '2026-06-01T08:00:00Z')] });
  t.same(none.refusals, [], 'no KL grade is inside the population');
  t.same(strip(value(none, 'klGrade3')), {
    id: 'klGrade3',
    unit: '1',
    value: 0.54,
    status: 'imputed',
    imputedBecause: 'missing',
  });

  // A grade older than 1825 days is stale: imputed, the stale grade kept.
  const old = extractKnee({ observations: [kl(3, '2020-01-01T08:00:00Z'), bmi(30, '2026-06-01T08:00:00Z')] });
  t.same(strip(value(old, 'klGrade3')), {
    id: 'klGrade3',
    unit: '1',
    value: 0.54,
    status: 'imputed',
    imputedBecause: 'stale',
    recorded: '3',
    date: '2020-01-01T08:00:00Z',
  });
});

t.test('KL grade guard: only KL 0-1 or any KL 4 is outside the population', async (t) => {
  const klReason = {
    en: 'a recorded Kellgren-Lawrence grade outside 2-3 (the model covers KL 2 and 3 only)',
    fr: 'un grade Kellgren-Lawrence renseigné hors de 2-3 (le modèle ne couvre que les grades 2 et 3)',
  };
  const cases: [string, Observation[]][] = [
    ['KL 1 only', [kl(1)]],
    ['KL 0 and 1', [kl(0), kl(1)]],
    ['KL 4', [kl(4)]],
    ['KL 2 and 4', [kl(2), kl(4)]],
  ];
  for (const [name, grades] of cases) {
    const e = extractKnee({ observations: [...grades, bmi(30, '2026-06-01T08:00:00Z')] });
    t.same(e, { values: [], refusals: [{ code: 'out-of-population', text: klReason }] }, name);
  }
  // A KL 4 entered in error does not count.
  const error = extractKnee({
    observations: [kl(2), kl(4, '2025-01-01T08:00:00Z', 'entered-in-error'), bmi(30, '2026-06-01T08:00:00Z')],
  });
  t.same(error.refusals, []);
  // Both guards failing: both reasons.
  const both = extractKnee({ patient: patient('1990-01-01', 'male'), observations: [kl(4)] });
  t.same(
    both.refusals.map((r) => r.code),
    ['out-of-population', 'out-of-population'],
  );
  t.same(both.values, []);
});

t.test('BMI trend: least-squares slope per year over the window', async (t) => {
  // Exactly 0, 1 and 2 years (365.25 days) apart: t = 0, 1, 2; v = 30, 31, 33.
  // slope = Σ(t − 1)(v − 31.333…) / Σ(t − 1)² = (1.333… + 1.666…) / 2 = 1.5
  const e = extractKnee({
    observations: [
      kl(2),
      bmi(31, '2025-11-20T06:00:00Z'),
      bmi(30, '2024-11-20T00:00:00Z'),
      bmi(33, '2026-11-20T12:00:00Z'),
      bmi(50, '2023-11-01T00:00:00Z'), // outside the 1095-day window: ignored
    ],
  });
  t.same(e.refusals, []);
  const v = value(e, 'bmiTrend');
  t.ok(Math.abs(v.value - 1.5) < 1e-9, `slope ${v.value} = 1.5`);
  t.same(strip({ ...v, value: 0 }), {
    id: 'bmiTrend',
    unit: 'kg/m2/a',
    value: 0,
    status: 'observed',
    recorded: '1.5 kg/m2/a (3 values)',
    date: '2026-11-20T12:00:00Z',
  });
  t.equal(value(e, 'bmi').value, 33, 'the latest BMI');

  // Unevenly spaced: check against the textbook formula on the same time scale.
  const dates = ['2024-01-15T00:00:00Z', '2024-09-03T00:00:00Z', '2026-10-30T00:00:00Z'];
  const values = [35, 33.5, 31];
  const e2 = extractKnee({ observations: [kl(2), ...dates.map((d, i) => bmi(values[i]!, d))] });
  const ts = dates.map((d) => Date.parse(d) / (365.25 * DAY_MS));
  const mt = (ts[0]! + ts[1]! + ts[2]!) / 3;
  const mv = (values[0]! + values[1]! + values[2]!) / 3;
  const slope =
    ts.reduce((s, x, i) => s + (x - mt) * (values[i]! - mv), 0) / ts.reduce((s, x) => s + (x - mt) ** 2, 0);
  t.ok(slope < -1.3 && slope > -1.4, `independent slope ${slope} ≈ −1.36`);
  t.ok(Math.abs(value(e2, 'bmiTrend').value - slope) < 1e-9, `${value(e2, 'bmiTrend').value} = ${slope}`);
});

t.test('BMI trend: one value, or values too close together → imputed 0', async (t) => {
  const one = extractKnee({ observations: [kl(2), bmi(30, '2026-06-01T08:00:00Z')] });
  t.same(strip(value(one, 'bmiTrend')), {
    id: 'bmiTrend',
    unit: 'kg/m2/a',
    value: 0,
    status: 'imputed',
    imputedBecause: 'missing',
  });
  // 100 days apart: below the 180-day minimum span.
  const close = extractKnee({
    observations: [kl(2), bmi(30, '2026-06-01T00:00:00Z'), bmi(32, '2026-09-09T00:00:00Z')],
  });
  t.same(strip(value(close, 'bmiTrend')), {
    id: 'bmiTrend',
    unit: 'kg/m2/a',
    value: 0,
    status: 'imputed',
    imputedBecause: 'missing',
  });
  // 200 days apart: enough. slope = 2 kg/m² over 200/365.25 years.
  const far = extractKnee({
    observations: [kl(2), bmi(30, '2026-03-01T00:00:00Z'), bmi(32, '2026-09-17T00:00:00Z')],
  });
  t.ok(Math.abs(value(far, 'bmiTrend').value - (2 * 365.25) / 200) < 1e-9, `${value(far, 'bmiTrend').value}`);
});

t.test('flags: knee injury, refuted or entered-in-error conditions, diabetes by ICD-10', async (t) => {
  const injury = extractKnee({
    conditions: [
      condition(SYSTEM.snomed, '444470001', { onsetDateTime: '2015-03-10', recordedDate: '2015-04-01' }),
    ],
  });
  t.same(strip(value(injury, 'kneeInjury')), {
    id: 'kneeInjury',
    unit: '1',
    value: 1,
    status: 'observed',
    recorded: 'recorded',
    date: '2015-03-10',
  });
  t.equal(value(injury, 'handOa').status, 'assumed-absent');
  t.equal(value(injury, 'diabetes').status, 'assumed-absent');

  // Two matching conditions: the earliest date.
  const two = extractKnee({
    conditions: [
      condition(SYSTEM.snomed, '444448004', { recordedDate: '2019-01-01' }),
      condition(SYSTEM.snomed, '239720000', { onsetDateTime: '2012-05-05T00:00:00Z' }),
    ],
  });
  t.equal(value(two, 'kneeInjury').value, 1);
  t.equal(value(two, 'kneeInjury').date, '2012-05-05T00:00:00Z');

  for (const status of ['refuted', 'entered-in-error']) {
    const e = extractKnee({
      conditions: [
        condition(SYSTEM.snomed, '444470001', {
          onsetDateTime: '2015-03-10',
          verificationStatus: verification(status),
        }),
      ],
    });
    t.same(
      strip(value(e, 'kneeInjury')),
      { id: 'kneeInjury', unit: '1', value: 0, status: 'assumed-absent' },
      status,
    );
  }
  // A confirmed one counts.
  const confirmed = extractKnee({
    conditions: [condition(SYSTEM.snomed, '444470001', { verificationStatus: verification('confirmed') })],
  });
  t.equal(value(confirmed, 'kneeInjury').value, 1);
  t.equal(value(confirmed, 'kneeInjury').date, undefined, 'no date recorded: none given');

  const diabetes = extractKnee({
    conditions: [condition(SYSTEM.icd10, 'E11.9', { recordedDate: '2018-02-02' })],
  });
  t.same(strip(value(diabetes, 'diabetes')), {
    id: 'diabetes',
    unit: '1',
    value: 1,
    status: 'observed',
    recorded: 'recorded',
    date: '2018-02-02',
  });
  t.equal(
    value(extractKnee({ conditions: [condition(SYSTEM.icd10cm, 'E11.65')] }), 'diabetes').value,
    1,
    'ICD-10-CM',
  );
  t.equal(
    value(extractKnee({ conditions: [condition(SYSTEM.snomed, '44054006')] }), 'diabetes').value,
    1,
    'SNOMED CT',
  );
  t.equal(
    value(extractKnee({ conditions: [condition(SYSTEM.icd10, 'E10.9')] }), 'diabetes').status,
    'assumed-absent',
    'type 1 (E10) does not count',
  );
  t.equal(
    value(extractKnee({ conditions: [condition(SYSTEM.snomed, 'E11.9')] }), 'diabetes').status,
    'assumed-absent',
    'the code in the wrong system does not count',
  );
  t.equal(
    value(extractKnee({ conditions: [condition(SYSTEM.snomed, '201834006')] }), 'handOa').value,
    1,
    'hand OA',
  );

  const none = extractKnee();
  for (const id of ['kneeInjury', 'handOa', 'diabetes']) {
    t.same(strip(value(none, id)), { id, unit: '1', value: 0, status: 'assumed-absent' }, `${id} absent`);
  }
});

t.test('sex: female 1, male 0, other and unknown 0.6, missing imputed 0.6', async (t) => {
  const expected: [NonNullable<Patient['gender']>, number][] = [
    ['female', 1],
    ['male', 0],
    ['other', 0.6],
    ['unknown', 0.6],
  ];
  for (const [gender, number] of expected) {
    const v = value(extractKnee({ patient: patient(BIRTH_59, gender) }), 'female');
    t.same(
      strip(v),
      { id: 'female', unit: '1', value: number, status: 'observed', recorded: gender },
      gender,
    );
  }
  t.same(strip(value(extractKnee({ patient: patient(BIRTH_59) }), 'female')), {
    id: 'female',
    unit: '1',
    value: 0.6,
    status: 'imputed',
    imputedBecause: 'missing',
  });
});

// ---- melanoma risk ----

type LesionSpec = Parameters<typeof lesion>[0];

const fitzpatrick = (type: string) =>
  observation(SYSTEM.localObservation, LOCAL_OBSERVATION.fitzpatrick, '2025-05-05T10:00:00Z', {
    valueCodeableConcept: { coding: [{ system: SYSTEM.fitzpatrick, code: type }] },
  });
const naevi = (count: number, date = '2025-05-05T10:00:00Z') =>
  observation(SYSTEM.localObservation, LOCAL_OBSERVATION.naevusCountTotal, date, { valueInteger: count });

interface SkinRecord {
  birthDate?: string;
  skin?: Resource[];
  conditions?: Resource[];
  lesion?: LesionSpec;
}

function extractMelanoma(record: SkinRecord = {}): Extraction {
  const env = {
    patient: patient(record.birthDate ?? '1981-03-15', 'female'),
    conditions: searchset(record.conditions ?? []),
    skin: searchset(record.skin ?? []),
  };
  return extractFeatures(melanoma.features, melanoma.guards, lesion(record.lesion ?? {}), env, NOW);
}

t.test('the melanoma manifest compiles: 12 features, 2 guards', async (t) => {
  t.same(
    melanoma.features.map((f) => f.spec.id),
    [
      'age31to60',
      'ageOver60',
      'phototypeFair',
      'naevusCount',
      'melanomaHistory',
      'changeSize',
      'irregularShape',
      'irregularColour',
      'diameter7mm',
      'inflammation',
      'oozing',
      'sensation',
    ],
  );
  t.same(
    melanoma.guards.map((g) => g.spec.id),
    ['adult', 'phototype'],
  );
});

t.test('age bands as indicators', async (t) => {
  const cases: [string, number, number, number][] = [
    ['1981-03-15', 45, 1, 0],
    ['1965-03-15', 61, 0, 1],
    ['1996-03-15', 30, 0, 0],
    ['1995-11-22', 31, 1, 0],
    ['1966-01-01', 60, 1, 0],
    ['1965-11-23', 60, 1, 0], // 61 tomorrow
  ];
  for (const [birthDate, age, band1, band2] of cases) {
    const e = extractMelanoma({ birthDate });
    t.same(e.refusals, [], `age ${age}: scored`);
    t.same(
      strip(value(e, 'age31to60')),
      { id: 'age31to60', unit: '1', value: band1, status: 'observed', recorded: `${age} a` },
      `age ${age}: 31-60`,
    );
    t.same(
      strip(value(e, 'ageOver60')),
      { id: 'ageOver60', unit: '1', value: band2, status: 'observed', recorded: `${age} a` },
      `age ${age}: over 60`,
    );
  }
  const minor = extractMelanoma({ birthDate: '2009-01-01' });
  t.same(minor, {
    values: [],
    refusals: [
      {
        code: 'out-of-population',
        text: {
          en: 'under 18 or no birth date: the model covers adults only',
          fr: 'moins de 18 ans ou date de naissance absente : le modèle ne couvre que les adultes',
        },
      },
    ],
  });
  t.same(extractMelanoma({ birthDate: '2008-11-22' }).refusals, [], '18 today is an adult');
});

t.test('Fitzpatrick: V or VI out of population, I-II fair, not recorded imputed 0.35', async (t) => {
  const reason = {
    en: 'Fitzpatrick skin type V or VI: too few such patients in the evidence behind the model',
    fr: 'phototype de Fitzpatrick V ou VI : trop peu de ces patients dans les données à l’origine du modèle',
  };
  t.same(
    extractMelanoma({ skin: [fitzpatrick('V')] }),
    { values: [], refusals: [{ code: 'out-of-population', text: reason }] },
    'V',
  );
  t.same(
    extractMelanoma({ skin: [fitzpatrick('VI')] }).refusals,
    [{ code: 'out-of-population', text: reason }],
    'VI',
  );

  t.same(strip(value(extractMelanoma({ skin: [fitzpatrick('II')] }), 'phototypeFair')), {
    id: 'phototypeFair',
    unit: '1',
    value: 1,
    status: 'observed',
    recorded: 'II',
    date: '2025-05-05T10:00:00Z',
  });
  t.equal(value(extractMelanoma({ skin: [fitzpatrick('I')] }), 'phototypeFair').value, 1, 'I');
  t.equal(value(extractMelanoma({ skin: [fitzpatrick('III')] }), 'phototypeFair').value, 0, 'III');
  t.equal(value(extractMelanoma({ skin: [fitzpatrick('IV')] }), 'phototypeFair').value, 0, 'IV');
  t.same(strip(value(extractMelanoma(), 'phototypeFair')), {
    id: 'phototypeFair',
    unit: '1',
    value: 0.35,
    status: 'imputed',
    imputedBecause: 'missing',
  });
  // A code the map does not know is implausible, not silently read.
  t.same(extractMelanoma({ skin: [fitzpatrick('VII')] }).refusals, [
    {
      code: 'implausible',
      featureId: 'phototypeFair',
      text: {
        en: 'Fitzpatrick skin type I-II: recorded with a code the model does not know (VII)',
        fr: 'Phototype de Fitzpatrick I-II : saisi avec un code inconnu du modèle (VII)',
      },
    },
  ]);
});

t.test('naevus count and melanoma history', async (t) => {
  const e = extractMelanoma({
    skin: [naevi(12, '2023-01-01T10:00:00Z'), naevi(55)],
    conditions: [condition(SYSTEM.icd10, 'C43.9', { onsetDateTime: '2019-06-01' })],
  });
  t.same(e.refusals, []);
  t.same(strip(value(e, 'naevusCount')), {
    id: 'naevusCount',
    unit: '1',
    value: 55,
    status: 'observed',
    recorded: '55',
    date: '2025-05-05T10:00:00Z',
  });
  t.same(strip(value(e, 'melanomaHistory')), {
    id: 'melanomaHistory',
    unit: '1',
    value: 1,
    status: 'observed',
    recorded: 'recorded',
    date: '2019-06-01',
  });
  const none = extractMelanoma();
  t.same(strip(value(none, 'naevusCount')), {
    id: 'naevusCount',
    unit: '1',
    value: 30,
    status: 'imputed',
    imputedBecause: 'missing',
  });
  t.same(strip(value(none, 'melanomaHistory')), {
    id: 'melanomaHistory',
    unit: '1',
    value: 0,
    status: 'assumed-absent',
  });
  t.equal(
    value(extractMelanoma({ conditions: [condition(SYSTEM.icd10, 'D03.5')] }), 'melanomaHistory').value,
    1,
    'melanoma in situ D03',
  );
  t.equal(
    value(extractMelanoma({ conditions: [condition(SYSTEM.icd10, 'C44.9')] }), 'melanomaHistory').value,
    0,
    'other skin cancer C44',
  );
  t.same(
    extractMelanoma({ skin: [naevi(1500)] }).refusals.map((r) => [r.code, r.featureId]),
    [['implausible', 'naevusCount']],
  );
});

t.test('checklist items: true 1, false 0, not recorded imputed', async (t) => {
  const e = extractMelanoma({ lesion: { items: { changeSize: true, irregularShape: false, oozing: true } } });
  t.same(e.refusals, []);
  const date = '2026-11-20T10:00:00Z';
  t.same(strip(value(e, 'changeSize')), {
    id: 'changeSize',
    unit: '1',
    value: 1,
    status: 'observed',
    recorded: 'true',
    date,
  });
  t.same(strip(value(e, 'irregularShape')), {
    id: 'irregularShape',
    unit: '1',
    value: 0,
    status: 'observed',
    recorded: 'false',
    date,
  });
  t.same(strip(value(e, 'oozing')), {
    id: 'oozing',
    unit: '1',
    value: 1,
    status: 'observed',
    recorded: 'true',
    date,
  });
  for (const id of ['irregularColour']) {
    t.same(
      strip(value(e, id)),
      { id, unit: '1', value: 0.41, status: 'imputed', imputedBecause: 'missing' },
      `${id} (major) not recorded`,
    );
  }
  for (const id of ['diameter7mm', 'inflammation', 'sensation']) {
    t.same(
      strip(value(e, id)),
      { id, unit: '1', value: 0.26, status: 'imputed', imputedBecause: 'missing' },
      `${id} (minor) not recorded`,
    );
  }
});

t.test('diameter 7 mm: from the item, else from the measured diameter', async (t) => {
  const measured = extractMelanoma({ lesion: { diameterMm: 7.5 } });
  t.same(strip(value(measured, 'diameter7mm')), {
    id: 'diameter7mm',
    unit: '1',
    value: 1,
    status: 'observed',
    recorded: 'true',
    date: '2026-11-20T10:00:00Z',
  });
  t.equal(value(extractMelanoma({ lesion: { diameterMm: 7 } }), 'diameter7mm').value, 1, '7 mm exactly');
  t.equal(value(extractMelanoma({ lesion: { diameterMm: 6.9 } }), 'diameter7mm').value, 0, '6.9 mm');
  t.equal(value(extractMelanoma({ lesion: { diameterMm: 6.9 } }), 'diameter7mm').status, 'observed');
  // The recorded item wins over the measurement.
  t.equal(
    value(extractMelanoma({ lesion: { diameterMm: 7.5, items: { diameter7mm: false } } }), 'diameter7mm')
      .value,
    0,
    'item false, 7.5 mm',
  );
  t.equal(
    value(extractMelanoma({ lesion: { diameterMm: 5, items: { diameter7mm: true } } }), 'diameter7mm').value,
    1,
    'item true, 5 mm',
  );
});

t.test(
  'an input recorded but unreadable is never read as absent: no score, with the value as recorded',
  async (t) => {
    // Pain as text: with an impute policy, reading it as absent would impute 4.2 silently.
    const text = extractKnee({
      observations: [
        kl(2),
        bmi(30, '2026-06-01T08:00:00Z'),
        observation(SYSTEM.loinc, '72514-3', '2026-10-01T08:00:00Z', { valueString: '7' }),
      ],
    });
    t.same(text.refusals, [
      {
        code: 'unreadable',
        featureId: 'pain',
        text: {
          en: 'Pain score (0-10): recorded, but not as a value the model can read (valueString: "7")',
          fr: 'Score de douleur (0-10) : renseigné, mais pas sous une forme lisible par le modèle (valueString: "7")',
        },
      },
    ]);
    // The latest BMI as text: refused as unreadable, not "not recorded" and not the older BMI.
    const bmiText = extractKnee({
      observations: [
        kl(2),
        bmi(30, '2026-01-01T08:00:00Z'),
        observation(SYSTEM.loinc, '39156-5', '2026-06-01T08:00:00Z', { valueString: 'obese' }),
      ],
    });
    t.same(
      bmiText.refusals.map((r) => [r.code, r.featureId]),
      [
        ['unreadable', 'bmi'],
        ['unreadable', 'bmiTrend'],
      ],
    );
    // A candidate with no value at all (data absent) is skipped: the older value is read.
    const absent = extractKnee({
      observations: [
        kl(2),
        bmi(30, '2026-01-01T08:00:00Z'),
        observation(SYSTEM.loinc, '39156-5', '2026-06-01T08:00:00Z', {
          dataAbsentReason: { coding: [{ code: 'not-performed' }] },
        }),
      ],
    });
    t.same(absent.refusals, []);
    t.equal(value(absent, 'bmi').value, 30);
  },
);

t.test('each input carries one of the four states', async (t) => {
  const e = extractKnee({
    observations: [kl(2), bmi(30, '2026-06-01T08:00:00Z'), pain(7, '2025-06-01T08:00:00Z')],
  });
  const states = Object.fromEntries(e.values.map((v) => [v.id, v.state]));
  t.equal(states.bmi, 'met');
  t.equal(states.pain, 'stale');
  t.equal(states.bmiTrend, 'not-evaluable');
  t.equal(states.kneeInjury, 'not-met');
});

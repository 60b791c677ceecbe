/**
 * Feature extraction reads each source once per extraction (scoring/features.ts): features on the same
 * source text share its result, the dates of its candidates and what a value expression gave on each.
 * Shown here through counting expressions, and shown not to change any value: every feature read on
 * its own gives what it gives among all the others, over generated records of both models.
 */
import type { Bundle, Observation, Resource } from 'fhir/r4.js';
import t from 'tap';
import { LESION, SYSTEM } from '../../src/codes.js';
import type { CompiledExpression } from '../../src/rules/fhirpath.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { type CompiledFeature, type Extraction, extractFeatures } from '../../src/scoring/features.js';
import { compileManifest, readManifest } from '../../src/scoring/load.js';
import { olderVisits } from '../../tools/bench/helpers.js';
import { resourcesOf, searchset, toServerForm } from '../../tools/synthetic/bundle.js';
import { generatePatient } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';

/** The FHIRPath engine of this file's loads. */
const engine = createFhirPath();

const NOW = new Date('2026-11-22T09:30:00Z');

const knee = compileManifest(readManifest('models/knee-oa-progression/1.0.0'), engine);
const melanoma = compileManifest(readManifest('models/melanoma-risk/1.0.0'), engine);

/** Evaluations seen, by expression text, then input. */
type Calls = Map<string, Map<unknown, number>>;

/** `expression`, counting its evaluations in `calls` (a new object each time: only its text is shared). */
function counted(expression: CompiledExpression, calls: Calls): CompiledExpression {
  return {
    source: expression.source,
    evaluate(input, env, now) {
      const byInput = calls.get(expression.source) ?? new Map<unknown, number>();
      calls.set(expression.source, byInput);
      byInput.set(input, (byInput.get(input) ?? 0) + 1);
      return expression.evaluate(input, env, now);
    },
    first(input, env, now) {
      const byInput = calls.get(expression.source) ?? new Map<unknown, number>();
      calls.set(expression.source, byInput);
      byInput.set(input, (byInput.get(input) ?? 0) + 1);
      return expression.first(input, env, now);
    },
  };
}

/** The features with every expression counted, each feature with its own counting objects. */
function countedFeatures(features: readonly CompiledFeature[], calls: Calls): CompiledFeature[] {
  const c = (e: CompiledExpression | undefined) => (e === undefined ? undefined : counted(e, calls));
  return features.map((f) => ({
    ...f,
    source: counted(f.source, calls),
    value: c(f.value),
    date: c(f.date),
    weight: c(f.weight),
    height: c(f.height),
    defaults: {
      date: counted(f.defaults.date, calls),
      quantity: counted(f.defaults.quantity, calls),
      flagDate: counted(f.defaults.flagDate, calls),
      number: counted(f.defaults.number, calls),
    },
  }));
}

const total = (calls: Calls, source: string) =>
  [...(calls.get(source)?.values() ?? [])].reduce((sum, n) => sum + n, 0);

function observation(code: string, date: string, value: number, unit: string): Observation {
  return {
    resourceType: 'Observation',
    id: `obs-${code}-${date}`,
    status: 'final',
    code: { coding: [{ system: SYSTEM.loinc, code }] },
    subject: { reference: 'Patient/pat-1' },
    effectiveDateTime: date,
    valueQuantity: { value, unit, system: SYSTEM.ucum, code: unit },
  };
}

const kneeEnv = (observations: Resource[]) => ({
  patient: { resourceType: 'Patient', id: 'pat-1', birthDate: '1960-04-02', gender: 'male' },
  conditions: searchset([]),
  observations: searchset(observations),
});

t.test('BMI and BMI trend read their one source once: its result, each date, each quantity', async (t) => {
  const bmis = [
    observation('39156-5', '2026-09-01T08:00:00Z', 31.5, 'kg/m2'),
    observation('39156-5', '2025-09-01T08:00:00Z', 30.5, 'kg/m2'),
    observation('39156-5', '2024-09-01T08:00:00Z', 29.5, 'kg/m2'),
  ];
  const env = kneeEnv([...bmis, observation('72514-3', '2026-10-01T08:00:00Z', 6, '{score}')]);
  const calls: Calls = new Map();
  const features = countedFeatures(knee.features, calls);
  const shared = extractFeatures(features, knee.guards, {}, env, NOW);
  // The same values as the manifest's own expressions give.
  t.same(shared, extractFeatures(knee.features, knee.guards, {}, env, NOW));
  t.same(
    shared.values.filter((v) => v.id === 'bmi' || v.id === 'bmiTrend').map((v) => [v.id, v.value, v.date]),
    [
      ['bmi', 31.5, '2026-09-01T08:00:00Z'],
      ['bmiTrend', 1.0006849315068518, '2026-09-01T08:00:00Z'],
    ],
  );
  const bmiSource = knee.features.find((f) => f.spec.id === 'bmi')!.source.source;
  t.equal(knee.features.find((f) => f.spec.id === 'bmiTrend')!.source.source, bmiSource, 'one source text');
  t.equal(total(calls, bmiSource), 1, 'the BMI source, evaluated once for both features');
  t.equal(total(calls, '%patient'), 1, '%patient, once for age and sex');
  // Each date and each quantity once, though both features read all three candidates.
  for (const [source, what] of [
    [knee.features[0]!.defaults.date.source, 'date'],
    [knee.features[0]!.defaults.quantity.source, 'quantity'],
  ] as const) {
    for (const bmi of bmis) t.equal(calls.get(source)?.get(bmi), 1, `${what} of ${bmi.id}`);
  }
  t.same(
    [...calls.values()].flatMap((byInput) => [...byInput.values()].filter((n) => n !== 1)),
    [],
    'no expression is evaluated twice on one input',
  );
  // Nothing is kept from one extraction to the next: a second one reads the source again.
  extractFeatures(features, knee.guards, {}, env, NOW);
  t.equal(total(calls, bmiSource), 2);
});

t.test('the seven checklist items of a lesion read %focus and its date once', async (t) => {
  const lesion = generatedLesions(3)[0]!;
  const calls: Calls = new Map();
  const features = countedFeatures(melanoma.features, calls);
  const shared = extractFeatures(features, melanoma.guards, lesion.subject, lesion.env, NOW);
  t.same(shared, extractFeatures(melanoma.features, melanoma.guards, lesion.subject, lesion.env, NOW));
  t.equal(shared.values.length, 12);
  t.equal(total(calls, '%focus'), 1);
  t.equal(total(calls, 'effective.ofType(dateTime)'), 1);
});

interface Case {
  name: string;
  features: readonly CompiledFeature[];
  guards: typeof knee.guards;
  subject: unknown;
  env: Record<string, unknown>;
}

function of(resources: readonly Resource[], type: string): Resource[] {
  return resources.filter((r) => r.resourceType === type);
}

function generatedKnees(count: number, years: number): Case[] {
  return Array.from({ length: count }, (_, i) => {
    const bundle: Bundle = toServerForm(
      generatePatient(createRng(11, i), { now: NOW, kneeOa: true, age: 50 + (i % 28) }),
    );
    const record = resourcesOf(bundle);
    const resources = [record, ...Array.from({ length: years }, (_, y) => olderVisits(record, y + 1))].flat();
    return {
      name: `knee ${i} (${years} earlier years)`,
      features: knee.features,
      guards: knee.guards,
      subject: {},
      env: {
        patient: of(resources, 'Patient')[0],
        conditions: searchset(of(resources, 'Condition')),
        observations: searchset(of(resources, 'Observation')),
      },
    };
  });
}

function generatedLesions(count: number): Case[] {
  return Array.from({ length: count }, (_, i) => {
    const resources = resourcesOf(
      toServerForm(generatePatient(createRng(13, i), { now: NOW, kneeOa: false, lesions: 1 + (i % 3) })),
    );
    const env = {
      patient: of(resources, 'Patient')[0],
      conditions: searchset(of(resources, 'Condition')),
      skin: searchset(of(resources, 'Observation')),
    };
    return (of(resources, 'Observation') as Observation[])
      .filter((o) => o.code.coding?.some((c) => c.code === LESION.panel))
      .map((subject, k) => ({
        name: `lesion ${i}.${k}`,
        features: melanoma.features,
        guards: melanoma.guards,
        subject,
        env,
      }));
  }).flat();
}

t.test('each feature read on its own gives what it gives among all the others', async (t) => {
  const cases = [...generatedKnees(12, 0), ...generatedKnees(6, 4), ...generatedLesions(12)];
  let compared = 0;
  for (const c of cases) {
    const all: Extraction = extractFeatures(c.features, c.guards, c.subject, c.env, NOW);
    if (all.refusals.some((r) => r.code === 'out-of-population')) continue;
    const alone = c.features.map((f) => extractFeatures([f], c.guards, c.subject, c.env, NOW));
    t.same(
      all,
      { values: alone.flatMap((e) => e.values), refusals: alone.flatMap((e) => e.refusals) },
      c.name,
    );
    // Key order too: the card's extension and the audit record serialise these objects.
    t.equal(
      JSON.stringify(all),
      JSON.stringify({ values: alone.flatMap((e) => e.values), refusals: alone.flatMap((e) => e.refusals) }),
    );
    compared += 1;
  }
  t.ok(compared >= 20, `${compared} of ${cases.length} subjects inside their population`);
});

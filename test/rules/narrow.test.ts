import { compileEgress } from '../../src/prefetch/egress.js';
import t from 'tap';
import fhirpath from 'fhirpath';
import type { Bundle, Resource } from 'fhir/r4.js';
import { prefetchFrom } from '../../tools/bench/helpers.js';
import type { HookRequest } from '../../src/cds-hooks.js';
import { loadModels } from '../../src/scoring/load.js';
import { runHook } from '../../src/pipeline.js';
import { type AstNode, narrow, type NarrowedBundles, planNarrowing } from '../../src/rules/narrow.js';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { loadServices } from '../../src/services/load.js';
import { loadValueSets } from '../../src/services/value-sets.js';
import { patientOf, resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import { generatePatient } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';
import { NOW } from '../helpers/app.js';
import { memoryAudit, memoryLog } from '../helpers/pipeline.js';

const plan = (source: string) => planNarrowing(fhirpath.parse(source) as AstNode);
/** What the plan narrows: each variable's filter key, and whether the input's components are cut. */
const summary = (source: string) => {
  const p = plan(source);
  return {
    variables: Object.fromEntries([...p.variables].map(([name, v]) => [name, v.key])),
    component: p.component !== undefined,
  };
};

const BY_CODE = "code.coding.where(system = 'S' and code = 'C').exists()";
const OBS_C = `%obs.entry.resource.ofType(Observation).where(${BY_CODE} and status = 'final')`;
const C_KEY = 'Observation:code.coding[(system="S"&code="C")]';

t.test('a variable read through a code filter is narrowed, by the union of its reads', async (t) => {
  t.same(summary(OBS_C), { variables: { obs: C_KEY }, component: false });
  // The knee model's KL guard reads the same filter three times.
  t.same(summary(`${OBS_C}.value.all($this <= 3) and (${OBS_C}.empty() or ${OBS_C}.exists())`), {
    variables: { obs: C_KEY },
    component: false,
  });
  t.same(
    summary(
      `${OBS_C}.exists() or %obs.entry.resource.ofType(Observation).where(code.coding.where(code = 'D' or code.startsWith('E1')).exists()).exists()`,
    ),
    {
      // Sorted: the key does not depend on the order of the reads.
      variables: { obs: `Observation:code.coding[(code="D"|code^="E1")] | ${C_KEY}` },
      component: false,
    },
  );
  // The code test may be any top-level `and` term; a type alone narrows by type.
  t.same(summary(`%c.entry.resource.ofType(Condition).where(clinicalStatus.exists() and ${BY_CODE})`), {
    variables: { c: 'Condition:code.coding[(system="S"&code="C")]' },
    component: false,
  });
  t.same(summary('%c.entry.resource.ofType(Condition).exists()'), {
    variables: { c: 'Condition:*' },
    component: false,
  });
  // Parentheses around a term change nothing.
  t.same(summary(`(%obs).entry.resource.where(${BY_CODE})`).variables, {
    obs: '*:code.coding[(system="S"&code="C")]',
  });
  t.same(summary(`%\`obs\`.entry.resource.where(${BY_CODE})`), {
    variables: { obs: '*:code.coding[(system="S"&code="C")]' },
    component: false,
  });
  // Parts of a test it does not understand keep what they might let through.
  t.same(
    summary("%obs.entry.resource.where(code.coding.where(system = 'S' and display.exists()).exists())"),
    {
      variables: { obs: '*:code.coding[(system="S"&*)]' },
      component: false,
    },
  );
});

t.test('a variable read any other way is left whole', async (t) => {
  for (const source of [
    `${OBS_C}.count() = %obs.entry.count()`,
    `${OBS_C} | %obs.total`,
    '%obs',
    "%obs.entry.resource.where(status = 'final')",
    `%obs.entry.resource.where(${BY_CODE} or status = 'final')`,
    "%obs.entry.resource.where(code.coding.where(system != 'S').exists())",
    "%obs.entry.resource.where(code.coding.where(system ~ 'S').exists())",
    "%obs.entry.resource.where(code.coding.where(system = 'S' xor code = 'C').exists())",
    `%obs.entry.select(resource).where(${BY_CODE})`,
    `%obs.entry.resource.where(${BY_CODE} and id in %obs.entry.resource.id)`,
  ]) {
    t.same(summary(source).variables, {}, source);
  }
});

const COMPONENT_C = `component.where(${BY_CODE}).value`;

t.test("the input's components are narrowed only when every read filters them", async (t) => {
  t.equal(summary(COMPONENT_C).component, true);
  t.equal(
    summary(
      `iif(component.where(${BY_CODE}).exists(), ${COMPONENT_C}, component.where(code.coding.where(code = 'D').exists()).value >= 7 'mm')`,
    ).component,
    true,
  );
  t.equal(summary(`effective.ofType(dateTime) | ${COMPONENT_C}`).component, true);
  for (const source of [
    'component.value',
    `${COMPONENT_C} | component.count()`,
    `$this.component.where(${BY_CODE})`,
    `Observation.component.where(${BY_CODE})`,
    `first().component.where(${BY_CODE})`,
    `where(status = 'final').component.where(${BY_CODE})`,
    `${COMPONENT_C} and %context.exists()`,
    `${COMPONENT_C} and %resource.exists()`,
    `component.where(${BY_CODE} or status = 'x')`,
    `%focus = ${COMPONENT_C}`.replace('%focus', '$this'),
  ]) {
    t.equal(summary(source).component, false, source);
  }
});

const coded = (system: string | undefined, code: unknown) => ({ ...(system ? { system } : {}), code });

/** Records with the awkward cases: missing systems, several codings, wrong types, odd values. */
function awkwardBundle(): Bundle {
  const observations: Record<string, unknown>[] = [
    { id: 'match', code: { coding: [coded('S', 'C')] }, status: 'final', valueInteger: 1 },
    { id: 'no-system', code: { coding: [coded(undefined, 'C')] }, status: 'final', valueInteger: 2 },
    { id: 'second', code: { coding: [coded('X', 'Y'), coded('S', 'C')] }, status: 'final', valueInteger: 3 },
    { id: 'single-coding', code: { coding: coded('S', 'C') }, status: 'final', valueInteger: 4 },
    { id: 'no-code', status: 'final', valueInteger: 5 },
    { id: 'number-code', code: { coding: [coded('S', 42)] }, status: 'final', valueInteger: 6 },
    { id: 'prefix', code: { coding: [coded('S', 'E11.9')] }, status: 'final', valueInteger: 7 },
    { id: 'other', code: { coding: [coded('S', 'D')] }, status: 'amended', valueInteger: 8 },
    { id: 'preliminary', code: { coding: [coded('S', 'C')] }, status: 'preliminary', valueInteger: 9 },
  ];
  const entry: Record<string, unknown>[] = observations.map((o) => ({
    resource: { resourceType: 'Observation', ...o },
  }));
  entry.push({ fullUrl: 'urn:no-resource' });
  entry.push({ resource: { resourceType: 'Condition', id: 'cond', code: { coding: [coded('S', 'C')] } } });
  return { resourceType: 'Bundle', type: 'searchset', total: 99, entry } as Bundle;
}

function lesionLike(): Record<string, unknown> {
  const component = (code: string, value: Record<string, unknown>) => ({
    code: { coding: [coded('S', code)] },
    ...value,
  });
  return {
    resourceType: 'Observation',
    id: 'lesion',
    status: 'final',
    effectiveDateTime: '2026-11-01',
    component: [
      component('C', { valueBoolean: true }),
      component('D', {
        valueQuantity: { value: 8, unit: 'mm', system: 'http://unitsofmeasure.org', code: 'mm' },
      }),
      { code: { coding: [coded(undefined, 'C')] }, valueBoolean: false },
      { code: { coding: coded('S', 'C') }, valueBoolean: false },
      { valueBoolean: true },
    ],
  };
}

/** The result, or the error fhirpath.js raised: narrowing must not hide an error either. */
function outcome(run: () => unknown[]): { value: unknown[] } | { error: string } {
  try {
    return { value: run() };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

/** An engine with narrowing and remembered results, and one without (plain fhirpath.js). */
const engine = createFhirPath();
const plain = createFhirPath({ shortcuts: false });

/** Evaluates with narrowing on and off; both must agree. */
function both(source: string, input: unknown, env: Record<string, unknown>) {
  const whole = outcome(() => plain.compile(source, Object.keys(env)).evaluate(input, env, NOW));
  const expression = engine.compile(source, Object.keys(env));
  return { whole, narrowed: outcome(() => expression.evaluate(input, env, NOW)) };
}

t.test('narrowed and whole evaluations agree on awkward records', async (t) => {
  const bundles: NarrowedBundles = new WeakMap();
  const env = { obs: awkwardBundle(), focus: lesionLike() };
  const sources = [
    OBS_C,
    `${OBS_C}.value`,
    `${OBS_C}.count()`,
    `%obs.entry.resource.ofType(Observation).where(code.coding.where(code = 'C' or code.startsWith('E1')).exists()).id`,
    `%obs.entry.resource.where(code.coding.where(system = 'S' and (code = 'C' or code = 'D')).exists() and status in ('final' | 'amended')).id`,
    `%obs.entry.resource.ofType(Condition).id`,
    `%obs.entry.resource.where(${BY_CODE}).id.first()`,
    `${OBS_C}.value.ofType(integer).all($this <= 3) and (${OBS_C}.empty() or ${OBS_C}.value.ofType(integer).exists($this >= 2))`,
    COMPONENT_C,
    `component.where(code.coding.where(code = 'C').exists()).value`,
    `iif(component.where(${BY_CODE}).exists(), ${COMPONENT_C}, component.where(code.coding.where(code = 'D').exists()).value >= 7 'mm')`,
    `component.where(code.coding.where(system = 'S' and code = 'D').exists()).value >= 7 'mm'`,
    `component.where(code.coding.where(system = 'S' and code.startsWith('C')).exists()).exists()`,
  ];
  const errors: string[] = [];
  for (const source of sources) {
    const { whole, narrowed } = both(source, env.focus, env);
    t.same(narrowed, whole, source);
    if ('error' in whole) errors.push(`${source}: ${whole.error}`);
  }
  // startsWith() on the numeric code fails, narrowed or not: the predicate keeps what it cannot judge.
  t.same(errors, [`${sources[3]}: Expected string, but got: [42]`]);
  // And narrowing did cut: the code filter keeps the S|C observations (the single-coding one included:
  // FHIRPath reads a lone coding as a list of one) plus the one with a non-string code it cannot judge.
  const narrowedEnv = narrow(plan(OBS_C), {}, env, bundles).env as { obs: Bundle };
  t.same(
    narrowedEnv.obs.entry!.map((e) => e.resource!.id),
    ['match', 'second', 'single-coding', 'number-code', 'preliminary'],
  );
  const narrowedLesion = narrow(plan(COMPONENT_C), env.focus, env, bundles).input as { component: unknown[] };
  t.equal(narrowedLesion.component.length, 2, 'the S|C component and the lone S|C coding');
  t.equal((env.focus.component as unknown[]).length, 5, 'the input itself is not changed');
  // Evaluated twice on the same Bundle, the narrowed copy is made once.
  t.equal(narrow(plan(OBS_C), {}, env, bundles).env.obs, narrowedEnv.obs);
  // Another engine keeps its own copies.
  t.not(narrow(plan(OBS_C), {}, env, new WeakMap()).env.obs, narrowedEnv.obs);
  // The variables object itself is copied once per filter: a second expression with the same filter
  // gets the same copy; one with another filter gets its own.
  t.equal(narrow(plan(`${OBS_C}.value`), {}, env, bundles).env, narrowedEnv);
  const other = narrow(
    plan(`%obs.entry.resource.where(code.coding.where(code = 'D').exists())`),
    {},
    env,
    bundles,
  );
  t.not(other.env, narrowedEnv);
  t.not(other.env.obs, narrowedEnv.obs);
});

t.test(
  'a coding list holding null or other items: kept when the filter cannot judge, as evaluated whole',
  async (t) => {
    const observationWith = (id: string, coding: unknown) => ({
      resource: { resourceType: 'Observation', id, code: { coding } },
    });
    const env = {
      obs: {
        resourceType: 'Bundle',
        type: 'searchset',
        entry: [
          observationWith('null-then-other', [null, coded('S', 'X')]),
          observationWith('other-then-match', [coded('S', 'X'), coded('S', 'C')]),
          observationWith('other-only', [coded('S', 'X')]),
          observationWith('null-single', null),
          {
            resource: {
              resourceType: 'Observation',
              id: 'codes-list',
              code: [{ coding: [coded('S', 'C')] }],
            },
          },
        ],
      },
    };
    for (const source of [`${OBS_C}.id`, `${OBS_C}.count()`]) {
      const { whole, narrowed } = both(source, {}, env);
      t.same(narrowed, whole, source);
    }
    const kept = (narrow(plan(OBS_C), {}, env, new WeakMap()).env as { obs: Bundle }).obs.entry!;
    t.same(
      kept.map((e) => e.resource!.id),
      ['null-then-other', 'other-then-match', 'codes-list'],
    );
  },
);

t.test('values that are not parsed JSON Bundles or objects are left to fhirpath.js', async (t) => {
  const bundles: NarrowedBundles = new WeakMap();
  const p = plan(OBS_C);
  const env = { obs: [{ resourceType: 'Observation' }] };
  t.equal(narrow(p, {}, env, bundles).env, env, 'a collection, not a Bundle');
  const noEntry = { obs: { resourceType: 'Bundle' } };
  t.equal(narrow(p, {}, noEntry, bundles).env, noEntry);
  t.same(narrow(p, {}, {}, bundles).env, {}, 'a missing variable stays missing (fhirpath.js reports it)');
  class Node {
    component = [{ code: { coding: [coded('X', 'Y')] } }];
  }
  const typed = new Node();
  t.equal(narrow(plan(COMPONENT_C), typed, {}, bundles).input, typed);
});

// ---------- the bundled services on generated records ----------

const valueSets = loadValueSets('fhir-profiles');
const services = loadServices('cds-services', engine, valueSets, await loadModels('models', engine));
/** The same services compiled by the engine without shortcuts. */
const plainServices = loadServices('cds-services', plain, valueSets, await loadModels('models', plain));

/** The request an EHR would send for a record: each prefetch template resolved from the record. */
function requestFor(serviceId: string, bundle: Bundle): HookRequest {
  const service = services.find((s) => s.definition.id === serviceId)!;
  const resources = resourcesOf(bundle) as Resource[];
  const patientId = patientOf(bundle).id!;
  const prefetch: Record<string, unknown> = {};
  for (const { key, spec } of service.prefetch) {
    const value = prefetchFrom(spec.query.replaceAll('{{context.patientId}}', patientId), resources);
    if (value !== null) prefetch[key] = value;
  }
  return {
    hook: 'patient-view',
    hookInstance: 'b0e8f0a4-52a7-4a8c-9a3e-2f1c2f0a9d11',
    context: { userId: 'Practitioner/p', patientId },
    prefetch: prefetch as HookRequest['prefetch'],
  };
}

t.test('every patient-view service answers the same with and without narrowing', async (t) => {
  const records = Array.from({ length: 60 }, (_, i) =>
    toServerForm(
      generatePatient(
        createRng(11, i),
        i % 3 === 0
          ? { now: NOW, kneeOa: true, age: 50 + (i % 28) }
          : i % 3 === 1
            ? { now: NOW, lesions: 1 + (i % 3), skinAssessment: true }
            : { now: NOW },
      ),
    ),
  );
  const patientView = services.filter((s) => s.definition.hook === 'patient-view');
  t.ok(patientView.length >= 2);
  let counter = 0;
  const deps = () => ({
    fhirFetch: async () => {
      throw new Error('everything is prefetched');
    },
    egress: () => compileEgress('none'),
    now: () => NOW,
    // The same uuids in both runs, so that whole outcomes compare.
    uuid: () => `00000000-0000-4000-8000-${String((counter += 1)).padStart(12, '0')}`,
    publicUrl: 'https://cds.example.org',
    audit: memoryAudit(),
    log: memoryLog(),
  });
  const call = (service: (typeof services)[number], request: HookRequest) => ({
    service,
    body: structuredClone(request),
    client: null,
    language: 'en' as const,
  });
  let cards = 0;
  let scored = 0;
  for (const service of patientView) {
    for (const record of records) {
      const request = requestFor(service.definition.id, record);
      counter = 0;
      const plainService = plainServices.find((s) => s.definition.id === service.definition.id)!;
      const whole = await runHook(call(plainService, request), deps());
      counter = 0;
      const narrowed = await runHook(call(service, request), deps());
      const strip = (o: typeof whole) => ({ ...o, timings: undefined, modelMs: undefined });
      t.same(strip(narrowed), strip(whole), `${service.definition.id}, record ${patientOf(record).id}`);
      cards += narrowed.response.cards.length;
      scored += narrowed.response.cards.filter((c) => /estimate|estimation|risk/i.test(c.summary)).length;
    }
  }
  // The comparison is worth something only if the records reached the rules and the models.
  t.ok(cards > 40, `cards issued: ${cards}`);
  t.ok(scored > 10, `model cards: ${scored}`);
});

/**
 * The structural check (`src/prefetch/structure.ts`): the quick check that passes well-formed data
 * must give the walk's verdict on every value, so that the problem reported (by the walk, in its order)
 * is the one it always was. Checked on generated records, each mutated many ways, and on nesting deeper
 * than the quick check goes.
 */
import type { Resource } from 'fhir/r4.js';
import t from 'tap';
import { checkResourceStructure, firstProblem, isWellFormed } from '../../src/prefetch/structure.js';
import { resourcesOf, toServerForm } from '../../tools/synthetic/bundle.js';
import { generatePatient } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';

const NOW = new Date('2026-03-01T12:00:00Z');
const records = Array.from({ length: 6 }, (_, i) =>
  toServerForm(
    generatePatient(
      createRng(21, i),
      i % 2 === 0
        ? { now: NOW, kneeOa: true, age: 60 + i }
        : { now: NOW, kneeOa: false, lesions: 2, skinAssessment: true },
    ),
  ),
);
const resources: Resource[] = records.flatMap((r) => resourcesOf(r));
const searchset = (items: readonly Resource[]) => ({
  resourceType: 'Bundle',
  type: 'searchset',
  total: items.length,
  entry: items.map((resource) => ({ fullUrl: `${resource.resourceType}/${resource.id}`, resource })),
});

t.test('generated records are well formed, one by one and in a searchset', async (t) => {
  t.ok(resources.length > 50);
  for (const resource of [...resources, searchset(resources)]) {
    t.equal(isWellFormed(resource), true);
    t.equal(firstProblem(resource), null);
    t.equal(checkResourceStructure(resource), null);
  }
});

/** Every place in a value: its parent, the key there, and the value found. */
function places(value: unknown): { parent: Record<string, unknown> | unknown[]; key: string | number }[] {
  const found: { parent: Record<string, unknown> | unknown[]; key: string | number }[] = [];
  const visit = (v: unknown) => {
    if (Array.isArray(v)) {
      v.forEach((item, i) => {
        found.push({ parent: v, key: i });
        visit(item);
      });
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, item] of Object.entries(v)) {
        found.push({ parent: v as Record<string, unknown>, key: k });
        visit(item);
      }
    }
  };
  visit(value);
  return found;
}

/** What a mutation puts in place of a value: wrong JSON types, wrong forms, wrapped or unwrapped. */
const REPLACEMENTS: ((v: unknown) => unknown)[] = [
  () => null,
  () => 42,
  () => 1.5,
  () => -3,
  () => 0,
  () => true,
  () => 'text',
  () => '2026-13-01',
  () => '2026-02-03T10:00:00',
  () => '',
  () => ({}),
  () => [],
  () => [null],
  () => ({ resourceType: 'Nonsense' }),
  () => ({ resourceType: 7 }),
  (v) => [v],
  (v) => (Array.isArray(v) ? v[0] : v),
  (v) => (Array.isArray(v) ? [...v, 'x'] : v),
  (v) => (Array.isArray(v) ? [...v, { id: 3 }] : v),
];

t.test('on mutated data, the quick check and the walk agree, and the walk reports', async (t) => {
  const rng = createRng(5, 1);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rng.next() * items.length)]!;
  let malformed = 0;
  let cases = 0;
  for (const original of [...resources, searchset(resources.slice(0, 12))]) {
    for (let round = 0; round < 12; round += 1) {
      const value = structuredClone(original) as unknown;
      // One to three mutations: several problems at once test which one is reported.
      const count = 1 + Math.floor(rng.next() * 3);
      for (let m = 0; m < count; m += 1) {
        const { parent, key } = pick(places(value));
        const target = parent as Record<string | number, unknown>;
        if (rng.next() < 0.15 && !Array.isArray(parent)) target[`_${String(key)}`] = pick(REPLACEMENTS)(1);
        else target[key] = pick(REPLACEMENTS)(target[key]);
      }
      const problem = firstProblem(value);
      cases += 1;
      if (problem) malformed += 1;
      if (isWellFormed(value) !== (problem === null)) {
        t.fail('the quick check and the walk disagree', { value: JSON.stringify(value), problem });
        return;
      }
      t.same(checkResourceStructure(value), problem);
    }
  }
  // Most mutations make data malformed; some (an unknown element, a string where any string goes) do not.
  t.ok(malformed > cases / 2, `${malformed} malformed of ${cases}`);
  t.ok(malformed < cases, 'some mutations leave the data well formed');
});

t.test('with several problems, the one reported is the walk’s, in its order', async (t) => {
  // An object's own primitives before the objects it holds.
  t.same(
    checkResourceStructure({
      resourceType: 'Observation',
      code: { text: 5 },
      status: 7,
    }),
    { path: 'status', problem: 'must be a code (a JSON string), not a number' },
  );
  // Of two objects it holds, the last one's first.
  t.same(
    checkResourceStructure({
      resourceType: 'Observation',
      code: { text: 5 },
      valueQuantity: { value: 'x' },
    }),
    { path: 'valueQuantity.value', problem: 'must be a decimal (a JSON number), not a string' },
  );
  // An array's objects in order; an array of primitives from its last item.
  t.same(
    checkResourceStructure({
      resourceType: 'Bundle',
      entry: [{ resource: { resourceType: 'Patient', active: 1 } }, { resource: { resourceType: 'X' } }],
    }),
    { path: 'entry[0].resource.active', problem: 'must be a boolean (true or false), not a number' },
  );
  t.same(checkResourceStructure({ resourceType: 'Patient', name: [{ given: [1, 'A', true] }] }), {
    path: 'name[0].given[2]',
    problem: 'must be a string (a JSON string), not a boolean',
  });
});

/** `depth` nested extensions; the innermost has `valueBoolean: innermost`. */
function nested(depth: number, innermost: unknown): unknown {
  let extension: Record<string, unknown> = { url: 'https://example.org/x', valueBoolean: innermost };
  for (let i = 0; i < depth; i += 1) extension = { url: 'https://example.org/x', extension: [extension] };
  return { resourceType: 'Patient', id: 'p', extension: [extension] };
}

t.test('nesting deeper than the quick check goes is left to the walk, without overflow', async (t) => {
  for (const depth of [10, 200, 20_000]) {
    const good = nested(depth, true);
    t.equal(isWellFormed(good), depth < 30, `depth ${depth}: quick verdict`);
    t.equal(checkResourceStructure(good), null, `depth ${depth}: well formed`);
    const bad = checkResourceStructure(nested(depth, 'yes'));
    t.equal(bad?.problem, 'must be a boolean (true or false), not a string', `depth ${depth}`);
    t.equal(bad?.path, `extension[0]${'.extension[0]'.repeat(depth)}.valueBoolean`, `depth ${depth}: path`);
  }
});

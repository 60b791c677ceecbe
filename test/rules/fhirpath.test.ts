import t from 'tap';
import { createFhirPath } from '../../src/rules/fhirpath.js';
import { NOW } from '../helpers/app.js';

/** An Observation whose `status` counts how often fhirpath.js reads it. */
function counted() {
  const reads = { n: 0 };
  const resource = {
    resourceType: 'Observation',
    get status() {
      reads.n += 1;
      return 'final';
    },
  };
  return { resource, reads };
}

t.test('an expression is evaluated once per input and variables object, at one clock reading', async (t) => {
  const { resource, reads } = counted();
  const env = { threshold: 1 };
  const engine = createFhirPath();
  const first = engine.compile("status = 'final'", ['threshold']);
  // Compiled again from the same text (another feature with the same source): the result is shared.
  const again = engine.compile("status = 'final'", ['threshold']);
  t.same(first.evaluate(resource, env, NOW), [true]);
  const afterFirst = reads.n;
  t.ok(afterFirst > 0);
  t.same(again.evaluate(resource, env, NOW), [true]);
  t.equal(reads.n, afterFirst, 'remembered');
  // Another variables object (another call), another clock reading, or no shortcuts: evaluated again.
  t.same(first.evaluate(resource, { threshold: 1 }, NOW), [true]);
  t.equal(reads.n, 2 * afterFirst);
  t.same(first.evaluate(resource, env, new Date(NOW.getTime() + 1)), [true]);
  t.equal(reads.n, 3 * afterFirst);
  const plain = createFhirPath({ shortcuts: false }).compile("status = 'final'", ['threshold']);
  t.same(plain.evaluate(resource, env, new Date(NOW.getTime() + 1)), [true]);
  t.equal(reads.n, 4 * afterFirst);
  t.same(plain.evaluate(resource, env, new Date(NOW.getTime() + 1)), [true]);
  t.equal(reads.n, 5 * afterFirst, 'without shortcuts, nothing is remembered');
  // Another engine remembers nothing of this one's results.
  t.same(createFhirPath().compile("status = 'final'", ['threshold']).evaluate(resource, env, NOW), [true]);
  t.equal(reads.n, 6 * afterFirst);
});

t.test('a remembered result is handed out as a copy; kept types are remembered apart', async (t) => {
  const env = {};
  const resource = { resourceType: 'Observation', effectiveDateTime: '2026-11-01' };
  const engine = createFhirPath();
  const plain = engine.compile('effective', []);
  const a = plain.evaluate(resource, env, NOW);
  a.push('changed by a caller');
  t.same(plain.evaluate(resource, env, NOW), ['2026-11-01']);
  const typed = engine.compile('effective', [], true);
  const node = typed.evaluate(resource, env, NOW)[0];
  t.not(typeof node, 'string', 'a typed node, not the plain text remembered above');
});

t.test('a failed evaluation is not remembered', async (t) => {
  const expression = createFhirPath().compile("code.startsWith('E')", []);
  const resource = { resourceType: 'Condition', code: 42 } as Record<string, unknown>;
  const env = {};
  t.throws(() => expression.evaluate(resource, env, NOW));
  t.throws(() => expression.evaluate(resource, env, NOW), 'still evaluated, still failing');
});

t.test('two engines answer today() and now() each from the clock reading it is given', async (t) => {
  const a = createFhirPath();
  const b = createFhirPath();
  const source = "today().toString() & ' ' & now().toString()";
  const inA = a.compile(source, []);
  const inB = b.compile(source, []);
  const other = new Date('2031-02-03T04:05:06.000Z');
  const env = {};
  // Interleaved, as two apps serving calls in one process would be.
  t.same(inA.evaluate({}, env, NOW), ['2026-11-22 2026-11-22T09:30:00.000Z']);
  t.same(inB.evaluate({}, env, other), ['2031-02-03 2031-02-03T04:05:06.000Z']);
  t.same(inA.evaluate({}, {}, NOW), ['2026-11-22 2026-11-22T09:30:00.000Z']);
  const typedA = a.compile('today()', [], true);
  t.same(b.compile('today() > @2031-01-01', []).evaluate({}, {}, other), [true]);
  t.same(String(typedA.evaluate({}, {}, NOW)[0]), '2026-11-22');
});

t.test(
  'one engine answers today() and now() from the clock of each evaluation, the day changing or not',
  async (t) => {
    // The engine keeps the last literals it parsed: a new reading must still give its own day and instant.
    const engine = createFhirPath();
    const expression = engine.compile("today().toString() & ' ' & now().toString()", []);
    const later = new Date('2026-11-22T17:45:01.250Z');
    const nextDay = new Date('2026-11-23T00:00:00.000Z');
    t.same(expression.evaluate({}, {}, NOW), ['2026-11-22 2026-11-22T09:30:00.000Z']);
    t.same(expression.evaluate({}, {}, later), ['2026-11-22 2026-11-22T17:45:01.250Z'], 'same day, later');
    t.same(expression.evaluate({}, {}, nextDay), ['2026-11-23 2026-11-23T00:00:00.000Z'], 'next day');
    t.same(expression.evaluate({}, {}, NOW), ['2026-11-22 2026-11-22T09:30:00.000Z'], 'and back');
    const typed = engine.compile('today() - 1 day', [], true);
    t.same(String(typed.evaluate({}, {}, nextDay)[0]), '2026-11-22');
    t.same(String(typed.evaluate({}, {}, NOW)[0]), '2026-11-21', 'the shared literal was not changed');
  },
);

t.test('an engine rejects unknown variables and invalid FHIRPath when compiling', async (t) => {
  const engine = createFhirPath();
  t.throws(() => engine.compile('%labs.entry', ['obs']), {
    message: 'unknown variable %labs (available: %obs)',
  });
  t.throws(() => engine.compile('status = ', []), { message: /^invalid FHIRPath "status = ": / });
});

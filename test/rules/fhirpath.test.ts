import t from 'tap';
import { compileExpression, setShortcuts } from '../../src/rules/fhirpath.js';
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
  const first = compileExpression("status = 'final'", ['threshold']);
  // Compiled again from the same text (another feature with the same source): the result is shared.
  const again = compileExpression("status = 'final'", ['threshold']);
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
  setShortcuts(false);
  try {
    t.same(first.evaluate(resource, env, new Date(NOW.getTime() + 1)), [true]);
  } finally {
    setShortcuts(true);
  }
  t.equal(reads.n, 4 * afterFirst);
});

t.test('a remembered result is handed out as a copy; kept types are remembered apart', async (t) => {
  const env = {};
  const resource = { resourceType: 'Observation', effectiveDateTime: '2026-11-01' };
  const plain = compileExpression('effective', []);
  const a = plain.evaluate(resource, env, NOW);
  a.push('changed by a caller');
  t.same(plain.evaluate(resource, env, NOW), ['2026-11-01']);
  const typed = compileExpression('effective', [], true);
  const node = typed.evaluate(resource, env, NOW)[0];
  t.not(typeof node, 'string', 'a typed node, not the plain text remembered above');
});

t.test('a failed evaluation is not remembered', async (t) => {
  const expression = compileExpression("code.startsWith('E')", []);
  const resource = { resourceType: 'Condition', code: 42 } as Record<string, unknown>;
  const env = {};
  t.throws(() => expression.evaluate(resource, env, NOW));
  t.throws(() => expression.evaluate(resource, env, NOW), 'still evaluated, still failing');
});

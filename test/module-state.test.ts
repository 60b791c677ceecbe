/**
 * No module-level state in src/: a module-level `let` or an empty Map/Set/WeakMap/WeakSet filled at
 * run time would be shared by every app of the process (two apps in one test, a batch job beside a
 * server). State lives in what the caller creates (the FHIRPath engine, the SQLite worker, the app's
 * dependencies). Constant tables (a Set or Map built from literal contents, ajv validators compiled
 * once from constant schemas) are not state.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

/** The worker thread's own store table: one per thread, never shared between owners; and a model memo. */
const ALLOWED = new Set([
  'src/audit/sqlite-worker.ts: const stores = new Map<number, AuditStore>();',
  // A memo of the constant R4 model (elements R4 defines only, so bounded by the model): no app's state.
  'src/prefetch/structure.ts: const elementsCache = new Map<string, Map<string, Element>>();',
]);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** Top-level declarations (prettier puts them at column 0) that hold state. */
const STATEFUL =
  /^(?:export )?(?:(?:let|var) |const \w+(?:: [^=]+)? = new (?:Weak)?(?:Map|Set)(?:<.*>)?\(\))/;

t.test('src/ keeps no state at module level', async (t) => {
  const found = sources('src').flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter((line) => STATEFUL.test(line))
      .map((line) => `${file.split('\\').join('/')}: ${line}`),
  );
  t.same(
    found.filter((line) => !ALLOWED.has(line)),
    [],
  );
  t.same(
    found.filter((line) => ALLOWED.has(line)),
    [...ALLOWED],
    'the allowed one is still there (else drop it from the list)',
  );
  // The pattern catches what it is meant to.
  t.ok(STATEFUL.test('let thread: Thread | undefined;'));
  t.ok(STATEFUL.test('const remembered = new WeakMap<object, Map<string, unknown>>();'));
  t.notOk(STATEFUL.test("const LOOPBACK = new Set(['localhost']);"));
  t.notOk(STATEFUL.test('  let local = 1;'));
});

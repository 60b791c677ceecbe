/**
 * The stored parse trees (src/rules/parse-trees.ts): built in memory from the bundled folders as
 * `npm run build` builds them (no dist/ needed), each one is fhirpath.js's parse of its source; an
 * engine given them parses nothing at start-up and answers exactly as one that parses; a file of
 * another fhirpath.js version or a malformed one is not used; a tree is used for its exact text only.
 */
import t from 'tap';
import { createRequire } from 'node:module';
import { loadSettings } from '../../src/config.js';
import { checkDefinitions } from '../../src/ops/live-set.js';
import { createFhirPath, FHIRPATH_VERSION, parseFhirPath } from '../../src/rules/fhirpath.js';
import type { AstNode } from '../../src/rules/narrow.js';
import { collectParseTrees, parseStoredTrees, serializeParseTrees } from '../../src/rules/parse-trees.js';
import { NOW } from '../helpers/app.js';
import { cohort, differential, edgeCases, runDifferential } from '../helpers/fhirpath-differential.js';

const require = createRequire(import.meta.url);
const fhirpath = require('fhirpath') as typeof import('fhirpath');

/** The bundled folders, as start-up reads them (the repository's defaults). */
const settings = loadSettings({});
const load = (engine: Parameters<typeof checkDefinitions>[1]) => checkDefinitions(settings, engine);

/** The store as the build writes it, read back as start-up reads it. */
const built = collectParseTrees(load);
const read = parseStoredTrees(serializeParseTrees(built));
const trees = read.trees!;

/** Freezes a tree, every node: an engine that changed a stored tree would throw (strict mode). */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

t.test('every stored tree is fhirpath.js parse of its source, for this fhirpath.js', async (t) => {
  t.equal(read.reason, undefined);
  t.equal(FHIRPATH_VERSION, (require('fhirpath/package.json') as { version: string }).version);
  t.equal(trees.size, built.size);
  // The services' criteria, the models' features and the features' defaults (compileFeatureDefaults).
  t.ok(trees.size >= 150, `sources: ${trees.size}`);
  t.ok(trees.has('effective.ofType(dateTime) | effective.ofType(Period).start | issued'));
  t.ok(trees.has('value.ofType(Quantity)'));
  for (const [source, tree] of trees) t.strictSame(tree, fhirpath.parse(source), source);
});

t.test('an engine given the store parses none of the bundled sources', async (t) => {
  const engine = createFhirPath({ trees });
  load(engine);
  t.equal(engine.counts.parsed, 0);
  t.equal(engine.counts.stored, trees.size);
  const plain = createFhirPath();
  load(plain);
  t.equal(plain.counts.parsed, trees.size);
  t.equal(plain.counts.stored, 0);
  t.same(
    { compiled: engine.counts.compiled, interpreted: engine.counts.interpreted },
    { compiled: plain.counts.compiled, interpreted: plain.counts.interpreted },
  );
});

t.test('an engine given the store evaluates every bundled expression as one that parses', async (t) => {
  // Frozen: the engine reads the stored trees and never changes them.
  const frozen = new Map([...trees].map(([source, tree]) => [source, deepFreeze(structuredClone(tree))]));
  const generated = cohort(24);
  for (const [label, records] of [
    ['generated', generated],
    ['edge cases', edgeCases(generated)],
  ] as const) {
    const d = differential(createFhirPath({ trees: frozen }), createFhirPath());
    const { total, sources } = await runDifferential(t, records, `stored trees, ${label}`, d);
    t.equal(d.engine.counts.parsed, 0, `${label}: nothing parsed`);
    t.ok(sources >= 90, `expressions: ${sources}`);
    t.ok(total > 1000, `evaluations: ${total}`);
  }
});

t.test('a file of another fhirpath.js or a malformed one is not used', async (t) => {
  const text = serializeParseTrees(new Map([['1 + 1', parseFhirPath('1 + 1')]]), '5.2.0');
  t.equal(parseStoredTrees(text, '5.2.0').trees?.size, 1);
  t.same(parseStoredTrees(text, '5.3.0'), { reason: 'made by fhirpath.js 5.2.0, this is 5.3.0' });
  t.match(parseStoredTrees(text.slice(0, 40), '5.2.0'), { trees: undefined, reason: /^unreadable: / });
  t.same(parseStoredTrees('[]', '5.2.0'), { reason: 'malformed: not { fhirpath, trees }' });
  t.same(parseStoredTrees('{"fhirpath":"5.2.0","trees":{}}', '5.2.0'), {
    reason: 'malformed: not { fhirpath, trees }',
  });
  for (const entry of ['["a"]', '["a", []]', '[1, {"type": "x"}]', '["a", {"children": []}]', '"a"']) {
    t.same(
      parseStoredTrees(`{"fhirpath":"5.2.0","trees":[["b",{"type":"x"}],${entry}]}`, '5.2.0'),
      { reason: 'malformed: entry 1 is not [source, tree]' },
      entry,
    );
  }
});

t.test('a stored tree is used for its exact source text only', async (t) => {
  // The tree of `2 + 2` stored under the text `1 + 1`: that text (and only it) now reads as 2 + 2.
  const swapped = new Map<string, AstNode>([['1 + 1', parseFhirPath('2 + 2')]]);
  const engine = createFhirPath({ trees: swapped });
  const value = (source: string) => engine.compile(source, []).evaluate({}, {}, NOW);
  t.same(value('1 + 1'), [4], 'the stored text: its stored tree');
  t.same(engine.counts, { compiled: 1, interpreted: 0, parsed: 0, stored: 1 });
  for (const near of ['1+1', ' 1 + 1', '1 + 1 ', '(1 + 1)', '1 +  1']) t.same(value(near), [2], near);
  t.same(value('2 + 2'), [4]);
  t.same(engine.counts, { compiled: 7, interpreted: 0, parsed: 6, stored: 1 });
  // An engine without the store parses `1 + 1` itself.
  t.same(createFhirPath().compile('1 + 1', []).evaluate({}, {}, NOW), [2]);
});

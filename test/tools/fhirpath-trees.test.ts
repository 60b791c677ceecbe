/**
 * The build step (tools/fhirpath-trees.ts): writes the parse trees of every bundled source, in the
 * form start-up reads (test/rules/parse-trees.test.ts checks the trees themselves).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStoredTrees } from '../../src/rules/parse-trees.js';
import { writeParseTrees } from '../../tools/fhirpath-trees.js';
import { tempDir } from '../helpers/app.js';

t.test('writes one tree per bundled source, readable by start-up', async (t) => {
  // Into a folder not there yet.
  const file = join(tempDir(), 'dist', 'fhirpath-trees.json');
  const count = writeParseTrees('.', file);
  t.ok(count >= 150, `sources: ${count}`);
  const read = parseStoredTrees(readFileSync(file, 'utf8'));
  t.equal(read.reason, undefined);
  t.equal(read.trees?.size, count);
  t.ok(read.trees?.has('value.ofType(Quantity)'));
  // Sorted by source text: the same folders give the same file.
  const sources = [...read.trees!.keys()];
  t.same(sources, [...sources].sort());
});

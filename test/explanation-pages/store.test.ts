import t from 'tap';
import type { Explanation } from '../../src/explain/explain.js';
import { createExplanationStore, type StoredExplanation } from '../../src/explanation-pages/store.js';
import { NOW } from '../helpers/app.js';

const NOW_S = NOW.getTime() / 1000;
const entry = (summary: string, exp = NOW_S + 60): StoredExplanation => ({
  explanation: {} as Explanation,
  language: 'en',
  summary,
  exp,
});

t.test('the store keeps at most maxEntries, least recently used out first', async (t) => {
  const store = createExplanationStore(2, () => NOW);
  store.put('a', entry('A'));
  store.put('b', entry('B'));
  t.equal(store.get('a')?.summary, 'A', 'a is now the most recently used');
  store.put('c', entry('C'));
  t.equal(store.size, 2);
  t.equal(store.get('b'), undefined, 'b was the least recently used');
  t.equal(store.get('a')?.summary, 'A');
  t.equal(store.get('c')?.summary, 'C');
  t.equal(store.get('zzz'), undefined);
});

t.test('an entry expires with its link and is then dropped', async (t) => {
  let now = NOW;
  const store = createExplanationStore(10, () => now);
  store.put('a', entry('A', NOW_S + 60));
  store.put('b', entry('B', NOW_S + 120));
  now = new Date(NOW.getTime() + 60_000);
  t.equal(store.get('a'), undefined);
  t.equal(store.size, 1, 'the expired entry is gone');
  t.equal(store.get('b')?.summary, 'B');
  now = new Date(NOW.getTime() + 200_000);
  store.put('c', entry('C', NOW_S + 400));
  t.equal(store.size, 1, 'expired entries at the old end are dropped on write');
});

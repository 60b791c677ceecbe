import t from 'tap';
import { createRng, mixSeed } from '../../../tools/synthetic/random.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function draws(seed: number, n: number, stream = 0): number[] {
  const rng = createRng(seed, stream);
  return Array.from({ length: n }, () => rng.uint32());
}

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

function variance(values: number[]): number {
  const m = mean(values);
  return values.reduce((sum, v) => sum + (v - m) ** 2, 0) / (values.length - 1);
}

t.test('the sequence of a seed is pinned (a change here changes every generated cohort)', async (t) => {
  t.same(draws(42, 4), [3509370601, 3307838389, 4205953251, 1198044156]);
  t.equal(createRng(42).uuid(), 'd12cbee9-c529-4bb5-bab1-c0e34768b3fc');
  t.equal(mixSeed(42, 0), mixSeed(42));
});

t.test('same seed and stream give the same sequence; others differ', async (t) => {
  t.same(draws(7, 50), draws(7, 50));
  t.not(draws(7, 50).join(), draws(8, 50).join());
  t.not(draws(7, 50, 0).join(), draws(7, 50, 1).join());
  t.not(draws(-7, 50).join(), draws(7, 50).join());
  t.not(draws(2 ** 40, 50).join(), draws(0, 50).join(), 'the high 32 bits of a seed matter');
  t.equal(createRng(3, 9).seed, 3);
  t.equal(createRng(3, 9).stream, 9);
});

t.test('seed and stream must be safe integers', async (t) => {
  t.throws(() => createRng(1.5), new RangeError('seed must be a safe integer (got 1.5)'));
  t.throws(() => createRng(Number.NaN), new RangeError('seed must be a safe integer (got NaN)'));
  t.throws(() => createRng(1, -1), new RangeError('stream must be a non-negative safe integer (got -1)'));
});

t.test('next() is uniform in [0, 1)', async (t) => {
  const rng = createRng(1);
  const values = Array.from({ length: 20_000 }, () => rng.next());
  t.ok(values.every((v) => v >= 0 && v < 1));
  t.ok(Math.abs(mean(values) - 0.5) < 0.01, `mean ${mean(values)}`);
  const buckets = new Array(10).fill(0);
  for (const v of values) buckets[Math.floor(v * 10)]++;
  t.ok(
    buckets.every((n) => n > 1800 && n < 2200),
    `buckets ${buckets}`,
  );
});

t.test('int() covers [min, max] inclusive and validates its bounds', async (t) => {
  const rng = createRng(2);
  const values = Array.from({ length: 2000 }, () => rng.int(-2, 3));
  t.same(
    [...new Set(values)].sort((a, b) => a - b),
    [-2, -1, 0, 1, 2, 3],
    'every integer of the range, and nothing else',
  );
  t.equal(rng.int(5, 5), 5);
  t.throws(() => rng.int(3, 2), new RangeError('int() needs min ≤ max (got 3, 2)'));
  t.throws(() => rng.int(0, 1.5), new RangeError('int() bounds must be integers (got 0, 1.5)'));
  t.throws(() => rng.int(0, 2 ** 33), new RangeError(`int() range is wider than 2^32 (got 0, ${2 ** 33})`));
});

t.test('pick() and weighted()', async (t) => {
  const rng = createRng(3);
  const items = ['a', 'b', 'c'] as const;
  const counts: Record<string, number> = { a: 0, b: 0, c: 0 };
  for (let i = 0; i < 3000; i++) counts[rng.pick(items)]!++;
  t.ok(
    Object.values(counts).every((n) => n > 850 && n < 1150),
    JSON.stringify(counts),
  );
  t.throws(() => rng.pick([]), new RangeError('pick() needs a non-empty array'));

  const w: Record<string, number> = { x: 0, y: 0, z: 0 };
  for (let i = 0; i < 10_000; i++) {
    w[
      rng.weighted([
        ['x', 1],
        ['y', 3],
        ['z', 0],
      ])
    ]!++;
  }
  t.equal(w.z, 0, 'zero weight is never chosen');
  t.ok(w.y! / 10_000 > 0.72 && w.y! / 10_000 < 0.78, `y share ${w.y! / 10_000}`);
  t.throws(() => rng.weighted([['x', 0]]), new RangeError('weighted() needs at least one positive weight'));
  t.throws(
    () => rng.weighted([['x', -1]]),
    new RangeError('weighted() weights must be finite and ≥ 0 (got -1)'),
  );
});

t.test('bool() hits its probability and rejects non-probabilities', async (t) => {
  const rng = createRng(4);
  let hits = 0;
  for (let i = 0; i < 10_000; i++) if (rng.bool(0.3)) hits++;
  t.ok(hits > 2800 && hits < 3200, `hits ${hits}`);
  t.equal(rng.bool(0), false);
  t.equal(rng.bool(1), true);
  t.throws(() => rng.bool(1.1), new RangeError('bool() needs a probability in [0, 1] (got 1.1)'));
  t.throws(() => rng.bool(Number.NaN), new RangeError('bool() needs a probability in [0, 1] (got NaN)'));
});

t.test('normal() and truncNormal() have the requested moments and bounds', async (t) => {
  const rng = createRng(5);
  const values = Array.from({ length: 20_000 }, () => rng.normal(10, 2));
  t.ok(Math.abs(mean(values) - 10) < 0.05, `mean ${mean(values)}`);
  t.ok(Math.abs(Math.sqrt(variance(values)) - 2) < 0.05, `sd ${Math.sqrt(variance(values))}`);
  t.equal(rng.normal(3, 0), 3);
  t.throws(() => rng.normal(0, -1), new RangeError('sd must be a finite number ≥ 0 (got -1)'));
  t.throws(
    () => rng.normal(Number.POSITIVE_INFINITY),
    new RangeError('mean must be a finite number (got Infinity)'),
  );

  const trunc = Array.from({ length: 5000 }, () => rng.truncNormal(62, 9, 45, 79));
  t.ok(
    trunc.every((v) => v >= 45 && v <= 79),
    'all inside the bounds',
  );
  t.ok(Math.abs(mean(trunc) - 62) < 0.5, `mean ${mean(trunc)}`);
  t.equal(rng.truncNormal(100, 1, 0, 1), 1, 'an interval far in the tail returns the bound nearest the mean');
  t.equal(rng.truncNormal(-100, 1, 0, 1), 0);
  t.throws(() => rng.truncNormal(0, 1, 2, 1), new RangeError('truncNormal() needs lo ≤ hi (got 2, 1)'));
  t.throws(
    () => rng.truncNormal(0, 1, Number.NaN, 1),
    new RangeError('lo must be a finite number (got NaN)'),
  );
});

t.test('gamma(), poisson() and negBinomial() have the requested means', async (t) => {
  const rng = createRng(6);
  const g = Array.from({ length: 10_000 }, () => rng.gamma(2, 3));
  t.ok(Math.abs(mean(g) - 6) < 0.2, `gamma mean ${mean(g)}`);
  const gSmall = Array.from({ length: 10_000 }, () => rng.gamma(0.5, 2));
  t.ok(Math.abs(mean(gSmall) - 1) < 0.06, `gamma(0.5) mean ${mean(gSmall)}`);
  t.throws(() => rng.gamma(0, 1), new RangeError('shape must be > 0 (got 0)'));
  t.throws(() => rng.gamma(1, 0), new RangeError('scale must be > 0 (got 0)'));

  const p = Array.from({ length: 5000 }, () => rng.poisson(4));
  t.ok(Math.abs(mean(p) - 4) < 0.15, `poisson mean ${mean(p)}`);
  const big = Array.from({ length: 2000 }, () => rng.poisson(250));
  t.ok(Math.abs(mean(big) - 250) < 2, `poisson(250) mean ${mean(big)}`);
  t.ok(Math.abs(variance(big) - 250) < 30, `poisson(250) variance ${variance(big)}`);
  t.equal(rng.poisson(0), 0);
  t.equal(rng.poisson(60) >= 0, true, 'an exact multiple of the chunk size works');
  t.throws(() => rng.poisson(-1), new RangeError('poisson() needs λ ≥ 0 (got -1)'));

  const nb = Array.from({ length: 10_000 }, () => rng.negBinomial(30, 1.2));
  t.ok(Math.abs(mean(nb) - 30) < 1.5, `negBinomial mean ${mean(nb)}`);
  const expectedVar = 30 + 30 ** 2 / 1.2;
  t.ok(
    Math.abs(variance(nb) / expectedVar - 1) < 0.15,
    `negBinomial variance ${variance(nb)} vs ${expectedVar}`,
  );
  t.equal(rng.negBinomial(0, 1), 0);
  t.throws(() => rng.negBinomial(-1, 1), new RangeError('negBinomial() needs mean ≥ 0 (got -1)'));
  t.throws(() => rng.negBinomial(1, 0), new RangeError('negBinomial() needs size > 0 (got 0)'));
});

t.test('uuid() is v4-shaped, deterministic and unique', async (t) => {
  const a = createRng(9);
  const b = createRng(9);
  const ids = Array.from({ length: 2000 }, () => a.uuid());
  t.same(
    ids.filter((id) => !UUID_V4.test(id)),
    [],
    'every id is v4-shaped',
  );
  t.same(
    ids,
    Array.from({ length: 2000 }, () => b.uuid()),
    'same seed, same ids',
  );
  t.equal(new Set(ids).size, 2000, 'no duplicates');
});

import t, { type Test } from 'tap';
import { shapleyFromCoalitions } from '../../src/scoring/score.js';
import { createRng } from '../../tools/synthetic/random.js';

/** v(S) for every coalition mask S of f players. */
function game(f: number, v: (members: boolean[]) => number): number[] {
  return Array.from({ length: 1 << f }, (_, mask) =>
    v(Array.from({ length: f }, (_, i) => (mask & (1 << i)) !== 0)),
  );
}

function near(
  t: Test,
  actual: readonly number[],
  expected: readonly number[],
  what: string,
  tolerance = 1e-12,
): void {
  t.equal(actual.length, expected.length, `${what}: ${expected.length} values`);
  const ok = expected.every((e, i) => Math.abs(actual[i]! - e) <= tolerance);
  t.ok(ok, `${what}: [${actual.join(', ')}] ≈ [${expected.join(', ')}]`);
}

/** Shapley values by the permutation definition: average marginal contribution over all orders. */
function byPermutations(values: readonly number[], f: number): number[] {
  const phi = new Array<number>(f).fill(0);
  let count = 0;
  const visit = (order: number[], rest: number[]) => {
    if (rest.length === 0) {
      let mask = 0;
      for (const i of order) {
        phi[i]! += values[mask | (1 << i)]! - values[mask]!;
        mask |= 1 << i;
      }
      count += 1;
      return;
    }
    for (const i of rest)
      visit(
        [...order, i],
        rest.filter((j) => j !== i),
      );
  };
  visit(
    [],
    Array.from({ length: f }, (_, i) => i),
  );
  return phi.map((p) => p / count);
}

t.test('additive game: each player gets its own effect', async (t) => {
  const effects = [0.7, -1.25, 0, 3.5];
  const v = game(4, (s) => 2 + s.reduce((sum, member, i) => sum + (member ? effects[i]! : 0), 0));
  near(t, shapleyFromCoalitions(v, 4), effects, 'additive');
  // Through a Float64Array, as the scorer passes its logits.
  near(t, shapleyFromCoalitions(Float64Array.from(v), 4), effects, 'Float64Array input');
});

t.test('pure interaction v = x1·x2: each of the two gets half', async (t) => {
  near(t, shapleyFromCoalitions([0, 0, 0, 1], 2), [0.5, 0.5], 'two players');
  // With a third player who adds nothing: it gets 0, the others still half each.
  const v = game(3, ([a, b]) => (a && b ? 4 : 0));
  near(t, shapleyFromCoalitions(v, 3), [2, 2, 0], 'three players, one null');
});

t.test('a hand-computed 3-player game', async (t) => {
  // v by mask: {}=0 {0}=1 {1}=2 {0,1}=4 {2}=0 {0,2}=1 {1,2}=3 {0,1,2}=6
  // φ0 = 1/3·(1−0) + 1/6·(4−2) + 1/6·(1−0) + 1/3·(6−3) = 11/6
  // φ1 = 1/3·(2−0) + 1/6·(4−1) + 1/6·(3−0) + 1/3·(6−1) = 20/6
  // φ2 = 1/3·(0−0) + 1/6·(1−1) + 1/6·(3−2) + 1/3·(6−4) = 5/6
  const v = [0, 1, 2, 4, 0, 1, 3, 6];
  near(t, shapleyFromCoalitions(v, 3), [11 / 6, 20 / 6, 5 / 6], 'hand-computed');
  near(t, byPermutations(v, 3), [11 / 6, 20 / 6, 5 / 6], 'the permutation definition agrees');
});

t.test('one player gets everything; no player gets nothing', async (t) => {
  near(t, shapleyFromCoalitions([1.5, 4], 1), [2.5], 'one player');
  t.same(shapleyFromCoalitions([3], 0), [], 'no player');
});

t.test('random 6-player game: efficiency, and the permutation definition', async (t) => {
  const rng = createRng(20261122);
  for (let round = 0; round < 5; round += 1) {
    const v = Array.from({ length: 64 }, () => rng.normal(0, 2));
    const phi = shapleyFromCoalitions(v, 6);
    const sum = phi.reduce((s, p) => s + p, 0);
    t.ok(
      Math.abs(sum - (v[63]! - v[0]!)) < 1e-12,
      `round ${round}: Σφ = ${sum} = v(all) − v(none) = ${v[63]! - v[0]!}`,
    );
    near(t, phi, byPermutations(v, 6), `round ${round}: same as averaging over 720 orders`, 1e-12);
  }
});

t.test('symmetry: interchangeable players get equal shares', async (t) => {
  // v depends only on the coalition size: all six are interchangeable.
  const bySize = [0, 1, 5, 2, 8, 3, 13];
  const v = game(6, (s) => bySize[s.filter(Boolean).length]!);
  const phi = shapleyFromCoalitions(v, 6);
  near(t, phi, new Array(6).fill(13 / 6), 'all equal to (v(all) − v(none)) / 6');

  // Players 1 and 3 symmetric in an otherwise random game: v(S ∪ {1}) = v(S ∪ {3}) for S without both.
  const rng = createRng(7);
  const base = Array.from({ length: 64 }, () => rng.next());
  const swap = (mask: number) => {
    const b1 = (mask >> 1) & 1;
    const b3 = (mask >> 3) & 1;
    return (mask & ~0b1010) | (b1 << 3) | (b3 << 1);
  };
  const sym = base.map((value, mask) => (value + base[swap(mask)]!) / 2);
  const p = shapleyFromCoalitions(sym, 6);
  t.ok(Math.abs(p[1]! - p[3]!) < 1e-12, `φ1 = ${p[1]} = φ3 = ${p[3]}`);
  t.ok(Math.abs(p[0]! - p[1]!) > 1e-6, 'and the others differ (the game is not trivially symmetric)');
});

t.test('null player: a player who never changes v gets 0', async (t) => {
  const rng = createRng(99);
  const inner = Array.from({ length: 32 }, () => rng.normal());
  // Player 2 is inserted as a null player into a random 5-player game.
  const v = Array.from({ length: 64 }, (_, mask) => {
    const low = mask & 0b11;
    const high = (mask >> 3) << 2;
    return inner[low | high]!;
  });
  const phi = shapleyFromCoalitions(v, 6);
  t.ok(Math.abs(phi[2]!) < 1e-12, `φ2 = ${phi[2]}`);
  const rest = shapleyFromCoalitions(inner, 5);
  near(
    t,
    [phi[0]!, phi[1]!, phi[3]!, phi[4]!, phi[5]!],
    rest,
    'the others keep their values in the smaller game',
  );
});

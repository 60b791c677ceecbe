/**
 * A small seeded pseudo-random number generator for the synthetic-patient generator.
 *
 * The core is sfc32 (Chris Doty-Humphrey's "small fast counter", 128-bit state, passes PractRand), seeded
 * through splitmix32 so that nearby seeds give unrelated streams. Everything is deterministic: the same
 * `(seed, stream)` pair always yields the same sequence on every platform, because only 32-bit integer
 * arithmetic (`Math.imul`, `| 0`, `>>> 0`) feeds the state.
 *
 * Nothing here reads the clock or `Math.random()`.
 */

/** A seeded random source. Create one with {@link createRng}. */
export interface Rng {
  /** The seed this generator was created with. */
  readonly seed: number;
  /** The stream index this generator was created with (see {@link createRng}). */
  readonly stream: number;
  /** Next raw 32-bit unsigned integer. */
  uint32(): number;
  /** Uniform number in [0, 1), 32-bit resolution. */
  next(): number;
  /** Uniform integer in [min, max], both ends included. */
  int(min: number, max: number): number;
  /** One element of a non-empty array, uniformly. */
  pick<T>(items: readonly T[]): T;
  /** One value of `[value, weight]` pairs, with probability proportional to its weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T;
  /** `true` with probability `p` (0 ≤ p ≤ 1). */
  bool(p: number): boolean;
  /** Normal deviate (Box-Muller). */
  normal(mean?: number, sd?: number): number;
  /**
   * Normal deviate restricted to [lo, hi] by rejection. When 1,000 draws in a row fall outside (the
   * interval lies far in a tail), the bound nearest to `mean` is returned.
   */
  truncNormal(mean: number, sd: number, lo: number, hi: number): number;
  /** Gamma deviate with the given shape and scale (Marsaglia-Tsang). Mean = shape × scale. */
  gamma(shape: number, scale: number): number;
  /** Poisson deviate (Knuth's method, applied in chunks of λ ≤ 30 so large λ does not underflow). */
  poisson(lambda: number): number;
  /**
   * Negative binomial deviate parameterised by mean and size (dispersion) as a gamma-Poisson mixture:
   * variance = mean + mean² / size.
   */
  negBinomial(mean: number, size: number): number;
  /** A random version-4-shaped UUID (lower-case, 8-4-4-4-12), drawn from this generator. */
  uuid(): string;
}

const TWO_POW_32 = 4294967296;

/** Final mixer of MurmurHash3: a bijection on 32-bit integers with good avalanche. */
function fmix32(input: number): number {
  let h = input >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** splitmix32 stream: used only to expand a 32-bit seed into sfc32's 128-bit state. */
function splitmix32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) | 0;
    return fmix32(state);
  };
}

/** sfc32 over four 32-bit words; returns unsigned 32-bit integers. */
function sfc32(a0: number, b0: number, c0: number, d0: number): () => number {
  let a = a0 | 0;
  let b = b0 | 0;
  let c = c0 | 0;
  let d = d0 | 0;
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
}

/**
 * Mixes a seed (any safe integer, negative allowed) and a stream index into one 32-bit state. Different
 * streams of one seed are independent for all practical purposes; the cohort generator gives patient `i`
 * stream `i`, so a patient does not change when the cohort size changes.
 */
export function mixSeed(seed: number, stream = 0): number {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer (got ${seed})`);
  if (!Number.isSafeInteger(stream) || stream < 0) {
    throw new RangeError(`stream must be a non-negative safe integer (got ${stream})`);
  }
  const lo = ((seed % TWO_POW_32) + TWO_POW_32) % TWO_POW_32;
  const hi = Math.floor(seed / TWO_POW_32) >>> 0;
  const streamLo = stream % TWO_POW_32;
  const streamHi = Math.floor(stream / TWO_POW_32) >>> 0;
  let h = fmix32(lo ^ 0x243f6a88);
  h = fmix32(h ^ Math.imul(hi, 0x9e3779b1));
  h = fmix32(h ^ Math.imul(streamLo + 1, 0x85ebca77));
  h = fmix32(h ^ Math.imul(streamHi, 0xc2b2ae3d));
  return h;
}

function assertFinite(name: string, value: number): void {
  if (!Number.isFinite(value)) throw new RangeError(`${name} must be a finite number (got ${value})`);
}

function hex8(value: number): string {
  return value.toString(16).padStart(8, '0');
}

/**
 * Creates a seeded generator. `seed` is any safe integer; `stream` (default 0) selects an independent
 * sub-sequence of the same seed.
 */
export function createRng(seed: number, stream = 0): Rng {
  const init = splitmix32(mixSeed(seed, stream));
  const raw = sfc32(init(), init(), init(), init());
  for (let i = 0; i < 12; i++) raw();

  const next = (): number => raw() / TWO_POW_32;

  const normal = (mean = 0, sd = 1): number => {
    assertFinite('mean', mean);
    if (!Number.isFinite(sd) || sd < 0) throw new RangeError(`sd must be a finite number ≥ 0 (got ${sd})`);
    const u1 = 1 - next(); // (0, 1]: log() stays finite
    const u2 = next();
    return mean + sd * Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  };

  const gamma = (shape: number, scale: number): number => {
    if (!Number.isFinite(shape) || shape <= 0) throw new RangeError(`shape must be > 0 (got ${shape})`);
    if (!Number.isFinite(scale) || scale <= 0) throw new RangeError(`scale must be > 0 (got ${scale})`);
    if (shape < 1) {
      // Boost: Gamma(k) = Gamma(k + 1) · U^(1/k).
      return gamma(shape + 1, scale) * next() ** (1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = normal();
      const v0 = 1 + c * x;
      if (v0 <= 0) continue;
      const v = v0 * v0 * v0;
      const u = 1 - next();
      if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) {
        return d * v * scale;
      }
    }
  };

  const poissonSmall = (lambda: number): number => {
    const limit = Math.exp(-lambda);
    let k = 0;
    let p = next();
    while (p > limit) {
      k++;
      p *= next();
    }
    return k;
  };

  const rng: Rng = {
    seed,
    stream,
    uint32: raw,
    next,
    int(min, max) {
      if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max)) {
        throw new RangeError(`int() bounds must be integers (got ${min}, ${max})`);
      }
      if (min > max) throw new RangeError(`int() needs min ≤ max (got ${min}, ${max})`);
      const span = max - min + 1;
      if (span > TWO_POW_32) throw new RangeError(`int() range is wider than 2^32 (got ${min}, ${max})`);
      return min + Math.floor(next() * span);
    },
    pick(items) {
      if (items.length === 0) throw new RangeError('pick() needs a non-empty array');
      return items[Math.floor(next() * items.length)] as (typeof items)[number];
    },
    weighted(choices) {
      let total = 0;
      for (const [, weight] of choices) {
        if (!Number.isFinite(weight) || weight < 0) {
          throw new RangeError(`weighted() weights must be finite and ≥ 0 (got ${weight})`);
        }
        total += weight;
      }
      if (total <= 0) throw new RangeError('weighted() needs at least one positive weight');
      let target = next() * total;
      let last = choices[0]![0];
      for (const [value, weight] of choices) {
        if (weight === 0) continue;
        if (target < weight) return value;
        target -= weight;
        last = value;
      }
      return last; // only reached through floating-point rounding of the running total
    },
    bool(p) {
      if (!(p >= 0 && p <= 1)) throw new RangeError(`bool() needs a probability in [0, 1] (got ${p})`);
      return next() < p;
    },
    normal,
    truncNormal(mean, sd, lo, hi) {
      assertFinite('lo', lo);
      assertFinite('hi', hi);
      if (lo > hi) throw new RangeError(`truncNormal() needs lo ≤ hi (got ${lo}, ${hi})`);
      for (let i = 0; i < 1000; i++) {
        const x = normal(mean, sd);
        if (x >= lo && x <= hi) return x;
      }
      return Math.min(hi, Math.max(lo, mean));
    },
    gamma,
    poisson(lambda) {
      if (!Number.isFinite(lambda) || lambda < 0)
        throw new RangeError(`poisson() needs λ ≥ 0 (got ${lambda})`);
      let remaining = lambda;
      let total = 0;
      while (remaining > 30) {
        total += poissonSmall(30);
        remaining -= 30;
      }
      return remaining > 0 ? total + poissonSmall(remaining) : total;
    },
    negBinomial(mean, size) {
      if (!Number.isFinite(mean) || mean < 0)
        throw new RangeError(`negBinomial() needs mean ≥ 0 (got ${mean})`);
      if (!Number.isFinite(size) || size <= 0)
        throw new RangeError(`negBinomial() needs size > 0 (got ${size})`);
      if (mean === 0) return 0;
      return rng.poisson(gamma(size, mean / size));
    },
    uuid() {
      const w0 = raw();
      const w1 = (raw() & 0xffff0fff) | 0x00004000; // version nibble = 4
      const w2 = (raw() & 0x3fffffff) | 0x80000000; // variant bits = 10xx
      const w3 = raw();
      const h = hex8(w0) + hex8(w1 >>> 0) + hex8(w2 >>> 0) + hex8(w3);
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    },
  };
  return rng;
}

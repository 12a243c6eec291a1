/**
 * The seeded generators of crystalwatch, written once. Training (splits, shuffles,
 * augmentations), the simulator (every image is a pure function of its seed), the benchmarks
 * and the tests draw from here, so the same seed gives the same numbers, and the same bytes,
 * everywhere and on every run. Math.random is never used for anything a seed should fix.
 *
 * Here and not in simulator/: src/ stages (classify imports src/model) must not depend on the
 * simulator; the simulator already imports src/model.
 *
 * - `Rng`: mulberry32 with the distributions the simulator's physics needs; `new Rng(seed)` mixes
 *   the seed first (`mixSeed`), `Rng.fromState(state)` starts from the raw 32-bit state.
 * - `SeededRandom`: the model's API over the same generator (`int(n)` in [0, n)).
 * - `mulberry32(seed)`: a bare `() => number` (raw state), for benchmarks and test helpers.
 * - `xorshift32(state)`: one step of a cheaper generator, for per-pixel noise in hot loops.
 */

/** Mix several integers into one 32-bit seed (a splitmix32-style finaliser). */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const part of parts) {
    // Fold in the low and high 32 bits so large seeds (timestamps) are not truncated.
    const lo = part >>> 0;
    const hi = Math.floor(part / 0x1_0000_0000) >>> 0;
    h = Math.imul(h ^ lo, 0x85ebca6b) ^ hi;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** One xorshift32 step (Marsaglia 13/17/5) of a non-zero 32-bit state; the next state, unsigned. */
export function xorshift32(state: number): number {
  let s = state;
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  return s >>> 0;
}

/** A small, fast, seedable generator (mulberry32) with the distributions the physics needs. */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = mixSeed(seed) >>> 0;
  }

  /** A generator whose state is exactly `state` (no seed mixing): mulberry32 as published. */
  static fromState(state: number): Rng {
    const rng = new Rng(0);
    rng.state = state >>> 0;
    return rng;
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A new independent generator; lets one part of a scene change without reshuffling the rest. */
  fork(tag: number): Rng {
    return new Rng(mixSeed(this.state, tag));
  }

  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  int(lo: number, hiInclusive: number): number {
    return Math.floor(this.uniform(lo, hiInclusive + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  /** Normal (Box–Muller). */
  normal(mean = 0, sd = 1): number {
    const u = 1 - this.next();
    const v = this.next();
    return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Log-normal given its median and the geometric standard deviation (≥ 1). */
  logNormal(median: number, gsd: number): number {
    return median * Math.exp(this.normal() * Math.log(gsd));
  }

  /** Beta(a, b) via two gamma draws (Marsaglia–Tsang); a, b ≥ 1 here. */
  beta(a: number, b: number): number {
    const x = this.gamma(a);
    const y = this.gamma(b);
    return x / (x + y);
  }

  gamma(shape: number): number {
    if (shape < 1) return this.gamma(shape + 1) * Math.pow(this.next(), 1 / shape);
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number;
      let v: number;
      do {
        x = this.normal();
        v = 1 + c * x;
      } while (v <= 0);
      v = v * v * v;
      const u = this.next();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
    }
  }

  /** Poisson-distributed count (Knuth for small means, normal approximation above). */
  poisson(mean: number): number {
    if (mean <= 0) return 0;
    if (mean > 30) return Math.max(0, Math.round(this.normal(mean, Math.sqrt(mean))));
    const limit = Math.exp(-mean);
    let k = 0;
    let p = this.next();
    while (p > limit) {
      k++;
      p *= this.next();
    }
    return k;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('rng.pick: no items to pick from');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Pick by weight; weights need not sum to 1. */
  weighted<T>(items: readonly { value: T; weight: number }[]): T {
    const total = items.reduce((s, i) => s + i.weight, 0);
    let r = this.next() * total;
    for (const item of items) {
      r -= item.weight;
      if (r < 0) return item.value;
    }
    return items[items.length - 1]!.value;
  }

  /** Fisher–Yates, in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }
}

/** The model's seeded generator: the same split, shuffles and augmentations for the same seed. */
export class SeededRandom {
  private readonly rng: Rng;

  constructor(seed: number) {
    this.rng = Rng.fromState((Math.floor(seed) ^ 0x9e3779b9) >>> 0);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.rng.next();
  }

  uniform(lo: number, hi: number): number {
    return this.rng.uniform(lo, hi);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.rng.next() * n);
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    // −0 + z is z for every z, −0 included (0 + z would turn a −0 into +0).
    return this.rng.normal(-0, 1);
  }

  shuffle<T>(items: T[]): T[] {
    return this.rng.shuffle(items);
  }
}

/** mulberry32 from the raw state `seed >>> 0`, as a bare function: small, fast, replayable. */
export function mulberry32(seed: number): () => number {
  const rng = Rng.fromState(seed);
  return () => rng.next();
}

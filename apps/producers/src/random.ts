/**
 * Small seeded randomness for the simulators: same seed, same sequence, on every platform.
 * Math.random cannot be seeded, and the simulations need nothing stronger than this.
 */

/** mulberry32: a 32-bit state PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fresh seed when none was given. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 4294967296) >>> 0;
}

/** Helpers over one random source. */
export class Dice {
  constructor(readonly random: () => number) {}

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.random() * (max - min + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.random() < p;
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.random() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /** `ms` scaled by a factor in [1 - spread, 1 + spread], at least 1. */
  jitter(ms: number, spread = 0.4): number {
    return Math.max(1, Math.round(ms * (1 - spread + 2 * spread * this.random())));
  }

  /** Standard normal variate (Box-Muller). */
  normal(): number {
    const u = 1 - this.random(); // (0, 1]: log(0) would be -Infinity
    const v = this.random();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Short base-36 tag, to keep ids of one run apart from those of earlier runs. */
  tag(length = 4): string {
    let out = '';
    for (let i = 0; i < length; i++) out += Math.floor(this.random() * 36).toString(36);
    return out;
  }

  /** A copy of `items` in random order. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }
}

/** A number as a string with exactly two decimals, never "-0.00". */
export function fixed2(value: number): string {
  const text = value.toFixed(2);
  return text === '-0.00' ? '0.00' : text;
}

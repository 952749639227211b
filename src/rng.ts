/**
 * Injected randomness. Anything that needs random numbers takes an `Rng` argument instead of
 * calling Math.random, so tests and simulations replay exactly from a seed.
 *
 * An Rng carries mutable internal state: do not share one instance between threads (each worker
 * creates its own); sharing within one thread is fine.
 */
export interface Rng {
  /** A uniformly distributed number in [0, 1). */
  next(): number;
}

/** 2^-32: maps a uint32 onto [0, 1). */
const UINT32_TO_UNIT = 1 / 4294967296;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** SplitMix32-style finaliser: spreads one seed over independent-looking 32-bit words. */
function mix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

/**
 * A seeded xoshiro128** generator (period 2^128 - 1, 32-bit output, no allocation per call).
 * Equal seeds give equal sequences on every platform. The seed is reduced to a uint32
 * (fractions dropped, taken modulo 2^32); any value, including 0, is accepted.
 */
export function createRng(seed: number): Rng {
  const base = Number.isFinite(seed) ? Math.trunc(seed) >>> 0 : 0;
  let s0 = mix32(base + 0x9e3779b9);
  let s1 = mix32(base + 0x3c6ef372);
  let s2 = mix32(base + 0xdaa66d2b);
  let s3 = mix32(base + 0x78dde6e4);
  if ((s0 | s1 | s2 | s3) === 0) s0 = 1; // the all-zero state is the generator's only fixed point
  return {
    next(): number {
      const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
      const t = s1 << 9;
      s2 ^= s0;
      s3 ^= s1;
      s1 ^= s2;
      s0 ^= s3;
      s2 ^= t;
      s3 = rotl(s3, 11);
      return result * UINT32_TO_UNIT;
    },
  };
}

/** Unseeded randomness for production use, backed by Math.random. */
export const systemRng: Rng = { next: () => Math.random() };

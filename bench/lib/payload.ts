/**
 * Query inputs for the load generator. The coordinator builds the input rows once per run
 * (`buildRows`) into a SharedArrayBuffer that every generator thread reads; the threads turn
 * rows into pre-encoded requests (templates.ts) and decide per query whether it repeats a pool
 * input or is made unique (`CacheHitPolicy`).
 */
import { loadMnist, IMAGE_SIZE } from '../../src/modelgen/mnist-data.js';
import { createRng, type Rng } from '../../src/rng.js';
import type { InputSpec, PayloadSpec } from './spec.js';

export interface Rows {
  /** `count` rows of `elems` FP32 values, row-major, backed by a SharedArrayBuffer. */
  data: Float32Array;
  count: number;
  elems: number;
}

export function rowElements(input: InputSpec): number {
  return input.rowShape.reduce((a, b) => a * b, 1);
}

function toShared(src: Float32Array): Float32Array {
  const out = new Float32Array(new SharedArrayBuffer(src.byteLength));
  out.set(src);
  return out;
}

function randomRows(count: number, elems: number, seed: number): Float32Array {
  const rng = createRng(seed);
  const out = new Float32Array(count * elems);
  for (let i = 0; i < out.length; i++) out[i] = rng.next();
  return out;
}

/**
 * The rows a run draws from. `dataset` is MNIST's 2,000 held-out digits and needs 784-element
 * inputs; `fixed` is one row (the first held-out digit for 784-element inputs, else seeded
 * random values). With a cache-hit rate set, only the first `poolSize` rows are kept: they are
 * the repeated pool, and unique queries are pool rows with a marker written over them.
 */
export function buildRows(p: PayloadSpec, input: InputSpec, seed: number): Rows {
  const elems = rowElements(input);
  let data: Float32Array;
  if (p.source === 'dataset' || (p.source === 'fixed' && elems === IMAGE_SIZE)) {
    if (elems !== IMAGE_SIZE) throw new RangeError(`bench: the MNIST dataset needs ${IMAGE_SIZE}-element inputs, '${input.name}' has ${elems}`);
    const test = loadMnist().test;
    data = p.source === 'fixed' ? test.x.subarray(0, IMAGE_SIZE) : test.x;
  } else {
    data = randomRows(p.source === 'fixed' ? 1 : p.poolSize, elems, seed);
  }
  let count = data.length / elems;
  if (p.cacheHitRate !== undefined) count = Math.min(count, p.poolSize);
  return { data: toShared(data.subarray(0, count * elems)), count, elems };
}

/** Smallest and largest marker values: 7-digit integers, exact in FP32 and fixed-width in JSON. */
export const MARKER_MIN = 1_000_000;
const MARKER_SPAN = 9_000_000;
export const MARKER_DIGITS = 7;

/**
 * The two marker values of a thread's `n`-th unique query. Distinct (thread, n) pairs give
 * distinct markers for n below 9e6 * (9e6 / 64) (threads < 64).
 */
export function markerValues(thread: number, n: number): [number, number] {
  const lo = n % MARKER_SPAN;
  const hi = (Math.floor(n / MARKER_SPAN) * 64 + thread) % MARKER_SPAN;
  return [MARKER_MIN + lo, MARKER_MIN + hi];
}

/** Per-query decision: repeat a pool input (possible cache hit) or send a unique one. */
export class CacheHitPolicy {
  private readonly rng: Rng;
  private uniques = 0;

  constructor(
    private readonly hitRate: number | undefined,
    private readonly thread: number,
    seed: number,
  ) {
    this.rng = createRng(seed);
  }

  /** Undefined when the query repeats its pool input, else the marker making it unique. */
  next(): [number, number] | undefined {
    if (this.hitRate === undefined || this.rng.next() < this.hitRate) return undefined;
    return markerValues(this.thread, this.uniques++);
  }
}

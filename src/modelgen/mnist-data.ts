/**
 * The 10,000 MNIST digits shipped by the `mnist` package, split deterministically into a
 * training set and a held-out test set. Within each digit class, every fifth sample (index % 5 == 4)
 * is held out, so the split is stratified (8,000 train / 2,000 test). Each split interleaves the
 * classes round-robin (0,1,...,9,0,1,...) so any prefix is close to class-balanced.
 *
 * The result is computed once and cached; callers must treat the arrays as read-only.
 */
import { createRequire } from 'node:module';

export const IMAGE_SIZE = 784;
export const NUM_CLASSES = 10;
/** One held-out sample per this many, per class. */
const TEST_EVERY = 5;

export interface Split {
  /** n * 784 pixels, row-major, values in [0, 1]. */
  x: Float32Array;
  /** Labels 0..9. */
  y: Uint8Array;
  n: number;
}

export interface Mnist {
  train: Split;
  test: Split;
}

/** The per-class pixel arrays, as the package exposes them (`mnist[d].raw`, `mnist[d].length`). */
interface DigitSource {
  raw: ArrayLike<number>;
  length: number;
}

let cached: Mnist | undefined;

function assemble(digits: readonly DigitSource[], picks: readonly number[][]): Split {
  const n = picks.reduce((a, p) => a + p.length, 0);
  const x = new Float32Array(n * IMAGE_SIZE);
  const y = new Uint8Array(n);
  const longest = Math.max(...picks.map((p) => p.length));
  let row = 0;
  for (let r = 0; r < longest; r++) {
    for (let c = 0; c < NUM_CLASSES; c++) {
      const sample = picks[c]![r];
      if (sample === undefined) continue;
      const raw = digits[c]!.raw;
      const src = sample * IMAGE_SIZE;
      const dst = row * IMAGE_SIZE;
      for (let i = 0; i < IMAGE_SIZE; i++) x[dst + i] = raw[src + i]!;
      y[row++] = c;
    }
  }
  return { x, y, n };
}

export function loadMnist(): Mnist {
  if (cached) return cached;
  const mnist = createRequire(import.meta.url)('mnist') as DigitSource[];
  const digits = Array.from({ length: NUM_CLASSES }, (_, c) => mnist[c]!);
  const trainPicks: number[][] = [];
  const testPicks: number[][] = [];
  for (const d of digits) {
    const train: number[] = [];
    const test: number[] = [];
    for (let i = 0; i < d.length; i++) (i % TEST_EVERY === TEST_EVERY - 1 ? test : train).push(i);
    trainPicks.push(train);
    testPicks.push(test);
  }
  cached = { train: assemble(digits, trainPicks), test: assemble(digits, testPicks) };
  return cached;
}

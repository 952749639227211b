import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng, systemRng } from '../../src/rng.js';

function take(rng: { next(): number }, n: number): number[] {
  return Array.from({ length: n }, () => rng.next());
}

test('equal seeds give equal sequences, different seeds different ones', () => {
  assert.deepEqual(take(createRng(42), 100), take(createRng(42), 100));
  assert.notDeepEqual(take(createRng(42), 100), take(createRng(43), 100));
  assert.notDeepEqual(take(createRng(0), 100), take(createRng(1), 100));
});

test('seeds are reduced to uint32: fractions dropped, taken modulo 2^32', () => {
  assert.deepEqual(take(createRng(7.9), 10), take(createRng(7), 10));
  assert.deepEqual(take(createRng(2 ** 32 + 5), 10), take(createRng(5), 10));
  assert.deepEqual(take(createRng(-1), 10), take(createRng(2 ** 32 - 1), 10));
});

test('a generator does not repeat its first outputs soon', () => {
  const xs = take(createRng(1), 10_000);
  assert.equal(new Set(xs).size, xs.length);
});

test('outputs lie in [0, 1) and are close to uniform', () => {
  const rng = createRng(12345);
  const n = 100_000;
  const buckets = new Array<number>(20).fill(0);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = rng.next();
    assert.ok(x >= 0 && x < 1, `out of range: ${x}`);
    sum += x;
    buckets[Math.floor(x * 20)]! += 1;
  }
  assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
  // Chi-square with 19 degrees of freedom: the 99.9th percentile is 43.8.
  const expected = n / 20;
  const chi2 = buckets.reduce((acc, b) => acc + (b - expected) ** 2 / expected, 0);
  assert.ok(chi2 < 43.8, `chi-square ${chi2}`);
});

test('consecutive outputs are uncorrelated', () => {
  const xs = take(createRng(99), 50_000);
  let cov = 0;
  for (let i = 1; i < xs.length; i++) cov += (xs[i]! - 0.5) * (xs[i - 1]! - 0.5);
  const corr = cov / (xs.length - 1) / (1 / 12);
  assert.ok(Math.abs(corr) < 0.02, `lag-1 correlation ${corr}`);
});

test('systemRng yields numbers in [0, 1)', () => {
  for (const x of take(systemRng, 1000)) assert.ok(x >= 0 && x < 1);
});

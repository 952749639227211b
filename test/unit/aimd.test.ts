import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AIMD_DEFAULTS, aimdInitial, aimdNext, type AimdConfig } from '../../src/engine/aimd.js';
import { Prng } from '../../src/modelgen/prng.js';

const cfg = (over: Partial<AimdConfig> = {}): AimdConfig => ({ ...AIMD_DEFAULTS, objectiveMs: 10, maxBatch: 64, ...over });

describe('aimd: single steps', () => {
  it('starts at 1', () => {
    assert.equal(aimdInitial({ maxBatch: 64 }), 1);
    assert.equal(aimdInitial({ maxBatch: 1 }), 1);
  });

  it('uses +2 / x0.9 / 10% band by default', () => {
    assert.deepEqual({ ...AIMD_DEFAULTS }, { additive: 2, multiplicative: 0.9, band: 0.1 });
  });

  it('adds 2 when latency is below 90% of the objective and the batch filled the cap', () => {
    assert.equal(aimdNext(1, { rows: 1, latencyMs: 1 }, cfg()), 3);
    assert.equal(aimdNext(10, { rows: 10, latencyMs: 8.99 }, cfg()), 12);
    assert.equal(aimdNext(10, { rows: 12, latencyMs: 0 }, cfg()), 12, 'a batch larger than the cap also counts as full');
  });

  it('holds when the batch did not fill the cap', () => {
    assert.equal(aimdNext(10, { rows: 9, latencyMs: 1 }, cfg()), 10);
    assert.equal(aimdNext(10, { rows: 1, latencyMs: 0 }, cfg()), 10);
    // Cut short by the cap (the next query of 4 rows did not fit): it counts as full.
    assert.equal(aimdNext(10, { rows: 8, latencyMs: 1, capLimited: true }, cfg()), 12);
    assert.equal(aimdNext(10, { rows: 8, latencyMs: 9.5, capLimited: true }, cfg()), 10, 'within the band: hold');
  });

  it('holds within [90%, 100%] of the objective, boundaries included', () => {
    for (const latencyMs of [9, 9.5, 10]) {
      assert.equal(aimdNext(20, { rows: 20, latencyMs }, cfg()), 20, `latency ${latencyMs}`);
    }
  });

  it('multiplies by 0.9 (floored) above the objective, never below 1', () => {
    assert.equal(aimdNext(20, { rows: 20, latencyMs: 10.01 }, cfg()), 18);
    assert.equal(aimdNext(10, { rows: 10, latencyMs: 50 }, cfg()), 9);
    assert.equal(aimdNext(5, { rows: 1, latencyMs: 11 }, cfg()), 4, 'decrease applies even to a partial batch');
    assert.equal(aimdNext(2, { rows: 2, latencyMs: 11 }, cfg()), 1);
    assert.equal(aimdNext(1, { rows: 1, latencyMs: 1000 }, cfg()), 1);
  });

  it('never exceeds maxBatch', () => {
    assert.equal(aimdNext(63, { rows: 63, latencyMs: 1 }, cfg()), 64);
    assert.equal(aimdNext(64, { rows: 64, latencyMs: 1 }, cfg()), 64);
    assert.equal(aimdNext(1, { rows: 1, latencyMs: 1 }, cfg({ maxBatch: 1 })), 1);
    assert.equal(aimdNext(1, { rows: 1, latencyMs: 1 }, cfg({ maxBatch: 2 })), 2);
  });

  it('honours non-default parameters', () => {
    const c = cfg({ additive: 5, multiplicative: 0.5, band: 0.2 });
    assert.equal(aimdNext(10, { rows: 10, latencyMs: 7.9 }, c), 15);
    assert.equal(aimdNext(10, { rows: 10, latencyMs: 8 }, c), 10);
    assert.equal(aimdNext(10, { rows: 10, latencyMs: 10.5 }, c), 5);
  });

  it('never leaves [1, maxBatch] from any in-range state (seeded random walk)', () => {
    const prng = new Prng(7);
    const c = cfg({ maxBatch: 37 });
    let cap = aimdInitial(c);
    for (let i = 0; i < 10_000; i++) {
      const rows = 1 + prng.int(cap + 2);
      cap = aimdNext(cap, { rows, latencyMs: prng.uniform(0, 20) }, c);
      assert.ok(Number.isInteger(cap) && cap >= 1 && cap <= 37, `cap ${cap}`);
    }
  });
});

/** A saturated server: every batch fills the cap and takes a + b x rows (+ optional noise) ms. */
function simulate(c: AimdConfig, a: number, b: number, steps: number, start = aimdInitial(c), noise?: (i: number) => number): number[] {
  const caps: number[] = [];
  let cap = start;
  for (let i = 0; i < steps; i++) {
    const latencyMs = a + b * cap + (noise ? noise(i) : 0);
    cap = aimdNext(cap, { rows: cap, latencyMs }, c);
    caps.push(cap);
  }
  return caps;
}

/** The largest cap whose latency meets the objective. */
function bestCap(c: AimdConfig, a: number, b: number): number {
  return Math.min(c.maxBatch, Math.floor((c.objectiveMs - a) / b));
}

describe('aimd: closed loop with latency = a + b x rows', () => {
  const cases = [
    { a: 1, b: 0.1, objectiveMs: 10, maxBatch: 256 },
    { a: 2, b: 0.05, objectiveMs: 20, maxBatch: 1024 },
    { a: 0.5, b: 0.02, objectiveMs: 5, maxBatch: 512 },
    { a: 3, b: 0.25, objectiveMs: 50, maxBatch: 512 },
  ];
  for (const { a, b, objectiveMs, maxBatch } of cases) {
    it(`converges into the band and stays there (a=${a}, b=${b}, objective=${objectiveMs})`, () => {
      const c = cfg({ objectiveMs, maxBatch });
      const best = bestCap(c, a, b);
      const caps = simulate(c, a, b, 1000);
      const tail = caps.slice(-200);
      const final = tail[tail.length - 1]!;
      assert.ok(tail.every((x) => x === final), 'steady state');
      const lat = a + b * final;
      assert.ok(lat <= objectiveMs && lat >= 0.9 * objectiveMs, `final cap ${final} latency ${lat}`);
      assert.ok(final <= best, `final cap ${final}, best ${best}`);
    });
  }

  it('converges from above (cap far too large) as well', () => {
    const c = cfg({ objectiveMs: 10, maxBatch: 1000 });
    const caps = simulate(c, 1, 0.1, 1000, 1000);
    const final = caps[caps.length - 1]!;
    const lat = 1 + 0.1 * final;
    assert.ok(lat <= 10 && lat >= 9, `final cap ${final} latency ${lat}`);
    assert.ok(caps.slice(-200).every((x) => x === final));
  });

  it('pins at maxBatch when the objective allows more', () => {
    const c = cfg({ objectiveMs: 100, maxBatch: 32 });
    const caps = simulate(c, 1, 0.1, 100);
    assert.deepEqual(caps.slice(-50), new Array(50).fill(32));
  });

  it('settles at 1 when even a single row misses the objective', () => {
    const c = cfg({ objectiveMs: 10, maxBatch: 64 });
    const caps = simulate(c, 11, 0.1, 100, 64);
    assert.equal(caps[caps.length - 1], 1);
  });

  it('with seeded latency noise, stays near the best cap and rarely misses the objective', () => {
    const c = cfg({ objectiveMs: 10, maxBatch: 256 });
    const prng = new Prng(99);
    const a = 1;
    const b = 0.1;
    const best = bestCap(c, a, b);
    let over = 0;
    let cap = aimdInitial(c);
    let capSum = 0;
    const steps = 5000;
    for (let i = 0; i < steps; i++) {
      const latencyMs = (a + b * cap) * (1 + prng.uniform(-0.03, 0.03));
      if (i >= 500) {
        capSum += cap;
        if (latencyMs > c.objectiveMs) over++;
      }
      cap = aimdNext(cap, { rows: cap, latencyMs }, c);
    }
    const mean = capSum / (steps - 500);
    assert.ok(mean <= best && mean >= 0.8 * best, `mean cap ${mean.toFixed(1)}, best ${best}`);
    assert.ok(over / (steps - 500) < 0.05, `over objective ${over} times`);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeDelayModel, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { newHistogram } from '../../src/metrics/latency.js';
import { Prng } from '../../src/modelgen/prng.js';
import { bytesOf, tempDir } from './helpers.js';
import { rssMiB, spawnServer, type Proc } from './process-helpers.js';

/**
 * Overload: measure the server's capacity, then offer 3x that in an open loop (Poisson) for
 * 30 s. Admitted queries must meet the SLO at p99, refusals must come within 5 ms, memory must
 * stay bounded, and the books must balance: sent = answered + refused (+ expired), none lost.
 */
const SLO_US = 100_000;
const DURATION_S = Number(process.env.SKIFF_OVERLOAD_SECONDS ?? 30);

describe('overload at 3x capacity (open loop)', () => {
  const tmp = tempDir();
  let server: Proc;
  let client: SkiffClient;
  const x = bytesOf(new Float32Array([1, 2, 3, 4]));
  const query = () => client.infer({ model: 'work', timeoutUs: SLO_US, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: x }] });

  before(async () => {
    // A model with a fixed cost per batch and per row (it sleeps, like a remote accelerator):
    // capacity ~300 rows/s on one replica, so 3x that is light work for the generator.
    writeDelayModel(tmp.dir, 'work', { delayMs: 10, perRowUs: 2000, dim: 4 });
    writeModelConfig(tmp.dir, 'work', { max_batch_size: 8, cache_bytes: 0, latency_objective_us: 40_000 });
    server = await spawnServer(['--model-repository', tmp.dir]);
    client = await SkiffClient.connect(server.wsUrl);
  });
  after(async () => {
    await client?.close();
    server?.child.kill('SIGKILL');
    await server?.exited;
    tmp.cleanup();
  });

  it(`keeps admitted p99 within the SLO, refuses fast, bounds memory, loses nothing (${DURATION_S} s)`, { timeout: (DURATION_S + 60) * 1000 }, async () => {
    // Capacity: closed loop, enough in flight to keep batches full.
    let done = 0;
    let stop = false;
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 64 }, async () => {
      while (!stop) {
        const r = await query();
        if (!r.error) done++;
        if (performance.now() - t0 > 3000) stop = true;
      }
    }));
    const capacity = done / ((performance.now() - t0) / 1000);
    const rate = 3 * capacity;
    const rss0 = rssMiB(server.child.pid!);
    const { monitorEventLoopDelay } = await import('node:perf_hooks');
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();

    const ok = newHistogram();
    const refusedLat = newHistogram();
    const stats = { sent: 0, ok: 0, refused: 0, expired: 0, other: [] as string[], lost: 0, refusedSlow: 0 };
    const rng = new Prng(1);
    let outstanding = 0;
    let drained: (() => void) | null = null;
    const start = performance.now();
    let next = start;
    while (next - start < DURATION_S * 1000) {
      // Poisson arrivals: exponential gaps; send everything due, then yield to the loop.
      const now = performance.now();
      while (next <= now) {
        // Admitted latency counts from the intended send time (no coordinated omission); how fast
        // a refusal comes back is measured from the actual send.
        const intendedAt = next;
        const sentAt = performance.now();
        stats.sent++;
        outstanding++;
        void query().then((r) => {
          const done = performance.now();
          const us = (done - intendedAt) * 1000;
          if (!r.error) {
            stats.ok++;
            ok.recordValue(Math.max(1, Math.round(us)));
          } else if (r.error.code === 'OVERLOADED') {
            stats.refused++;
            const refusalUs = (done - sentAt) * 1000;
            refusedLat.recordValue(Math.max(1, Math.round(refusalUs)));
            if (refusalUs > 5000) stats.refusedSlow++;
          } else if (r.error.code === 'DEADLINE_EXCEEDED') stats.expired++;
          else stats.other.push(r.error.code);
        }, () => { stats.lost++; }).finally(() => {
          if (--outstanding === 0) drained?.();
        });
        next += (-Math.log(1 - rng.next()) / rate) * 1000;
      }
      // Sleep until the next arrival is due (~1 ms timer granularity; arrivals due meanwhile go together).
      await new Promise((r) => setTimeout(r, Math.max(0, next - performance.now())));
    }
    if (outstanding > 0) await new Promise<void>((r) => { drained = r; });
    const rss1 = rssMiB(server.child.pid!);
    const line = `overload: capacity ${capacity.toFixed(0)}/s, offered ${rate.toFixed(0)}/s for ${DURATION_S} s: sent ${stats.sent}, ` +
      `answered ${stats.ok} (p50 ${(ok.getValueAtPercentile(50) / 1000).toFixed(1)} ms, p99 ${(ok.getValueAtPercentile(99) / 1000).toFixed(1)} ms), ` +
      `refused ${stats.refused} (p50 ${(refusedLat.getValueAtPercentile(50) / 1000).toFixed(2)} ms, p99 ${(refusedLat.getValueAtPercentile(99) / 1000).toFixed(2)} ms, max ${(refusedLat.maxValue / 1000).toFixed(2)} ms, ${stats.refusedSlow} over 5 ms), ` +
      `expired ${stats.expired}, lost ${stats.lost}; server RSS ${rss0.toFixed(0)} -> ${rss1.toFixed(0)} MiB`;
    console.log(line + `; generator loop lag p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms max ${(lag.max / 1e6).toFixed(1)} ms`);
    assert.equal(stats.lost, 0, 'no query lost');
    assert.deepEqual(stats.other, []);
    assert.equal(stats.ok + stats.refused + stats.expired, stats.sent, 'the books balance');
    assert.ok(stats.refused > stats.sent / 3, 'most of the excess is refused');
    assert.ok(ok.getValueAtPercentile(99) <= SLO_US, `admitted p99 ${ok.getValueAtPercentile(99)} µs`);
    assert.ok(stats.expired <= stats.sent * 0.01, `expired ${stats.expired}`);
    assert.ok(refusedLat.getValueAtPercentile(99) <= 5000, 'refusals within 5 ms');
    assert.ok(rss1 - rss0 < 200, `RSS grew ${rss1 - rss0} MiB`);
  });
});

/**
 * T9: a model container (a Python process behind Clipper's RPC) against the same no-op model in
 * a worker thread, in the same run: predictions/s at batch 1 and at batch 64, and the batch
 * round trip (a batch at the head of its replica until its answer is read, as the executor
 * measures it) at p50 and p99 with one query in flight. Targets: the container's batch round
 * trip at p50 at most 150 µs above the worker thread's, and at least 50k predictions/s through
 * the Python no-op container at batch 64.
 *
 * Needs Debian's python3 with zmq and numpy; without them the target reports why and is skipped.
 */
import { execFileSync } from 'node:child_process';
import { fmtInt, fmtUs } from '../lib/format.js';
import type { LatencySnapshot } from '../../src/metrics/latency.js';
import type { BenchEnv, Target } from './types.js';
import type { BenchContext } from '../lib/context.js';

interface Stats {
  replicas: number;
  latency: { batchRunUs: LatencySnapshot; computeUs: LatencySnapshot; batchRows: LatencySnapshot };
}

function pythonReady(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import zmq, numpy'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const ROUNDS = 3;
const MODELS = { w1: 'noop_w1', w64: 'noop_w64', c1: 'noop_c1', c64: 'noop_c64' } as const;

async function connected(env: BenchEnv, model: string): Promise<void> {
  const end = Date.now() + 30_000;
  while ((await env.skiff.call<Stats>('stats', { model })).replicas < 1) {
    if (Date.now() > end) throw new Error(`${model}: no container connected within 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One query in flight: the executor's batch round trip for `model`. */
async function roundTrip(ctx: BenchContext, env: BenchEnv, model: string, label: string): Promise<{ batch: LatencySnapshot; run: LatencySnapshot }> {
  const m = env.models[model]!;
  await env.skiff.call('reset', { model });
  await ctx.load(label, ctx.spec({ protocol: 'ws', url: env.wsUrl, model, timeoutUs: 0 }, m.input, { kind: 'closed', concurrency: 1 }, { connections: 1 }));
  const s = (await env.skiff.call<Stats>('stats', { model })).latency;
  return { batch: s.batchRunUs, run: s.computeUs };
}

async function throughput(ctx: BenchContext, env: BenchEnv, model: string, label: string, batch: number): Promise<{ rate: number; meanBatch: number }> {
  const m = env.models[model]!;
  await env.skiff.call('reset', { model });
  const perFrame = batch === 1 ? 1 : 16;
  const inFlight = batch === 1 ? 64 : 32; // frames: 64 queries, or 512 queries for batches of 64
  const r = await ctx.load(label, ctx.spec({ protocol: 'ws', url: env.wsUrl, model, timeoutUs: 0 }, m.input, { kind: 'closed', concurrency: inFlight }, { requestsPerFrame: perFrame }));
  const s = await env.skiff.call<Stats>('stats', { model });
  return { rate: r.ok / r.seconds, meanBatch: s.latency.batchRows.mean };
}

export const t9: Target = {
  id: 'T9',
  title: 'model containers: Python no-op container vs the same no-op in a worker thread (RPC overhead p50 <= 150 µs, >= 50k/s at batch 64)',
  models: () => pythonReady()
    ? [
      { name: MODELS.w1, kind: 'noop', config: { max_batch_size: 1 } },
      { name: MODELS.w64, kind: 'noop', config: { max_batch_size: 64 } },
      { name: MODELS.c1, kind: 'noop-container', config: { max_batch_size: 1 } },
      { name: MODELS.c64, kind: 'noop-container', config: { max_batch_size: 64 } },
    ]
    : [],
  async run(ctx, env) {
    if (!env.models[MODELS.c1]) {
      return { id: 'T9', title: this.title, value: NaN, measured: 'skipped', target: '', pass: null, lines: ['/usr/bin/python3 with zmq and numpy not found: install python3-zmq python3-numpy'], data: {} };
    }
    for (const m of [MODELS.c1, MODELS.c64]) await connected(env, m);
    // One query in flight, the worker thread and the container taking turns (three rounds): the
    // machine's noise then falls on both alike, and the overhead is the median of the rounds'.
    const rounds: { rtW: LatencySnapshot; runW: LatencySnapshot; rtC: LatencySnapshot; runC: LatencySnapshot; over50: number; over99: number }[] = [];
    for (let k = 1; k <= ROUNDS; k++) {
      const w = await roundTrip(ctx, env, MODELS.w1, `T9 worker no-op, 1 in flight (round ${k})`);
      const c = await roundTrip(ctx, env, MODELS.c1, `T9 container no-op, 1 in flight (round ${k})`);
      rounds.push({ rtW: w.batch, runW: w.run, rtC: c.batch, runC: c.run, over50: c.batch.p50 - w.batch.p50, over99: c.batch.p99 - w.batch.p99 });
    }
    const mid = [...rounds].sort((a, b) => a.over50 - b.over50)[ROUNDS >> 1]!;
    const { rtW, runW, rtC, runC } = mid;
    const w1 = await throughput(ctx, env, MODELS.w1, 'T9 worker no-op, batch 1', 1);
    const c1 = await throughput(ctx, env, MODELS.c1, 'T9 container no-op, batch 1', 1);
    const w64 = await throughput(ctx, env, MODELS.w64, 'T9 worker no-op, batch <= 64', 64);
    const c64 = await throughput(ctx, env, MODELS.c64, 'T9 container no-op, batch <= 64', 64);
    const overP50 = mid.over50;
    const overP99 = mid.over99;
    const pass = overP50 <= 150 && c64.rate >= 50_000;
    return {
      id: 'T9', title: this.title, value: overP50,
      measured: `+${fmtUs(overP50)} p50, ${fmtInt(c64.rate)}/s at batch 64`,
      target: '<= +150 µs and >= 50,000/s', pass,
      lines: [
        `RPC overhead p50 per round: ${rounds.map((r) => `+${fmtUs(r.over50)}`).join(', ')} (the median round below)`,
        `batch round trip, one in flight: worker p50 ${fmtUs(rtW.p50)} p99 ${fmtUs(rtW.p99)}; container p50 ${fmtUs(rtC.p50)} p99 ${fmtUs(rtC.p99)}; RPC overhead p50 +${fmtUs(overP50)}, p99 +${fmtUs(overP99)}`,
        `what the runner itself timed: worker (the model's run in its thread) p50 ${fmtUs(runW.p50)}; container (request sent to answer read) p50 ${fmtUs(runC.p50)} p99 ${fmtUs(runC.p99)}`,
        `batch 1: worker ${fmtInt(w1.rate)}/s, container ${fmtInt(c1.rate)}/s (${(c1.rate / w1.rate).toFixed(2)}x)`,
        `batch <= 64: worker ${fmtInt(w64.rate)}/s (mean batch ${w64.meanBatch.toFixed(1)}), container ${fmtInt(c64.rate)}/s (mean batch ${c64.meanBatch.toFixed(1)}) (${(c64.rate / w64.rate).toFixed(2)}x)`,
      ],
      data: { roundTrip: { worker: rtW, container: rtC, rounds }, batch1: { worker: w1, container: c1 }, batch64: { worker: w64, container: c64 } },
    };
  },
};

/**
 * T8: event-loop lag on the uWS thread stays under 5 ms p99 at full load.
 *
 * The server process records its event-loop delay (perf_hooks.monitorEventLoopDelay, 1 ms
 * resolution) on the thread that runs uWS, the executors and the frontends. It is reset before
 * and read after each of three saturating loads: the tiny model at 256 queries per frame over
 * WebSocket, the compute MLP over HTTP JSON, and the compute MLP over WebSocket.
 */
import { fmtInt } from '../lib/format.js';
import { describeServerWindow } from '../lib/server-stats.js';
import { describeGaps, type GapSummary } from '../lib/loop-gaps.js';
import type { Target } from './types.js';

const LIMIT_MS = 5;

interface Lag {
  p50: number;
  p99: number;
  max: number;
}

export const t8: Target = {
  id: 'T8',
  title: 'event-loop lag on the uWS thread < 5 ms p99 at full load',
  models: () => [
    { name: 'tiny', kind: 'tiny', config: { max_batch_size: 512 } },
    { name: 'compute', kind: 'compute', config: { max_batch_size: 512, latency_objective_us: 12000 } },
  ],
  async run(ctx, env) {
    const tiny = env.models.tiny!;
    const compute = env.models.compute!;
    const loads = [
      { label: 'T8 tiny WS 256/frame', spec: ctx.spec({ protocol: 'ws', url: env.wsUrl, model: tiny.name, timeoutUs: 0 }, tiny.input, { kind: 'closed', concurrency: 32 }, { requestsPerFrame: 256 }) },
      { label: 'T8 compute HTTP JSON', spec: ctx.spec({ protocol: 'http', url: env.httpUrl, model: compute.name, timeoutUs: 0 }, compute.input, { kind: 'closed', concurrency: 128 }) },
      { label: 'T8 compute WS', spec: ctx.spec({ protocol: 'ws', url: env.wsUrl, model: compute.name, timeoutUs: 0 }, compute.input, { kind: 'closed', concurrency: 512 }) },
    ];
    const lines: string[] = [];
    let worst = 0;
    const data: Record<string, unknown> = {};
    for (const l of loads) {
      await env.skiff.call('reset', {});
      await env.skiff.call('gapsStart', {});
      const r = await ctx.load(l.label, l.spec, { probe: env.skiff });
      const lag = await env.skiff.call<Lag>('loopLag');
      const gaps = await env.skiff.call<GapSummary | null>('gapsStop', {});
      worst = Math.max(worst, lag.p99);
      lines.push(`${l.label}: ${fmtInt(r.throughput)} req/s; loop lag p50 ${lag.p50.toFixed(2)} ms, p99 ${lag.p99.toFixed(2)} ms, max ${lag.max.toFixed(1)} ms`);
      if (r.server) lines.push(`${l.label}: ${describeServerWindow(r.server)}`);
      if (gaps) lines.push(`${l.label}: ${describeGaps(gaps)}`);
      data[l.label] = { throughput: r.throughput, lag, server: r.server, gaps };
    }
    return {
      id: 'T8', title: this.title, value: worst, measured: `worst p99 ${worst.toFixed(2)} ms`, target: `< ${LIMIT_MS} ms`, pass: worst < LIMIT_MS, lines, data,
    };
  },
};

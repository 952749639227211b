/**
 * Latency against throughput on the compute-bound MLP (full run): Skiff over WebSocket (16
 * queries per frame) and over HTTP JSON, and the hand-written node:http baseline (b), each at
 * fixed fractions of its own closed-loop saturation throughput, open loop. These runs are the
 * curves of the results folder's SVG plot; there is no target to pass.
 */
import { fmtInt, fmtUs } from '../lib/format.js';
import type { LoadSpec, TargetSpec } from '../lib/spec.js';
import type { Target } from './types.js';

const FRACTIONS = [0.2, 0.4, 0.6, 0.8, 0.9, 1.0];

export const sweepCurves: Target = {
  id: 'curves',
  title: 'latency vs throughput sweep, compute MLP (for the plot)',
  models: () => [{ name: 'compute', kind: 'compute', config: { max_batch_size: 512, latency_objective_us: 12000 } }],
  async run(ctx, env) {
    const m = env.models.compute!;
    const lines: string[] = [];
    const sweeps: { series: string; target: TargetSpec; extra: Partial<LoadSpec>; satConcurrency: number }[] = [
      { series: 'Skiff WS 16/frame, compute MLP (sweep)', target: { protocol: 'ws', url: env.wsUrl, model: m.name, timeoutUs: 0 }, extra: { requestsPerFrame: 16 }, satConcurrency: 48 },
      { series: 'Skiff HTTP JSON, compute MLP (sweep)', target: { protocol: 'http', url: env.httpUrl, model: m.name, timeoutUs: 0 }, extra: { connections: 128 }, satConcurrency: 64 },
      { series: 'naive node:http (b), compute MLP (sweep)', target: { protocol: 'http', url: await env.naiveUrl(m), model: m.name, timeoutUs: 0 }, extra: { connections: 64 }, satConcurrency: 32 },
    ];
    for (const s of sweeps) {
      const sat = await ctx.load(`curve ${s.series}: saturation`, ctx.spec(s.target, m.input, { kind: 'closed', concurrency: s.satConcurrency }, { ...s.extra, connections: s.target.protocol === 'http' ? s.satConcurrency : 4 }));
      const points: string[] = [];
      for (const f of FRACTIONS) {
        const r = await ctx.load(`curve ${s.series} @${f * 100}%`, ctx.spec(s.target, m.input, { kind: 'open', rate: Math.round(sat.throughput * f) }, s.extra), { series: s.series });
        points.push(`${fmtInt(r.throughput)}/s: p99 ${fmtUs(r.latencyUs.p99)}`);
      }
      lines.push(`${s.series}: ${points.join('; ')}`);
    }
    return { id: 'curves', title: this.title, value: NaN, measured: `${sweeps.length} curves`, target: 'report', pass: null, lines, data: {} };
  },
};

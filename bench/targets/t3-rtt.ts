/**
 * T3: on the tiny model with one query in flight, Skiff's round trip is at most 1.5x the uWS
 * echo round trip of the same payload at p50, and at most 2x at p99.
 *
 * Both sides: one connection, closed loop with one frame (one query) in flight, the same
 * pre-encoded frames; the echo server (baseline c) returns each frame unchanged. The raw ORT
 * run time of the same model at batch 1 and the round trip of an empty piscina task (the thread
 * hand-off every batch pays) are measured alongside: Skiff's round trip cannot be shorter than
 * the echo round trip plus one hand-off plus one model run.
 */
import { fmtRatio, fmtUs } from '../lib/format.js';
import { measureThreadHop } from '../baselines/thread-hop.js';
import { describeServerWindow } from '../lib/server-stats.js';
import type { Target } from './types.js';

export const TINY_BATCHES = [1, 16, 64, 256, 512, 1024];

export const t3: Target = {
  id: 'T3',
  title: 'tiny MLP, one query in flight: round trip vs uWS echo (p50 <= 1.5x, p99 <= 2x)',
  models: () => [{ name: 'tiny', kind: 'tiny', config: { max_batch_size: 512 } }],
  async run(ctx, env) {
    const m = env.models.tiny!;
    const extra = { connections: 1, durationMs: ctx.quick ? 2000 : 6000, warmupMs: ctx.quick ? 500 : 1500 };
    const mode = { kind: 'closed' as const, concurrency: 1 };
    const echo = await ctx.load('T3 uWS echo (c)', ctx.spec({ protocol: 'ws-echo', url: await env.echoUrl(), model: m.name, timeoutUs: 0 }, m.input, mode, extra));
    const skiff = await ctx.load('T3 Skiff tiny', ctx.spec({ protocol: 'ws', url: env.wsUrl, model: m.name, timeoutUs: 0 }, m.input, mode, extra), { probe: env.skiff });
    const raw = await ctx.rawOrt(m.file, m.input, 1, TINY_BATCHES);
    const run1 = raw.sweep.find((p) => p.batch === 1)!.runUs;
    const hop = await measureThreadHop(ctx.quick ? 2000 : 10000);
    const floor = echo.latencyUs.p50 + hop.p50 + run1.p50;
    const floor99 = echo.latencyUs.p99 + hop.p99 + run1.p99;
    const p50 = skiff.latencyUs.p50 / echo.latencyUs.p50;
    const p99 = skiff.latencyUs.p99 / echo.latencyUs.p99;
    const rawP50 = skiff.rawLatencyUs.p50 / echo.rawLatencyUs.p50;
    const rawP99 = skiff.rawLatencyUs.p99 / echo.rawLatencyUs.p99;
    return {
      id: 'T3', title: this.title, value: p50, measured: `p50 ${fmtRatio(p50)}, p99 ${fmtRatio(p99)}`,
      target: 'p50 <= 1.5x and p99 <= 2x', pass: p50 <= 1.5 && p99 <= 2,
      lines: [
        `echo: p50 ${fmtUs(echo.latencyUs.p50)}, p99 ${fmtUs(echo.latencyUs.p99)} (uncorrected p99 ${fmtUs(echo.rawLatencyUs.p99)})`,
        `Skiff: p50 ${fmtUs(skiff.latencyUs.p50)}, p99 ${fmtUs(skiff.latencyUs.p99)} (uncorrected p99 ${fmtUs(skiff.rawLatencyUs.p99)})`,
        `ratios: p50 ${fmtRatio(p50)}, p99 ${fmtRatio(p99)} (uncorrected: p50 ${fmtRatio(rawP50)}, p99 ${fmtRatio(rawP99)})`,
        `floor measured in the same run: raw ORT run at batch 1 p50 ${fmtUs(run1.p50)} (p99 ${fmtUs(run1.p99)}); empty piscina task round trip p50 ${fmtUs(hop.p50)} (p99 ${fmtUs(hop.p99)})`,
        `echo + thread hand-off + model run = ${fmtUs(floor)} = ${fmtRatio(floor / echo.latencyUs.p50)} of echo at p50, before any serving work`,
        `Skiff against that floor: p50 ${fmtRatio(skiff.latencyUs.p50 / floor)}, p99 ${fmtRatio(skiff.latencyUs.p99 / floor99)} (the same sum at p99: ${fmtUs(floor99)}; issue 15's target: p50 <= 1.25x, p99 <= 2x)`,
        ...(skiff.server ? [`Skiff's ${describeServerWindow(skiff.server)}`] : []),
      ],
      data: { echo, skiff, rawBatch1: run1, threadHop: hop, floorUs: { p50: floor, p99: floor99 } },
    };
  },
};

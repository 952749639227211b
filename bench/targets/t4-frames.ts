/**
 * T4: on the tiny model with many queries per frame, at least 500k predictions/s (the figure
 * is reported whether or not it is reached).
 *
 * Closed loop over WebSocket: 256 single-row queries per frame, 8 frames in flight per
 * connection, 4 connections. Shown with it, measured in the same run: the uWS echo of the same
 * frames (the transport limit) and the raw ORT rows/s of the same model (the compute limit).
 */
import { fmtInt } from '../lib/format.js';
import { TINY_BATCHES } from './t3-rtt.js';
import { describeBreakdown, withBreakdown } from './breakdown.js';
import { describeServerWindow } from '../lib/server-stats.js';
import type { Target } from './types.js';

const TARGET = 500_000;
const PER_FRAME = 256;
/** Issue 15: main-thread CPU per query at T4 (reported beside the verdict, not judged). */
const CPU_TARGET_US = 4;

export const t4: Target = {
  id: 'T4',
  title: 'tiny MLP, 256 queries per frame: >= 500k predictions/s',
  models: () => [
    { name: 'tiny', kind: 'tiny', config: { max_batch_size: 512 } },
    { name: 'identity', kind: 'identity', config: { max_batch_size: 1024 } },
  ],
  async run(ctx, env) {
    const m = env.models.tiny!;
    const extra = { requestsPerFrame: PER_FRAME, connections: 4 };
    const mode = { kind: 'closed' as const, concurrency: 32 };
    const raw = await ctx.rawOrt(m.file, m.input, 1, TINY_BATCHES);
    const { result: skiff, breakdown } = await withBreakdown(env.skiff, m.name, raw,
      () => ctx.load('T4 Skiff tiny', ctx.spec({ protocol: 'ws', url: env.wsUrl, model: m.name, timeoutUs: 0 }, m.input, mode, extra), { probe: env.skiff }));
    const id = env.models.identity!;
    // The identity model (transport and engine only, no compute): full run only.
    const identity = ctx.quick ? null : await ctx.load('T4 Skiff identity', ctx.spec({ protocol: 'ws', url: env.wsUrl, model: id.name, timeoutUs: 0 }, id.input, mode, extra), { probe: env.skiff });
    const echo = await ctx.load('T4 uWS echo (c)', ctx.spec({ protocol: 'ws-echo', url: await env.echoUrl(), model: m.name, timeoutUs: 0 }, m.input, mode, extra));
    const cpu = skiff.server?.cpuUsPerQuery;
    return {
      id: 'T4', title: this.title, value: skiff.throughput,
      measured: `${fmtInt(skiff.throughput)}/s${cpu !== undefined ? `; main thread ${cpu.toFixed(2)} µs/query (issue 15: <= ${CPU_TARGET_US})` : ''}`,
      target: `>= ${fmtInt(TARGET)}/s`, pass: skiff.throughput >= TARGET,
      lines: [
        `Skiff tiny MLP: ${fmtInt(skiff.throughput)} predictions/s${identity ? `; identity model: ${fmtInt(identity.throughput)}/s` : ''}`,
        describeBreakdown(breakdown),
        ...(skiff.server ? [`Skiff tiny MLP: ${describeServerWindow(skiff.server)} (issue 15 target: <= ${CPU_TARGET_US} µs/query: ${skiff.server.cpuUsPerQuery <= CPU_TARGET_US ? 'met' : 'not met'})`] : []),
        ...(identity?.server ? [`Skiff identity: ${describeServerWindow(identity.server)}`] : []),
        `limits measured in the same run: uWS echo of the same frames ${fmtInt(echo.throughput)} queries/s; raw ORT ${fmtInt(raw.best.rowsPerSec)} rows/s (batch ${raw.best.batch}, 1 thread)`,
      ],
      data: { skiff, breakdown, identity, echo, raw: raw.best },
    };
  },
};

/**
 * The first benchmark (issue 2): WebSocket streaming of held-out MNIST digits against the demo
 * MLP, printing throughput and p50/p99/p99.9, next to the same model's raw in-process ONNX
 * Runtime throughput measured in the same run, and the ratio.
 *
 * The model runs with the demo's own config.json (max batch 64, 0.5 ms batch wait, one worker,
 * one thread) except that the prediction cache is off: the digits repeat and every query must
 * reach the model. Load: 256 queries in flight over 4 connections, one query per message.
 * Run it with `npm run bench -- --only ws-stream`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEMO_REPOSITORY } from '../src/paths.js';
import { fmtInt, fmtRatio, fmtUs } from './lib/format.js';
import { TINY_BATCHES } from './targets/t3-rtt.js';
import type { Target } from './targets/types.js';

const demoConfig = JSON.parse(readFileSync(join(DEMO_REPOSITORY, 'mnist_mlp', 'config.json'), 'utf8')) as Record<string, unknown>;

export const wsStream: Target = {
  id: 'ws-stream',
  title: 'WebSocket streaming of MNIST digits to the demo MLP vs raw in-process ORT',
  models: () => [{ name: 'demo_mlp', kind: 'tiny', config: { ...demoConfig, cache_bytes: 0 } }],
  async run(ctx, env) {
    const m = env.models.demo_mlp!;
    const r = await ctx.load('ws-stream demo MLP', ctx.spec({ protocol: 'ws', url: env.wsUrl, model: m.name, timeoutUs: 0 }, m.input,
      { kind: 'closed', concurrency: 256 }, { durationMs: ctx.quick ? 3000 : 8000, warmupMs: 1000 }));
    const raw = await ctx.rawOrt(m.file, m.input, 1, TINY_BATCHES);
    const ratio = r.throughput / raw.best.rowsPerSec;
    const l = r.latencyUs;
    return {
      id: 'ws-stream', title: this.title, value: ratio, measured: fmtRatio(ratio), target: 'report', pass: null,
      lines: [
        `Skiff WebSocket: ${fmtInt(r.throughput)} digits/s, p50 ${fmtUs(l.p50)}, p99 ${fmtUs(l.p99)}, p99.9 ${fmtUs(l.p999)} (${r.errors} errors)`,
        `raw in-process ORT, same model, 1 thread: ${fmtInt(raw.best.rowsPerSec)} rows/s at batch ${raw.best.batch} (batch 1: ${fmtInt(raw.sweep[0]!.rowsPerSec)} rows/s)`,
        `ratio Skiff / raw ORT: ${fmtRatio(ratio)}`,
      ],
      data: { result: r, raw },
    };
  },
};

/**
 * T7: 10,000 idle WebSocket connections use less than 1 GB RSS and move active queries' p99 by
 * less than 20%; with 50 small models loaded, the memory per idle model is at most 5 MB.
 *
 * Connections: a server of its own serving only the tiny model; after a warm-up window, a steady
 * open-loop load on it is measured before, with and after 10,000 silent connections held by two helper processes
 * (lib/idle-clients.ts; children get their open-files limit raised); the p99 "with" is compared to the mean of "before" and "after" (which
 * cancels slow drift on a shared box). The server's RSS is read with and without them.
 * Models: fresh servers with 0, 1 and 50 small classifiers (64-32-10), idle; per-model memory =
 * (RSS(50) - RSS(1)) / 49, the cost of one more model. Measured twice: with park_idle_ms = 500
 * (an idle model's workers stop and restart on its next query: the verdict), and always warm
 * (the default config: one Node worker isolate + one ORT session per replica, shown beside).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeClassifier, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { fmtInt, fmtMb, fmtRatio, fmtUs } from '../lib/format.js';
import type { BenchContext, TargetResult } from '../lib/context.js';
import { writeBenchModel } from '../lib/models.js';
import type { BenchEnv, Target } from './types.js';

const IDLE = 10_000;
const MODELS = 50;
const PARK_IDLE_MS = 500;
const HOST = new URL('../servers/skiff-host.js', import.meta.url);
const IDLE_CLIENTS = new URL('../lib/idle-clients.js', import.meta.url);

async function hostRss(ctx: BenchContext, repo: string, settleMs = 500): Promise<number> {
  const h = await ctx.child(HOST, [repo]);
  // Let start-up garbage settle (and parked models stop their workers) before reading.
  await new Promise((r) => setTimeout(r, settleMs));
  const m = await h.call<{ rss: number }>('memory');
  await ctx.stopChild(h);
  return m.rss;
}

export const t7: Target = {
  id: 'T7',
  title: '10k idle connections < 1 GB RSS and < 20% p99 change; <= 5 MB per idle model',
  models: () => [{ name: 'tiny', kind: 'tiny', config: { max_batch_size: 512 } }],
  async run(ctx, env) {
    const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-t7-'));
    try {
      return await measure(ctx, env, dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

async function measure(ctx: BenchContext, env: BenchEnv, dir: string): Promise<TargetResult> {
  // A server of its own (the tiny model only), so its RSS is the server plus the connections.
  const solo = join(dir, 'solo');
  const m = writeBenchModel(solo, env.models.tiny!.name, 'tiny', env.models.tiny!.config);
  const host = await ctx.child(HOST, [solo], IDLE + 1024);
  const wsUrl = `ws://127.0.0.1:${host.ready.port}/ws`;
  const spec = ctx.spec({ protocol: 'ws', url: wsUrl, model: m.name, timeoutUs: 0 }, m.input, { kind: 'open', rate: 2000 },
    { connections: 2, durationMs: ctx.quick ? 1500 : 10000 });
  // The server is fresh: a first, unmeasured window warms it (JIT, AIMD cap), so "before" is not
  // a cold start compared against warm "with" and "after" windows.
  await ctx.load('T7 active load, warm-up (not compared)', spec);
  const before = await ctx.load('T7 active load, before', spec);
  const rssBefore = (await host.call<{ rss: number }>('memory')).rss;
  // Two helper processes of 5,000 connections each: each stays well inside common fd limits.
  const idle = await Promise.all([0, 1].map(() => ctx.child(IDLE_CLIENTS, [wsUrl, String(IDLE / 2)], IDLE / 2 + 1024, ['--expose-gc'])));
  const opened = idle.reduce((a, c) => a + Number(c.ready.opened), 0);
  const failed = idle.reduce((a, c) => a + Number(c.ready.failed), 0);
  ctx.log(`  ${fmtInt(opened)} idle connections open (${failed} failed) in ${fmtInt(Math.max(...idle.map((c) => Number(c.ready.openMs))))} ms`);
  const rssWith = (await host.call<{ rss: number }>('memory')).rss;
  const during = await ctx.load('T7 active load, with 10k idle connections', spec);
  for (const c of idle) await ctx.stopChild(c);
  const after = await ctx.load('T7 active load, after', spec);
  await ctx.stopChild(host);
  const ref = (before.latencyUs.p99 + after.latencyUs.p99) / 2;
  const p99Change = during.latencyUs.p99 / ref - 1;

  const empty = join(dir, 'empty');
  const one = join(dir, 'one');
  const fifty = join(dir, 'fifty');
  mkdirSync(empty);
  writeClassifier(one, 'small_0', { seed: 1, hidden: 32 });
  for (let i = 0; i < MODELS; i++) writeClassifier(fifty, `small_${i}`, { seed: i + 1, hidden: 32 });
  const rss0 = await hostRss(ctx, empty);
  const rss1 = await hostRss(ctx, one);
  const rss50 = await hostRss(ctx, fifty);
  const warmPerModel = (rss50 - rss1) / (MODELS - 1);
  const oneParked = join(dir, 'one-parked');
  const fiftyParked = join(dir, 'fifty-parked');
  writeClassifier(oneParked, 'small_0', { seed: 1, hidden: 32 });
  writeModelConfig(oneParked, 'small_0', { park_idle_ms: PARK_IDLE_MS });
  for (let i = 0; i < MODELS; i++) {
    writeClassifier(fiftyParked, `small_${i}`, { seed: i + 1, hidden: 32 });
    writeModelConfig(fiftyParked, `small_${i}`, { park_idle_ms: PARK_IDLE_MS });
  }
  const settle = PARK_IDLE_MS + 1500;
  const rss1p = await hostRss(ctx, oneParked, settle);
  const rss50p = await hostRss(ctx, fiftyParked, settle);
  const perModel = (rss50p - rss1p) / (MODELS - 1);
  const MB = 1024 * 1024;
  const connOk = opened === IDLE && rssWith < 1024 * MB && Math.abs(p99Change) < 0.2;
  return {
    id: 'T7', title: t7.title, value: perModel / MB,
    measured: `RSS ${fmtMb(rssWith)}, p99 ${p99Change >= 0 ? '+' : ''}${(p99Change * 100).toFixed(0)}%, ${fmtMb(perModel)}/model`,
    target: '< 1 GB, p99 within +-20%, <= 5 MB/model', pass: connOk && perModel <= 5 * MB,
    lines: [
      `server RSS ${fmtMb(rssBefore)} -> ${fmtMb(rssWith)} with ${fmtInt(opened)} idle connections (+${fmtMb(rssWith - rssBefore)}, ${((rssWith - rssBefore) / Math.max(1, opened) / 1024).toFixed(1)} KB each)`,
      `active p99 (2,000 req/s open loop): before ${fmtUs(before.latencyUs.p99)}, with ${fmtUs(during.latencyUs.p99)}, after ${fmtUs(after.latencyUs.p99)} -> ${fmtRatio(1 + p99Change)} of before/after mean`,
      `idle models, parked after ${PARK_IDLE_MS} ms idle: RSS with 1 / ${MODELS} models ${fmtMb(rss1p)} / ${fmtMb(rss50p)} -> ${fmtMb(perModel)} per additional model`,
      `idle models, always warm (default config): RSS with 0 / 1 / ${MODELS} models ${fmtMb(rss0)} / ${fmtMb(rss1)} / ${fmtMb(rss50)} -> ${fmtMb(warmPerModel)} per additional model (a Node worker isolate + an ORT session each)`,
    ],
    data: { before, during, after, rssBefore, rssWith, opened, rss0, rss1, rss50, warmPerModel, rss1p, rss50p, perModel },
  };
}

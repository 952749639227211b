/**
 * T7: 10,000 idle WebSocket connections use less than 1 GB RSS and move active queries' p99 by
 * less than 20%; with 50 small models loaded, the memory per idle model is at most 5 MB.
 *
 * Connections: a steady open-loop load on the tiny model is measured before, with and after
 * 10,000 silent connections held by a helper process (lib/idle-clients.ts); the p99 "with" is
 * compared to the mean of "before" and "after" (which cancels slow drift on a shared box). The
 * server's RSS is read with and without the connections.
 * Models: three fresh servers with 0, 1 and 50 small classifiers (64-32-10, default config),
 * idle; per-model memory = (RSS(50) - RSS(1)) / 49, the cost of one more model.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import { fmtInt, fmtMb, fmtRatio, fmtUs } from '../lib/format.js';
import type { BenchContext } from '../lib/context.js';
import type { Target } from './types.js';

const IDLE = 10_000;
const MODELS = 50;
const HOST = new URL('../servers/skiff-host.js', import.meta.url);
const IDLE_CLIENTS = new URL('../lib/idle-clients.js', import.meta.url);

async function hostRss(ctx: BenchContext, repo: string): Promise<number> {
  const h = await ctx.child(HOST, [repo]);
  // Let start-up garbage settle before reading.
  await new Promise((r) => setTimeout(r, 500));
  const m = await h.call<{ rss: number }>('memory');
  await ctx.stopChild(h);
  return m.rss;
}

export const t7: Target = {
  id: 'T7',
  title: '10k idle connections < 1 GB RSS and < 20% p99 change; <= 5 MB per idle model',
  models: () => [{ name: 'tiny', kind: 'tiny', config: { max_batch_size: 512 } }],
  async run(ctx, env) {
    const m = env.models.tiny!;
    const spec = ctx.spec({ protocol: 'ws', url: env.wsUrl, model: m.name, timeoutUs: 0 }, m.input, { kind: 'open', rate: 2000 },
      { connections: 2, durationMs: ctx.quick ? 1500 : 5000 });
    const before = await ctx.load('T7 active load, before', spec);
    const rssBefore = (await env.skiff.call<{ rss: number }>('memory')).rss;
    const idle = await ctx.child(IDLE_CLIENTS, [env.wsUrl, String(IDLE)]);
    const opened = Number(idle.ready.opened);
    ctx.log(`  ${fmtInt(opened)} idle connections open (${Number(idle.ready.failed)} failed) in ${fmtInt(Number(idle.ready.openMs))} ms`);
    const rssWith = (await env.skiff.call<{ rss: number }>('memory')).rss;
    const during = await ctx.load('T7 active load, with 10k idle connections', spec);
    await ctx.stopChild(idle);
    const after = await ctx.load('T7 active load, after', spec);
    const ref = (before.latencyUs.p99 + after.latencyUs.p99) / 2;
    const p99Change = during.latencyUs.p99 / ref - 1;

    const dir = mkdtempSync(join(tmpdir(), 'skiff-bench-models-'));
    let rss0: number, rss1: number, rss50: number;
    try {
      const empty = join(dir, 'empty');
      const one = join(dir, 'one');
      const fifty = join(dir, 'fifty');
      mkdirSync(empty);
      writeClassifier(one, 'small_0', { seed: 1, hidden: 32 });
      for (let i = 0; i < MODELS; i++) writeClassifier(fifty, `small_${i}`, { seed: i + 1, hidden: 32 });
      rss0 = await hostRss(ctx, empty);
      rss1 = await hostRss(ctx, one);
      rss50 = await hostRss(ctx, fifty);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const perModel = (rss50 - rss1) / (MODELS - 1);
    const MB = 1024 * 1024;
    const connOk = opened === IDLE && rssWith < 1024 * MB && Math.abs(p99Change) < 0.2;
    return {
      id: 'T7', title: this.title, value: perModel / MB,
      measured: `RSS ${fmtMb(rssWith)}, p99 ${p99Change >= 0 ? '+' : ''}${(p99Change * 100).toFixed(0)}%, ${fmtMb(perModel)}/model`,
      target: '< 1 GB, |p99 change| < 20%, <= 5 MB/model', pass: connOk && perModel <= 5 * MB,
      lines: [
        `server RSS ${fmtMb(rssBefore)} -> ${fmtMb(rssWith)} with ${fmtInt(opened)} idle connections (+${fmtMb(rssWith - rssBefore)}, ${((rssWith - rssBefore) / Math.max(1, opened) / 1024).toFixed(1)} KB each)`,
        `active p99 (2,000 req/s open loop): before ${fmtUs(before.latencyUs.p99)}, with ${fmtUs(during.latencyUs.p99)}, after ${fmtUs(after.latencyUs.p99)} -> ${fmtRatio(1 + p99Change)} of before/after mean`,
        `idle models: RSS with 0 / 1 / ${MODELS} models ${fmtMb(rss0)} / ${fmtMb(rss1)} / ${fmtMb(rss50)} -> ${fmtMb(perModel)} per additional model (${fmtMb((rss50 - rss0) / MODELS)} averaged over all ${MODELS})`,
      ],
      data: { before, during, after, rssBefore, rssWith, opened, rss0, rss1, rss50, perModel },
    };
  },
};

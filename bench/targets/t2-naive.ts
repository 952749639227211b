/**
 * T2: against baseline (b), the hand-written node:http + JSON + one session.run per request
 * server, with the same generator: over HTTP JSON at least 4x the throughput at an equal or
 * lower p99, over WebSocket at least 8x.
 *
 * Baseline (b) is driven closed-loop at 32 requests in flight (its saturation; it runs one
 * model call at a time) giving its throughput X_b and p99 P_b. Skiff's figure is the highest
 * open-loop rate whose p99 stays within P_b, over HTTP JSON and over WebSocket (one query per
 * message, like HTTP). Model: the compute-bound MLP (the full run adds the tiny MLP as an
 * informational line).
 */
import { fmtInt, fmtRatio, fmtUs } from '../lib/format.js';
import { maxRateUnder } from '../lib/search.js';
import type { BenchContext } from '../lib/context.js';
import type { BenchModel } from '../lib/models.js';
import type { LoadResult } from '../lib/spec.js';
import type { BenchEnv, Target } from './types.js';

const HTTP_TARGET = 4;
const WS_TARGET = 8;
const BASELINE_CONCURRENCY = 32;

interface Comparison {
  baseline: LoadResult;
  http: LoadResult | null;
  ws: LoadResult | null;
  httpRatio: number;
  wsRatio: number;
}

async function compare(ctx: BenchContext, env: BenchEnv, m: BenchModel, tag: string, plot: boolean): Promise<Comparison> {
  const naive = { protocol: 'http' as const, url: await env.naiveUrl(m), model: m.name, timeoutUs: 0 };
  const baseline = await ctx.load(`T2 baseline (b) ${tag}`, ctx.spec(naive, m.input, { kind: 'closed', concurrency: BASELINE_CONCURRENCY }),
    plot ? { series: `naive node:http (b), ${tag}` } : {});
  const limit = baseline.latencyUs.p99;
  const http = { protocol: 'http' as const, url: env.httpUrl, model: m.name, timeoutUs: 0 };
  const httpSat = await ctx.load(`T2 Skiff HTTP ${tag} saturation`, ctx.spec(http, m.input, { kind: 'closed', concurrency: 64 }));
  const httpSearch = await maxRateUnder(ctx, {
    label: `T2 Skiff HTTP ${tag}`, p99LimitUs: limit, saturation: httpSat.throughput,
    build: (rate) => ctx.spec(http, m.input, { kind: 'open', rate }, { connections: 128 }),
    ...(plot ? { series: `Skiff HTTP JSON, ${tag}` } : {}),
  });
  const ws = { protocol: 'ws' as const, url: env.wsUrl, model: m.name, timeoutUs: 0 };
  const wsSat = await ctx.load(`T2 Skiff WS ${tag} saturation`, ctx.spec(ws, m.input, { kind: 'closed', concurrency: 256 }));
  const wsSearch = await maxRateUnder(ctx, {
    label: `T2 Skiff WS ${tag}`, p99LimitUs: limit, saturation: wsSat.throughput,
    build: (rate) => ctx.spec(ws, m.input, { kind: 'open', rate }),
    ...(plot ? { series: `Skiff WS 1/frame, ${tag}` } : {}),
  });
  return {
    baseline,
    http: httpSearch.best,
    ws: wsSearch.best,
    httpRatio: (httpSearch.best?.throughput ?? 0) / baseline.throughput,
    wsRatio: (wsSearch.best?.throughput ?? 0) / baseline.throughput,
  };
}

function describe(c: Comparison, tag: string): string[] {
  const at = (r: LoadResult | null): string => (r ? `${fmtInt(r.throughput)} req/s (p99 ${fmtUs(r.latencyUs.p99)})` : 'no rate met the p99');
  return [
    `${tag}: baseline (b) ${fmtInt(c.baseline.throughput)} req/s, p99 ${fmtUs(c.baseline.latencyUs.p99)} at ${BASELINE_CONCURRENCY} in flight`,
    `${tag}: Skiff HTTP JSON at p99 <= baseline's: ${at(c.http)} = ${fmtRatio(c.httpRatio)} (target >= ${HTTP_TARGET}x)`,
    `${tag}: Skiff WebSocket at p99 <= baseline's: ${at(c.ws)} = ${fmtRatio(c.wsRatio)} (target >= ${WS_TARGET}x)`,
  ];
}

export const t2: Target = {
  id: 'T2',
  title: 'vs hand-written node:http server (b): HTTP JSON >= 4x, WebSocket >= 8x at <= its p99',
  models: () => [
    { name: 'compute', kind: 'compute', config: { max_batch_size: 512, latency_objective_us: 12000 } },
    { name: 'tiny', kind: 'tiny', config: { max_batch_size: 512 } },
  ],
  async run(ctx, env) {
    const main = await compare(ctx, env, env.models.compute!, 'compute MLP', true);
    const lines = describe(main, 'compute MLP');
    const data: Record<string, unknown> = { compute: main };
    if (!ctx.quick) {
      const tiny = await compare(ctx, env, env.models.tiny!, 'tiny MLP', false);
      lines.push(...describe(tiny, 'tiny MLP (info)'));
      data.tiny = tiny;
    }
    const pass = main.httpRatio >= HTTP_TARGET && main.wsRatio >= WS_TARGET;
    return {
      id: 'T2', title: this.title, value: main.httpRatio, measured: `HTTP ${fmtRatio(main.httpRatio)}, WS ${fmtRatio(main.wsRatio)}`,
      target: `HTTP >= ${HTTP_TARGET}x and WS >= ${WS_TARGET}x`, pass, lines, data,
    };
  },
};

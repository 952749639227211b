/**
 * T6: on the high-fixed-cost model, a 2 ms batch wait gives at least 2x the throughput of no
 * wait at the same SLO (the Clipper paper measured 3.35x).
 *
 * Model: a JS delay model costing 5 ms per call + 10 µs per row, one replica, latency
 * objective (SLO) 50 ms for both copies; one copy with batch_wait_timeout 0, one with 2 ms.
 * The verdict figure is throughput at the SLO: the highest open-loop Poisson rate whose p99
 * stays within 50 ms (wide enough that the shared machine's scheduling noise, tens of ms at
 * p99, does not decide it). Also shown: 64 independent clients with one query each in flight
 * (closed loop), where an immediate dispatch splits the clients into convoys.
 */
import { fmtInt, fmtRatio, fmtUs } from '../lib/format.js';
import { maxRateUnder } from '../lib/search.js';
import type { BenchContext } from '../lib/context.js';
import type { LoadResult } from '../lib/spec.js';
import type { BenchEnv, Target } from './types.js';

const SLO_US = 50_000;
const DELAY = { delayMs: 5, perRowUs: 10 };
const TARGET = 2;

async function measure(ctx: BenchContext, env: BenchEnv, model: string, tag: string): Promise<{ clients: LoadResult | null; sat: LoadResult; best: LoadResult | null }> {
  const t = { protocol: 'ws' as const, url: env.wsUrl, model, timeoutUs: 0 };
  const input = env.models[model]!.input;
  // 64 independent one-query clients: full run only (informational).
  const clients = ctx.quick ? null : await ctx.load(`T6 ${tag}: 64 clients`, ctx.spec(t, input, { kind: 'closed', concurrency: 64 }));
  const sat = await ctx.load(`T6 ${tag}: saturation`, ctx.spec(t, input, { kind: 'closed', concurrency: 128 }, { requestsPerFrame: 8 }));
  const search = await maxRateUnder(ctx, {
    label: `T6 ${tag}`, p99LimitUs: SLO_US, saturation: sat.throughput,
    build: (rate) => ctx.spec(t, input, { kind: 'open', rate }),
    series: `Skiff WS, 5 ms fixed-cost model, ${tag}`,
  });
  return { clients, sat, best: search.best };
}

export const t6: Target = {
  id: 'T6',
  title: 'fixed-cost model: 2 ms batch wait >= 2x the throughput of no wait at the same SLO',
  models: () => [
    { name: 'fixed_nowait', kind: 'delay', delay: DELAY, config: { max_batch_size: 256, latency_objective_us: SLO_US, batch_wait_timeout_us: 0 } },
    { name: 'fixed_wait2ms', kind: 'delay', delay: DELAY, config: { max_batch_size: 256, latency_objective_us: SLO_US, batch_wait_timeout_us: 2000 } },
  ],
  async run(ctx, env) {
    const none = await measure(ctx, env, 'fixed_nowait', 'no wait');
    const wait = await measure(ctx, env, 'fixed_wait2ms', '2 ms wait');
    const at = (r: LoadResult | null): number => r?.throughput ?? 0;
    const ratio = none.best ? at(wait.best) / at(none.best) : NaN;
    const clientsRatio = wait.clients && none.clients ? wait.clients.throughput / none.clients.throughput : NaN;
    const line = (tag: string, m: typeof none): string =>
      `${tag}: at p99 <= ${SLO_US / 1000} ms ${fmtInt(at(m.best))}/s${m.best ? ` (p99 ${fmtUs(m.best.latencyUs.p99)})` : ''}; saturation ${fmtInt(m.sat.throughput)}/s`
      + (m.clients ? `; 64 clients ${fmtInt(m.clients.throughput)}/s (p99 ${fmtUs(m.clients.latencyUs.p99)})` : '');
    return {
      id: 'T6', title: this.title, value: ratio, measured: fmtRatio(ratio), target: `>= ${TARGET}x`, pass: ratio >= TARGET,
      lines: [
        line('no wait', none),
        line('2 ms wait', wait),
        `throughput at the SLO: ${fmtRatio(ratio)}${ctx.quick ? '' : `; with 64 one-query clients: ${fmtRatio(clientsRatio)}`}`,
      ],
      data: { none, wait, ratio, clientsRatio },
    };
  },
};

/**
 * "Throughput at p99 <= L": the highest answered rate whose open-loop run keeps the corrected
 * p99 within L, with no errors and the offered rate actually achieved. The search starts from a
 * saturation estimate (a closed-loop run) and steps down through fixed fractions of it; the
 * full mode then tries once between the first passing fraction and the one above it.
 */
import type { BenchContext } from './context.js';
import type { LoadResult, LoadSpec } from './spec.js';

export interface RateSearch {
  best: LoadResult | null;
  tried: LoadResult[];
}

export function meets(r: LoadResult, p99LimitUs: number): boolean {
  return r.errors === 0 && r.latencyUs.p99 <= p99LimitUs && r.throughput >= 0.95 * (r.offeredRate ?? 0);
}

export async function maxRateUnder(ctx: BenchContext, o: {
  label: string;
  /** The open-loop spec at `rate`. */
  build: (rate: number) => LoadSpec;
  p99LimitUs: number;
  /** Answered rate at saturation (upper bound for the search). */
  saturation: number;
  series?: string;
}): Promise<RateSearch> {
  const fractions = ctx.quick ? [0.9, 0.7, 0.5, 0.3, 0.15] : [1.0, 0.9, 0.8, 0.7, 0.55, 0.4, 0.25, 0.1];
  const tried: LoadResult[] = [];
  const run = async (f: number): Promise<LoadResult> => {
    const rate = Math.max(1, Math.round(o.saturation * f));
    const r = await ctx.load(`${o.label} @${(f * 100).toFixed(0)}% of saturation`, o.build(rate), o.series ? { series: o.series } : {});
    tried.push(r);
    return r;
  };
  let best: LoadResult | null = null;
  for (let i = 0; i < fractions.length; i++) {
    const r = await run(fractions[i]!);
    if (!meets(r, o.p99LimitUs)) continue;
    best = r;
    if (!ctx.quick && i > 0) {
      const mid = await run((fractions[i]! + fractions[i - 1]!) / 2);
      if (meets(mid, o.p99LimitUs) && mid.throughput > r.throughput) best = mid;
    }
    break;
  }
  return { best, tried };
}

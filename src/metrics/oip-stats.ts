import type { Histogram } from 'hdr-histogram-js';
import { hdrBuckets } from './hdr.js';
import type { VersionStats } from './stats.js';

/**
 * Model statistics in Triton's shape (GET /v2/models[/{m}[/versions/{v}]]/stats):
 *   {"model_stats": [{name, version, last_inference, inference_count, execution_count,
 *     inference_stats: {success, fail, queue, compute_input, compute_infer, compute_output,
 *                       cache_hit, cache_miss},   each {count, ns}
 *     batch_stats: [{batch_size, compute_input, compute_infer, compute_output}]}]}
 *
 * What Skiff measures, mapped onto Triton's fields (docs/observability.md has the table):
 *  - inference_count: rows run by the model (sum of batch sizes); execution_count: batches;
 *  - success / fail: answered queries and their summed end-to-end time; fail counts every error
 *    answer including refusals before the queue;
 *  - queue: queries dispatched and their summed queue wait; compute_infer: batches and their
 *    summed worker round trip (the workers' input/output copies are inside it, so compute_input
 *    and compute_output stay zero);
 *  - cache_hit / cache_miss: lookup counts (lookups are not timed: ns is 0);
 *  - batch_stats: how many batches ran at each size (per-size times are not kept: ns is 0);
 *  - last_inference: wall-clock ms of the last answer (0 = none).
 * Sums read from HDR histograms are exact to 0.1%.
 */
export interface Duration {
  count: number;
  ns: number;
}

export interface BatchStats {
  batch_size: number;
  compute_input: Duration;
  compute_infer: Duration;
  compute_output: Duration;
}

export interface ModelStatistics {
  name: string;
  version: string;
  last_inference: number;
  inference_count: number;
  execution_count: number;
  inference_stats: Record<'success' | 'fail' | 'queue' | 'compute_input' | 'compute_infer' | 'compute_output' | 'cache_hit' | 'cache_miss', Duration>;
  batch_stats: BatchStats[];
}

const ZERO: Readonly<Duration> = Object.freeze({ count: 0, ns: 0 });

function summed(h: Histogram, nsPerUnit: number): Duration {
  const b = hdrBuckets(h, []);
  return { count: b.count, ns: Math.round(b.sum * nsPerUnit) };
}

/** Batches per distinct size, ascending (batch sizes below 2048 are exact in HDR). */
function batchSizes(h: Histogram, maxBatch: number): BatchStats[] {
  const bounds = Array.from({ length: maxBatch }, (_, i) => i + 1);
  const b = hdrBuckets(h, bounds);
  const out: BatchStats[] = [];
  let prev = 0;
  for (let i = 0; i < bounds.length; i++) {
    const n = b.cumulative[i]! - prev;
    prev = b.cumulative[i]!;
    if (n > 0) out.push({ batch_size: bounds[i]!, compute_input: { ...ZERO }, compute_infer: { count: n, ns: 0 }, compute_output: { ...ZERO } });
  }
  return out;
}

/** Statistics of one model version (a version without an executor reports zeros). */
export function modelStatistics(v: VersionStats): ModelStatistics {
  const l = v.live;
  const base = { name: v.model, version: String(v.version), last_inference: l ? Math.round(l.lastAnswerWallMs) : 0 };
  if (!l) {
    return {
      ...base, inference_count: 0, execution_count: 0, batch_stats: [],
      inference_stats: {
        success: { ...ZERO }, fail: { ...ZERO }, queue: { ...ZERO }, compute_input: { ...ZERO }, compute_infer: { ...ZERO },
        compute_output: { ...ZERO }, cache_hit: { ...ZERO }, cache_miss: { ...ZERO },
      },
    };
  }
  let failed = 0;
  for (const [code, n] of Object.entries(l.codes)) if (code !== 'OK') failed += n;
  const rows = hdrBuckets(l.latency.batchRows, []);
  return {
    ...base,
    inference_count: Math.round(rows.sum),
    execution_count: l.counters.batches,
    inference_stats: {
      success: { count: l.codes.OK ?? 0, ns: Math.round(l.okUs * 1000) },
      fail: { count: failed, ns: Math.round(l.failUs * 1000) },
      queue: summed(l.latency.queueWaitUs, 1000),
      compute_input: { ...ZERO },
      compute_infer: summed(l.latency.computeUs, 1000),
      compute_output: { ...ZERO },
      cache_hit: { count: l.cache?.hits ?? 0, ns: 0 },
      cache_miss: { count: l.cache?.misses ?? 0, ns: 0 },
    },
    batch_stats: batchSizes(l.latency.batchRows, Math.max(1, v.maxBatch)),
  };
}

import type { Histogram } from 'hdr-histogram-js';
import type { MeterReading, RateMeters } from './meters.js';
import type { ServerStats } from './stats.js';

/**
 * Clipper's metrics report (its query frontend's GET /metrics), served by Skiff at
 * GET /clipper/metrics so it does not collide with Prometheus' /metrics:
 *   {"counters": [{"<name>": {"count"}}], "ratio_counters": [{"<name>": {"ratio"}}],
 *    "meters": [{"<name>": {"unit", "rate", "rate_1min", "rate_5min", "rate_15min"}}],
 *    "histograms": [{"<name>": {"unit", "size", "min", "max", "mean", "std_dev", "p50", "p95", "p99"}}]}
 * with Clipper's names: app:<app>:num_predictions, app:<app>:default_prediction_ratio,
 * app:<app>:prediction_throughput, app:<app>:prediction_latency, and per model version
 * model:<name>:<version>:{num_predictions, cache_hit_ratio, prediction_throughput,
 * prediction_latency, batch_size} (plus queue_wait_latency and batch_run_latency).
 *
 * Differences from Clipper: values are JSON numbers (Clipper writes strings), a ratio with a zero
 * denominator is null (Clipper: NaN), and histogram percentiles come from the HDR histograms over
 * the version's lifetime rather than a 4096-sample reservoir.
 */
type Entry<T> = Record<string, T>;

export interface ClipperHistogram {
  unit: string;
  size: number;
  min: number;
  max: number;
  mean: number;
  std_dev: number;
  p50: number;
  p95: number;
  p99: number;
}

export interface ClipperMetrics {
  counters: Entry<{ count: number }>[];
  ratio_counters: Entry<{ ratio: number | null }>[];
  meters: Entry<{ unit: string; rate: number; rate_1min: number; rate_5min: number; rate_15min: number }>[];
  histograms: Entry<ClipperHistogram>[];
}

export function histogramReport(h: Histogram, unit: string): ClipperHistogram {
  const n = h.totalCount;
  return {
    unit,
    size: n,
    min: n ? h.minNonZeroValue : 0,
    // Percentiles report each HDR slot's highest equivalent value: so does max.
    max: n ? h.getValueAtPercentile(100) : 0,
    mean: n ? h.mean : 0,
    std_dev: n ? h.stdDeviation : 0,
    p50: n ? h.getValueAtPercentile(50) : 0,
    p95: n ? h.getValueAtPercentile(95) : 0,
    p99: n ? h.getValueAtPercentile(99) : 0,
  };
}

/** Meter names and their cumulative counts, for RateMeters. */
export function meterCounts(s: ServerStats): [string, number][] {
  const out: [string, number][] = [];
  for (const a of s.apps) out.push([`app:${a.name}:prediction_throughput`, a.queries]);
  for (const v of s.versions) if (v.live) out.push([`model:${v.model}:${v.version}:prediction_throughput`, v.live.queries]);
  return out;
}

const ratio = (num: number, den: number): number | null => (den > 0 ? num / den : null);

export function clipperMetrics(s: ServerStats, meters: RateMeters): ClipperMetrics {
  const out: ClipperMetrics = { counters: [], ratio_counters: [], meters: [], histograms: [] };
  const meter = (name: string, count: number): void => {
    const r: MeterReading = meters.reading(name, count);
    out.meters.push({ [name]: { unit: 'events per second', rate: r.rate, rate_1min: r.rate1m, rate_5min: r.rate5m, rate_15min: r.rate15m } });
  };
  for (const a of s.apps) {
    const p = `app:${a.name}`;
    out.counters.push({ [`${p}:num_predictions`]: { count: a.queries } });
    out.ratio_counters.push({ [`${p}:default_prediction_ratio`]: { ratio: ratio(a.defaults, a.queries) } });
    meter(`${p}:prediction_throughput`, a.queries);
    out.histograms.push({ [`${p}:prediction_latency`]: histogramReport(a.latencyUs, 'microseconds') });
  }
  for (const v of s.versions) {
    const l = v.live;
    if (!l) continue;
    const p = `model:${v.model}:${v.version}`;
    out.counters.push({ [`${p}:num_predictions`]: { count: l.queries } });
    if (l.cache) out.ratio_counters.push({ [`${p}:cache_hit_ratio`]: { ratio: ratio(l.cache.hits + l.cache.coalesced, l.cache.hits + l.cache.coalesced + l.cache.misses) } });
    meter(`${p}:prediction_throughput`, l.queries);
    out.histograms.push({ [`${p}:prediction_latency`]: histogramReport(l.latency.endToEndUs, 'microseconds') });
    out.histograms.push({ [`${p}:queue_wait_latency`]: histogramReport(l.latency.queueWaitUs, 'microseconds') });
    out.histograms.push({ [`${p}:batch_run_latency`]: histogramReport(l.latency.batchRunUs, 'microseconds') });
    out.histograms.push({ [`${p}:batch_size`]: histogramReport(l.latency.batchRows, 'queries') });
  }
  return out;
}

/**
 * HDR histogram helpers for the load generator: latencies in microseconds, one histogram per
 * thread, merged in the coordinator through the compressed base64 encoding.
 */
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import { newHistogram } from '../../src/metrics/latency.js';

export type { Histogram };

/** The percentiles every report shows (µs). */
export interface Percentiles {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export const createHistogram = newHistogram;

/** Record `us` (clamped to >= 1 so sub-microsecond values are counted). */
export function recordUs(h: Histogram, us: number): void {
  h.recordValue(us < 1 ? 1 : Math.round(us));
}

/**
 * Record a closed-loop latency with coordinated-omission correction: when `us` exceeds the
 * expected interval between samples, the samples a stalled client never sent are back-filled
 * (us - I, us - 2I, ...). `intervalUs` <= 0 records the value alone.
 */
export function recordCorrectedUs(h: Histogram, us: number, intervalUs: number): void {
  const v = us < 1 ? 1 : Math.round(us);
  if (intervalUs > 0) h.recordValueWithExpectedInterval(v, Math.max(1, Math.round(intervalUs)));
  else h.recordValue(v);
}

export function encodeHistogram(h: Histogram): string {
  return hdr.encodeIntoCompressedBase64(h);
}

/** Sum of the encoded histograms (an empty histogram when there are none). */
export function mergeEncoded(encoded: readonly string[]): Histogram {
  const total = createHistogram();
  for (const e of encoded) {
    if (e) total.add(hdr.decodeFromCompressedBase64(e));
  }
  return total;
}

export function percentiles(h: Histogram): Percentiles {
  const n = h.totalCount;
  return {
    count: n,
    mean: n ? Math.round(h.mean) : 0,
    p50: n ? h.getValueAtPercentile(50) : 0,
    p90: n ? h.getValueAtPercentile(90) : 0,
    p99: n ? h.getValueAtPercentile(99) : 0,
    p999: n ? h.getValueAtPercentile(99.9) : 0,
    max: n ? h.maxValue : 0,
  };
}

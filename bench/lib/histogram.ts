/**
 * HDR histogram helpers for the load generator: latencies in microseconds, one histogram per
 * thread, merged in the coordinator through the compressed base64 encoding.
 */
import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';
import { newHistogram, record, snapshot, type LatencySnapshot } from '../../src/metrics/latency.js';

export type { Histogram };

/** The percentiles every report shows (µs): the server's own snapshot shape. */
export type Percentiles = LatencySnapshot;

export const createHistogram = newHistogram;

/** Record `us` (clamped to >= 1 so sub-microsecond values are counted). */
export const recordUs = record;

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

export const percentiles = snapshot;

import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/**
 * HDR histograms for one model version: queue wait, batch run and end-to-end latency (µs),
 * plus batch sizes (rows). These are the source of every percentile Skiff reports; the AIMD
 * controller is fed each batch's latency as it is recorded into `batchRun`.
 * Main thread only (histograms are per thread).
 */
export interface LatencySnapshot {
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

export function newHistogram(): Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3, autoResize: true });
}

export function snapshot(h: Histogram): LatencySnapshot {
  return {
    count: h.totalCount,
    mean: h.totalCount ? h.mean : 0,
    p50: h.getValueAtPercentile(50),
    p90: h.getValueAtPercentile(90),
    p99: h.getValueAtPercentile(99),
    p999: h.getValueAtPercentile(99.9),
    max: h.maxValue,
  };
}

export class ModelLatency {
  readonly queueWaitUs = newHistogram();
  /** A batch's service time: at the head of its replica until its answer is read (run + hand-offs). */
  readonly batchRunUs = newHistogram();
  /** The model's own run time per batch, measured in the worker. */
  readonly computeUs = newHistogram();
  readonly endToEndUs = newHistogram();
  readonly batchRows = newHistogram();

  reset(): void {
    this.queueWaitUs.reset();
    this.batchRunUs.reset();
    this.computeUs.reset();
    this.endToEndUs.reset();
    this.batchRows.reset();
  }

  snapshot(): Record<'queueWaitUs' | 'batchRunUs' | 'computeUs' | 'endToEndUs' | 'batchRows', LatencySnapshot> {
    return {
      queueWaitUs: snapshot(this.queueWaitUs),
      batchRunUs: snapshot(this.batchRunUs),
      computeUs: snapshot(this.computeUs),
      endToEndUs: snapshot(this.endToEndUs),
      batchRows: snapshot(this.batchRows),
    };
  }
}

/** Record a value, clamping to >= 1 so sub-µs values are counted. */
/** Record a value `count` times (one measurement shared by several requests). */
export function recordTimes(h: Histogram, v: number, count: number): void {
  if (count === 1) record(h, v);
  else h.recordValueWithCount(v < 1 ? 1 : Math.round(v), count);
}

export function record(h: Histogram, v: number): void {
  h.recordValue(v < 1 ? 1 : Math.round(v));
}

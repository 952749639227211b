import hdr from 'hdr-histogram-js';
import type { Histogram } from 'hdr-histogram-js';

/**
 * Reading Skiff's HDR histograms (src/metrics/latency.ts) without touching what they record:
 * fixed Prometheus buckets filled from the HDR counts, and percentiles of what was recorded
 * between two reads (the dashboard's "last interval"). The histograms stay the one source of
 * every percentile; these functions only walk their counts. Main thread only, read synchronously.
 *
 * HDR keeps 3 significant digits: a value is known to within 0.1%. Bucket placement uses each
 * HDR slot's highest equivalent value, so a value is never counted in a bucket below its own.
 */
function js(h: Histogram): InstanceType<typeof hdr.JsHistogram> {
  if (!(h instanceof hdr.JsHistogram)) throw new TypeError('expected a JS HDR histogram (src/metrics/latency.ts newHistogram)');
  return h;
}

export interface Buckets {
  /** Cumulative counts per upper bound (same order as the bounds), Prometheus `le` style. */
  cumulative: number[];
  count: number;
  /** Sum of the recorded values (each at its HDR slot's median equivalent value). */
  sum: number;
}

/** Cumulative counts of `h` at each of `bounds` (ascending, in the histogram's unit). */
export function hdrBuckets(h: Histogram, bounds: readonly number[]): Buckets {
  const jh = js(h);
  const perBound = new Array<number>(bounds.length).fill(0);
  let count = 0;
  let sum = 0;
  if (jh.totalCount > 0) {
    const last = Math.min(jh.countsArrayIndex(jh.maxValue), jh.countsArrayLength - 1);
    let b = 0;
    for (let i = 0; i <= last; i++) {
      const c = jh.getCountAtIndex(i);
      if (c <= 0) continue;
      const v = jh.valueFromIndex(i);
      const hi = jh.highestEquivalentValue(v);
      while (b < bounds.length && bounds[b]! < hi) b++;
      if (b < bounds.length) perBound[b]! += c;
      count += c;
      sum += jh.medianEquivalentValue(v) * c;
    }
  }
  let acc = 0;
  const cumulative = perBound.map((c) => (acc += c));
  return { cumulative, count, sum };
}

export interface IntervalSummary {
  count: number;
  /** Mean of the interval's values (0 when empty). */
  mean: number;
  /** Requested percentiles, in the same order (0 when empty). */
  percentiles: number[];
}

/**
 * Percentiles of what a live histogram recorded since the previous `read` (the first read
 * covers everything recorded so far). Keeps a copy of the counts it saw last; a histogram that
 * was reset in between (fewer counts than before) restarts the baseline.
 */
export class IntervalReader {
  private prev: Float64Array = new Float64Array(0);
  private prevTotal = 0;
  private diff: Float64Array = new Float64Array(0);

  read(h: Histogram, percentiles: readonly number[]): IntervalSummary {
    const jh = js(h);
    const n = jh.totalCount > 0 ? Math.min(jh.countsArrayIndex(jh.maxValue), jh.countsArrayLength - 1) + 1 : 0;
    if (jh.totalCount < this.prevTotal) this.prev.fill(0);
    if (this.prev.length < n) {
      const grown = new Float64Array(Math.max(n, this.prev.length * 2));
      grown.set(this.prev);
      this.prev = grown;
      this.diff = new Float64Array(grown.length);
    }
    let total = 0;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const cur = jh.getCountAtIndex(i);
      let d = cur - this.prev[i]!;
      if (d < 0) d = cur;
      this.prev[i] = cur;
      this.diff[i] = d;
      if (d > 0) {
        total += d;
        sum += jh.medianEquivalentValue(jh.valueFromIndex(i)) * d;
      }
    }
    this.prevTotal = jh.totalCount;
    const out = percentiles.map(() => 0);
    if (total === 0) return { count: 0, mean: 0, percentiles: out };
    const targets = percentiles.map((p) => Math.max(1, Math.ceil((p / 100) * total)));
    let acc = 0;
    let k = 0;
    const order = targets.map((t, j) => [t, j] as const).sort((a, b) => a[0] - b[0]);
    for (let i = 0; i < n && k < order.length; i++) {
      acc += this.diff[i]!;
      while (k < order.length && acc >= order[k]![0]) {
        out[order[k]![1]] = jh.highestEquivalentValue(jh.valueFromIndex(i));
        k++;
      }
    }
    return { count: total, mean: sum / total, percentiles: out };
  }
}

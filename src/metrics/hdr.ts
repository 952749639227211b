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
type JsHistogram = InstanceType<typeof hdr.JsHistogram>;

function js(h: Histogram): JsHistogram {
  if (!(h instanceof hdr.JsHistogram)) throw new TypeError('expected a JS HDR histogram (src/metrics/latency.ts newHistogram)');
  return h;
}

/** Number of slots up to the highest recorded value (0 when empty). */
function recordedSlots(h: JsHistogram): number {
  return h.totalCount > 0 ? Math.min(h.countsArrayIndex(h.maxValue), h.countsArrayLength - 1) + 1 : 0;
}

/**
 * Call `fn(index, lowest, width)` for the first `n` slots, in value order. HDR lays slots out in
 * runs of `subBucketHalfCount` of equal width, so the values are computed per run, not per slot
 * (asking the histogram per slot costs ~10x more on a scrape).
 */
function walkSlots(h: JsHistogram, n: number, fn: (i: number, lowest: number, width: number) => void): void {
  const run = h.subBucketHalfCount;
  let base = 0;
  let width = 1;
  let start = 0;
  for (let i = 0; i < n; i++) {
    if (i % run === 0) {
      base = h.valueFromIndex(i);
      width = h.sizeOfEquivalentValueRange(base);
      start = i;
    }
    fn(i, base + (i - start) * width, width);
  }
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
  let b = 0;
  walkSlots(jh, recordedSlots(jh), (i, lowest, width) => {
    const c = jh.getCountAtIndex(i);
    if (c <= 0) return;
    const highest = lowest + width - 1;
    while (b < bounds.length && bounds[b]! < highest) b++;
    if (b < bounds.length) perBound[b]! += c;
    count += c;
    sum += (lowest + Math.floor(width / 2)) * c;
  });
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
  /** With `edges` [e0, e1, ...]: counts of values in [e0, e1), [e1, e2), ..., [e_last, inf). */
  buckets?: number[];
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

  read(h: Histogram, percentiles: readonly number[], edges?: readonly number[]): IntervalSummary {
    const jh = js(h);
    const n = recordedSlots(jh);
    if (jh.totalCount < this.prevTotal) this.prev.fill(0);
    if (this.prev.length < n) {
      const grown = new Float64Array(Math.max(n, this.prev.length * 2));
      grown.set(this.prev);
      this.prev = grown;
      this.diff = new Float64Array(grown.length);
    }
    let total = 0;
    let sum = 0;
    const buckets = edges ? edges.map(() => 0) : undefined;
    walkSlots(jh, n, (i, lowest, width) => {
      const cur = jh.getCountAtIndex(i);
      let d = cur - this.prev[i]!;
      if (d < 0) d = cur;
      this.prev[i] = cur;
      this.diff[i] = d;
      if (d > 0) {
        total += d;
        sum += (lowest + Math.floor(width / 2)) * d;
        if (buckets) {
          let b = buckets.length - 1;
          while (b > 0 && lowest < edges![b]!) b--;
          buckets[b]! += d;
        }
      }
    });
    this.prevTotal = jh.totalCount;
    const out = percentiles.map(() => 0);
    if (total === 0) return { count: 0, mean: 0, percentiles: out, ...(buckets ? { buckets } : {}) };
    const order = percentiles.map((p, j) => [Math.max(1, Math.ceil((p / 100) * total)), j] as const).sort((a, b) => a[0] - b[0]);
    let acc = 0;
    let k = 0;
    walkSlots(jh, n, (i, lowest, width) => {
      if (k >= order.length) return;
      acc += this.diff[i]!;
      while (k < order.length && acc >= order[k]![0]) {
        out[order[k]![1]] = lowest + width - 1;
        k++;
      }
    });
    return { count: total, mean: sum / total, percentiles: out, ...(buckets ? { buckets } : {}) };
  }
}

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

/**
 * Event-loop lag of the main (uWS) thread, from `monitorEventLoopDelay`: a native timer fires
 * every RESOLUTION_MS and records how late it ran. Every `windowMs` the window's percentiles are
 * kept and the histogram restarts, so readers (Prometheus scrapes, the dashboard) all see the
 * last complete window without disturbing each other. Values exclude the timer's own period.
 */
export interface LagWindow {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** Timer samples in the window. */
  samples: number;
}

const RESOLUTION_MS = 10;
const EMPTY: LagWindow = Object.freeze({ p50Ms: 0, p99Ms: 0, maxMs: 0, meanMs: 0, samples: 0 });

export class LoopLag {
  private readonly h: IntervalHistogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private readonly timer: NodeJS.Timeout;
  private window: LagWindow = EMPTY;

  constructor(windowMs = 1000) {
    this.h.enable();
    this.timer = setInterval(() => this.roll(), windowMs);
    this.timer.unref();
  }

  /** The last complete window (zeros before the first one ends). */
  get last(): LagWindow {
    return this.window;
  }

  private roll(): void {
    const ms = (ns: number): number => Math.max(0, ns / 1e6 - RESOLUTION_MS);
    const h = this.h;
    this.window = h.count > 0
      ? { p50Ms: ms(h.percentile(50)), p99Ms: ms(h.percentile(99)), maxMs: ms(h.max), meanMs: ms(h.mean), samples: h.count }
      : EMPTY;
    h.reset();
  }

  close(): void {
    clearInterval(this.timer);
    this.h.disable();
  }
}

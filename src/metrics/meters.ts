/**
 * Throughput meters in Clipper's sense: the mean rate since start plus exponentially weighted
 * 1/5/15-minute rates, ticked every `tickMs` from cumulative counters read off the live objects
 * (nothing is marked per query). A counter that goes backwards (its model version was reloaded)
 * restarts that meter's baseline. Main thread only.
 */
export interface MeterReading {
  /** Events per second since the meter started. */
  rate: number;
  rate1m: number;
  rate5m: number;
  rate15m: number;
}

interface Meter {
  startMs: number;
  startCount: number;
  lastCount: number;
  seenAtMs: number;
  m1: number;
  m5: number;
  m15: number;
  primed: boolean;
}

const WINDOWS_S = [60, 300, 900] as const;

export class RateMeters {
  private readonly meters = new Map<string, Meter>();
  private lastTickMs: number;
  private readonly timer: NodeJS.Timeout | null;
  private readonly now: () => number;

  /**
   * `read` yields (meter name, cumulative count) pairs. Options: `now`, a monotonic clock in ms;
   * `tickMs` (default 5000; 0 = nothing ticks by itself, call `tick`); `onError` receives what a
   * timer-driven tick threw.
   */
  constructor(
    private readonly read: () => Iterable<readonly [string, number]>,
    opts: { now?: () => number; tickMs?: number; onError?: (err: unknown) => void } = {},
  ) {
    this.now = opts.now ?? (() => performance.now());
    const tickMs = opts.tickMs ?? 5000;
    this.lastTickMs = this.now();
    this.tick();
    this.timer = tickMs > 0 ? setInterval(() => {
      try {
        this.tick();
      } catch (err) {
        opts.onError?.(err);
      }
    }, tickMs) : null;
    this.timer?.unref();
  }

  tick(): void {
    const now = this.now();
    const dtS = (now - this.lastTickMs) / 1000;
    this.lastTickMs = now;
    for (const [name, count] of this.read()) {
      let m = this.meters.get(name);
      if (!m || count < m.lastCount) {
        m = { startMs: now, startCount: count, lastCount: count, seenAtMs: now, m1: 0, m5: 0, m15: 0, primed: false };
        this.meters.set(name, m);
        continue;
      }
      m.seenAtMs = now;
      if (dtS <= 0) continue;
      const instant = (count - m.lastCount) / dtS;
      m.lastCount = count;
      if (!m.primed) {
        m.m1 = m.m5 = m.m15 = instant;
        m.primed = true;
        continue;
      }
      m.m1 += (1 - Math.exp(-dtS / WINDOWS_S[0])) * (instant - m.m1);
      m.m5 += (1 - Math.exp(-dtS / WINDOWS_S[1])) * (instant - m.m5);
      m.m15 += (1 - Math.exp(-dtS / WINDOWS_S[2])) * (instant - m.m15);
    }
    // Forget meters whose source disappeared (deleted app, unloaded version).
    for (const [name, m] of this.meters) if (m.seenAtMs !== now) this.meters.delete(name);
  }

  /** The meter's rates given its current cumulative `count` (the mean rate is exact at read time). */
  reading(name: string, count: number): MeterReading {
    const m = this.meters.get(name);
    if (!m || count < m.startCount) return { rate: 0, rate1m: 0, rate5m: 0, rate15m: 0 };
    const elapsedS = (this.now() - m.startMs) / 1000;
    return { rate: elapsedS > 0 ? (count - m.startCount) / elapsedS : 0, rate1m: m.m1, rate5m: m.m5, rate15m: m.m15 };
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

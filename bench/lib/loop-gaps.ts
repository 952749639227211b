/**
 * Where event-loop lag comes from: a 1 ms timer on the server's main thread, and for each tick
 * the time since the last one, how much of it the thread ran (GC included), how much it waited
 * runnable for a CPU (the kernel's run-queue delay, /proc/<pid>/task/<tid>/schedstat), and the
 * GC pauses inside it. The late ticks then split into the server's own work, GC, and the
 * machine's: on a box whose cores the load generator shares, a thread that waits for a CPU is
 * late however little it does.
 *
 * The kernel brings a running thread's times up to date at its scheduler ticks (every 4 ms at
 * HZ 250), not when schedstat is read, so up to a tick of a gap's running may show as asleep or
 * blocked (and count in the next gap instead); over the worst gaps, tens of ms each, that is a
 * few percent.
 *
 * `LoopGaps` runs inside the server under test (bench/servers/skiff-host.ts); `summarizeGaps`
 * and `describeGaps` are pure and exported for the tests.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';

/** The timer's period (ms): a tick's lateness is its gap less this. */
export const GAP_PERIOD_MS = 1;

/** The late ticks' time, split by what the thread did meanwhile (ms). */
export interface GapShare {
  /** Ticks in the share. */
  ticks: number;
  /** Their gaps together. */
  gapMs: number;
  /** Running on a CPU. */
  runningMs: number;
  /**
   * GC pauses within the gaps: running, mostly, or blocked where the pause waits for V8's
   * helper threads (which themselves may wait for a CPU).
   */
  gcMs: number;
  /** Runnable, waiting for a CPU. */
  waitingMs: number;
  /** Neither: asleep or blocked (e.g. the kernel, a lock). */
  otherMs: number;
}

export interface GapSummary {
  ticks: number;
  /** Lateness of the ticks (gap less the period), ms. */
  lateP50Ms: number;
  lateP99Ms: number;
  lateMaxMs: number;
  /** The latest 1% of ticks (at least one). */
  worst: GapShare;
}

/**
 * Summarize ticks, given flat as [start, end, running, waiting] (ms) per tick, and GC pauses as
 * [start, end] (ms, the same clock).
 */
export function summarizeGaps(ticks: ArrayLike<number>, gcs: readonly (readonly [number, number])[], period = GAP_PERIOD_MS): GapSummary {
  const n = Math.floor(ticks.length / 4);
  const order = Array.from({ length: n }, (_, i) => i);
  const gap = (i: number): number => ticks[4 * i + 1]! - ticks[4 * i]!;
  order.sort((a, b) => gap(b) - gap(a));
  const late = (i: number): number => Math.max(0, gap(i) - period);
  const at = (q: number): number => (n === 0 ? 0 : late(order[Math.min(n - 1, Math.floor((1 - q) * n))]!));
  const worst: GapShare = { ticks: 0, gapMs: 0, runningMs: 0, gcMs: 0, waitingMs: 0, otherMs: 0 };
  const take = n === 0 ? 0 : Math.max(1, Math.floor(n / 100));
  for (let k = 0; k < take; k++) {
    const i = order[k]!;
    const a = ticks[4 * i]!, b = ticks[4 * i + 1]!;
    const g = b - a;
    const running = Math.min(g, ticks[4 * i + 2]!);
    const waiting = Math.min(g - running, ticks[4 * i + 3]!);
    let gc = 0;
    for (const [s, e] of gcs) if (s < b && e > a) gc += Math.min(e, b) - Math.max(s, a);
    worst.ticks++;
    worst.gapMs += g;
    worst.runningMs += running;
    worst.gcMs += Math.min(gc, g);
    worst.waitingMs += waiting;
    worst.otherMs += g - running - waiting;
  }
  return { ticks: n, lateP50Ms: at(0.5), lateP99Ms: at(0.99), lateMaxMs: n === 0 ? 0 : late(order[0]!), worst };
}

/** "worst 1% of 1 ms ticks (31 of 3,102): 412 ms in all: main thread running 44%, waiting for a CPU 51%, asleep or blocked 5%; GC pauses 9%" */
export function describeGaps(s: GapSummary): string {
  const w = s.worst;
  if (w.ticks === 0) return 'no ticks recorded';
  const pc = (x: number): string => `${Math.round((100 * x) / w.gapMs)}%`;
  return `worst 1% of ${GAP_PERIOD_MS} ms ticks (${w.ticks} of ${s.ticks}): ${w.gapMs.toFixed(0)} ms in all: `
    + `main thread running ${pc(w.runningMs)}, waiting for a CPU ${pc(w.waitingMs)}, asleep or blocked ${pc(w.otherMs)}; GC pauses ${pc(w.gcMs)}`;
}

/** Records ticks on the calling thread (the process's main thread) between start() and stop(). */
export class LoopGaps {
  private ticks = new Float64Array(4 * 16384);
  private n = 0;
  private gcs: [number, number][] = [];
  private timer: NodeJS.Timeout | null = null;
  private observer: PerformanceObserver | null = null;
  private fd = -1;
  private readonly buf = Buffer.alloc(128);
  private last = 0;
  private lastRun = 0;
  private lastWait = 0;

  /** False where schedstat cannot be read (then nothing is recorded). */
  start(): boolean {
    this.stop();
    try {
      this.fd = openSync(`/proc/self/task/${process.pid}/schedstat`, 'r');
    } catch {
      return false;
    }
    this.n = 0;
    this.gcs = [];
    this.observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) this.gcs.push([e.startTime, e.startTime + e.duration]);
    });
    this.observer.observe({ entryTypes: ['gc'] });
    this.sample();
    this.timer = setInterval(() => this.tick(), GAP_PERIOD_MS);
    return true;
  }

  stop(): GapSummary | null {
    if (this.fd < 0) return null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.observer?.disconnect();
    this.observer = null;
    closeSync(this.fd);
    this.fd = -1;
    return summarizeGaps(this.ticks.subarray(0, 4 * this.n), this.gcs);
  }

  /** Now, and the thread's run and run-queue wait so far (ms). */
  private sample(): void {
    const len = readSync(this.fd, this.buf, 0, this.buf.length, 0);
    const text = this.buf.toString('latin1', 0, len);
    const sp = text.indexOf(' ');
    this.last = performance.now();
    this.lastRun = Number(text.slice(0, sp)) / 1e6;
    this.lastWait = Number(text.slice(sp + 1, text.indexOf(' ', sp + 1))) / 1e6;
  }

  private tick(): void {
    const a = this.last, run0 = this.lastRun, wait0 = this.lastWait;
    this.sample();
    if (4 * (this.n + 1) > this.ticks.length) {
      const bigger = new Float64Array(this.ticks.length * 2);
      bigger.set(this.ticks);
      this.ticks = bigger;
    }
    const o = 4 * this.n++;
    this.ticks[o] = a;
    this.ticks[o + 1] = this.last;
    this.ticks[o + 2] = this.lastRun - run0;
    this.ticks[o + 3] = this.lastWait - wait0;
  }
}

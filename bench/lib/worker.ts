/**
 * A load-generator thread (worker_threads). It owns its connections, runs its share of the load
 * (its own Poisson schedule, or its share of the closed-loop units), records latencies into
 * its own HDR histograms and hands them back encoded. See loadgen.ts for the coordinator.
 *
 * Timing: all times are this thread's performance.now() in ms; the coordinator's common start
 * time arrives as an epoch time and is converted with performance.timeOrigin.
 */
import { readFileSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { createRng } from '../../src/rng.js';
import { createHistogram, encodeHistogram, recordCorrectedUs, recordUs } from './histogram.js';
import { CacheHitPolicy, type Rows } from './payload.js';
import { frameTemplates, httpTemplates } from './templates.js';
import { EchoWsDriver, ERROR, HttpDriver, SkiffWsDriver, DEFAULT, type AnswerSink, type Driver, type Outcome, type Unit } from './drivers.js';
import type { LoadSpec } from './spec.js';

export interface WorkerJob {
  spec: LoadSpec;
  rows: Rows;
  thread: number;
  /** This thread's share. */
  connections: number;
  concurrency: number;
  rate: number;
}

export interface WorkerResult {
  corrected: string;
  raw: string;
  sendLag: string;
  sent: number;
  ok: number;
  defaults: number;
  errors: number;
  errorCodes: Record<string, number>;
  elu: number;
  /** CPU time of this thread over the window / window length; -1 where unavailable. */
  cpu: number;
  expectedIntervalUs: number;
}

export type ToWorker = { type: 'prepare'; job: WorkerJob } | { type: 'go'; startAtEpochMs: number } | { type: 'cancel' };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'progress'; thread: number; sent: number; answered: number; errors: number }
  | { type: 'result'; thread: number; result: WorkerResult };

/** Most frame templates kept per run (they cycle). */
const MAX_TEMPLATES = 512;
const PROGRESS_MS = 200;
/** Most units sent back to back before yielding to I/O. */
const MAX_BURST = 64;

function makeDriver(job: WorkerJob, sink: AnswerSink): Driver {
  const { spec, rows } = job;
  const policy = new CacheHitPolicy(spec.payload.cacheHitRate, job.thread, spec.seed * 7919 + job.thread);
  const t = spec.target;
  if (t.protocol === 'http') {
    const u = new URL(t.url);
    const templates = httpTemplates({
      host: u.host, model: t.model, timeoutUs: t.timeoutUs, input: spec.input, rows, marked: spec.payload.cacheHitRate !== undefined,
    });
    return new HttpDriver(u.hostname, Number(u.port || 80), job.connections, templates, policy, sink);
  }
  const templates = frameTemplates({ model: t.model, timeoutUs: t.timeoutUs, input: spec.input, rows, k: spec.requestsPerFrame, maxFrames: MAX_TEMPLATES });
  return t.protocol === 'ws'
    ? new SkiffWsDriver(t.url, job.connections, templates, policy, sink)
    : new EchoWsDriver(t.url, job.connections, templates, policy, sink);
}

class Run {
  private readonly corrected = createHistogram();
  private readonly raw = createHistogram();
  private readonly warm = createHistogram();
  private readonly sendLag = createHistogram();
  private sent = 0;
  private ok = 0;
  private defaults = 0;
  private errors = 0;
  private readonly errorCodes: Record<string, number> = {};
  /** Closed-loop correction interval (µs), fixed when the measured window opens. */
  private interval = -1;
  private measuredOutstanding = 0;
  private draining = false;
  private finished = false;
  private resolveDone: (() => void) | null = null;
  readonly driver: Driver;
  private t0 = 0;
  private from = 0;
  private to = 0;
  private eluStart: EventLoopUtilization | null = null;
  private elu = 0;
  private cpuStart = -1;
  private cpu = -1;

  constructor(readonly job: WorkerJob) {
    this.driver = makeDriver(job, (u, o, c, n, now) => this.onAnswer(u, o, c, n, now));
  }

  private onAnswer(unit: Unit, outcome: Outcome, code: string | undefined, n: number, now: number): void {
    if (unit.remaining <= 0) return;
    const take = Math.min(n, unit.remaining);
    const us = (now - unit.startMs) * 1000;
    if (unit.measured) {
      for (let i = 0; i < take; i++) {
        if (this.job.spec.mode.kind === 'open') {
          recordUs(this.corrected, us);
          recordUs(this.raw, (now - unit.sentMs) * 1000);
        } else {
          recordCorrectedUs(this.corrected, us, this.intervalUs());
          recordUs(this.raw, us);
        }
      }
      if (outcome === ERROR) {
        this.errors += take;
        const key = code ?? 'ERROR';
        this.errorCodes[key] = (this.errorCodes[key] ?? 0) + take;
      } else if (outcome === DEFAULT) this.defaults += take;
      else this.ok += take;
    } else if (outcome !== ERROR) {
      for (let i = 0; i < take; i++) recordUs(this.warm, us);
    }
    unit.remaining -= take;
    if (unit.remaining === 0) {
      if (unit.measured) this.measuredOutstanding--;
      unit.done?.();
      if (this.draining && this.measuredOutstanding === 0) this.finish();
    }
  }

  /** The warm-up median, taken once: the interval a closed-loop client expects between answers. */
  private intervalUs(): number {
    if (this.interval < 0) this.interval = this.warm.totalCount >= 20 ? this.warm.getValueAtPercentile(50) : 0;
    return this.interval;
  }

  /** A unit whose latency counts from `startMs`; measured when `startMs` falls in the window. */
  private newUnit(startMs: number): Unit {
    const k = this.driver.k;
    const measured = startMs >= this.from && startMs < this.to;
    if (measured) {
      this.sent += k;
      this.measuredOutstanding++;
    }
    return { startMs, sentMs: startMs, measured, remaining: k, done: null };
  }

  async go(startAtEpochMs: number): Promise<WorkerResult> {
    const { spec } = this.job;
    this.t0 = startAtEpochMs - performance.timeOrigin;
    this.from = this.t0 + spec.warmupMs;
    this.to = this.from + spec.durationMs;
    const done = new Promise<void>((resolve) => (this.resolveDone = resolve));
    const progress = setInterval(() => {
      parentPort!.postMessage({ type: 'progress', thread: this.job.thread, sent: this.sent, answered: this.ok + this.defaults, errors: this.errors } satisfies FromWorker);
    }, PROGRESS_MS);
    setTimeout(() => {
      this.eluStart = performance.eventLoopUtilization();
      this.cpuStart = threadCpuMs();
    }, Math.max(0, this.from - performance.now()));
    const wait = this.t0 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (spec.mode.kind === 'open') this.openLoop();
    else this.closedLoop();
    await done;
    clearInterval(progress);
    this.driver.close();
    return {
      corrected: encodeHistogram(this.corrected),
      raw: encodeHistogram(this.raw),
      sendLag: encodeHistogram(this.sendLag),
      sent: this.sent, ok: this.ok, defaults: this.defaults, errors: this.errors, errorCodes: this.errorCodes,
      elu: this.elu, cpu: this.cpu, expectedIntervalUs: Math.max(0, this.interval),
    };
  }

  /** Closed loop: each of this thread's units is re-sent as soon as it is answered, until the window ends. */
  private closedLoop(): void {
    const issue = (): void => {
      const now = performance.now();
      if (now >= this.to) return this.endWindow();
      const u = this.newUnit(now);
      u.done = issue;
      this.driver.send(u);
    };
    for (let i = 0; i < this.job.concurrency; i++) issue();
    // Also end the window when nothing is answered any more (a stalled server).
    setTimeout(() => this.endWindow(), Math.max(0, this.to - performance.now()));
  }

  /**
   * Open loop: Poisson arrivals of units at rate / k. Between sends the thread sleeps on a
   * timer (1 ms granularity) and, with `spinUs` > 0, polls with setImmediate for the last
   * `spinUs` before a send (precise, but it burns CPU the server may need). A late thread sends
   * what is due at once, yielding to I/O every MAX_BURST units so answers are still read.
   */
  private openLoop(): void {
    const unitRate = this.job.rate / this.driver.k / 1000; // units per ms
    const rng = createRng(this.job.spec.seed * 31 + this.job.thread + 1);
    const gap = (): number => -Math.log(1 - rng.next()) / unitRate;
    const spinMs = (this.job.spec.spinUs ?? 0) / 1000;
    let next = this.t0 + gap();
    const tick = (): void => {
      let now = performance.now();
      let burst = 0;
      while (next <= now && next < this.to) {
        const u = this.newUnit(next);
        if (u.measured) recordUs(this.sendLag, (now - next) * 1000);
        this.driver.send(u);
        next += gap();
        if (++burst >= MAX_BURST) {
          setImmediate(tick);
          return;
        }
        now = performance.now();
      }
      if (next >= this.to) return this.endWindow();
      const ahead = next - performance.now();
      if (spinMs > 0 && ahead <= spinMs + 1) setImmediate(tick);
      else setTimeout(tick, spinMs > 0 ? ahead - spinMs - 1 : ahead);
    };
    tick();
  }

  private endWindow(): void {
    if (this.draining) return;
    this.draining = true;
    if (this.eluStart) this.elu = performance.eventLoopUtilization(this.eluStart).utilization;
    const cpuEnd = threadCpuMs();
    if (this.cpuStart >= 0 && cpuEnd >= 0) this.cpu = (cpuEnd - this.cpuStart) / this.job.spec.durationMs;
    if (this.measuredOutstanding === 0) return this.finish();
    setTimeout(() => {
      if (this.finished) return;
      this.driver.failOutstanding('NO_ANSWER');
      this.finish();
    }, this.job.spec.drainMs);
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.resolveDone?.();
  }
}

/** This thread's CPU time (ms) from /proc/thread-self/stat (Linux; 10 ms ticks), or -1. */
function threadCpuMs(): number {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 (utime, stime) of stat(5), counted from the state field (3).
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return -1;
  }
}

let run: Run | null = null;

parentPort!.on('message', (m: ToWorker) => {
  if (m.type === 'prepare') {
    try {
      run = new Run(m.job);
    } catch (err) {
      parentPort!.postMessage({ type: 'failed', message: String(err instanceof Error ? err.message : err) } satisfies FromWorker);
      return;
    }
    run.driver.connect().then(
      () => parentPort!.postMessage({ type: 'ready' } satisfies FromWorker),
      (err: unknown) => parentPort!.postMessage({ type: 'failed', message: `cannot connect: ${err instanceof Error ? err.message : String(err)}` } satisfies FromWorker),
    );
  } else if (m.type === 'cancel') {
    run?.driver.close();
    run = null;
  } else if (m.type === 'go' && run) {
    const r = run;
    run = null;
    void r.go(m.startAtEpochMs).then((result) => parentPort!.postMessage({ type: 'result', thread: r.job.thread, result } satisfies FromWorker));
  }
});

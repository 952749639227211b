/**
 * The load generator's coordinator: a set of generator threads (worker.ts) kept across runs.
 * A run splits the connections, the closed-loop units or the open-loop rate across the threads,
 * starts them at one common instant, merges their HDR histograms and counts, and judges whether
 * the generator itself may have been the bottleneck.
 */
import { Worker } from 'node:worker_threads';
import { encodeHistogram, mergeEncoded, percentiles } from './histogram.js';
import { buildRows, type Rows } from './payload.js';
import { validateSpec, type GeneratorHealth, type LoadResult, type LoadSpec } from './spec.js';
import type { FromWorker, ToWorker, WorkerJob, WorkerResult } from './worker.js';

export interface Progress {
  /** ms since the run started (warm-up included). */
  elapsedMs: number;
  totalMs: number;
  warmupMs: number;
  sent: number;
  answered: number;
  errors: number;
}

export interface RunOptions {
  label?: string;
  onProgress?: (p: Progress) => void;
  /** Called (on this thread, by timer) when the measured window starts and when it ends. */
  onWindow?: (edge: 'start' | 'end') => void;
}

const WORKER_FILE = new URL('./worker.js', import.meta.url);
export const DEFAULT_MAX_SEND_LAG_US = 2000;
export const DEFAULT_MAX_GENERATOR_ELU = 0.9;

/** `total` split into `parts` integers differing by at most one. */
function split(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

export class LoadGenerator {
  private readonly rowsCache = new Map<string, Rows>();
  private busy = false;

  private constructor(private readonly workers: Worker[]) {}

  /** Start `threads` generator threads (idle until a run). */
  static async start(threads: number): Promise<LoadGenerator> {
    if (!(Number.isInteger(threads) && threads >= 1 && threads <= 64)) throw new RangeError('bench: threads must be an integer in [1, 64]');
    const workers = Array.from({ length: threads }, () => new Worker(WORKER_FILE));
    await Promise.all(workers.map((w) => new Promise<void>((resolve, reject) => {
      w.once('online', resolve);
      w.once('error', reject);
    })));
    return new LoadGenerator(workers);
  }

  get threads(): number {
    return this.workers.length;
  }

  private rowsFor(spec: LoadSpec): Rows {
    const key = JSON.stringify([spec.payload, spec.input, spec.seed]);
    let rows = this.rowsCache.get(key);
    if (!rows) {
      rows = buildRows(spec.payload, spec.input, spec.seed);
      this.rowsCache.set(key, rows);
    }
    return rows;
  }

  /** Run one load; resolves with the merged result. Runs are sequential per generator. */
  async run(spec: LoadSpec, opts: RunOptions = {}): Promise<LoadResult> {
    if (this.busy) throw new Error('bench: a run is already in progress on this generator');
    this.busy = true;
    try {
      return await this.runLocked(normalize(spec), opts);
    } finally {
      this.busy = false;
    }
  }

  private async runLocked(spec: LoadSpec, opts: RunOptions): Promise<LoadResult> {
    validateSpec(spec);
    const rows = this.rowsFor(spec);
    const units = spec.mode.kind === 'closed' ? spec.mode.concurrency : Infinity;
    const used = Math.min(this.workers.length, spec.connections, units);
    const conns = split(spec.connections, used);
    const conc = spec.mode.kind === 'closed' ? split(spec.mode.concurrency, used) : conns.map(() => 0);
    const rate = spec.mode.kind === 'open' ? spec.mode.rate / used : 0;
    const workers = this.workers.slice(0, used);

    const progress = new Map<number, { sent: number; answered: number; errors: number }>();
    const results = new Map<number, WorkerResult>();
    let onReady: (() => void) | null = null;
    let onDone: (() => void) | null = null;
    let failure: Error | null = null;
    let ready = 0;
    let onCrash: ((err: Error) => void) | null = null;
    const crash = (err: unknown): void => onCrash?.(err instanceof Error ? err : new Error(String(err)));
    const listeners = workers.map((w, thread) => {
      w.on('error', crash);
      const l = (m: FromWorker): void => {
        if (m.type === 'ready' && ++ready === used) onReady?.();
        else if (m.type === 'failed') {
          failure ??= new Error(`bench: generator thread ${thread}: ${m.message}`);
          onReady?.();
        } else if (m.type === 'progress') progress.set(m.thread, m);
        else if (m.type === 'result') {
          results.set(m.thread, m.result);
          if (results.size === used) onDone?.();
        }
      };
      w.on('message', l);
      return l;
    });
    try {
      const readyP = new Promise<void>((resolve) => (onReady = resolve));
      workers.forEach((w, thread) => {
        const job: WorkerJob = { spec, rows, thread, connections: conns[thread]!, concurrency: conc[thread]!, rate };
        w.postMessage({ type: 'prepare', job } satisfies ToWorker);
      });
      await readyP;
      if (failure) {
        for (const w of workers) w.postMessage({ type: 'cancel' } satisfies ToWorker);
        throw failure;
      }
      const doneP = new Promise<void>((resolve, reject) => {
        onDone = resolve;
        onCrash = (err) => reject(new Error(`bench: a generator thread failed: ${err.message}`));
      });
      const startAt = performance.timeOrigin + performance.now() + 20;
      for (const w of workers) w.postMessage({ type: 'go', startAtEpochMs: startAt } satisfies ToWorker);
      const totalMs = spec.warmupMs + spec.durationMs;
      const edges = opts.onWindow
        ? [setTimeout(() => opts.onWindow!('start'), startAt + spec.warmupMs - (performance.timeOrigin + performance.now())),
          setTimeout(() => opts.onWindow!('end'), startAt + totalMs - (performance.timeOrigin + performance.now()))]
        : [];
      const ticker = opts.onProgress
        ? setInterval(() => {
          let sent = 0, answered = 0, errors = 0;
          for (const p of progress.values()) {
            sent += p.sent;
            answered += p.answered;
            errors += p.errors;
          }
          opts.onProgress!({ elapsedMs: performance.timeOrigin + performance.now() - startAt, totalMs, warmupMs: spec.warmupMs, sent, answered, errors });
        }, 250)
        : null;
      try {
        await doneP;
      } finally {
        if (ticker) clearInterval(ticker);
        for (const e of edges) clearTimeout(e);
      }
      return merge(spec, [...results.values()], opts.label);
    } finally {
      workers.forEach((w, i) => {
        w.off('message', listeners[i]!);
        w.off('error', crash);
      });
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Fill in protocol-implied settings: HTTP closed loop uses one connection per unit in flight. */
export function normalize(spec: LoadSpec): LoadSpec {
  if (spec.target.protocol === 'http' && spec.mode.kind === 'closed') return { ...spec, connections: spec.mode.concurrency, requestsPerFrame: 1 };
  return spec;
}

function merge(spec: LoadSpec, parts: WorkerResult[], label?: string): LoadResult {
  const corrected = mergeEncoded(parts.map((p) => p.corrected));
  const raw = mergeEncoded(parts.map((p) => p.raw));
  const lag = mergeEncoded(parts.map((p) => p.sendLag));
  const seconds = spec.durationMs / 1000;
  const sum = (f: (p: WorkerResult) => number): number => parts.reduce((a, p) => a + f(p), 0);
  const errorCodes: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p.errorCodes)) errorCodes[k] = (errorCodes[k] ?? 0) + v;
  const ok = sum((p) => p.ok);
  const defaults = sum((p) => p.defaults);
  const elu = parts.map((p) => Math.round(p.elu * 1000) / 1000);
  const cpu = parts.map((p) => Math.round(p.cpu * 1000) / 1000);
  const generator: GeneratorHealth = { threads: parts.length, elu, cpu, bottleneck: false, reasons: [] };
  const maxElu = spec.maxGeneratorElu ?? DEFAULT_MAX_GENERATOR_ELU;
  // A spinning open loop is always busy: there only the schedule lag tells.
  if (spec.mode.kind === 'closed' || !(spec.spinUs! > 0)) {
    const busiest = Math.max(...elu);
    if (busiest > maxElu) generator.reasons.push(`a generator thread's event loop was busy ${(busiest * 100).toFixed(0)}% of the window (limit ${(maxElu * 100).toFixed(0)}%)`);
  }
  if (spec.mode.kind === 'open') {
    generator.sendLagUs = percentiles(lag);
    const maxLag = spec.maxSendLagUs ?? DEFAULT_MAX_SEND_LAG_US;
    if (generator.sendLagUs.p99 > maxLag) generator.reasons.push(`sends left ${generator.sendLagUs.p99} µs behind schedule at p99 (limit ${maxLag} µs); latencies include it`);
  }
  generator.bottleneck = generator.reasons.length > 0;
  const intervals = parts.map((p) => p.expectedIntervalUs).filter((v) => v > 0);
  const result: LoadResult = {
    protocol: spec.target.protocol,
    model: spec.target.model,
    mode: spec.mode,
    requestsPerFrame: spec.requestsPerFrame,
    connections: spec.connections,
    seconds,
    sent: sum((p) => p.sent),
    ok,
    defaults,
    errors: sum((p) => p.errors),
    errorCodes,
    throughput: (ok + defaults) / seconds,
    latencyUs: percentiles(corrected),
    rawLatencyUs: percentiles(raw),
    generator,
    histogram: encodeHistogram(corrected),
  };
  if (label !== undefined) result.label = label;
  if (spec.mode.kind === 'open') result.offeredRate = spec.mode.rate;
  if (spec.mode.kind === 'closed' && intervals.length > 0) result.expectedIntervalUs = Math.round(intervals.reduce((a, b) => a + b, 0) / intervals.length);
  return result;
}

/**
 * What the scenario runner hands every target: the shared load generator, run defaults for
 * quick and full mode, the servers under test (started lazily, stopped at the end), console
 * output that cooperates with the progress bar, and the record of every run for the report.
 */
import { readFileSync } from 'node:fs';
import type { ChildHandle } from './child.js';
import { spawnChild } from './child.js';
import { LoadGenerator } from './loadgen.js';
import { ProgressBar } from './progress.js';
import { summaryLine } from './report.js';
import type { InputSpec, LoadMode, LoadResult, LoadSpec, TargetSpec } from './spec.js';
import { measureRawOrt, type RawOrtResult } from '../baselines/raw-ort.js';
import { buildRows } from './payload.js';
import { perQuery, threadCpuNs, type HeapWindow } from './server-stats.js';

export interface TargetResult {
  id: string;
  title: string;
  /** The headline figure: a ratio against the baseline (or the figure itself for absolute targets). */
  value: number;
  /** The headline as printed, e.g. "0.91x" or "HTTP 5.2x, WS 9.8x". */
  measured: string;
  /** How `value` is judged, e.g. ">= 0.85x". */
  target: string;
  /** null: a report without a target (nothing to pass or fail). */
  pass: boolean | null;
  /** The measurements behind the verdict, one per line. */
  lines: string[];
  data: Record<string, unknown>;
}

export interface RecordedRun {
  target: string;
  series?: string;
  result: LoadResult;
}

export interface LoadOptions {
  series?: string;
  /** Extra fields over the defaults. */
  spec?: Partial<LoadSpec>;
  /**
   * The server under test to probe over the measured window: its main thread's CPU per query
   * (from /proc) and, when it runs with SKIFF_BENCH_STATS=1, bytes allocated and GC pauses.
   */
  probe?: ChildHandle;
}

export class BenchContext {
  readonly runs: RecordedRun[] = [];
  private readonly bar = new ProgressBar();
  private readonly children: ChildHandle[] = [];
  private readonly rawCache = new Map<string, Promise<RawOrtResult>>();
  /** CPU ticks of children already stopped. */
  private retiredTicks = 0;
  current = '';

  constructor(
    readonly quick: boolean,
    readonly gen: LoadGenerator,
  ) {}

  /** Warm-up and measured window of an ordinary run. */
  get warmupMs(): number {
    return this.quick ? 400 : 1000;
  }

  get durationMs(): number {
    return this.quick ? 1200 : 4000;
  }

  log(line = ''): void {
    this.bar.clear();
    console.log(line);
  }

  /** A LoadSpec with the runner's defaults (MNIST digits for 784-wide inputs, else random rows). */
  spec(target: TargetSpec, input: InputSpec, mode: LoadMode, extra: Partial<LoadSpec> = {}): LoadSpec {
    return {
      target,
      input,
      payload: { source: input.rowShape.length === 1 && input.rowShape[0] === 784 ? 'dataset' : 'random', poolSize: 1024 },
      mode,
      requestsPerFrame: 1,
      connections: 4,
      warmupMs: this.warmupMs,
      durationMs: this.durationMs,
      drainMs: 3000,
      seed: 1,
      ...extra,
    };
  }

  /** Run one load with a progress bar; print and record its summary. */
  async load(label: string, spec: LoadSpec, opts: LoadOptions = {}): Promise<LoadResult> {
    const s = { ...spec, ...opts.spec };
    const probe = opts.probe;
    const edges: { cpuNs: number; ms: number; stats?: Promise<unknown> }[] = [];
    const onWindow = probe
      ? (edge: 'start' | 'end'): void => {
        edges.push({ cpuNs: threadCpuNs(probe.pid), ms: performance.now(), stats: probe.call(edge === 'start' ? 'statsStart' : 'statsStop').catch(() => null) });
      }
      : undefined;
    const r = await this.gen.run(s, { label, onProgress: (p) => this.bar.update(label, p), ...(onWindow ? { onWindow } : {}) });
    if (probe && edges.length === 2) {
      const heap = (await edges[1]!.stats) as HeapWindow | null;
      await edges[0]!.stats;
      r.server = perQuery(edges[1]!.cpuNs - edges[0]!.cpuNs, edges[1]!.ms - edges[0]!.ms, r.ok + r.defaults, heap ?? undefined);
    }
    this.log(`  ${summaryLine(r)}`);
    const rec: RecordedRun = { target: this.current, result: r };
    if (opts.series) rec.series = opts.series;
    this.runs.push(rec);
    return r;
  }

  /** Fork a server or helper process; it is stopped by `close()`. */
  async child(entry: URL, args: string[] = [], fdLimit?: number, execArgv?: string[], env?: NodeJS.ProcessEnv): Promise<ChildHandle> {
    const c = await spawnChild(entry, { args, ...(fdLimit ? { fdLimit } : {}), ...(execArgv ? { execArgv } : {}), ...(env ? { env } : {}) });
    this.children.push(c);
    return c;
  }

  /** CPU counters of the machine and of this runner with all its children, past and present. */
  cpu(): CpuSample {
    const s = cpuSample(this.children.map((c) => c.pid));
    return { ...s, ours: s.ours + this.retiredTicks };
  }

  async stopChild(c: ChildHandle): Promise<void> {
    const i = this.children.indexOf(c);
    if (i >= 0) this.children.splice(i, 1);
    this.retiredTicks += procTicks(c.pid);
    await c.stop();
  }

  /** The raw ORT sweep of a model file (memoised: every target sees the same measurement). */
  rawOrt(modelPath: string, input: InputSpec, threads: number, batches: number[]): Promise<RawOrtResult> {
    const key = JSON.stringify([modelPath, threads, batches]);
    let p = this.rawCache.get(key);
    if (!p) {
      const rows = buildRows({ source: input.rowShape[0] === 784 ? 'dataset' : 'random', poolSize: 1024 }, input, 1);
      p = measureRawOrt({ modelPath, inputName: input.name, rowShape: input.rowShape, threads, batches, msPerBatch: this.quick ? 250 : 1000, rows });
      this.rawCache.set(key, p);
    }
    return p;
  }

  async close(): Promise<void> {
    this.bar.clear();
    await Promise.all(this.children.splice(0).map((c) => c.stop()));
  }
}

/** CPU time counters (clock ticks): the whole machine, and this process plus `pids`. */
export interface CpuSample {
  busy: number;
  total: number;
  ours: number;
}

/** utime + stime of a process (all its threads), in clock ticks; 0 when unreadable. */
export function procTicks(pid: number | 'self'): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime (stat(5) fields 14, 15; counted from the state field, 3).
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** A snapshot for `othersShare` (Linux /proc; zeros elsewhere). */
export function cpuSample(pids: readonly number[] = []): CpuSample {
  try {
    const f = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    const idle = f[3]! + (f[4] ?? 0);
    let ours = procTicks('self');
    for (const p of pids) ours += procTicks(p);
    return { busy: total - idle, total, ours };
  } catch {
    return { busy: 0, total: 0, ours: 0 };
  }
}

/** Share of the machine's CPU time (0..1) used between two samples: by everything, and by processes other than ours. */
export function cpuShares(a: CpuSample, b: CpuSample): { busy: number; others: number } {
  const total = Math.max(1, b.total - a.total);
  return { busy: (b.busy - a.busy) / total, others: Math.max(0, (b.busy - a.busy) - (b.ours - a.ours)) / total };
}

/** Share of the machine's CPU time used over `ms` (all processes, including other tenants). */
export async function machineCpuBusy(ms: number): Promise<number> {
  const a = cpuSample();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuSample();
  return b.total > a.total ? cpuShares(a, b).busy : NaN;
}

/** Wait (up to `maxMs`) until the machine has been below `threshold` busy for 3 s in a row; returns the last reading. */
export async function waitQuiet(threshold: number, maxMs: number, onWait: (busy: number) => void): Promise<number> {
  const until = performance.now() + maxMs;
  let quiet = 0;
  let busy = NaN;
  while (performance.now() < until) {
    busy = await machineCpuBusy(1000);
    if (!(busy >= threshold)) {
      if (++quiet >= 3) return busy;
    } else {
      quiet = 0;
      onWait(busy);
    }
  }
  return busy;
}

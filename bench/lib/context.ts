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
}

export class BenchContext {
  readonly runs: RecordedRun[] = [];
  private readonly bar = new ProgressBar();
  private readonly children: ChildHandle[] = [];
  private readonly rawCache = new Map<string, Promise<RawOrtResult>>();
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
    const r = await this.gen.run(s, { label, onProgress: (p) => this.bar.update(label, p) });
    this.log(`  ${summaryLine(r)}`);
    const rec: RecordedRun = { target: this.current, result: r };
    if (opts.series) rec.series = opts.series;
    this.runs.push(rec);
    return r;
  }

  /** Fork a server or helper process; it is stopped by `close()`. */
  async child(entry: URL, args: string[] = []): Promise<ChildHandle> {
    const c = await spawnChild(entry, { args });
    this.children.push(c);
    return c;
  }

  async stopChild(c: ChildHandle): Promise<void> {
    const i = this.children.indexOf(c);
    if (i >= 0) this.children.splice(i, 1);
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

/** Share of the machine's CPU time used over `ms` (all processes, including other tenants). */
export async function machineCpuBusy(ms: number): Promise<number> {
  const read = (): { idle: number; total: number } => {
    const f = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    return { idle: f[3]! + (f[4] ?? 0), total: f.reduce((a, b) => a + b, 0) };
  };
  try {
    const a = read();
    await new Promise((r) => setTimeout(r, ms));
    const b = read();
    return 1 - (b.idle - a.idle) / Math.max(1, b.total - a.total);
  } catch {
    return NaN;
  }
}

/**
 * The fuzz harness: runs one hostile input through a parser and classifies the outcome.
 *
 * Per input it enforces the three rules of hostile-input handling:
 *  - no crash: anything thrown must be a SkiffError whose code is in the parser's allowed list
 *    (every such code is in the documented error table, src/errors.ts);
 *  - no hang: the parse must finish within `maxMsPerInput` (an input over the bound is re-run
 *    once and the faster attempt counts, so a GC pause or a busy machine is not mistaken for a
 *    hang); an input stuck for good is caught by a watchdog thread, which prints it and kills
 *    the process;
 *  - no amplification: the bytes an accepted input decodes into must stay within
 *    `outputFactor` × its size + `outputSlack`.
 * A violation throws an Error, which fast-check reports with the failing input and its seed.
 * Across a campaign the tally samples RSS and compares the heap retained after a full GC at its
 * start and end, so a test can bound memory growth over the run (`checkCampaign`).
 *
 * Run counts: SKIFF_FUZZ_RUNS (default 1,000,000) is split over the campaigns by CAMPAIGN_SHARES,
 * so the whole fuzz suite runs that many inputs (up to rounding). SKIFF_FUZZ_SEED fixes the seed.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Worker } from 'node:worker_threads';
import { SkiffError, isErrorCode, type ErrorCode } from '../../src/errors.js';

export const DEFAULT_TOTAL_RUNS = 1_000_000;

/** Each campaign's share of SKIFF_FUZZ_RUNS; the shares sum to 1. */
export const CAMPAIGN_SHARES = {
  'wire.random': 0.1,
  'wire.structured': 0.08,
  'wire.mutated': 0.24,
  'oip.json-random': 0.06,
  'oip.structured': 0.07,
  'oip.mutated': 0.12,
  'oip.header-length': 0.04,
  'clipper.structured': 0.07,
  'clipper.mutated': 0.07,
  'admin.structured': 0.08,
  'admin.mutated': 0.07,
} as const;

export type CampaignName = keyof typeof CAMPAIGN_SHARES;

export function totalRuns(): number {
  const raw = process.env.SKIFF_FUZZ_RUNS;
  if (raw === undefined || raw === '') return DEFAULT_TOTAL_RUNS;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`SKIFF_FUZZ_RUNS must be a non-negative integer, got '${raw}'`);
  return n;
}

/** The number of inputs campaign `name` runs out of `total`. */
export function runsFor(name: CampaignName, total = totalRuns()): number {
  return Math.round(total * CAMPAIGN_SHARES[name]);
}

/** SKIFF_FUZZ_SEED, or a fresh seed (printed in the summary so a failure can be replayed). */
export function fuzzSeed(): number {
  const raw = process.env.SKIFF_FUZZ_SEED;
  if (raw !== undefined && raw !== '') return Number(raw) | 0;
  return (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
}

export interface Bounds {
  maxMsPerInput: number;
  outputFactor: number;
  outputSlack: number;
}

export const DEFAULT_BOUNDS: Readonly<Bounds> = Object.freeze({ maxMsPerInput: 200, outputFactor: 4, outputSlack: 65536 });

/** What an accepted input produced: bytes it decoded into, and the codes of per-item errors. */
export interface Accepted {
  outputBytes: number;
  itemCodes?: readonly ErrorCode[];
}

const RSS_SAMPLE_EVERY = 1024;
const MB = 1024 * 1024;

let gcFn: (() => void) | undefined;

/**
 * A full garbage collection, so retained heap can be compared before and after a campaign. Uses
 * global.gc when node runs with --expose-gc, otherwise turns the flag on at run time and takes
 * gc from a fresh context (where V8 installs it).
 */
export function collectGarbage(): void {
  if (gcFn === undefined) {
    gcFn = (globalThis as { gc?: () => void }).gc;
    if (gcFn === undefined) {
      setFlagsFromString('--expose-gc');
      gcFn = runInNewContext('gc') as () => void;
    }
  }
  gcFn();
}

function retainedHeap(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

interface Outcome<T> {
  ms: number;
  value?: T;
  code?: ErrorCode;
}

// ---------------------------------------------------------------------------------------------
// Watchdog: a parser stuck in a loop blocks this thread, so the per-input time bound can never
// fire. A small worker watches a heartbeat in shared memory; if one input stays armed for
// WATCHDOG_MS it prints that input (base64) and kills the process, failing the run loudly.

const WATCHDOG_MS = 15_000;
const WATCHDOG_INPUT_MAX = 64 * 1024;
/** [0] = inputs started, [1] = armed (a parse is running), [2] = input length. */
let beat: Int32Array | undefined;
let watchedInput: Uint8Array | undefined;

const WATCHDOG_SOURCE = `
const { workerData } = require('node:worker_threads');
const beat = new Int32Array(workerData.beat);
const input = new Uint8Array(workerData.input);
let seen = -1, since = Date.now();
setInterval(() => {
  const n = Atomics.load(beat, 0);
  if (n !== seen || Atomics.load(beat, 1) === 0) { seen = n; since = Date.now(); return; }
  if (Date.now() - since < workerData.limitMs) return;
  const len = Math.min(Atomics.load(beat, 2), input.length);
  // fs.writeSync to fd 2: a worker's process.stderr goes through the (blocked) main thread.
  require('node:fs').writeSync(2, 'fuzz watchdog: input ' + n + ' has run for ' + workerData.limitMs + ' ms (a hang); its first ' + len
    + ' bytes, base64: ' + Buffer.from(input.subarray(0, len)).toString('base64') + '\\n');
  process.kill(process.pid, 'SIGKILL');
}, 250);
`;

function startWatchdog(): void {
  if (beat !== undefined) return;
  const beatBuf = new SharedArrayBuffer(12);
  const inputBuf = new SharedArrayBuffer(WATCHDOG_INPUT_MAX);
  beat = new Int32Array(beatBuf);
  watchedInput = new Uint8Array(inputBuf);
  new Worker(WATCHDOG_SOURCE, { eval: true, workerData: { beat: beatBuf, input: inputBuf, limitMs: WATCHDOG_MS } }).unref();
}

function armWatchdog(input: Uint8Array): void {
  const n = Math.min(input.byteLength, WATCHDOG_INPUT_MAX);
  watchedInput!.set(n === input.byteLength ? input : input.subarray(0, n));
  Atomics.store(beat!, 2, n);
  Atomics.add(beat!, 0, 1);
  Atomics.store(beat!, 1, 1);
}

function disarmWatchdog(): void {
  Atomics.store(beat!, 1, 0);
}

function describeThrown(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}${'code' in e ? ` (code ${String((e as { code: unknown }).code)})` : ''}\n${e.stack ?? ''}`;
  return `non-Error value thrown: ${typeof e}`;
}

export class Tally {
  inputs = 0;
  /** Inputs that parsed with no error at all. */
  accepted = 0;
  /** Inputs refused, and items of accepted inputs refused, by code. */
  readonly rejected = new Map<string, number>();
  /** Longest time one input took (the faster of two attempts when the first was over the bound). */
  maxMs = 0;
  maxMsInputBytes = 0;
  /** Largest output/input byte ratio among accepted inputs. */
  maxOutputRatio = 0;
  inputBytes = 0;
  readonly startRss: number;
  peakRss: number;
  /** Heap still in use after a full GC, at the start and (after finish()) at the end. */
  readonly startHeap: number;
  endHeap = 0;
  private readonly started = performance.now();
  elapsedMs = 0;

  constructor(
    readonly name: string,
    readonly seed: number,
    private readonly allowed: readonly ErrorCode[],
    private readonly bounds: Bounds = DEFAULT_BOUNDS,
  ) {
    startWatchdog();
    this.startHeap = retainedHeap();
    this.startRss = process.memoryUsage.rss();
    this.peakRss = this.startRss;
  }

  private sampleRss(): void {
    const rss = process.memoryUsage.rss();
    if (rss > this.peakRss) this.peakRss = rss;
  }

  private refuse(code: string): void {
    this.rejected.set(code, (this.rejected.get(code) ?? 0) + 1);
  }

  private crash(input: Uint8Array, e: unknown): never {
    throw new Error(`${this.name}: crash on a ${input.byteLength}-byte input: ${describeThrown(e)}`);
  }

  /** The allowed code of a refusal; anything else thrown is a crash. */
  private codeOf(input: Uint8Array, e: unknown): ErrorCode {
    if (e instanceof SkiffError && isErrorCode(e.code) && this.allowed.includes(e.code)) return e.code;
    return this.crash(input, e);
  }

  private attempt<T>(input: Uint8Array, parse: () => T): Outcome<T> {
    armWatchdog(input);
    const t0 = performance.now();
    try {
      const value = parse();
      return { ms: performance.now() - t0, value };
    } catch (e) {
      return { ms: performance.now() - t0, code: this.codeOf(input, e) };
    } finally {
      disarmWatchdog();
    }
  }

  private async attemptAsync<T>(input: Uint8Array, parse: () => T | Promise<T>): Promise<Outcome<T>> {
    armWatchdog(input);
    const t0 = performance.now();
    try {
      const value = await parse();
      return { ms: performance.now() - t0, value };
    } catch (e) {
      return { ms: performance.now() - t0, code: this.codeOf(input, e) };
    } finally {
      disarmWatchdog();
    }
  }

  /** Count the outcome; returns the accepted value. */
  private settle<T>(input: Uint8Array, r: Outcome<T>, inspect: (value: T) => Accepted): T | undefined {
    this.record(r.ms, input.byteLength);
    if (r.code !== undefined) {
      this.refuse(r.code);
      return undefined;
    }
    const value = r.value as T;
    this.accept(inspect(value), input.byteLength);
    return value;
  }

  /**
   * Run one input through `parse` (which may be called twice: an input over the time bound is
   * re-run, and the faster attempt counts); `inspect` reports what an accepted value decoded into.
   */
  check<T>(input: Uint8Array, parse: () => T, inspect: (value: T) => Accepted): T | undefined {
    let r = this.attempt(input, parse);
    if (r.ms > this.bounds.maxMsPerInput) {
      const again = this.attempt(input, parse);
      if (again.ms < r.ms) r = again;
    }
    return this.settle(input, r, inspect);
  }

  /**
   * `check` for handlers that may return a promise. A stateful handler's re-run meets the state
   * its first run left (e.g. an app it added): it times the same body, not the same outcome.
   */
  async checkAsync<T>(input: Uint8Array, parse: () => T | Promise<T>, inspect: (value: T) => Accepted): Promise<T | undefined> {
    let r = await this.attemptAsync(input, parse);
    if (r.ms > this.bounds.maxMsPerInput) {
      const again = await this.attemptAsync(input, parse);
      if (again.ms < r.ms) r = again;
    }
    return this.settle(input, r, inspect);
  }

  private record(ms: number, inputBytes: number): void {
    this.inputs++;
    this.inputBytes += inputBytes;
    if (ms > this.maxMs) {
      this.maxMs = ms;
      this.maxMsInputBytes = inputBytes;
    }
    if (ms > this.bounds.maxMsPerInput) {
      throw new Error(`${this.name}: a ${inputBytes}-byte input took ${ms.toFixed(1)} ms (bound ${this.bounds.maxMsPerInput} ms)`);
    }
    if (this.inputs % RSS_SAMPLE_EVERY === 0) this.sampleRss();
  }

  private accept(out: Accepted, inputBytes: number): void {
    const limit = this.bounds.outputFactor * inputBytes + this.bounds.outputSlack;
    if (out.outputBytes > limit) {
      throw new Error(`${this.name}: a ${inputBytes}-byte input decoded into ${out.outputBytes} bytes (bound ${limit})`);
    }
    if (inputBytes > 0) this.maxOutputRatio = Math.max(this.maxOutputRatio, out.outputBytes / inputBytes);
    const items = out.itemCodes ?? [];
    for (const c of items) {
      if (!isErrorCode(c)) throw new Error(`${this.name}: an item error carries the undocumented code '${String(c)}'`);
      this.refuse(`item:${c}`);
    }
    if (items.length === 0) this.accepted++;
  }

  /** Close the campaign: final RSS sample and elapsed time. Returns `this`. */
  finish(): this {
    this.sampleRss();
    this.elapsedMs = performance.now() - this.started;
    this.endHeap = retainedHeap();
    return this;
  }

  get rssGrowthMb(): number {
    return (this.peakRss - this.startRss) / MB;
  }

  /** Growth of the heap retained after a full GC over the campaign: what the inputs left behind. */
  get retainedGrowthMb(): number {
    return (this.endHeap - this.startHeap) / MB;
  }

  /** Total refusals (whole inputs and items). */
  get rejectedTotal(): number {
    let n = 0;
    for (const v of this.rejected.values()) n += v;
    return n;
  }

  summary(): string {
    const codes = [...this.rejected.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}:${v}`).join(',');
    return `fuzz ${this.name.padEnd(18)} inputs=${this.inputs} accepted=${this.accepted} rejected={${codes}} `
      + `max_ms=${this.maxMs.toFixed(2)} (${this.maxMsInputBytes} B input) max_out/in=${this.maxOutputRatio.toFixed(2)} `
      + `peak_rss=${(this.peakRss / MB).toFixed(0)}MB (+${this.rssGrowthMb.toFixed(0)}MB) retained_heap=${this.retainedGrowthMb >= 0 ? '+' : ''}${this.retainedGrowthMb.toFixed(1)}MB `
      + `mean_in=${this.inputs ? (this.inputBytes / this.inputs).toFixed(0) : 0}B time=${(this.elapsedMs / 1000).toFixed(1)}s seed=${this.seed}`;
  }
}

/**
 * RSS may grow by at most this much over one campaign. RSS includes V8 growing its heap for a
 * busy allocator, so it is a coarse bound; the retained heap (after GC) is the precise one.
 */
export const RSS_GROWTH_BOUND_MB = 200;
/** What the inputs of one campaign may leave behind in the heap (admin state included). */
export const RETAINED_GROWTH_BOUND_MB = 16;

/**
 * The campaign-level checks: every planned input ran, memory stayed bounded, and (for campaigns
 * large enough to tell) inputs were both accepted and refused, so the fuzzing reached past the
 * parser's first check. Prints the summary line. Throws an Error describing the first failure.
 */
export function checkCampaign(t: Tally, runs: number, opts: { mustAccept?: boolean; mustReject?: boolean } = {}): void {
  console.log(t.summary());
  if (t.inputs !== runs) throw new Error(`${t.name}: ran ${t.inputs} inputs, planned ${runs}`);
  if (t.rssGrowthMb > RSS_GROWTH_BOUND_MB) throw new Error(`${t.name}: RSS grew by ${t.rssGrowthMb.toFixed(0)} MB (bound ${RSS_GROWTH_BOUND_MB} MB)`);
  if (t.retainedGrowthMb > RETAINED_GROWTH_BOUND_MB) {
    throw new Error(`${t.name}: the heap retained after GC grew by ${t.retainedGrowthMb.toFixed(1)} MB (bound ${RETAINED_GROWTH_BOUND_MB} MB)`);
  }
  if (runs >= 1000) {
    if ((opts.mustAccept ?? true) && t.accepted === 0) throw new Error(`${t.name}: no input was accepted`);
    if ((opts.mustReject ?? true) && t.rejectedTotal === 0) throw new Error(`${t.name}: no input was refused`);
  }
}

/** fast-check run options for a campaign: the failing input's error goes into the report text. */
export function fcOptions(runs: number, seed: number): { numRuns: number; seed: number; includeErrorInReport: boolean } {
  return { numRuns: runs, seed, includeErrorInReport: true };
}

/** The figures of a finished campaign (a Tally, or its structured clone from a worker thread). */
export interface CampaignStats {
  name: string;
  inputs: number;
  accepted: number;
  rejected: Map<string, number>;
  maxMs: number;
  peakRss: number;
  elapsedMs: number;
}

/** One line for a parser over its campaigns: inputs, accepted, refusals by code, max time, peak RSS. */
export function parserSummary(parser: string, stats: readonly CampaignStats[]): string {
  const codes = new Map<string, number>();
  let inputs = 0, accepted = 0, maxMs = 0, peakRss = 0, ms = 0;
  for (const s of stats) {
    inputs += s.inputs;
    accepted += s.accepted;
    maxMs = Math.max(maxMs, s.maxMs);
    peakRss = Math.max(peakRss, s.peakRss);
    ms += s.elapsedMs;
    for (const [k, v] of s.rejected) codes.set(k, (codes.get(k) ?? 0) + v);
  }
  const list = [...codes.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}:${v}`).join(',');
  return `fuzz total ${parser.padEnd(8)} inputs=${inputs} accepted=${accepted} rejected={${list}} max_ms=${maxMs.toFixed(2)} `
    + `peak_rss=${(peakRss / MB).toFixed(0)}MB time=${(ms / 1000).toFixed(1)}s`;
}

/**
 * The fuzz harness: runs one hostile input through a parser and classifies the outcome.
 *
 * Per input it enforces the three rules of hostile-input handling:
 *  - no crash: anything thrown must be a SkiffError whose code is in the parser's allowed list
 *    (every such code is in the documented error table, src/errors.ts);
 *  - no hang: the parse must finish within `maxMsPerInput` (an input over the bound is re-run
 *    once when the parser is pure, so one GC pause is not mistaken for a hang);
 *  - no amplification: the bytes an accepted input decodes into must stay within
 *    `outputFactor` × its size + `outputSlack`.
 * A violation throws an Error, which fast-check reports with the failing input and its seed.
 * Across a campaign the tally samples RSS so a test can bound memory growth over the run.
 *
 * Run counts: SKIFF_FUZZ_RUNS (default 1,000,000) is split over the campaigns by CAMPAIGN_SHARES,
 * so the whole fuzz suite runs exactly that many inputs. SKIFF_FUZZ_SEED fixes the seed.
 */
import { SkiffError, isErrorCode, type ErrorCode } from '../../src/errors.js';

export const DEFAULT_TOTAL_RUNS = 1_000_000;

/** Each campaign's share of SKIFF_FUZZ_RUNS; the shares sum to 1. */
export const CAMPAIGN_SHARES = {
  'wire.random': 0.1,
  'wire.structured': 0.1,
  'wire.mutated': 0.2,
  'oip.json-random': 0.06,
  'oip.structured': 0.1,
  'oip.mutated': 0.1,
  'oip.header-length': 0.04,
  'clipper.structured': 0.08,
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

export const DEFAULT_BOUNDS: Readonly<Bounds> = Object.freeze({ maxMsPerInput: 100, outputFactor: 4, outputSlack: 65536 });

/** What an accepted input produced: bytes it decoded into, and the codes of per-item errors. */
export interface Accepted {
  outputBytes: number;
  itemCodes?: readonly ErrorCode[];
}

const RSS_SAMPLE_EVERY = 1024;
const MB = 1024 * 1024;

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
  maxMs = 0;
  maxMsInputBytes = 0;
  /** Largest output/input byte ratio among accepted inputs. */
  maxOutputRatio = 0;
  inputBytes = 0;
  readonly startRss: number;
  peakRss: number;
  private readonly started = performance.now();
  elapsedMs = 0;

  constructor(
    readonly name: string,
    readonly seed: number,
    private readonly allowed: readonly ErrorCode[],
    private readonly bounds: Bounds = DEFAULT_BOUNDS,
  ) {
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

  /** The outcome of one attempt: the value or the SkiffError, timed. Throws on a crash. */
  private attempt<T>(parse: () => T, inputBytes: number): { ms: number; value?: T; code?: ErrorCode } {
    const t0 = performance.now();
    try {
      const value = parse();
      return { ms: performance.now() - t0, value };
    } catch (e) {
      const ms = performance.now() - t0;
      if (e instanceof SkiffError && isErrorCode(e.code) && this.allowed.includes(e.code)) return { ms, code: e.code };
      throw new Error(`${this.name}: crash on a ${inputBytes}-byte input: ${describeThrown(e)}`);
    }
  }

  /**
   * Run one input. `parse` must be repeatable when `pure` (it may be called twice); `inspect`
   * reports what an accepted value decoded into.
   */
  check<T>(inputBytes: number, parse: () => T, inspect: (value: T) => Accepted, pure = true): T | undefined {
    let r = this.attempt(parse, inputBytes);
    if (r.ms > this.bounds.maxMsPerInput && pure) {
      const again = this.attempt(parse, inputBytes);
      if (again.ms < r.ms) r = again;
    }
    this.record(r.ms, inputBytes);
    if (r.code !== undefined) {
      this.refuse(r.code);
      return undefined;
    }
    const value = r.value as T;
    const out = inspect(value);
    this.accept(out, inputBytes);
    return value;
  }

  /** Async variant for handlers that may return a promise (not retried: handlers can be stateful). */
  async checkAsync<T>(inputBytes: number, parse: () => T | Promise<T>, inspect: (value: T) => Accepted): Promise<T | undefined> {
    const t0 = performance.now();
    let value: T;
    try {
      value = await parse();
    } catch (e) {
      this.record(performance.now() - t0, inputBytes);
      if (e instanceof SkiffError && isErrorCode(e.code) && this.allowed.includes(e.code)) {
        this.refuse(e.code);
        return undefined;
      }
      throw new Error(`${this.name}: crash on a ${inputBytes}-byte input: ${describeThrown(e)}`);
    }
    this.record(performance.now() - t0, inputBytes);
    this.accept(inspect(value), inputBytes);
    return value;
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
    return this;
  }

  get rssGrowthMb(): number {
    return (this.peakRss - this.startRss) / MB;
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
      + `peak_rss=${(this.peakRss / MB).toFixed(0)}MB (+${this.rssGrowthMb.toFixed(0)}MB) `
      + `mean_in=${this.inputs ? (this.inputBytes / this.inputs).toFixed(0) : 0}B time=${(this.elapsedMs / 1000).toFixed(1)}s seed=${this.seed}`;
  }
}

/** RSS may grow by at most this much over one campaign. */
export const RSS_GROWTH_BOUND_MB = 200;

/**
 * The campaign-level checks: every planned input ran, memory stayed bounded, and (for campaigns
 * large enough to tell) inputs were both accepted and refused, so the fuzzing reached past the
 * parser's first check. Prints the summary line. Throws an Error describing the first failure.
 */
export function checkCampaign(t: Tally, runs: number, opts: { mustAccept?: boolean; mustReject?: boolean } = {}): void {
  console.log(t.summary());
  if (t.inputs !== runs) throw new Error(`${t.name}: ran ${t.inputs} inputs, planned ${runs}`);
  if (t.rssGrowthMb > RSS_GROWTH_BOUND_MB) throw new Error(`${t.name}: RSS grew by ${t.rssGrowthMb.toFixed(0)} MB (bound ${RSS_GROWTH_BOUND_MB} MB)`);
  if (runs >= 1000) {
    if ((opts.mustAccept ?? true) && t.accepted === 0) throw new Error(`${t.name}: no input was accepted`);
    if ((opts.mustReject ?? true) && t.rejectedTotal === 0) throw new Error(`${t.name}: no input was refused`);
  }
}

import type { Clock } from '../clock.js';
import { wallDeadlineToMonotonic } from '../clock.js';
import { SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { QueryHandle } from '../engine/executor.js';
import { outputSelector, validateInputs } from '../engine/validate.js';
import type { ModelRegistry } from '../models/registry.js';
import { CodeCounts } from '../metrics/code-counts.js';
import type { ByteBudget } from '../budget.js';

/**
 * The query processor: the one path every frontend uses to run a query. Resolves the model
 * version, validates the inputs, computes the deadline and hands the query to the version's
 * executor. Frontends only parse and encode.
 */
export interface ModelQuery {
  model: string;
  /** 0 / undefined = the current version. */
  version?: number;
  inputs: Tensor[];
  /** Output names wanted; empty = all. */
  outputs?: readonly string[];
  /** Relative timeout from now, µs (0 = the model's default). */
  timeoutUs?: number;
  /** Absolute wall-clock deadline, µs since the epoch (0 = none). */
  deadlineUnixUs?: number;
  /** Client requests whose rows are stacked in these inputs (default 1): counted per request. */
  requests?: number;
  /**
   * Called once when the engine will never read the input bytes again (so their memory may be
   * reused); not called when that cannot be known (e.g. a model with a prediction cache).
   */
  inputsDone?: () => void;
}

export interface ModelAnswer {
  model: string;
  version: number;
  outputs: Tensor[];
}

export type AnswerCallback = (err: ErrorInfo | null, answer?: ModelAnswer) => void;

const NOOP: QueryHandle = { cancel() {} };

/** Default of --max-timeout-ms: the longest deadline a client can ask for. */
export const DEFAULT_MAX_TIMEOUT_MS = 60_000;
/** Timeouts and deadlines beyond this (24 h, in µs) are refused outright: they are mistakes. */
const ABSURD_US = 24 * 3600 * 1e6;

function safeNumber(x: number): string {
  return Number.isFinite(x) ? String(x) : 'non-finite';
}

export const SHUTTING_DOWN: ErrorInfo = { code: 'SHUTTING_DOWN', message: 'the server is shutting down and takes no new queries' };

export class QueryProcessor {
  /** Set at graceful shutdown: queries already accepted finish, new ones are refused. */
  draining = false;
  /** Queries refused before an executor, by "model:version" ("" = no version resolved). Error path only. */
  readonly rejected = new CodeCounts();

  constructor(
    private readonly registry: ModelRegistry,
    private readonly clock: Clock,
    /** The global bytes-in-flight budget: a query's input bytes are held until it is answered. */
    private readonly budget?: ByteBudget,
    /** The longest a query may wait (ms): longer timeouts are clamped to it. */
    readonly maxTimeoutMs = DEFAULT_MAX_TIMEOUT_MS,
  ) {}

  /** Run one query against a model. `cb` is called exactly once (maybe synchronously). */
  inferModel(q: ModelQuery, cb: AnswerCallback): QueryHandle {
    if (this.draining) {
      this.rejected.add('', SHUTTING_DOWN.code);
      cb(SHUTTING_DOWN);
      return NOOP;
    }
    let mv;
    let ordered: Tensor[];
    let rows: number;
    let select: (outs: Tensor[]) => Tensor[];
    try {
      mv = this.registry.resolve(q.model, q.version);
      ({ ordered, rows } = validateInputs(mv.spec!, q.inputs));
      select = outputSelector(mv.spec!, q.outputs);
    } catch (err) {
      const info = toErrorInfo(err);
      this.rejected.add(mv ? `${mv.model}:${mv.version}` : '', info.code);
      cb(info);
      return NOOP;
    }
    const now = this.clock.now();
    let deadline: number;
    try {
      deadline = this.deadlineOf(q, mv.config.default_timeout_us, now);
    } catch (err) {
      const info = toErrorInfo(err);
      this.rejected.add(`${mv.model}:${mv.version}`, info.code);
      cb(info);
      return NOOP;
    }
    const { model, version } = mv;
    let bytes = 0;
    if (this.budget) {
      for (const t of ordered) bytes += t.data.byteLength;
      const refused = this.budget.acquire(bytes);
      if (refused) {
        this.rejected.add(`${model}:${version}`, refused.code);
        cb(refused);
        return NOOP;
      }
    }
    return mv.executor!.infer(ordered, rows, deadline, (err, outs) => {
      if (bytes > 0) this.budget!.release(bytes);
      if (err) cb(err);
      else cb(null, { model, version, outputs: select(outs!) });
    }, q.requests ?? 1, q.inputsDone);
  }

  /**
   * A query's deadline on the clock: its timeout (or the model's default), and the earlier of that
   * and its absolute deadline; never further away than the server's maximum. Timeouts and
   * deadlines that are negative, not finite, or beyond ABSURD_US are refused: a huge value must
   * not become a timer that overflows (Node fires such a timer after 1 ms, for ever).
   */
  private deadlineOf(q: ModelQuery, defaultUs: number, now: number): number {
    const t = q.timeoutUs;
    if (t !== undefined && t !== 0 && !(t > 0 && t <= ABSURD_US)) {
      throw new SkiffError('INVALID_DEADLINE', `timeout ${safeNumber(t)} µs is not a positive number of microseconds up to ${ABSURD_US}`);
    }
    const timeoutMs = Math.min(t ? t / 1000 : defaultUs / 1000, this.maxTimeoutMs);
    let deadline = now + timeoutMs;
    const d = q.deadlineUnixUs;
    if (d !== undefined && d !== 0) {
      const nowUs = Date.now() * 1000;
      if (!Number.isFinite(d) || d < 0 || d > nowUs + ABSURD_US) {
        throw new SkiffError('INVALID_DEADLINE', `deadline ${safeNumber(d)} µs since the epoch is not within ${ABSURD_US / 3.6e9} hours from now`);
      }
      deadline = Math.min(deadline, wallDeadlineToMonotonic(d, this.clock));
    }
    return deadline;
  }

  /**
   * How many single-row requests to this model may be answered as one stacked query (their rows
   * along the batch dimension, split again in the answer): the model's current batch cap, so a
   * stack is one batch and is admitted or refused as one; 0 when the model does not batch, has
   * a prediction cache (whose entries are per request) or does not resolve.
   */
  stackLimit(model: string, version?: number): number {
    if (this.draining) return 0;
    try {
      const mv = this.registry.resolve(model, version);
      const ex = mv.executor;
      return mv.spec?.batchable === true && ex && ex.cache === null ? ex.batchCap : 0;
    } catch {
      return 0;
    }
  }
}

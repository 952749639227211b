import type { Clock } from '../clock.js';
import { wallDeadlineToMonotonic } from '../clock.js';
import { toErrorInfo, type ErrorInfo } from '../errors.js';
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
    const timeoutMs = q.timeoutUs && q.timeoutUs > 0 ? q.timeoutUs / 1000 : mv.config.default_timeout_us / 1000;
    let deadline = now + timeoutMs;
    if (q.deadlineUnixUs && q.deadlineUnixUs > 0) deadline = Math.min(deadline, wallDeadlineToMonotonic(q.deadlineUnixUs, this.clock));
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

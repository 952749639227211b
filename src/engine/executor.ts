import type { Clock } from '../clock.js';
import { SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import { dataTypeFromWire, dataTypeToWire } from '../tensor/datatype.js';
import type { Tensor, TensorSpec } from '../tensor/tensor.js';
import { ModelLatency, record, recordTimes } from '../metrics/latency.js';
import { outputSlab, own } from '../tensor/slab.js';
import { aimdInitial, aimdNext, AIMD_DEFAULTS, type AimdConfig } from './aimd.js';
import { decideBatch } from './batch-former.js';
import { makeCacheKey, PredictionCache, type CacheKey, type Waiter } from './cache.js';
import { DeadlineQueue, type Queued } from './deadline-queue.js';
import type { ModelPool, PoolSlot, SlotLoss } from './pool.js';
import { maxRecordBytes, type Ring } from './ring/ring.js';
import type { SideChannel } from './ring/side-channel.js';
import {
  readTensorList, recordSeq, recordStatus, STATUS_ERROR, STATUS_EXTERNAL, tensorListBytes, TensorListWriter, type TensorList,
} from './ring/layout.js';

/**
 * The model abstraction layer for ONE model version: prediction cache, deadline-ordered queue,
 * AIMD-capped batch forming with a batch wait timeout, and dispatch to the version's worker
 * pool through SharedArrayBuffer rings. Each replica's worker serves its rings in a loop, so a
 * replica can hold PIPELINE_DEPTH batches: one running and full ones waiting behind it, which
 * keeps the worker busy while the main thread is late to collect an answer.
 *
 * Runs on the main (uWS) thread and never blocks it: inference happens in the workers.
 * Every accepted query is answered exactly once through its `done` callback, possibly
 * synchronously (cache hit, immediate refusal).
 */
export interface ExecutorConfig {
  /** "name:version", used in cache keys and logs. */
  id: string;
  maxBatchSize: number;
  batchWaitMs: number;
  latencyObjectiveMs: number;
  cacheBytes: number;
  /** Bound on queued rows; beyond it queries are refused with OVERLOADED. */
  maxQueueRows: number;
  /** A batch running longer than this terminates its worker and fails (0 = no limit). */
  batchTimeoutMs?: number;
  /** After this many worker failures in a row (crash, hang, out of memory) the version is failed. */
  maxConsecutiveFailures?: number;
  /** Called once when the version is declared failed by repeated worker failures. */
  onFailed?: (reason: string) => void;
  /** Batches a replica may hold (running + waiting in its ring); default PIPELINE_DEPTH. */
  pipelineDepth?: number;
  /** Park the worker pool (stop its threads) after this long without a query (ms; 0 = never). */
  parkIdleMs?: number;
}

export type Done = (err: ErrorInfo | null, outputs?: Tensor[]) => void;

export interface ModelSpec {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Every input has a variable leading (batch) dimension: queries can be stacked into batches. */
  batchable: boolean;
}

export function specOf(desc: { inputs: TensorSpec[]; outputs: TensorSpec[] }): ModelSpec {
  const batchable = desc.inputs.length > 0 && desc.inputs.every((i) => i.shape.length >= 1 && i.shape[0] === -1);
  return { inputs: desc.inputs, outputs: desc.outputs, batchable };
}

/** A handle to cancel a query (client went away). */
export interface QueryHandle {
  cancel(): void;
}

interface Query extends Queued {
  inputs: Tensor[];
  rows: number;
  /** Client requests this query carries (stacked rows count once each). */
  requests: number;
  /** Shapes of the non-batch dims: only queries with equal signatures share a batch. */
  sig: string;
  enqueuedAt: number;
  done: Done;
  finished: boolean;
}

interface Batch {
  seq: number;
  slot: PoolSlot;
  queries: Query[];
  rows: number;
  dispatchedAt: number;
  /** The next queued query did not fit under the cap (AIMD: the cap limited this batch). */
  capLimited: boolean;
}

/** One replica as the executor sees it: its batches in ring order (the head one is running). */
interface Lane {
  slot: PoolSlot;
  batches: Batch[];
  /** When the head batch started, as far as the main thread knows (dispatch or previous answer). */
  headSince: number;
  /** The request ring had no room for another batch: wait for an answer before pipelining more. */
  full: boolean;
  watchdog: NodeJS.Timeout | null;
  /** The watchdog terminated this lane's worker: its head batch hung. */
  hung: boolean;
  collectQueued: boolean;
}

/**
 * Batches a replica may hold: the running one plus full batches queued behind it in the ring.
 * A partial batch goes only to an idle replica, so pipelining never trades batch size away.
 */
export const PIPELINE_DEPTH = 2;

const NOOP_HANDLE: QueryHandle = { cancel() {} };
/** Batches observed before admission control trusts its latency estimate. */
const ADMISSION_WARMUP_BATCHES = 8;
const BATCH_WINDOW = 32;
/** Admit only when the estimated completion fits in this fraction of the time left. */
const ADMISSION_HEADROOM = 0.8;
const RING_RECORD_SLACK = 4096;

export class Executor {
  readonly spec: ModelSpec;
  latency = new ModelLatency();
  cache: PredictionCache<Tensor[]> | null;
  private readonly queue = new DeadlineQueue<Query>();
  private readonly aimd: AimdConfig;
  private readonly lanes: Lane[];
  private readonly depth: number;
  private readonly writer = new TensorListWriter();
  private capRows: number;
  /**
   * Typical batch service time (ms): from the moment a batch is at the head of its replica to
   * its answer being read — the model run plus the hand-offs. The median of the last
   * BATCH_WINDOW batches, recomputed per batch: a median, not a mean, so a few stragglers do
   * not make admission refuse what would have made it.
   */
  private estBatchMs = 0;
  private readonly recentBatchMs = new Float64Array(BATCH_WINDOW);
  private batchesSeen = 0;
  private queuedRows = 0;
  private consecutiveFailures = 0;
  private failed = false;
  private seq = 0;
  private batchSeq = 0;
  private timer: NodeJS.Timeout | null = null;
  private parkTimer: NodeJS.Timeout | null = null;
  /** Clock time of the last query submitted (for parking an idle pool). */
  private lastQueryAt = 0;
  /** When the armed timer (or immediate) is due, on the executor's clock. */
  private timerAt = Infinity;
  private immediate: NodeJS.Immediate | null = null;
  private closed = false;
  private drainWaiters: (() => void)[] = [];
  counters = { queries: 0, answered: 0, errors: 0, expired: 0, refused: 0, cancelled: 0, batches: 0, cacheHits: 0, workerFailures: 0 };
  /** Answers by error code, summed end-to-end µs of successes and failures, last answer time (clock ms, 0 = none). */
  outcomes = { byCode: {} as Record<string, number>, okUs: 0, failUs: 0, lastAt: 0 };

  constructor(
    readonly config: ExecutorConfig,
    private readonly pool: ModelPool,
    private readonly clock: Clock,
  ) {
    this.spec = specOf(pool.description);
    const maxBatch = this.spec.batchable ? config.maxBatchSize : 1;
    this.aimd = { ...AIMD_DEFAULTS, objectiveMs: config.latencyObjectiveMs, maxBatch };
    this.capRows = aimdInitial(this.aimd);
    this.depth = Math.max(1, config.pipelineDepth ?? PIPELINE_DEPTH);
    this.lanes = pool.slots.map((slot) => ({ slot, batches: [], headSince: 0, full: false, watchdog: null, hung: false, collectQueued: false }));
    this.lastQueryAt = clock.now();
    if ((config.parkIdleMs ?? 0) > 0) {
      const every = Math.max(50, Math.min(1000, config.parkIdleMs! / 4));
      this.parkTimer = setInterval(() => this.parkIfIdle(), every);
      this.parkTimer.unref();
    }
    pool.onReadable = (i) => this.collect(this.lanes[i]!);
    pool.onSlotLost = (i, loss) => this.laneLost(this.lanes[i]!, loss);
    this.cache = config.cacheBytes > 0 ? new PredictionCache<Tensor[]>(config.cacheBytes, tensorsBytes, ownTensors) : null;
  }

  /** Replicas (worker threads, up to the pipeline depth in batches each). */
  get replicas(): number {
    return this.pool.slots.length;
  }

  /** Worker threads of the current pool that died and were replaced. */
  get workerRestarts(): number {
    return this.pool.restarts;
  }

  /**
   * Take over a predecessor's state for the same model version (pool resize): its prediction
   * cache (in-flight coalesced queries complete into the same object), its latency histograms
   * and its learned batch cap. The predecessor keeps serving what it already holds.
   */
  adopt(old: Executor): void {
    this.cache = old.cache;
    this.latency = old.latency;
    // Shared, like the histograms: the predecessor's last answers count into the same totals.
    this.counters = old.counters;
    this.outcomes = old.outcomes;
    this.estBatchMs = old.estBatchMs;
    this.recentBatchMs.set(old.recentBatchMs);
    this.batchesSeen = old.batchesSeen;
    this.capRows = Math.min(old.capRows, this.aimd.maxBatch);
  }

  /** The current AIMD batch cap (rows). */
  get batchCap(): number {
    return this.capRows;
  }

  get queueDepth(): number {
    return this.queuedRows;
  }

  get inflight(): number {
    return this.inflightBatches();
  }

  /**
   * Submit a validated query: `inputs` in the model's input order, `rows` its batch size,
   * `deadline` on the executor's clock. `done` is called exactly once. `requests`: how many
   * client requests the query carries (rows of several requests stacked by a frontend), for
   * the per-request counters and latency histogram. `inputsDone`, when given, is called once
   * the executor will never read the input bytes again (not called for a model with a cache).
   */
  infer(inputs: Tensor[], rows: number, deadline: number, done: Done, requests = 1, inputsDone?: () => void): QueryHandle {
    this.counters.queries += requests;
    const arrived = this.clock.now();
    this.lastQueryAt = arrived;
    let answered = false;
    // Without a cache nothing but the query reads its inputs: once it is answered, their bytes
    // are free. (A cache keeps the leader's inputs as the in-flight key, and a cancelled leader
    // keeps running for its followers: never reported there.)
    const release = this.cache ? undefined : inputsDone;
    const finish: Done = (err, out) => {
      // Exactly once, even if a cancel races the answer.
      if (answered) return;
      answered = true;
      release?.();
      if (!err) this.counters.answered += requests;
      else if (err.code === 'CANCELLED') this.counters.cancelled += requests;
      else this.counters.errors += requests;
      const now = this.clock.now();
      const us = (now - arrived) * 1000;
      recordTimes(this.latency.endToEndUs, us, requests);
      const o = this.outcomes;
      o.lastAt = now;
      if (!err) o.okUs += us * requests;
      else {
        o.failUs += us * requests;
        o.byCode[err.code] = (o.byCode[err.code] ?? 0) + requests;
      }
      done(err, out);
    };
    if (this.closed) {
      finish({ code: 'MODEL_UNAVAILABLE', message: `${this.config.id} is shutting down` });
      return NOOP_HANDLE;
    }
    if (!this.cache) return this.run(inputs, rows, deadline, finish, requests);

    const key = makeCacheKey(this.keyPrefix(inputs), inputs.map((t) => t.data));
    const hit = this.cache.get(key);
    if (hit) {
      this.counters.cacheHits += requests;
      finish(null, hit);
      return NOOP_HANDLE;
    }
    const waiter: Waiter<Tensor[]> = (err, v) => (err ? finish(toErrorInfo(err)) : finish(null, v));
    if (this.cache.joinOrLead(key, waiter)) {
      return { cancel: () => this.leaveShared(key, waiter, finish) };
    }
    const cache = this.cache;
    const handle = this.run(inputs, rows, deadline, (err, out) => (err ? cache.fail(key, err) : cache.complete(key, out!)), requests);
    return { cancel: () => this.leaveShared(key, waiter, finish, handle) };
  }

  private leaveShared(key: CacheKey, waiter: Waiter<Tensor[]>, finish: Done, leader?: QueryHandle): void {
    const remaining = this.cache!.leave(key, waiter);
    finish({ code: 'CANCELLED', message: 'cancelled by the client' });
    // Cancel the underlying query only when nobody else still waits for it.
    if (remaining === 0) leader?.cancel();
  }

  private keyPrefix(inputs: Tensor[]): string {
    let p = this.config.id;
    for (const t of inputs) p += `|${t.datatype}[${t.shape.join(',')}]`;
    return p;
  }

  /** Run without the cache: split oversized queries, enqueue the parts. */
  private run(inputs: Tensor[], rows: number, deadline: number, done: Done, requests: number): QueryHandle {
    const max = this.aimd.maxBatch;
    if (!this.spec.batchable || rows <= max) return this.enqueue(inputs, rows, deadline, done, requests);
    // Larger than a batch: split along the batch dim, run the parts, concatenate the outputs.
    const parts = Math.ceil(rows / max);
    const results: Tensor[][] = new Array(parts);
    let pending = parts;
    let failed = false;
    const handles: QueryHandle[] = [];
    for (let p = 0; p < parts && !failed; p++) {
      const r0 = p * max;
      const r1 = Math.min(rows, r0 + max);
      const partInputs = inputs.map((t) => sliceRows(t, rows, r0, r1));
      handles.push(this.enqueue(partInputs, r1 - r0, deadline, (err, out) => {
        if (failed) return;
        if (err) {
          failed = true;
          for (const h of handles) h.cancel();
          done(err);
          return;
        }
        results[p] = out!;
        if (--pending === 0) done(null, concatRows(results));
      }));
    }
    return { cancel: () => { for (const h of handles) h.cancel(); } };
  }

  private enqueue(inputs: Tensor[], rows: number, deadline: number, done: Done, requests = 1): QueryHandle {
    const now = this.clock.now();
    if (deadline <= now) {
      this.counters.expired += requests;
      done({ code: 'DEADLINE_EXCEEDED', message: `deadline passed before ${this.config.id} could queue the query` });
      return NOOP_HANDLE;
    }
    if (this.queuedRows + rows > this.config.maxQueueRows) {
      this.counters.refused += requests;
      done({ code: 'OVERLOADED', message: `${this.config.id} queue is full`, retryAfterMs: Math.max(1, Math.ceil(this.workAheadMs(rows))) });
      return NOOP_HANDLE;
    }
    // Admission: refuse now what cannot finish by its deadline, instead of letting it wait and expire.
    const refusal = this.admit(rows, deadline - now);
    if (refusal) {
      this.counters.refused += requests;
      done(refusal);
      return NOOP_HANDLE;
    }
    // A parked pool starts its workers again; the batch waits in the fresh ring meanwhile.
    if (this.pool.isParked) this.pool.unpark();
    const q: Query = {
      deadline, seq: this.seq++, heapIndex: -1, inputs, rows, requests,
      sig: this.spec.batchable ? sigOf(inputs) : '', enqueuedAt: now, done, finished: false,
    };
    this.queue.push(q);
    this.queuedRows += rows;
    this.pump();
    return {
      cancel: () => {
        if (q.finished || !this.queue.remove(q)) return;
        this.queuedRows -= q.rows;
        this.answer(q, { code: 'CANCELLED', message: 'cancelled by the client' });
        this.checkDrained();
      },
    };
  }

  /**
   * Admission control. Estimated completion of a query arriving now: the remainder of running
   * batches when no replica is free, plus the full batches queued ahead of it spread over the
   * replicas, plus its own batch — all from the typical (median) recent batch latency. Refuse when that
   * overshoots the time left: OVERLOADED (with the time until the queue ahead has drained) when
   * the queue is the cause, DEADLINE_EXCEEDED when even an idle model could not make it. No
   * refusal before the model has a latency history.
   */
  private admit(rows: number, budgetMs: number): ErrorInfo | null {
    if (this.batchesSeen < ADMISSION_WARMUP_BATCHES) return null;
    const batchMs = this.estBatchMs;
    const waitMs = this.workAheadMs(rows);
    const completionMs = waitMs + batchMs;
    // Headroom for the estimate's error and the answer's way back to the client.
    if (completionMs <= budgetMs * ADMISSION_HEADROOM) return null;
    if (waitMs === 0) {
      return { code: 'DEADLINE_EXCEEDED', message: `${this.config.id} needs ~${batchMs.toFixed(1)} ms per batch; the deadline leaves ${budgetMs.toFixed(1)} ms` };
    }
    return {
      code: 'OVERLOADED',
      message: `${this.config.id} cannot meet the deadline: ~${completionMs.toFixed(1)} ms of work queued ahead, ${budgetMs.toFixed(1)} ms left`,
      retryAfterMs: Math.max(1, Math.ceil(waitMs)),
    };
  }

  /**
   * The one wait estimate (admission and Retry-After): time before a query of `rows` arriving now
   * gets a replica — the running batch when none is free, plus the full batches queued ahead of
   * it spread over the replicas. Typical batch latency: the recent median, or the objective
   * before any batch has run.
   */
  private workAheadMs(rows: number): number {
    const batchMs = this.batchesSeen > 0 ? this.estBatchMs : this.aimd.objectiveMs;
    let running = 0;
    let idle = false;
    for (const l of this.lanes) {
      running += l.batches.length;
      if (l.batches.length === 0) idle = true;
    }
    const queuedAhead = Math.floor((this.queuedRows + rows - 1) / Math.max(1, this.capRows));
    if (idle && queuedAhead === 0) return 0;
    return ((running + queuedAhead) * batchMs) / Math.max(1, this.lanes.length);
  }

  private answer(q: Query, err: ErrorInfo | null, out?: Tensor[]): void {
    if (q.finished) return;
    q.finished = true;
    q.done(err, out);
  }

  /** The scheduling loop: expire, decide, dispatch; arm one timer for the next event. */
  private pump(): void {
    for (;;) {
      const now = this.clock.now();
      this.expire(now);
      const oldest = this.queuedRows > 0 && this.queuedRows < this.capRows ? this.oldestEnqueuedAt() : now;
      let idle = 0;
      let pipelinable = 0;
      for (const l of this.lanes) {
        if (l.batches.length === 0) idle++;
        else if (l.batches.length < this.depth && !l.full) pipelinable++;
      }
      const d = decideBatch({
        now, queuedRows: this.queuedRows, oldestEnqueuedAt: oldest, cap: this.capRows,
        waitMs: this.config.batchWaitMs, freeReplicas: idle, pipelineReplicas: pipelinable,
      });
      if (d.kind === 'dispatch' && this.dispatch(now)) continue;
      let at = d.kind === 'wait' ? d.until : Infinity;
      const head = this.queue.peek();
      if (head && head.deadline < at) at = head.deadline;
      if (at === Infinity) this.clearTimer();
      // A timer already due no later than `at` stays (firing early only pumps again): no
      // re-arming per query while deadlines only move later.
      else if (!(this.timerAt <= at && (this.timer || this.immediate))) this.armTimer(at, now);
      this.checkDrained();
      return;
    }
  }

  private expire(now: number): void {
    for (let head = this.queue.peek(); head && head.deadline <= now; head = this.queue.peek()) {
      this.queue.pop();
      this.queuedRows -= head.rows;
      this.counters.expired += head.requests;
      this.answer(head, { code: 'DEADLINE_EXCEEDED', message: `deadline passed while queued for ${this.config.id}` });
    }
  }

  private oldestEnqueuedAt(): number {
    let t = Infinity;
    for (const q of this.queue.items()) if (q.enqueuedAt < t) t = q.enqueuedAt;
    return t;
  }

  private armTimer(at: number, now: number): void {
    this.clearTimer();
    this.timerAt = at;
    const delay = at - now;
    // setTimeout has ~1 ms granularity: sub-millisecond waits poll with setImmediate instead.
    if (delay < 1) {
      this.immediate = setImmediate(() => {
        this.immediate = null;
        this.pump();
      });
    } else {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, delay);
    }
  }

  private clearTimer(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.immediate) {
      clearImmediate(this.immediate);
      this.immediate = null;
    }
  }

  /** The replica for the next batch: an idle one, else the least loaded one that can pipeline. */
  private pickLane(): Lane | null {
    let best: Lane | null = null;
    for (const l of this.lanes) {
      if (l.batches.length === 0) return l;
      if (l.full || l.batches.length >= this.depth) continue;
      if (!best || l.batches.length < best.batches.length) best = l;
    }
    return best;
  }

  /**
   * Form one batch (deadline order, same signature, up to the cap) and write it to a replica's
   * request ring. False when no replica could take it (the queue is left as it was).
   */
  private dispatch(now: number): boolean {
    const lane = this.pickLane();
    if (!lane) return false;
    const slot = lane.slot;
    const first = this.queue.pop()!;
    const queries = [first];
    let rows = first.rows;
    const skipped: Query[] = [];
    const ringMax = maxRecordBytes(slot.req.capacity) - RING_RECORD_SLACK;
    let bytes = queryBytes(first);
    let capLimited = false;
    while (rows < this.capRows && this.queue.size > 0) {
      const q = this.queue.peek()!;
      if (rows + q.rows > this.capRows) {
        capLimited = true;
        break;
      }
      this.queue.pop();
      if (q.sig !== first.sig) {
        skipped.push(q);
        continue;
      }
      const b = queryBytes(q);
      if (bytes + b > ringMax) {
        skipped.push(q);
        break;
      }
      bytes += b;
      queries.push(q);
      rows += q.rows;
    }
    for (const q of skipped) this.queue.push(q);
    const batch: Batch = { seq: ++this.batchSeq >>> 0, slot, queries, rows, dispatchedAt: now, capLimited };
    let written: boolean;
    try {
      written = this.writeBatch(batch);
    } catch (err) {
      this.queuedRows -= rows;
      for (const q of queries) this.answer(q, toErrorInfo(err));
      return true;
    }
    if (!written) {
      // The ring is full of batches already waiting for this replica: try again after an answer.
      for (const q of queries) this.queue.push(q);
      lane.full = true;
      return this.pickLane() !== null && this.dispatch(now);
    }
    this.queuedRows -= rows;
    for (const q of queries) record(this.latency.queueWaitUs, (now - q.enqueuedAt) * 1000);
    record(this.latency.batchRows, rows);
    this.counters.batches++;
    lane.batches.push(batch);
    if (lane.batches.length === 1) this.startHead(lane, now);
    if (slot.watch()) this.collectSoon(lane);
    return true;
  }

  /** The lane's head batch starts now (as far as the main thread knows): arm its watchdog. */
  private startHead(lane: Lane, now: number): void {
    lane.headSince = now;
    const limit = this.config.batchTimeoutMs ?? 0;
    if (limit <= 0) return;
    if (lane.watchdog) lane.watchdog.refresh();
    else {
      lane.watchdog = setTimeout(() => this.checkHung(lane, limit), limit);
      lane.watchdog.unref();
    }
  }

  private checkHung(lane: Lane, limit: number): void {
    if (lane.batches.length === 0 || lane.hung) return;
    const ranMs = this.clock.now() - lane.headSince;
    if (ranMs >= limit - 1) {
      lane.hung = true;
      lane.slot.terminate();
    } else lane.watchdog!.refresh();
  }

  /** Repeated worker failures (crash, hang, OOM) mark the version failed, once. */
  private noteFailure(reason: string): void {
    this.consecutiveFailures++;
    const max = this.config.maxConsecutiveFailures ?? 0;
    if (max > 0 && this.consecutiveFailures >= max && !this.failed) {
      this.failed = true;
      this.config.onFailed?.(`${this.consecutiveFailures} worker failures in a row; last: ${reason}`);
    }
  }

  /**
   * Write the batch's inputs (stacked along dim 0) into the slot's request ring, or, when the
   * record is larger than a ring record can be, into a buffer sent on the slot's side port.
   * False when the ring has no room now.
   */
  private writeBatch(batch: Batch): boolean {
    const specs = this.spec.inputs;
    const first = batch.queries[0]!;
    const items = specs.map((_, i) => {
      let byteLength = 0;
      for (const q of batch.queries) byteLength += q.inputs[i]!.data.byteLength;
      const shape = first.inputs[i]!.shape;
      const dims = this.spec.batchable ? [batch.rows, ...shape.slice(1)] : shape;
      return { ndims: dims.length, byteLength, dims };
    });
    const size = tensorListBytes(items);
    const ring = batch.slot.req;
    let target: Uint8Array | null = null;
    let external: ArrayBuffer | undefined;
    if (size <= maxRecordBytes(ring.capacity)) {
      target = ring.reserve(size);
      if (!target) return false;
    } else {
      external = new ArrayBuffer(size);
      target = new Uint8Array(external);
    }
    this.writer.begin(target, batch.seq, items.length);
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      const dst = this.writer.tensor(dataTypeToWire(specs[i]!.datatype), it.dims, it.byteLength);
      let off = 0;
      for (const q of batch.queries) {
        const src = q.inputs[i]!.data;
        dst.set(src, off);
        off += src.byteLength;
      }
    }
    if (!external) ring.commit();
    else if (!batch.slot.sendExternal(batch.seq, external)) return false;
    return true;
  }

  /**
   * The worker answered before the wake-up was armed (a fast model): collect once the current
   * call stack is done, so no answer is delivered from inside infer().
   */
  private collectSoon(lane: Lane): void {
    if (lane.collectQueued) return;
    lane.collectQueued = true;
    queueMicrotask(() => {
      lane.collectQueued = false;
      this.collect(lane);
    });
  }

  /** Read every answer a replica has written, in ring order; re-arm the wake-up while batches remain. */
  private collect(lane: Lane): void {
    const res = lane.slot.res;
    for (;;) {
      while (lane.batches.length > 0) {
        const rec = res.peek();
        if (!rec) break;
        const external = recordStatus(rec) === STATUS_EXTERNAL;
        let body = rec;
        if (external) {
          const buf = lane.slot.side.take(recordSeq(rec));
          if (!buf) return; // its side message is still on the way: the side channel calls back
          body = new Uint8Array(buf);
        }
        this.finishHead(lane, body, null);
        res.release();
      }
      if (lane.batches.length === 0 || !lane.slot.watch()) break;
    }
    if (!this.closed) this.pump();
    this.checkDrained();
  }

  /**
   * The lane's worker died (crash, out of memory, or terminated by the watchdog). Answers it
   * wrote before dying are still delivered; the batch it was running fails with MODEL_ERROR;
   * batches queued behind it go back to the queue for the replacement worker.
   */
  private laneLost(lane: Lane, loss: SlotLoss): void {
    this.drainLost(lane, loss.res, loss.side);
    const [head, ...rest] = lane.batches;
    lane.batches = [];
    lane.full = false;
    const hung = lane.hung;
    lane.hung = false;
    if (head) {
      const limit = this.config.batchTimeoutMs ?? 0;
      const reason = hung ? `batch ran over ${limit} ms; worker terminated and replaced` : `worker failed: ${errMessage(loss.error)}`;
      this.counters.workerFailures++;
      for (const q of head.queries) this.answer(q, { code: 'MODEL_ERROR', message: reason });
      this.noteFailure(reason);
    }
    for (const b of rest) {
      for (const q of b.queries) {
        if (q.finished) continue;
        this.queue.push(q);
        this.queuedRows += q.rows;
      }
    }
    if (!this.closed) this.pump();
    this.checkDrained();
  }

  private drainLost(lane: Lane, res: Ring, side: SideChannel): void {
    for (let rec = res.peek(); rec && lane.batches.length > 0; rec = res.peek()) {
      let body: Uint8Array | null = rec;
      if (recordStatus(rec) === STATUS_EXTERNAL) {
        const buf = side.take(recordSeq(rec));
        body = buf ? new Uint8Array(buf) : null;
      }
      if (!body) break;
      this.finishHead(lane, body, null);
      res.release();
    }
    side.close();
  }

  /** Deliver the answer record of the lane's head batch (or fail it) and advance the lane. */
  private finishHead(lane: Lane, rec: Uint8Array, failure: ErrorInfo | null): void {
    const batch = lane.batches.shift()!;
    const now = this.clock.now();
    const serviceMs = now - lane.headSince;
    if (lane.batches.length > 0) this.startHead(lane, now);
    lane.full = false;
    let err = failure;
    let list: TensorList | null = null;
    if (!err) {
      this.consecutiveFailures = 0;
      if (recordSeq(rec) !== batch.seq) err = { code: 'INTERNAL', message: `answer for batch ${recordSeq(rec)} where ${batch.seq} was expected` };
      else {
        try {
          list = readTensorList(rec);
          this.split(batch, list);
        } catch (e) {
          err = toErrorInfo(e, 'MODEL_ERROR');
        }
      }
    }
    if (list && list.status !== STATUS_ERROR) {
      this.recentBatchMs[this.batchesSeen % BATCH_WINDOW] = serviceMs;
      this.batchesSeen++;
      const n = Math.min(this.batchesSeen, BATCH_WINDOW);
      const sorted = this.recentBatchMs.slice(0, n).sort();
      this.estBatchMs = sorted[n >> 1]!;
      record(this.latency.batchRunUs, serviceMs * 1000);
      record(this.latency.computeUs, list.aux);
      // AIMD sees the model's own run time: hand-off stalls on a busy main thread say nothing
      // about what a bigger batch would cost.
      this.capRows = aimdNext(this.capRows, { rows: batch.rows, latencyMs: list.aux / 1000, capLimited: batch.capLimited }, this.aimd);
    }
    if (err) for (const q of batch.queries) this.answer(q, err);
  }

  /** Cut the batch's output tensors into each query's rows (copying out of the ring into slab memory). */
  private split(batch: Batch, list: TensorList): void {
    if (list.status === STATUS_ERROR) {
      const e: ErrorInfo = { code: 'MODEL_ERROR', message: list.error ?? 'model error' };
      for (const q of batch.queries) this.answer(q, e);
      return;
    }
    const outs = this.spec.outputs;
    if (list.tensors.length !== outs.length) throw new SkiffError('MODEL_ERROR', `model returned ${list.tensors.length} outputs, expected ${outs.length}`);
    const perQuery: Tensor[][] = batch.queries.map(() => new Array(outs.length));
    for (let j = 0; j < outs.length; j++) {
      const t = list.tensors[j]!;
      const datatype = dataTypeFromWire(t.datatype);
      if (!datatype) throw new SkiffError('MODEL_ERROR', `output ${outs[j]!.name} has an unknown datatype`);
      const name = outs[j]!.name;
      if (batch.queries.length === 1 && !this.spec.batchable) {
        perQuery[0]![j] = { name, datatype, shape: t.dims, data: t.data.slice() };
        continue;
      }
      if (t.dims[0] !== batch.rows) {
        throw new SkiffError('MODEL_ERROR', `output ${name} has leading dim ${t.dims[0]}, expected the batch size ${batch.rows}`);
      }
      const rowBytes = batch.rows > 0 ? t.data.byteLength / batch.rows : 0;
      const rest = t.dims.slice(1);
      let off = 0;
      batch.queries.forEach((q, k) => {
        const n = q.rows * rowBytes;
        perQuery[k]![j] = { name, datatype, shape: [q.rows, ...rest], data: outputSlab.copy(t.data.subarray(off, off + n)) };
        off += n;
      });
    }
    batch.queries.forEach((q, k) => this.answer(q, null, perQuery[k]));
  }

  /** Batches written to the replicas and not yet answered (derived from the lanes). */
  private inflightBatches(): number {
    let n = 0;
    for (const l of this.lanes) n += l.batches.length;
    return n;
  }

  /** Times this version's pool was parked (threads stopped while idle). */
  get parks(): number {
    return this.pool.parks;
  }

  /** Worker threads running now (0 while parked). */
  get threads(): number {
    return this.pool.threads;
  }

  /** Whether the worker threads are stopped (idle) until the next query. */
  get parked(): boolean {
    return this.pool.isParked;
  }

  /** Idle for parkIdleMs with nothing queued or running: stop the workers. */
  private parkIfIdle(): void {
    if (this.closed || this.pool.isParked || this.queuedRows > 0 || this.inflightBatches() > 0) return;
    if (this.clock.now() - this.lastQueryAt < (this.config.parkIdleMs ?? 0)) return;
    this.pool.park();
  }

  /** Resolves when nothing is queued or running. New queries may still arrive unless closed. */
  drain(): Promise<void> {
    if (this.queuedRows === 0 && this.inflightBatches() === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private checkDrained(): void {
    if (this.queuedRows === 0 && this.inflightBatches() === 0 && this.drainWaiters.length > 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const f of w) f();
    }
  }

  /** Refuse new queries, fail what is still queued, wait for running batches, stop the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clearTimer();
    for (const l of this.lanes) if (l.watchdog) clearTimeout(l.watchdog);
    if (this.parkTimer) clearInterval(this.parkTimer);
    for (let q = this.queue.pop(); q; q = this.queue.pop()) {
      this.queuedRows -= q.rows;
      this.answer(q, { code: 'MODEL_UNAVAILABLE', message: `${this.config.id} was unloaded` });
    }
    await this.drain();
    await this.pool.close();
  }
}

function sigOf(inputs: Tensor[]): string {
  let s = '';
  for (const t of inputs) s += t.shape.slice(1).join('x') + ';';
  return s;
}

function queryBytes(q: Query): number {
  let b = 0;
  for (const t of q.inputs) b += t.data.byteLength + 64;
  return b;
}

/** Tensors whose bytes own their buffers (slab views copied out), for keeping in the cache. */
function ownTensors(ts: Tensor[]): Tensor[] {
  return ts.map((t) => (own(t.data) === t.data ? t : { ...t, data: own(t.data) }));
}

function tensorsBytes(ts: Tensor[]): number {
  let b = 0;
  for (const t of ts) b += t.data.byteLength + 64;
  return b;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Rows [r0, r1) of a tensor whose leading dim is `rows` (a view, no copy). */
export function sliceRows(t: Tensor, rows: number, r0: number, r1: number): Tensor {
  const rowBytes = t.data.byteLength / rows;
  return { name: t.name, datatype: t.datatype, shape: [r1 - r0, ...t.shape.slice(1)], data: t.data.subarray(r0 * rowBytes, r1 * rowBytes) };
}

/** Concatenate per-part outputs along the leading dim. */
export function concatRows(parts: Tensor[][]): Tensor[] {
  return parts[0]!.map((first, j) => {
    let bytes = 0;
    let rows = 0;
    for (const p of parts) {
      bytes += p[j]!.data.byteLength;
      rows += p[j]!.shape[0]!;
    }
    const data = new Uint8Array(bytes);
    let off = 0;
    for (const p of parts) {
      data.set(p[j]!.data, off);
      off += p[j]!.data.byteLength;
    }
    return { name: first.name, datatype: first.datatype, shape: [rows, ...first.shape.slice(1)], data };
  });
}

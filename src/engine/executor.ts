import type { Clock } from '../clock.js';
import { toErrorInfo, type ErrorInfo } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { ModelLatency, record, recordTimes } from '../metrics/latency.js';
import { Admission, type Load } from './admission.js';
import { aimdInitial, aimdNext, AIMD_DEFAULTS, type AimdConfig } from './aimd.js';
import { batchDims, concatRows, sigOf, sliceRows, splitOutputs, type Batch, type Done, type Query } from './batch.js';
import type { PredictionCache } from './cache.js';
import { inferCached, newOutputCache, NOOP_HANDLE, type QueryHandle } from './cache-layer.js';
import { Lanes, type Lane } from './lanes.js';
import type { BatchAnswer, Replica, ReplicaLoss, Runner } from './runner.js';
import { ShapeQueues, type ShapeQueue } from './shape-queues.js';
import { specOf, type ModelSpec } from './spec.js';

export type { Done } from './batch.js';
export type { QueryHandle } from './cache-layer.js';
export type { ModelSpec } from './spec.js';

/**
 * The model abstraction layer for ONE model version: the prediction cache (cache-layer.ts),
 * deadline-ordered queues, one per input signature (shape-queues.ts), batch forming with a cap
 * and a batch wait timeout (batch-former.ts, batch.ts), admission control (admission.ts), and
 * dispatch to the version's replicas (lanes.ts) through its Runner (runner.ts: worker threads
 * or model containers — the executor does not know which). A replica may hold `runner.depth`
 * batches: one running and full ones waiting behind it, which keeps it busy while the main
 * thread is late to collect an answer.
 *
 * Runs on the main (uWS) thread and never blocks it. Every accepted query is answered exactly
 * once through its `done` callback, possibly synchronously (cache hit, immediate refusal).
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
  /** A batch running longer than this stops its replica and fails (0 = no limit). */
  batchTimeoutMs?: number;
  /** After this many replica failures in a row (crash, hang, out of memory) the version is failed. */
  maxConsecutiveFailures?: number;
  /** Called once when the version is declared failed by repeated replica failures. */
  onFailed?: (reason: string) => void;
  /** Park the runner (stop its threads) after this long without a query (ms; 0 = never). */
  parkIdleMs?: number;
}

/** Node's setTimeout takes at most 2^31 - 1 ms; larger delays fire after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Executor {
  readonly spec: ModelSpec;
  latency = new ModelLatency();
  cache: PredictionCache<Tensor[]> | null;
  private readonly queues = new ShapeQueues((rowElems) => this.firstCap(rowElems));
  /** The signature whose batch was answered last: its cap is the one reported (batchCap) and the reference for a new one. */
  private lastShape: ShapeQueue | null = null;
  private readonly aimd: AimdConfig;
  private readonly lanes: Lanes;
  private admission: Admission;
  /** Rows of different non-batch shapes may share a batch (each row travels as its own input). */
  private readonly ragged: boolean;
  /** The cap of the signature answered last (the AIMD cap with one signature). */
  private capRows: number;
  private consecutiveFailures = 0;
  private failed = false;
  private seq = 0;
  private batchSeq = 0;
  private timer: NodeJS.Timeout | null = null;
  private parkTimer: NodeJS.Timeout | null = null;
  /** Clock time of the last query submitted (for parking an idle runner). */
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
    private readonly runner: Runner,
    private readonly clock: Clock,
  ) {
    this.spec = specOf(runner.description, runner.kind === 'container');
    this.ragged = runner.kind === 'container';
    const maxBatch = this.spec.batchable ? config.maxBatchSize : 1;
    this.aimd = { ...AIMD_DEFAULTS, objectiveMs: config.latencyObjectiveMs, maxBatch };
    this.capRows = aimdInitial(this.aimd);
    this.admission = new Admission(config.id, config.latencyObjectiveMs);
    this.lanes = new Lanes(runner.depth);
    this.lastQueryAt = clock.now();
    if ((config.parkIdleMs ?? 0) > 0) {
      const every = Math.max(50, Math.min(1000, config.parkIdleMs! / 4));
      this.parkTimer = setInterval(() => this.parkIfIdle(), every);
      this.parkTimer.unref();
    }
    this.cache = config.cacheBytes > 0 ? newOutputCache(config.cacheBytes) : null;
    runner.bind({
      answered: (r, a) => this.answered(r, a),
      settled: () => this.settled(),
      lost: (r, loss) => this.lost(r, loss),
      added: (r) => {
        this.lanes.add(r);
        if (!this.closed) this.pump();
      },
    });
    for (const r of runner.replicas) this.lanes.add(r);
  }

  /** Replicas that can take batches now (worker threads, or connected containers). */
  get replicas(): number {
    return this.lanes.size;
  }

  /** Replicas the operator asked for (a container model may have fewer connected). */
  get wantedReplicas(): number {
    return this.runner.wantedReplicas;
  }

  /** The replicas that can take batches now (slot indexes, container ids) and what each was sent. */
  replicaStats(): { id: string; batches: number; rows: number; maxRows: number; inflight: number }[] {
    return this.lanes.all().map((l) => ({ id: l.replica.id, ...l.sent, inflight: l.batches.length }));
  }

  /** Change the replica count in place when the runner can (containers); false when a new runner is needed. */
  resize(replicas: number): boolean {
    if (!this.runner.resize) return false;
    this.runner.resize(replicas);
    return true;
  }

  /** Replicas that died (or were stopped) and were replaced. */
  get workerRestarts(): number {
    return this.runner.restarts;
  }

  /** The runner behind this executor (worker threads or containers). */
  get runnerKind(): Runner['kind'] {
    return this.runner.kind;
  }

  /**
   * Take over a predecessor's state for the same model version (resize): its prediction cache
   * (in-flight coalesced queries complete into the same object), its latency histograms, its
   * admission history and its learned batch caps (each input signature's). The predecessor
   * keeps serving what it holds.
   */
  adopt(old: Executor): void {
    this.cache = old.cache;
    this.latency = old.latency;
    // Shared, like the histograms: the predecessor's last answers count into the same totals.
    this.counters = old.counters;
    this.outcomes = old.outcomes;
    this.admission.adopt(old.admission);
    this.capRows = Math.min(old.capRows, this.aimd.maxBatch);
    this.queues.adoptCaps(old.queues, this.aimd.maxBatch);
  }

  /** The current AIMD batch cap (rows). */
  get batchCap(): number {
    return this.capRows;
  }

  /** Input signatures with a queue of their own (each forms its own batches under its own cap). */
  get shapes(): number {
    return this.queues.shapes;
  }

  /** Each input signature's AIMD cap and queued rows. */
  shapeCaps(): { sig: string; cap: number; queuedRows: number }[] {
    return this.queues.caps();
  }

  /**
   * The cap a new signature starts with: the last answered signature's, scaled by how many
   * elements a row holds in each (a row twice as wide starts at half the rows); AIMD corrects it.
   */
  private firstCap(rowElems: number): number {
    const ref = this.lastShape;
    if (!ref || rowElems <= 0 || ref.rowElems <= 0) return this.capRows;
    return Math.max(1, Math.min(this.aimd.maxBatch, Math.round((ref.cap * ref.rowElems) / rowElems)));
  }

  get queueDepth(): number {
    return this.queues.rows;
  }

  get inflight(): number {
    return this.lanes.inflight();
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
    // The common case (no cache, one batch at most): the queued query is the only object, its
    // own cancel handle, and it does its accounting when answered (no closures per query).
    if (!this.cache && !this.closed && (!this.spec.batchable || rows <= this.aimd.maxBatch)) {
      return this.enqueue(inputs, rows, deadline, done, requests, arrived, inputsDone);
    }
    let answered = false;
    // Without a cache nothing but the query reads its inputs: once it is answered, their bytes
    // are free. (A cache keeps the leader's inputs as the in-flight key, and a cancelled leader
    // keeps running for its followers: never reported there.)
    const release = this.cache ? undefined : inputsDone;
    const finish: Done = (err, out) => {
      // Exactly once, even if a cancel races the answer.
      if (answered) return;
      answered = true;
      this.account(arrived, requests, release, err, out, done);
    };
    if (this.closed) {
      finish({ code: 'MODEL_UNAVAILABLE', message: `${this.config.id} is shutting down` });
      return NOOP_HANDLE;
    }
    if (!this.cache) return this.run(inputs, rows, deadline, finish, requests);
    return inferCached(this.cache, this.keyPrefix(inputs), inputs, finish, () => (this.counters.cacheHits += requests),
      (leaderDone) => this.run(inputs, rows, deadline, leaderDone, requests));
  }

  /** A submitted query is answered: release its inputs, count it, record its latency, call back. */
  private account(arrived: number, requests: number, release: (() => void) | undefined, err: ErrorInfo | null, out: Tensor[] | undefined, done: Done): void {
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
  }

  /** Called once by a direct query (Pending) when answered. Internal to the executor's queue. */
  settleQuery(q: Pending, err: ErrorInfo | null, out?: Tensor[]): void {
    this.account(q.arrived, q.requests, q.release, err, out, q.client);
  }

  /** A queued query's cancel. Internal to the executor's queue. */
  cancelQuery(q: Pending): void {
    if (q.finished || !this.queues.remove(q)) return;
    this.answer(q, { code: 'CANCELLED', message: 'cancelled by the client' });
    this.checkDrained();
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

  private load(): Load {
    const { idle } = this.lanes.capacity();
    return { queuedRows: this.queues.rows, capRows: this.capRows, running: this.lanes.inflight(), idle: idle > 0, replicas: this.lanes.size };
  }

  /**
   * Queue one query. `arrived` given: a direct query from infer() (it does its own accounting
   * through settleQuery, and releases its inputs with `release`); otherwise `done` is a part's or
   * the cache leader's callback.
   */
  private enqueue(inputs: Tensor[], rows: number, deadline: number, done: Done, requests = 1, arrived = -1, release?: () => void): QueryHandle {
    const now = this.clock.now();
    const q = new Pending(this, deadline, inputs, rows, requests, done, arrived, release);
    if (deadline <= now) {
      this.counters.expired += requests;
      q.done({ code: 'DEADLINE_EXCEEDED', message: `deadline passed before ${this.config.id} could queue the query` });
      return NOOP_HANDLE;
    }
    if (this.queues.rows + rows > this.config.maxQueueRows) {
      this.counters.refused += requests;
      q.done({ code: 'OVERLOADED', message: `${this.config.id} queue is full`, retryAfterMs: Math.max(1, Math.ceil(this.admission.workAheadMs(rows, this.load()))) });
      return NOOP_HANDLE;
    }
    const refusal = this.admission.admit(rows, deadline - now, this.load());
    if (refusal) {
      this.counters.refused += requests;
      q.done(refusal);
      return NOOP_HANDLE;
    }
    // A parked runner starts its replicas again; the batch waits in the fresh ring meanwhile.
    if (this.runner.isParked) this.runner.unpark();
    q.seq = this.seq++;
    q.sig = this.spec.batchable && !this.ragged ? sigOf(inputs) : '';
    q.enqueuedAt = now;
    this.queues.push(q);
    this.pump();
    return q;
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
      const { idle, pipelinable } = this.lanes.capacity();
      const shape = this.queues.next(now, this.config.batchWaitMs, idle, pipelinable);
      if (shape && this.dispatch(now, shape)) continue;
      let at = this.queues.dueAt;
      const head = this.queues.peek();
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
    for (let head = this.queues.peek(); head && head.deadline <= now; head = this.queues.peek()) {
      this.queues.pop();
      this.counters.expired += head.requests;
      this.answer(head, { code: 'DEADLINE_EXCEEDED', message: `deadline passed while queued for ${this.config.id}` });
    }
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
      // Capped below setTimeout's overflow (deadlines are bounded upstream; firing early only pumps again).
      this.timer = setTimeout(() => {
        this.timer = null;
        this.pump();
      }, Math.min(delay, MAX_TIMER_MS));
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

  /**
   * Form one batch (deadline order, same signature, up to the cap) and hand it to a replica.
   * False when no replica could take it (the queue is left as it was).
   */
  private dispatch(now: number, shape: ShapeQueue): boolean {
    const lane = this.lanes.pick();
    if (!lane) return false;
    const { queries, rows, capLimited } = this.queues.take(shape, lane.replica.maxBatchBytes);
    const batch: Batch = { seq: ++this.batchSeq >>> 0, queries, rows, dispatchedAt: now, capLimited, shape };
    let sent: boolean;
    try {
      sent = lane.replica.send({ seq: batch.seq, rows, parts: queries, dims: batchDims(queries, rows, this.spec.batchable) });
    } catch (err) {
      for (const q of queries) this.answer(q, toErrorInfo(err));
      return true;
    }
    if (!sent) {
      // The replica is full of batches already waiting: try another, or again after an answer.
      for (const q of queries) this.queues.push(q);
      lane.full = true;
      return this.lanes.pick() !== null && this.dispatch(now, shape);
    }
    for (const q of queries) record(this.latency.queueWaitUs, (now - q.enqueuedAt) * 1000);
    record(this.latency.batchRows, rows);
    this.counters.batches++;
    lane.batches.push(batch);
    lane.sent.batches++;
    lane.sent.rows += rows;
    if (rows > lane.sent.maxRows) lane.sent.maxRows = rows;
    if (lane.batches.length === 1) this.startHead(lane, now);
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
      lane.replica.terminate(`batch ran over ${limit} ms`);
    } else lane.watchdog!.refresh();
  }

  /** Repeated replica failures (crash, hang, OOM) mark the version failed, once. */
  private noteFailure(reason: string): void {
    this.consecutiveFailures++;
    const max = this.config.maxConsecutiveFailures ?? 0;
    if (max > 0 && this.consecutiveFailures >= max && !this.failed) {
      this.failed = true;
      this.config.onFailed?.(`${this.consecutiveFailures} worker failures in a row; last: ${reason}`);
    }
  }

  /** A replica answered its oldest batch: cut the outputs per query, learn the batch's latency. */
  private answered(replica: Replica, a: BatchAnswer): void {
    const lane = this.lanes.of(replica);
    const batch = lane?.batches.shift();
    if (!lane || !batch) return;
    const now = this.clock.now();
    const serviceMs = now - lane.headSince;
    if (lane.batches.length > 0) this.startHead(lane, now);
    lane.full = false;
    this.consecutiveFailures = 0;
    let err: ErrorInfo | null = null;
    if (a.seq !== batch.seq) err = { code: 'INTERNAL', message: `answer for batch ${a.seq} where ${batch.seq} was expected` };
    else if (a.error !== undefined) err = { code: 'MODEL_ERROR', message: a.error };
    else {
      try {
        const perQuery = splitOutputs(batch, a.outputs!, this.spec.outputs, this.spec.batchable);
        batch.queries.forEach((q, k) => this.answer(q, null, perQuery[k]));
      } catch (e) {
        err = toErrorInfo(e, 'MODEL_ERROR');
      }
      this.admission.observe(serviceMs);
      record(this.latency.batchRunUs, serviceMs * 1000);
      record(this.latency.computeUs, a.runUs);
      // AIMD sees the model's own run time: hand-off stalls on a busy main thread say nothing
      // about what a bigger batch would cost.
      const shape = batch.shape;
      shape.cap = aimdNext(shape.cap, { rows: batch.rows, latencyMs: a.runUs / 1000, capLimited: batch.capLimited }, this.aimd);
      this.capRows = shape.cap;
      this.lastShape = shape;
    }
    if (err) for (const q of batch.queries) this.answer(q, err);
  }

  /** A burst of answers is in: dispatch what can go now. */
  private settled(): void {
    if (!this.closed) this.pump();
    this.checkDrained();
  }

  /**
   * A replica stopped (crash, out of memory, stopped by the watchdog, a container gone). The
   * batch it was running fails with MODEL_ERROR — unless the loss cannot have been the batch's
   * doing (retryable), then it is queued again like the batches behind it, which run elsewhere
   * while their deadlines allow. A replica gone for good gets no more work.
   */
  private lost(replica: Replica, loss: ReplicaLoss): void {
    const lane = this.lanes.of(replica);
    if (!lane) return;
    const [head, ...rest] = lane.batches;
    lane.batches = [];
    lane.full = false;
    const hung = lane.hung;
    lane.hung = false;
    if (loss.gone) this.lanes.remove(lane);
    if (head) {
      if (loss.retryable && !hung) rest.unshift(head);
      else {
        const limit = this.config.batchTimeoutMs ?? 0;
        const reason = hung ? `batch ran over ${limit} ms; replica stopped and replaced` : `worker failed: ${loss.error}`;
        this.counters.workerFailures++;
        for (const q of head.queries) this.answer(q, { code: 'MODEL_ERROR', message: reason });
        this.noteFailure(reason);
      }
    }
    for (const b of rest) {
      for (const q of b.queries) {
        if (q.finished) continue;
        this.queues.push(q);
      }
    }
    if (!this.closed) this.pump();
    this.checkDrained();
  }

  /** Times this version's runner was parked (threads stopped while idle). */
  get parks(): number {
    return this.runner.parks;
  }

  /** Worker threads (or container processes) running now (0 while parked). */
  get threads(): number {
    return this.runner.threads;
  }

  /** Whether the runner is stopped (idle) until the next query. */
  get parked(): boolean {
    return this.runner.isParked;
  }

  /** Idle for parkIdleMs with nothing queued or running: stop the replicas. */
  private parkIfIdle(): void {
    if (this.closed || this.runner.isParked || this.queues.rows > 0 || this.lanes.inflight() > 0) return;
    if (this.clock.now() - this.lastQueryAt < (this.config.parkIdleMs ?? 0)) return;
    this.runner.park();
  }

  /** Resolves when nothing is queued or running. New queries may still arrive unless closed. */
  drain(): Promise<void> {
    if (this.queues.rows === 0 && this.lanes.inflight() === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private checkDrained(): void {
    if (this.queues.rows === 0 && this.lanes.inflight() === 0 && this.drainWaiters.length > 0) {
      const w = this.drainWaiters;
      this.drainWaiters = [];
      for (const f of w) f();
    }
  }

  /**
   * Stop now (a shutdown whose drain time ran out): every query still queued or held by a
   * replica is answered with `err`, then the replicas are stopped (worker threads terminated,
   * even one stuck in a loop). Answers that arrive later are dropped.
   */
  async terminate(err: ErrorInfo): Promise<void> {
    this.closed = true;
    this.clearTimer();
    this.lanes.stopWatchdogs();
    if (this.parkTimer) clearInterval(this.parkTimer);
    for (let q = this.queues.pop(); q; q = this.queues.pop()) {
      this.answer(q, err);
    }
    for (const lane of this.lanes.all()) {
      const held = lane.batches;
      lane.batches = [];
      for (const b of held) for (const q of b.queries) this.answer(q, err);
    }
    this.checkDrained();
    await this.runner.close();
  }

  /** Refuse new queries, fail what is still queued, wait for running batches, stop the replicas. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clearTimer();
    this.lanes.stopWatchdogs();
    if (this.parkTimer) clearInterval(this.parkTimer);
    for (let q = this.queues.pop(); q; q = this.queues.pop()) {
      this.answer(q, { code: 'MODEL_UNAVAILABLE', message: `${this.config.id} was unloaded` });
    }
    await this.drain();
    await this.runner.close();
  }
}

/**
 * A query in an executor's queue: the queue item, the query's cancel handle, and (a direct
 * query, `arrived` >= 0) its own answer accounting: one object per query on the hot path.
 */
class Pending implements Query, QueryHandle {
  heapIndex = -1;
  seq = 0;
  sig = '';
  enqueuedAt = 0;
  finished = false;
  /** A direct query was answered (exactly once, even if a cancel races the answer). */
  private settled = false;

  constructor(
    private readonly ex: Executor,
    public deadline: number,
    readonly inputs: Tensor[],
    readonly rows: number,
    readonly requests: number,
    /** The caller's callback (a direct query's client, or a part's or cache leader's done). */
    readonly client: Done,
    /** Clock time of a direct query's submission; -1 for a part or a cache leader. */
    readonly arrived: number,
    readonly release: (() => void) | undefined,
  ) {}

  done(err: ErrorInfo | null, out?: Tensor[]): void {
    if (this.arrived < 0) {
      this.client(err, out);
      return;
    }
    if (this.settled) return;
    this.settled = true;
    this.ex.settleQuery(this, err, out);
  }

  cancel(): void {
    this.ex.cancelQuery(this);
  }
}

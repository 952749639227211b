import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { dataTypeFromWire, dataTypeToWire } from '../tensor/datatype.js';
import { Ring, createRingBuffer, maxRecordBytes } from './ring/ring.js';
import { SideChannel } from './ring/side-channel.js';
import {
  MARKER_RECORD_BYTES, STATUS_ERROR, STATUS_EXTERNAL, readTensorList, recordSeq, recordStatus, tensorListBytes,
  writeMarkerRecord, TensorListWriter,
} from './ring/layout.js';
import type { ModelDescription, WorkerInit, WorkerTask } from './ring/protocol.js';
import type { BatchAnswer, OutputTensor, Replica, Runner, RunnerBatch, RunnerEvents } from './runner.js';

/**
 * The worker-thread runner: one piscina pool per model version, `replicas` worker threads
 * (min = max), each holding one model session, and one slot (a Replica) per thread. A slot is a
 * pair of SharedArrayBuffer rings — request (the main thread produces, the slot's worker
 * consumes) and response (the other way) — plus a side port for records too large for a ring.
 * Each worker runs one long-lived piscina task, its slot's serve loop (workers/runner.ts), so
 * a batch costs no piscina task: the main thread writes the batch into the request ring and the
 * worker, woken by Atomics.notify only if it sleeps, runs it and writes the outputs back, while
 * the next batch may already wait in the ring (pipelining, up to `depth` batches per slot).
 *
 * Parking: an idle model may give its threads back (park()): the workers stop, the slots keep
 * nothing but their index, and the next batch restarts them (unpark(); the batch then waits in
 * the fresh ring until the worker has loaded the model).
 *
 * When a worker dies (crash, out of memory, or terminate() for a hung batch) piscina replaces the
 * thread; the slot first delivers the answers the dead worker had finished (still in its old
 * response ring), then reports the loss and serves the replacement on fresh rings.
 *
 * Main thread only. Threading contract of a slot: this thread is the only producer of `req` and
 * the only consumer of `res`; the slot's worker is the other side of both.
 */
export interface WorkerRunnerOptions {
  kind: 'onnx' | 'js';
  modelPath: string;
  replicas: number;
  threads: number;
  /** Batches a replica holds (running + queued in its ring). */
  depth?: number;
  /** V8 heap limit per worker (MB): a JS model that exceeds it kills only its worker. */
  maxOldGenerationSizeMb?: number;
  /** Capacity of each request / response ring in bytes (power of two). */
  requestRingBytes: number;
  responseRingBytes: number;
  /** Called with worker-level errors (crashes); the pool replaces the worker. */
  onError?: (err: unknown) => void;
}

/** Room kept in a ring record for the record's own headers when sizing batches. */
const RING_RECORD_SLACK = 4096;
const DEFAULT_DEPTH = 2;
const WORKER_FILE = fileURLToPath(new URL('../../workers/runner.js', import.meta.url));

/**
 * Ids for shared memory that batch inputs live in (the WebSocket decoder's slabs): a batch
 * whose input bytes are in a SharedArrayBuffer travels as references to them, and the worker
 * gathers them itself, so the main thread writes a few words per batch instead of copying every
 * row into the ring. Each memory is shared with a worker once (on its side port) and forgotten
 * by the worker when the main thread drops it.
 */
const memoryIds = new WeakMap<SharedArrayBuffer, number>();
let nextMemoryId = 1;

function memoryId(sab: SharedArrayBuffer): number {
  let id = memoryIds.get(sab);
  if (id === undefined) {
    id = nextMemoryId++ >>> 0;
    memoryIds.set(sab, id);
  }
  return id;
}

class WorkerSlot implements Replica {
  readonly id: string;
  req: Ring;
  res: Ring;
  side: SideChannel;
  /** Bumped whenever the slot's worker is replaced or detached (and its rings with it). */
  private generation = 0;
  private abort = new AbortController();
  private waiting = false;
  private collectQueued = false;
  /** Batches written to the request ring and not yet answered. */
  private outstanding = 0;
  private readonly writer = new TensorListWriter();
  /** Shared memories (memoryId) this slot's current worker has been sent. */
  private sharedIds = new Set<number>();
  /** Tells the worker to forget a memory once this thread has dropped it. */
  private readonly forget = new FinalizationRegistry<number>((id) => {
    if (this.sharedIds.delete(id) && !this.runner.isClosed) this.side.shareMemory(id, null);
  });

  constructor(
    readonly index: number,
    private readonly runner: WorkerRunner,
    private readonly reqBytes: number,
    private readonly resBytes: number,
  ) {
    this.id = String(index);
    ({ req: this.req, res: this.res, side: this.side } = this.serve());
  }

  get maxBatchBytes(): number {
    return maxRecordBytes(this.req.capacity) - RING_RECORD_SLACK;
  }

  /** Start a serve task on fresh rings; returns them. */
  private serve(): { req: Ring; res: Ring; side: SideChannel } {
    const reqSab = createRingBuffer(this.reqBytes);
    const resSab = createRingBuffer(this.resBytes);
    const { port1, port2 } = new MessageChannel();
    const gen = this.generation;
    const side = new SideChannel(port1, () => {
      if (this.generation === gen) this.collect();
    });
    side.unref();
    this.abort = new AbortController();
    this.sharedIds = new Set();
    const task: WorkerTask = { op: 'serve', slot: this.index, req: reqSab, res: resSab, port: port2 };
    // The serve loop never returns: the task settles only when its worker dies or is terminated.
    this.runner.piscina.run(task, { transferList: [port2], signal: this.abort.signal }).then(
      () => this.ended(gen, new Error('serve loop ended')),
      (err: unknown) => this.ended(gen, err),
    );
    return { req: new Ring(reqSab), res: new Ring(resSab), side };
  }

  /** The worker ended unexpectedly: deliver what it finished, report the loss, serve a replacement. */
  private ended(gen: number, error: unknown): void {
    if (gen !== this.generation || this.runner.isClosed || this.runner.isParked) return;
    const { res, side } = this;
    this.generation++;
    this.waiting = false;
    this.drainFinished(res, side);
    side.close();
    this.outstanding = 0;
    ({ req: this.req, res: this.res, side: this.side } = this.serve());
    this.runner.events.lost(this, { error: errMessage(error), gone: false, retryable: false });
  }

  send(batch: RunnerBatch): boolean {
    if (!this.write(batch)) return false;
    this.outstanding++;
    if (this.watch()) this.collectSoon();
    return true;
  }

  /**
   * Write the batch's inputs (stacked along dim 0) into the request ring, or, when the record is
   * larger than a ring record can be, into a buffer sent on the side port with a marker in the
   * ring. False when the ring has no room now.
   */
  private write(batch: RunnerBatch): boolean {
    const specs = this.runner.description.inputs;
    const items = batch.dims.map((dims, i) => {
      let byteLength = 0;
      let shared = true;
      for (const p of batch.parts) {
        const d = p.inputs[i]!.data;
        byteLength += d.byteLength;
        if (!(d.buffer instanceof SharedArrayBuffer)) shared = false;
      }
      // Every part in shared memory: references to it; otherwise the bytes themselves.
      return { ndims: dims.length, byteLength, dims, pieces: shared ? batch.parts.length : undefined };
    });
    const size = tensorListBytes(items);
    const ring = this.req;
    let target: Uint8Array | null;
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
      const datatype = dataTypeToWire(specs[i]!.datatype);
      if (it.pieces !== undefined) {
        this.writer.tensorRefs(datatype, it.dims, it.byteLength, it.pieces);
        for (const p of batch.parts) {
          const d = p.inputs[i]!.data;
          this.writer.piece(this.share(d.buffer as SharedArrayBuffer), d.byteOffset, d.byteLength);
        }
        continue;
      }
      const dst = this.writer.tensor(datatype, it.dims as number[], it.byteLength);
      let off = 0;
      for (const p of batch.parts) {
        const src = p.inputs[i]!.data;
        dst.set(src, off);
        off += src.byteLength;
      }
    }
    if (!external) {
      ring.commit();
      return true;
    }
    const marker = ring.reserve(MARKER_RECORD_BYTES);
    if (!marker) return false;
    this.side.send(batch.seq, external);
    writeMarkerRecord(marker, batch.seq, STATUS_EXTERNAL);
    ring.commit();
    return true;
  }

  /** The id of shared memory `sab`, sent to this slot's worker first if it does not have it. */
  private share(sab: SharedArrayBuffer): number {
    const id = memoryId(sab);
    if (!this.sharedIds.has(id)) {
      this.sharedIds.add(id);
      this.side.shareMemory(id, sab);
      this.forget.register(sab, id);
    }
    return id;
  }

  /**
   * Ask to be told when the response ring has data. At most one wait is armed at a time. True
   * when data is already there: read it now instead.
   */
  private watch(): boolean {
    if (this.waiting) return false;
    const w = this.res.whenReadable();
    if (!w) return true;
    this.waiting = true;
    const gen = this.generation;
    void w.then(() => {
      if (gen !== this.generation) return;
      this.waiting = false;
      this.collect();
    });
    return false;
  }

  /** The worker answered before the wake-up was armed (a fast model): collect once the current call stack is done. */
  private collectSoon(): void {
    if (this.collectQueued) return;
    this.collectQueued = true;
    queueMicrotask(() => {
      this.collectQueued = false;
      this.collect();
    });
  }

  /** Read every answer the worker has written, in ring order; re-arm the wake-up while batches remain. */
  private collect(): void {
    if (this.runner.isClosed) return;
    for (;;) {
      while (this.outstanding > 0) {
        const rec = this.res.peek();
        if (!rec) break;
        let body = rec;
        if (recordStatus(rec) === STATUS_EXTERNAL) {
          const buf = this.side.take(recordSeq(rec));
          if (!buf) {
            // Its side message is still on the way: the side channel calls collect() on arrival.
            this.runner.events.settled();
            return;
          }
          body = new Uint8Array(buf);
        }
        this.deliver(body);
        this.res.release();
      }
      if (this.outstanding === 0 || !this.watch()) break;
    }
    this.runner.events.settled();
  }

  /** Hand one output record to the executor (a view: valid during the call only). */
  private deliver(rec: Uint8Array): void {
    this.outstanding--;
    let answer: BatchAnswer;
    try {
      const list = readTensorList(rec);
      if (list.status === STATUS_ERROR) answer = { seq: list.seq, runUs: list.aux, error: list.error ?? 'model error' };
      else {
        const outputs: OutputTensor[] = list.tensors.map((t, j) => {
          const datatype = dataTypeFromWire(t.datatype);
          if (!datatype) throw new Error(`output ${j} has an unknown datatype`);
          return { datatype, dims: t.dims, data: t.data };
        });
        answer = { seq: list.seq, runUs: list.aux, outputs };
      }
    } catch (err) {
      answer = { seq: recordSeq(rec), runUs: 0, error: errMessage(err) };
    }
    this.runner.events.answered(this, answer);
  }

  /** Answers a dead worker wrote before dying, read from its old rings. */
  private drainFinished(res: Ring, side: SideChannel): void {
    for (let rec = res.peek(); rec && this.outstanding > 0; rec = res.peek()) {
      let body: Uint8Array | null = rec;
      if (recordStatus(rec) === STATUS_EXTERNAL) {
        const buf = side.take(recordSeq(rec));
        body = buf ? new Uint8Array(buf) : null;
      }
      if (!body) break;
      this.deliver(body);
      res.release();
    }
  }

  /** The pool parked: forget this worker and its rings (nothing is in flight). */
  detach(): void {
    this.generation++;
    this.waiting = false;
    this.outstanding = 0;
    this.side.close();
  }

  /** The pool unparked: a serve task on fresh rings, for the new worker. */
  attach(): void {
    ({ req: this.req, res: this.res, side: this.side } = this.serve());
  }

  /** Terminate this slot's worker (a hung model); piscina replaces it and `lost` follows. */
  terminate(): void {
    this.abort.abort();
  }

  closeSide(): void {
    this.side.close();
  }

  /** Ask the worker to release its model before it is terminated (bounded wait). */
  stopWorker(timeoutMs: number): Promise<void> {
    return this.side.stop(timeoutMs);
  }
}

/** How long a worker may take to finish its run and release its model before it is terminated. */
const STOP_TIMEOUT_MS = 2000;

export class WorkerRunner implements Runner {
  readonly kind = 'worker';
  readonly replicas: WorkerSlot[] = [];
  readonly depth: number;
  events!: RunnerEvents;
  private closed = false;
  private parked = false;
  private parking: Promise<unknown> = Promise.resolve();
  private restartCount = 0;
  /** Times the pool parked (gave its threads back while idle). */
  parks = 0;

  private constructor(
    public piscina: Piscina,
    readonly description: ModelDescription,
    private readonly opts: WorkerRunnerOptions,
  ) {
    this.depth = Math.max(1, opts.depth ?? DEFAULT_DEPTH);
    this.watch(piscina);
  }

  /** Start the workers, load the model in each and read its description. Rejects if loading fails. */
  static async start(opts: WorkerRunnerOptions): Promise<WorkerRunner> {
    const piscina = WorkerRunner.createPiscina(opts);
    try {
      const description = (await piscina.run({ op: 'describe' } satisfies WorkerTask)) as ModelDescription;
      return new WorkerRunner(piscina, description, opts);
    } catch (err) {
      await piscina.destroy().catch(() => undefined);
      throw err;
    }
  }

  bind(events: RunnerEvents): void {
    this.events = events;
    for (let i = 0; i < this.opts.replicas; i++) this.replicas.push(new WorkerSlot(i, this, this.opts.requestRingBytes, this.opts.responseRingBytes));
  }

  get wantedReplicas(): number {
    return this.opts.replicas;
  }

  private watch(piscina: Piscina): void {
    // Piscina replaces a worker that crashed, ran out of memory or was terminated (hung batch).
    piscina.on('workerDestroy', () => {
      if (!this.closed && !this.parked && piscina === this.piscina) this.restartCount++;
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get isParked(): boolean {
    return this.parked;
  }

  /** Stop the workers of an idle pool (the caller guarantees nothing is queued or in flight). */
  park(): void {
    if (this.parked || this.closed) return;
    this.parked = true;
    this.parks++;
    for (const s of this.replicas) s.detach();
    this.parking = this.piscina.destroy().catch(() => undefined);
  }

  /** Start workers again for a parked pool; batches may be written to the slots at once. */
  unpark(): void {
    if (!this.parked || this.closed) return;
    this.piscina = WorkerRunner.createPiscina(this.opts);
    this.watch(this.piscina);
    this.parked = false;
    for (const s of this.replicas) s.attach();
  }

  /** Workers that died (or were terminated) and were replaced since the pool started. */
  get restarts(): number {
    return this.restartCount;
  }

  get threads(): number {
    return this.piscina.threads.length;
  }

  private static createPiscina(opts: WorkerRunnerOptions): Piscina {
    const workerData: WorkerInit = { kind: opts.kind, modelPath: opts.modelPath, threads: opts.threads };
    const piscina = new Piscina({
      filename: WORKER_FILE,
      minThreads: opts.replicas,
      maxThreads: opts.replicas,
      // One serve task per worker, for the pool's lifetime; a replacement's task waits here.
      maxQueue: opts.replicas * 2,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      // Workers never wait for piscina tasks on the hot path: they wait on their rings.
      atomics: 'disabled',
      workerData,
      ...(opts.maxOldGenerationSizeMb ? { resourceLimits: { maxOldGenerationSizeMb: opts.maxOldGenerationSizeMb } } : {}),
    });
    piscina.on('error', (err: unknown) => opts.onError?.(err));
    return piscina;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.parked) {
      await this.parking;
      return;
    }
    // Each worker releases its model first: terminating a thread inside native model code can
    // abort the process. Then terminate them (their serve loops never end on their own).
    await Promise.all(this.replicas.map((s) => s.stopWorker(STOP_TIMEOUT_MS)));
    for (const s of this.replicas) s.closeSide();
    await this.piscina.destroy();
  }
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

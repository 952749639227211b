import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { Ring, createRingBuffer } from './ring/ring.js';
import { SideChannel } from './ring/side-channel.js';
import { MARKER_RECORD_BYTES, STATUS_EXTERNAL, writeMarkerRecord } from './ring/layout.js';
import type { ModelDescription, WorkerInit, WorkerTask } from './ring/protocol.js';

/**
 * One piscina pool per model version: `replicas` worker threads (min = max), each holding one
 * model session, and one slot per replica. A slot is a pair of SharedArrayBuffer rings —
 * request (the main thread produces, the slot's worker consumes) and response (the other way)
 * — plus a side port for records too large for a ring. Each worker runs one long-lived piscina
 * task, its slot's serve loop (workers/runner.ts), so batches cost no piscina task: the main
 * thread writes a batch into the request ring and the worker, woken by Atomics.notify, runs it
 * and writes the outputs back, while the next batch may already wait in the ring.
 *
 * Parking: an idle model may give its threads back (park()): the workers stop, the slots keep
 * nothing but their index, and the next batch restarts them (unpark(), then the batch waits in
 * the fresh ring until the worker has loaded the model). An idle model then costs its
 * bookkeeping only, instead of a Node worker isolate and a model session per replica.
 *
 * When a worker dies (crash, out of memory, or terminate() by the executor's watchdog) piscina
 * replaces the thread; the pool gives the slot fresh rings and a new serve task, and reports
 * the loss through `onSlotLost` with the old rings, so the executor can read what the dead
 * worker finished and fail or requeue the rest.
 */
export interface PoolOptions {
  kind: 'onnx' | 'js';
  modelPath: string;
  replicas: number;
  threads: number;
  /** V8 heap limit per worker (MB): a JS model that exceeds it kills only its worker. */
  maxOldGenerationSizeMb?: number;
  /** Capacity of each request / response ring in bytes (power of two). */
  requestRingBytes: number;
  responseRingBytes: number;
  /** Called with worker-level errors (crashes); the pool replaces the worker. */
  onError?: (err: unknown) => void;
}

/** What the executor learns when a slot's worker ended unexpectedly. */
export interface SlotLoss {
  /** The rings the dead worker used: completed output records may still be unread in `res`. */
  res: Ring;
  side: SideChannel;
  error: unknown;
}

export class PoolSlot {
  req: Ring;
  res: Ring;
  side: SideChannel;
  /** Bumped whenever the slot's worker is replaced (and its rings with it). */
  generation = 0;
  private abort = new AbortController();
  private waiting = false;

  constructor(
    readonly index: number,
    private readonly pool: ModelPool,
    private readonly reqBytes: number,
    private readonly resBytes: number,
  ) {
    ({ req: this.req, res: this.res, side: this.side } = this.serve());
  }

  /** Start a serve task on fresh rings; returns them. */
  private serve(): { req: Ring; res: Ring; side: SideChannel } {
    const reqSab = createRingBuffer(this.reqBytes);
    const resSab = createRingBuffer(this.resBytes);
    const { port1, port2 } = new MessageChannel();
    const gen = this.generation;
    const side = new SideChannel(port1, () => {
      if (this.generation === gen) this.pool.onReadable(this.index);
    });
    side.unref();
    this.abort = new AbortController();
    const task: WorkerTask = { op: 'serve', slot: this.index, req: reqSab, res: resSab, port: port2 };
    // The serve loop never returns: the task settles only when its worker dies or is terminated.
    this.pool.piscina.run(task, { transferList: [port2], signal: this.abort.signal }).then(
      () => this.ended(gen, new Error('serve loop ended')),
      (err: unknown) => this.ended(gen, err),
    );
    return { req: new Ring(reqSab), res: new Ring(resSab), side };
  }

  private ended(gen: number, error: unknown): void {
    if (gen !== this.generation || this.pool.isClosed || this.pool.isParked) return;
    const lost: SlotLoss = { res: this.res, side: this.side, error };
    this.generation++;
    this.waiting = false;
    ({ req: this.req, res: this.res, side: this.side } = this.serve());
    this.pool.onSlotLost(this.index, lost);
  }

  /**
   * Ask to be told (through the pool's onReadable) when the response ring has data. At most one
   * wait is armed at a time. Returns true when data is already there: read it now instead.
   */
  watch(): boolean {
    if (this.waiting) return false;
    const w = this.res.whenReadable();
    if (!w) return true;
    this.waiting = true;
    const gen = this.generation;
    void w.then(() => {
      if (gen !== this.generation) return;
      this.waiting = false;
      this.pool.onReadable(this.index);
    });
    return false;
  }

  /** Send a batch record too large for the request ring: side port, then a marker in the ring. */
  sendExternal(seq: number, record: ArrayBuffer): boolean {
    const target = this.req.reserve(MARKER_RECORD_BYTES);
    if (!target) return false;
    this.side.send(seq, record);
    writeMarkerRecord(target, seq, STATUS_EXTERNAL);
    this.req.commit();
    return true;
  }

  /** The pool parked: forget this worker and its rings (nothing is in flight). */
  detach(): void {
    this.generation++;
    this.waiting = false;
    this.side.close();
  }

  /** The pool unparked: a serve task on fresh rings, for the new worker. */
  attach(): void {
    ({ req: this.req, res: this.res, side: this.side } = this.serve());
  }

  /** Terminate this slot's worker (a hung model); piscina replaces it and onSlotLost follows. */
  terminate(): void {
    this.abort.abort();
  }

}

const WORKER_FILE = fileURLToPath(new URL('../../workers/runner.js', import.meta.url));

export class ModelPool {
  readonly slots: PoolSlot[] = [];
  /** The executor's hooks: response data may be ready on a slot; a slot's worker was lost. */
  onReadable: (slot: number) => void = () => {};
  onSlotLost: (slot: number, loss: SlotLoss) => void = () => {};
  private closed = false;
  private parked = false;
  private parking: Promise<unknown> = Promise.resolve();
  private restartCount = 0;
  /** Times the pool parked (gave its threads back while idle). */
  parks = 0;

  private constructor(
    public piscina: Piscina,
    readonly description: ModelDescription,
    private readonly opts: PoolOptions,
  ) {
    this.watch(piscina);
    for (let i = 0; i < opts.replicas; i++) this.slots.push(new PoolSlot(i, this, opts.requestRingBytes, opts.responseRingBytes));
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
    for (const s of this.slots) s.detach();
    this.parking = this.piscina.destroy().catch(() => undefined);
  }

  /** Start workers again for a parked pool; batches may be written to the slots at once. */
  unpark(): void {
    if (!this.parked || this.closed) return;
    this.piscina = ModelPool.createPiscina(this.opts);
    this.watch(this.piscina);
    this.parked = false;
    for (const s of this.slots) s.attach();
  }

  /** Workers that died (or were terminated) and were replaced since the pool started. */
  get restarts(): number {
    return this.restartCount;
  }

  /** Start the workers, load the model in each and read its description. Rejects if loading fails. */
  static async start(opts: PoolOptions): Promise<ModelPool> {
    const piscina = ModelPool.createPiscina(opts);
    try {
      const description = (await piscina.run({ op: 'describe' } satisfies WorkerTask)) as ModelDescription;
      return new ModelPool(piscina, description, opts);
    } catch (err) {
      await piscina.destroy().catch(() => undefined);
      throw err;
    }
  }

  private static createPiscina(opts: PoolOptions): Piscina {
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

  get threads(): number {
    return this.piscina.threads.length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.parked) {
      await this.parking;
      return;
    }
    for (const s of this.slots) s.side.close();
    // Terminates the workers (their serve loops never end on their own).
    await this.piscina.destroy();
  }
}

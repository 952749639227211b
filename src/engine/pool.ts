import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { Ring, createRingBuffer } from './ring/ring.js';
import type { ModelDescription, RunResult, WorkerInit, WorkerTask } from '../../workers/runner.js';

/**
 * One piscina pool per model version: `replicas` worker threads (min = max), each holding one
 * model session, and one slot per replica. A slot is a pair of SharedArrayBuffer rings:
 * request (main thread produces, a worker consumes) and response (a worker produces, the main
 * thread consumes). The executor keeps at most one batch in flight per slot, so whichever
 * worker piscina picks for a slot's task is that slot's only ring user for the batch.
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

export interface PoolSlot {
  readonly index: number;
  readonly req: Ring;
  readonly res: Ring;
}

const WORKER_FILE = fileURLToPath(new URL('../../workers/runner.js', import.meta.url));

export class ModelPool {
  readonly slots: PoolSlot[];
  private closed = false;
  private restartCount = 0;

  private constructor(
    private readonly piscina: Piscina,
    slots: PoolSlot[],
    readonly description: ModelDescription,
  ) {
    this.slots = slots;
    // Piscina replaces a worker that crashed, ran out of memory or was terminated (hung batch).
    piscina.on('workerDestroy', () => {
      if (!this.closed) this.restartCount++;
    });
  }

  /** Workers that died (or were terminated) and were replaced since the pool started. */
  get restarts(): number {
    return this.restartCount;
  }

  /** Start the workers, load the model in each and read its description. Rejects if loading fails. */
  static async start(opts: PoolOptions): Promise<ModelPool> {
    const sabs = Array.from({ length: opts.replicas }, () => ({
      req: createRingBuffer(opts.requestRingBytes),
      res: createRingBuffer(opts.responseRingBytes),
    }));
    const workerData: WorkerInit = { kind: opts.kind, modelPath: opts.modelPath, threads: opts.threads, slots: sabs };
    const piscina = new Piscina({
      filename: WORKER_FILE,
      minThreads: opts.replicas,
      maxThreads: opts.replicas,
      // One batch in flight per slot: the queue never holds more than the slots.
      maxQueue: opts.replicas * 2,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      concurrentTasksPerWorker: 1,
      atomics: 'sync',
      workerData,
      ...(opts.maxOldGenerationSizeMb ? { resourceLimits: { maxOldGenerationSizeMb: opts.maxOldGenerationSizeMb } } : {}),
    });
    piscina.on('error', (err: unknown) => opts.onError?.(err));
    try {
      const description = (await piscina.run({ op: 'describe' } satisfies WorkerTask)) as ModelDescription;
      const slots = sabs.map((s, index) => ({ index, req: new Ring(s.req), res: new Ring(s.res) }));
      return new ModelPool(piscina, slots, description);
    } catch (err) {
      await piscina.destroy().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Run the batch just written to `slot`'s request ring (or passed inline). Aborting `signal`
   * while the batch runs terminates its worker (piscina replaces it): the cure for a hung model.
   */
  run(slot: number, seq: number, inline?: ArrayBuffer, signal?: AbortSignal): Promise<RunResult> {
    const task: WorkerTask = inline ? { op: 'run', slot, seq, inline } : { op: 'run', slot, seq };
    const opts: { transferList?: ArrayBuffer[]; signal?: AbortSignal } = {};
    if (inline) opts.transferList = [inline];
    if (signal) opts.signal = signal;
    return this.piscina.run(task, opts) as Promise<RunResult>;
  }

  get threads(): number {
    return this.piscina.threads.length;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscina.destroy();
  }
}

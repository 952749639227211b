/**
 * The side channel of a ring pair: records too large for a ring travel as a transferred
 * ArrayBuffer on a MessagePort, as { seq, record }. The ring carries a STATUS_EXTERNAL marker
 * with the same seq in the record's place, so ring order still decides processing order. The
 * sender posts before it commits the marker, so by the time the reader sees the marker the
 * message is on its way (not yet necessarily delivered: the reader may have to wait for it).
 *
 * Rare by design (a batch above half the ring), so the cost of a message is acceptable here.
 * Imported by workers/: keep it dependency-free.
 */
import type { MessagePort } from 'node:worker_threads';

interface ExternalMessage {
  seq: number;
  record: ArrayBuffer;
}

/**
 * Memory the sender shares with the reader once, so ring records can refer to pieces of it
 * (TENSOR_REFS in layout.ts) instead of carrying the bytes; `memory: null` forgets it.
 */
interface MemoryMessage {
  id: number;
  memory: SharedArrayBuffer | null;
}

/**
 * Before a worker is terminated the pool asks it to let go of its model ({ stop: true }); the
 * worker answers { stopped: true } once no run is in flight and the session is released.
 * Terminating a thread while native model code holds it can abort the whole process.
 */
interface StopMessage {
  stop?: true;
  stopped?: true;
}

export class SideChannel {
  private stopWaiter: (() => void) | undefined;
  private readonly arrived = new Map<number, ArrayBuffer>();
  private readonly waiters = new Map<number, (record: ArrayBuffer) => void>();
  private readonly memories = new Map<number, Uint8Array>();
  private readonly memoryWaiters = new Map<number, () => void>();

  /** `onArrive` runs after each record is stored (the reader may have been waiting for it). */
  constructor(
    private readonly port: MessagePort,
    private readonly onArrive?: (seq: number) => void,
    /** The worker's side: asked to stop (it answers with stopped()). */
    private readonly onStop?: () => void,
  ) {
    port.on('message', (msg: ExternalMessage | MemoryMessage | StopMessage) => {
      if ('stop' in msg) {
        this.onStop?.();
        return;
      }
      if ('stopped' in msg) {
        this.stopWaiter?.();
        return;
      }
      if ('memory' in msg) {
        if (msg.memory === null) this.memories.delete(msg.id);
        else this.memories.set(msg.id, new Uint8Array(msg.memory));
        const mw = this.memoryWaiters.get(msg.id);
        if (mw) {
          this.memoryWaiters.delete(msg.id);
          mw();
        }
        return;
      }
      const m = msg as ExternalMessage;
      const w = this.waiters.get(m.seq);
      if (w) {
        this.waiters.delete(m.seq);
        w(m.record);
      } else this.arrived.set(m.seq, m.record);
      this.onArrive?.(m.seq);
    });
  }

  /** Send a record (the buffer is transferred: unusable by the sender afterwards). */
  send(seq: number, record: ArrayBuffer): void {
    this.port.postMessage({ seq, record } satisfies ExternalMessage, [record]);
  }

  /** The record for `seq` if it has arrived (removed from the channel), else undefined. */
  take(seq: number): ArrayBuffer | undefined {
    const r = this.arrived.get(seq);
    if (r) this.arrived.delete(seq);
    return r;
  }

  /** The record for `seq`, now or when it arrives. */
  wait(seq: number): Promise<ArrayBuffer> {
    const r = this.take(seq);
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => this.waiters.set(seq, resolve));
  }

  /**
   * The pool's side: ask the worker to finish its run and release its model; resolves when it
   * says so, or after `timeoutMs` (a hung worker is terminated anyway).
   */
  stop(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, timeoutMs);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.stopWaiter = done;
      this.port.postMessage({ stop: true } satisfies StopMessage);
    });
  }

  /** The worker's side: the model is released; the thread may be terminated now. */
  stopped(): void {
    this.port.postMessage({ stopped: true } satisfies StopMessage);
  }

  /** Share `memory` with the other side under `id` (null: the other side forgets it). */
  shareMemory(id: number, memory: SharedArrayBuffer | null): void {
    this.port.postMessage({ id, memory } satisfies MemoryMessage);
  }

  /** Shared memory `id`, if it has arrived. */
  memory(id: number): Uint8Array | undefined {
    return this.memories.get(id);
  }

  /** Resolves once shared memory `id` has arrived. */
  waitMemory(id: number): Promise<void> {
    if (this.memories.has(id)) return Promise.resolve();
    return new Promise((resolve) => this.memoryWaiters.set(id, resolve));
  }

  /** Do not keep the thread's event loop alive for this port. */
  unref(): void {
    this.port.unref();
  }

  close(): void {
    this.port.close();
    this.arrived.clear();
    this.waiters.clear();
    this.memories.clear();
    this.memoryWaiters.clear();
  }
}

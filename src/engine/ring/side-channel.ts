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

export class SideChannel {
  private readonly arrived = new Map<number, ArrayBuffer>();
  private readonly waiters = new Map<number, (record: ArrayBuffer) => void>();

  /** `onArrive` runs after each record is stored (the reader may have been waiting for it). */
  constructor(
    private readonly port: MessagePort,
    private readonly onArrive?: (seq: number) => void,
  ) {
    port.on('message', (m: ExternalMessage) => {
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

  /** Do not keep the thread's event loop alive for this port. */
  unref(): void {
    this.port.unref();
  }

  close(): void {
    this.port.close();
    this.arrived.clear();
    this.waiters.clear();
  }
}

import type { DataType } from '../../tensor/datatype.js';
import type { ModelDescription } from '../ring/protocol.js';
import type { BatchAnswer, Replica, Runner, RunnerBatch, RunnerEvents } from '../runner.js';
import type { InputType } from './rpc-codec.js';

/**
 * The container runner: a model version whose replicas are model containers in other processes
 * (any language) speaking Clipper's RPC over ZeroMQ, served by the shared RpcServer. A
 * container that connects and announces this (model, version) becomes a replica; one that goes
 * away is reported lost (its running batch is retryable: the executor queues it again for
 * another replica while its deadline allows). Launched containers (a container description in
 * the model repository) are started and supervised by a Launcher; external ones connect on
 * their own.
 *
 * Clipper keeps one batch outstanding per replica; Skiff pipelines up to the model's
 * `pipeline_depth` (answers are still handed on in the order the batches were sent). Each row of a query travels as one
 * container input (a row of a numeric tensor, or one element of a BYTES tensor), so rows of
 * different lengths may share a batch; the answer is one string per input, returned as a BYTES
 * output of shape [rows]. Main thread only.
 */
/** The OIP datatype a container input type takes. */
export const INPUT_DATATYPE: Readonly<Record<InputType, DataType>> = Object.freeze({
  bytes: 'BYTES', strings: 'BYTES', ints: 'INT32', floats: 'FP32', doubles: 'FP64',
});

/** One connected container as the RPC server presents it. */
export interface ContainerPeer {
  readonly id: string;
  readonly inputType: InputType;
  /** The private endpoint it connected to (a process Skiff launched), if any. */
  readonly tag?: string;
  /** Clipper's model_replica_id: an integer per (model, version), in connection order. */
  readonly replicaId: number;
  predict(inputs: readonly Uint8Array[], done: (err: Error | null, outputs?: Uint8Array[]) => void): void;
  drop(reason: string): void;
}

export interface ContainerSink {
  connected(peer: ContainerPeer): void;
  disconnected(peer: ContainerPeer, reason: string): void;
}

/** The part of the RPC server a runner uses. */
export interface ContainerHub {
  attach(model: string, version: string, sink: ContainerSink): () => void;
}

/** The part of a process launcher a runner uses (launched containers only). */
export interface ContainerProcesses {
  readonly running: number;
  readonly restarts: number;
  setReplicas(n: number): void;
  stop(): Promise<void>;
  /** Restart the process whose connection carries `tag` (its container hung). */
  restart(tag: string): void;
}

export interface ContainerRunnerOptions {
  model: string;
  version: number;
  inputType: InputType;
  hub: ContainerHub;
  /** Launched processes, or none for external containers. */
  processes?: ContainerProcesses;
  /** Replicas asked for (launched processes; external: what the operator expects). */
  replicas: number;
  /**
   * Batches a container holds at once (default 1, as Clipper keeps them): with 2 the next batch
   * waits in the container's socket while it runs the current one, hiding the round trip.
   */
  depth?: number;
}

/** The description of every container model: one input of the container's type, one string output. */
export function containerDescription(inputType: InputType): ModelDescription {
  const datatype = INPUT_DATATYPE[inputType];
  return {
    inputs: [{ name: 'input', datatype, shape: datatype === 'BYTES' ? [-1] : [-1, -1] }],
    outputs: [{ name: 'output', datatype: 'BYTES', shape: [-1] }],
  };
}

class ContainerReplica implements Replica {
  readonly maxBatchBytes = Infinity;
  /** Stopped by the executor (hung): its late answers must not be delivered. */
  private stopped = false;
  /** Batches sent, oldest first, with their answer once it arrived (delivered in this order). */
  private readonly outstanding: { seq: number; answer: BatchAnswer | null }[] = [];

  constructor(
    readonly peer: ContainerPeer,
    private readonly runner: ContainerRunner,
  ) {}

  get id(): string {
    return String(this.peer.replicaId);
  }

  send(batch: RunnerBatch): boolean {
    const frames = containerInputs(batch);
    const t0 = performance.now();
    const slot: { seq: number; answer: BatchAnswer | null } = { seq: batch.seq, answer: null };
    this.outstanding.push(slot);
    this.peer.predict(frames, (err, outputs) => {
      if (this.stopped || this.runner.isClosed) return;
      const runUs = Math.round((performance.now() - t0) * 1000);
      if (err) slot.answer = { seq: batch.seq, runUs, error: err.message };
      else if (outputs!.length !== batch.rows) slot.answer = { seq: batch.seq, runUs, error: `container returned ${outputs!.length} outputs for ${batch.rows} inputs` };
      else slot.answer = { seq: batch.seq, runUs, outputs: [{ datatype: 'BYTES', dims: [batch.rows], data: bytesTensor(outputs!) }] };
      // The executor takes answers in the order it sent the batches: a container that answers
      // out of order (several threads) waits for the older ones.
      let delivered = false;
      while (this.outstanding.length > 0 && this.outstanding[0]!.answer) {
        this.runner.events.answered(this, this.outstanding.shift()!.answer!);
        delivered = true;
      }
      if (delivered) this.runner.events.settled();
    });
    return true;
  }

  terminate(reason: string): void {
    this.stopped = true;
    this.runner.hung(this, reason);
  }
}

export class ContainerRunner implements Runner {
  readonly kind = 'container';
  readonly depth: number;
  readonly description: ModelDescription;
  readonly replicas: ContainerReplica[] = [];
  events!: RunnerEvents;
  private closed = false;
  private detach: (() => void) | null = null;
  private wanted: number;

  constructor(private readonly opts: ContainerRunnerOptions) {
    this.description = containerDescription(opts.inputType);
    this.depth = Math.max(1, opts.depth ?? 1);
    this.wanted = opts.replicas;
  }

  bind(events: RunnerEvents): void {
    this.events = events;
    this.detach = this.opts.hub.attach(this.opts.model, String(this.opts.version), {
      connected: (peer) => this.connected(peer),
      disconnected: (peer, reason) => this.disconnected(peer, reason),
    });
  }

  private connected(peer: ContainerPeer): void {
    if (this.closed) return;
    if (peer.inputType !== this.opts.inputType) {
      // It would crash on our batches (Clipper's containers do on a foreign input type).
      peer.drop(`container input type ${peer.inputType} differs from the model's ${this.opts.inputType}`);
      return;
    }
    const r = new ContainerReplica(peer, this);
    this.replicas.push(r);
    this.events.added(r);
  }

  private disconnected(peer: ContainerPeer, reason: string): void {
    const i = this.replicas.findIndex((r) => r.peer === peer);
    if (i < 0) return;
    const [r] = this.replicas.splice(i, 1);
    if (!this.closed) this.events.lost(r!, { error: reason, gone: true, retryable: true });
  }

  /** The executor's watchdog stopped a replica whose batch hung: drop its peer, restart a launched process. */
  hung(r: ContainerReplica, reason: string): void {
    const i = this.replicas.indexOf(r);
    if (i >= 0) this.replicas.splice(i, 1);
    this.events.lost(r, { error: reason, gone: true, retryable: false });
    r.peer.drop(reason);
    if (r.peer.tag) this.opts.processes?.restart(r.peer.tag);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get wantedReplicas(): number {
    return this.wanted;
  }

  /** Launched containers: start or stop processes. External ones: only the expectation changes. */
  resize(n: number): void {
    this.wanted = n;
    this.opts.processes?.setReplicas(n);
  }

  get launched(): boolean {
    return this.opts.processes !== undefined;
  }

  get restarts(): number {
    return this.opts.processes?.restarts ?? 0;
  }

  get threads(): number {
    return this.opts.processes?.running ?? this.replicas.length;
  }

  // Containers are not parked: their processes are not Skiff's to pause.
  readonly isParked = false;
  readonly parks = 0;
  park(): void {}
  unpark(): void {}

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.detach?.();
    this.replicas.length = 0;
    await this.opts.processes?.stop();
  }
}

/**
 * One container input per row: a row of a numeric tensor (a view, no copy), or one element of a
 * BYTES tensor (u32 length + bytes each; the view skips the length).
 */
export function containerInputs(batch: RunnerBatch): Uint8Array[] {
  const frames: Uint8Array[] = new Array(batch.rows);
  let k = 0;
  for (const p of batch.parts) {
    const t = p.inputs[0]!;
    const data = t.data;
    if (t.datatype === 'BYTES') {
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      let off = 0;
      for (let i = 0; i < p.rows; i++) {
        const n = view.getUint32(off, true);
        frames[k++] = data.subarray(off + 4, off + 4 + n);
        off += 4 + n;
      }
    } else {
      const rowBytes = data.byteLength / p.rows;
      for (let i = 0; i < p.rows; i++) frames[k++] = data.subarray(i * rowBytes, (i + 1) * rowBytes);
    }
  }
  return frames;
}

/** Strings as a BYTES tensor's data: u32 little-endian length + bytes per element. */
export function bytesTensor(items: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const b of items) n += 4 + b.byteLength;
  const out = new Uint8Array(n);
  const view = new DataView(out.buffer);
  let off = 0;
  for (const b of items) {
    view.setUint32(off, b.byteLength, true);
    out.set(b, off + 4);
    off += 4 + b.byteLength;
  }
  return out;
}

import type { DataType } from '../tensor/datatype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelDescription } from './ring/protocol.js';

/**
 * The seam between a model version's executor and whatever computes its batches. The executor
 * forms batches (cache, deadline queue, AIMD cap, batch wait, admission, pipelining) and hands
 * each to a REPLICA; the replica answers it, fails it, or dies. Nothing above this interface
 * knows how a batch is computed. Two runners implement it:
 *
 *  - WorkerRunner (engine/worker-runner.ts): piscina worker threads in this process, one model
 *    session each, fed through SharedArrayBuffer rings; a fixed set of replicas that are replaced
 *    in place when a thread dies.
 *  - ContainerRunner (engine/container/container-runner.ts): model containers in other processes
 *    (any language) speaking Clipper's ZeroMQ RPC; replicas come and go as containers connect and
 *    disconnect.
 *
 * Threading: everything here runs on the main thread. Ordering contract: a replica answers its
 * batches in the order it was sent them (FIFO), and reports each exactly once through
 * `answered` — unless it is lost first, after which it reports none of the batches it still held
 * (the executor, which keeps the list, requeues or fails them).
 */

/** One query's share of a batch: its input tensors in the model's input order, and its rows. */
export interface BatchPart {
  readonly inputs: readonly Tensor[];
  readonly rows: number;
}

/**
 * A batch handed to a replica. The replica never writes the parts' bytes. It reads them during
 * send() (copying them into its transport), except bytes in a SharedArrayBuffer, which a worker
 * replica may read in place until the batch is answered or the replica is lost: the executor
 * keeps a query's inputs unchanged until its answer, and their owner reuses them only after
 * that (`inputsDone`).
 */
export interface RunnerBatch {
  /** Sequence number, unique per executor (u32, wraps): answers carry it back. */
  readonly seq: number;
  readonly rows: number;
  readonly parts: readonly BatchPart[];
  /** The stacked dims of each model input: [rows, ...rest] for a batchable model. */
  readonly dims: readonly (readonly number[])[];
}

/** One output of a batch, stacked along dim 0 (a model that batches) or as the model gave it. */
export interface OutputTensor {
  readonly datatype: DataType;
  readonly dims: readonly number[];
  /** Raw little-endian bytes (BYTES: 4-byte length + bytes per element). A view valid only during the callback. */
  readonly data: Uint8Array;
}

/** A replica's answer to the oldest batch it holds. */
export interface BatchAnswer {
  readonly seq: number;
  /** The model's own run time for the batch as the replica measured it (µs): the AIMD signal. */
  readonly runUs: number;
  /** Outputs in the model's output order; absent when `error` is set. */
  readonly outputs?: readonly OutputTensor[];
  /** The model failed this batch (the replica is fine). */
  readonly error?: string;
}

/** Why a replica stopped; reported once per loss. */
export interface ReplicaLoss {
  readonly error: string;
  /** Gone for good (a container that disconnected); false: the runner replaced it in place (a worker thread restarted). */
  readonly gone: boolean;
  /**
   * The batch it was running cannot have caused the loss (its process was killed from outside,
   * its connection dropped): that batch may run again elsewhere while its deadline allows.
   */
  readonly retryable: boolean;
}

/** The executor's side of the seam. */
export interface RunnerEvents {
  /** `replica` answered its oldest outstanding batch. Copy what you keep before returning. */
  answered(replica: Replica, answer: BatchAnswer): void;
  /** A burst of answers has been delivered (dispatch more now). */
  settled(): void;
  /** `replica` stopped; it will report none of the batches it held. */
  lost(replica: Replica, loss: ReplicaLoss): void;
  /** A new replica can take batches (a container connected). */
  added(replica: Replica): void;
}

export interface Replica {
  /** Stable for the replica's life: a slot index, or a container's routing id. */
  readonly id: string;
  /**
   * Largest batch input (bytes) it takes in one piece on its fast path; a batch former keeps
   * batches under it where it can (Infinity: no preference).
   */
  readonly maxBatchBytes: number;
  /** Hand over a batch; false when it has no room now (try again after one of its answers). */
  send(batch: RunnerBatch): boolean;
  /** Its running batch overran the batch timeout: stop it. `lost` follows (not retryable). */
  terminate(reason: string): void;
}

export interface Runner {
  readonly kind: 'worker' | 'container';
  readonly description: ModelDescription;
  /** The replicas that can take batches now (the array is the runner's; do not keep it). */
  readonly replicas: readonly Replica[];
  /** Replicas the operator asked for (a container model may have fewer connected). */
  readonly wantedReplicas: number;
  /** Batches one replica may hold at once: the running one plus those queued behind it. */
  readonly depth: number;
  /** Change the replica count in place (launched containers); absent: a new runner is needed. */
  resize?(replicas: number): void;
  /** Bind the executor; called once, before any batch. */
  bind(events: RunnerEvents): void;
  /** Replicas replaced after a crash, hang or exit since the runner started. */
  readonly restarts: number;
  /** Threads or processes running now. */
  readonly threads: number;
  /** Parking (stop the compute while idle, restart on the next batch); a runner that cannot park ignores it. */
  readonly isParked: boolean;
  readonly parks: number;
  park(): void;
  unpark(): void;
  /** Stop every replica; nothing is reported afterwards. */
  close(): Promise<void>;
}

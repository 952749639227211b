import type { MessagePort } from 'node:worker_threads';
import type { TensorSpec } from '../../tensor/tensor.js';

/**
 * The messages between the main thread and a model worker thread (workers/runner.ts), outside
 * the rings: the worker's start-up data, its two piscina tasks, and the model description it
 * reports. Owned by the engine; the worker imports it, never the other way round.
 */
export interface WorkerInit {
  kind: 'onnx' | 'js';
  modelPath: string;
  threads: number;
}

export type WorkerTask =
  | { op: 'describe' }
  | { op: 'serve'; slot: number; req: SharedArrayBuffer; res: SharedArrayBuffer; port: MessagePort };

/** A model's inputs and outputs as its runtime reports them (variable dims are -1). */
export interface ModelDescription {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

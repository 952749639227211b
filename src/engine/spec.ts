import type { TensorSpec } from '../tensor/tensor.js';

/** What the engine knows of a model version's interface, from its runner's description. */
export interface ModelSpec {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Every input has a variable leading (batch) dimension: queries can be stacked into batches. */
  batchable: boolean;
  /** The runner takes BYTES inputs (model containers do; ONNX and JS workers do not). */
  bytesInputs: boolean;
}

export function specOf(desc: { inputs: TensorSpec[]; outputs: TensorSpec[] }, bytesInputs = false): ModelSpec {
  const batchable = desc.inputs.length > 0 && desc.inputs.every((i) => i.shape.length >= 1 && i.shape[0] === -1);
  return { inputs: desc.inputs, outputs: desc.outputs, batchable, bytesInputs };
}

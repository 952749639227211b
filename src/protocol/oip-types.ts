/**
 * The Open Inference Protocol (KServe v2) REST infer codec's values: what the request parser
 * and the response decoder return (oip-decode.ts), what the encoders produce (oip-encode.ts),
 * and the parser's limits. Tensors are src/tensor's (raw little-endian bytes).
 */
import type { Tensor } from '../tensor/tensor.js';

/** An output named in the request, and whether it must come back in binary form. */
export interface OipRequestedOutput {
  name: string;
  binary: boolean;
}

export interface OipInferRequest {
  id?: string;
  /** `parameters.timeout`, microseconds. */
  timeoutUs?: number;
  priority?: number;
  inputs: Tensor[];
  /** Absent when the request names no outputs (then every model output is wanted). */
  outputs?: OipRequestedOutput[];
  /** `parameters.binary_data_output`: every output comes back in binary form unless its own `binary_data` says otherwise. */
  binaryOutput: boolean;
}

export interface OipLimits {
  /** Largest element count (product of the shape) accepted for one input. */
  maxElements: number;
}

/** The decoded form of an infer response (client side). */
export interface OipInferResponse {
  model_name: string;
  model_version: string;
  id?: string;
  outputs: Tensor[];
}

/** An encoded body; `headerLength` is set exactly when binary tensor bytes follow the JSON. */
export interface OipEncoded {
  body: Uint8Array;
  headerLength?: number;
}

/**
 * `skiff-serve/client`: the WebSocket client for browsers and Node, with typed helpers for
 * tensors. Tensor `data` is always raw little-endian bytes, row-major (a Float32Array's bytes on
 * every machine Skiff runs on); `fp32`, `int64` and `values` convert.
 */
export { SkiffClient } from './client.js';
export type {
  InferRequest, FeedbackRequest, CallOptions, ClientOptions, ClientState, InferCall, InferBatch,
  ReconnectOptions, WebSocketLike, Tensor, WireResponse, ErrorInfo,
} from './client.js';
export type { DataType } from '../tensor/datatype.js';
export type { ErrorCode } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';

type Numbers = ArrayLike<number> | Float32Array;

function bytes(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

function rowsOf(values: ArrayLike<unknown>, shape: readonly number[] | undefined): number[] {
  return shape ? [...shape] : [1, values.length];
}

/** An FP32 tensor (default shape [1, n]). */
export function fp32(name: string, values: Numbers, shape?: readonly number[]): Tensor {
  const a = values instanceof Float32Array ? values : Float32Array.from(values);
  return { name, datatype: 'FP32', shape: rowsOf(a, shape), data: bytes(a) };
}

/** An INT64 tensor (default shape [1, n]). */
export function int64(name: string, values: ArrayLike<number | bigint>, shape?: readonly number[]): Tensor {
  const a = BigInt64Array.from(Array.from(values, (v) => BigInt(v)));
  return { name, datatype: 'INT64', shape: rowsOf(a, shape), data: bytes(a) };
}

/** A tensor's elements as numbers (FP16 and BYTES excluded). */
export function values(t: Tensor): number[] {
  const { buffer, byteOffset, byteLength } = t.data;
  const copy = byteOffset % 8 === 0 ? t.data : t.data.slice();
  const b = copy === t.data ? buffer : copy.buffer;
  const o = copy === t.data ? byteOffset : 0;
  switch (t.datatype) {
    case 'FP32': return Array.from(new Float32Array(b, o, byteLength / 4));
    case 'FP64': return Array.from(new Float64Array(b, o, byteLength / 8));
    case 'INT8': return Array.from(new Int8Array(b, o, byteLength));
    case 'UINT8': case 'BOOL': return Array.from(new Uint8Array(b, o, byteLength));
    case 'INT16': return Array.from(new Int16Array(b, o, byteLength / 2));
    case 'UINT16': return Array.from(new Uint16Array(b, o, byteLength / 2));
    case 'INT32': return Array.from(new Int32Array(b, o, byteLength / 4));
    case 'UINT32': return Array.from(new Uint32Array(b, o, byteLength / 4));
    case 'INT64': return Array.from(new BigInt64Array(b, o, byteLength / 8), Number);
    case 'UINT64': return Array.from(new BigUint64Array(b, o, byteLength / 8), Number);
    default: throw new TypeError(`values(): ${t.datatype} tensors have no numeric elements`);
  }
}

/** Index of the largest element of row `row` of a [N, k] tensor. */
export function argmax(t: Tensor, row = 0): number {
  const v = values(t);
  const k = t.shape[t.shape.length - 1] ?? v.length;
  let best = 0;
  for (let i = 1; i < k; i++) if (v[row * k + i]! > v[row * k + best]!) best = i;
  return best;
}

import type { DataType } from './datatype.js';

/**
 * A tensor as every layer outside the workers sees it: raw little-endian bytes, row-major.
 * `data` is owned by whoever holds the Tensor; producers hand over a buffer nobody else writes.
 */
export interface Tensor {
  name: string;
  datatype: DataType;
  shape: number[];
  data: Uint8Array;
}

/** Declared shape of a model input or output: -1 marks a variable dimension. */
export interface TensorSpec {
  name: string;
  datatype: DataType;
  shape: number[];
}

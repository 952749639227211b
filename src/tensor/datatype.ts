/**
 * Tensor datatypes as the Open Inference Protocol names them, with their element sizes and the
 * ONNX Runtime type names. Pure leaf module: imported by the frontends, the engine and workers.
 *
 * Wire numbering (the FlatBuffers `DataType` enum uses the same numbers) is stable: never reorder.
 */
export const DATATYPES = [
  'INVALID', 'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64',
  'FP16', 'FP32', 'FP64', 'BYTES',
] as const;

export type DataType = Exclude<(typeof DATATYPES)[number], 'INVALID'>;

/** Bytes per element; BYTES is variable-length and has no fixed size (0). */
export const ELEMENT_SIZE: Readonly<Record<DataType, number>> = Object.freeze({
  BOOL: 1, UINT8: 1, UINT16: 2, UINT32: 4, UINT64: 8, INT8: 1, INT16: 2, INT32: 4, INT64: 8,
  FP16: 2, FP32: 4, FP64: 8, BYTES: 0,
});

/** OIP datatype -> onnxruntime-node tensor type string. */
export const ORT_TYPE: Readonly<Record<DataType, string>> = Object.freeze({
  BOOL: 'bool', UINT8: 'uint8', UINT16: 'uint16', UINT32: 'uint32', UINT64: 'uint64',
  INT8: 'int8', INT16: 'int16', INT32: 'int32', INT64: 'int64',
  FP16: 'float16', FP32: 'float32', FP64: 'float64', BYTES: 'string',
});

const FROM_ORT: Readonly<Record<string, DataType>> = Object.freeze(
  Object.fromEntries(Object.entries(ORT_TYPE).map(([k, v]) => [v, k as DataType])),
);

export function dataTypeFromOrt(t: string): DataType | undefined {
  // ORT metadata may say 'tensor(float)' in some builds; normalise both forms.
  const m = /^tensor\((\w+)\)$/.exec(t);
  const name = m ? ({ float: 'float32', double: 'float64', float16: 'float16' } as Record<string, string>)[m[1]!] ?? m[1]! : t;
  return FROM_ORT[name];
}

export function isDataType(x: unknown): x is DataType {
  return typeof x === 'string' && x !== 'INVALID' && (DATATYPES as readonly string[]).includes(x);
}

export function dataTypeToWire(dt: DataType): number {
  return DATATYPES.indexOf(dt);
}

export function dataTypeFromWire(n: number): DataType | undefined {
  const dt = DATATYPES[n];
  return dt === undefined || dt === 'INVALID' ? undefined : dt;
}

/** Number of elements of a fully specified shape; -1 if any dim is negative or not an integer. */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return -1;
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return -1;
  }
  return n;
}

/** A typed-array view of little-endian bytes (the machine is little-endian; asserted at start-up). */
export type AnyTypedArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | BigUint64Array | BigInt64Array | Float32Array | Float64Array;

/**
 * View `bytes` as the typed array of `dt` without copying when aligned; copies when the offset is
 * not a multiple of the element size. BYTES is not viewable.
 */
export function viewAs(dt: DataType, bytes: Uint8Array): AnyTypedArray {
  const size = ELEMENT_SIZE[dt];
  let buf = bytes.buffer as ArrayBuffer;
  let off = bytes.byteOffset;
  if (size > 1 && off % size !== 0) {
    const copy = new Uint8Array(bytes.byteLength);
    copy.set(bytes);
    buf = copy.buffer;
    off = 0;
  }
  const n = size === 0 ? 0 : bytes.byteLength / size;
  switch (dt) {
    case 'BOOL': case 'UINT8': return new Uint8Array(buf, off, n);
    case 'INT8': return new Int8Array(buf, off, n);
    case 'UINT16': case 'FP16': return new Uint16Array(buf, off, n);
    case 'INT16': return new Int16Array(buf, off, n);
    case 'UINT32': return new Uint32Array(buf, off, n);
    case 'INT32': return new Int32Array(buf, off, n);
    case 'UINT64': return new BigUint64Array(buf, off, n);
    case 'INT64': return new BigInt64Array(buf, off, n);
    case 'FP32': return new Float32Array(buf, off, n);
    case 'FP64': return new Float64Array(buf, off, n);
    case 'BYTES': throw new TypeError('BYTES tensors have no fixed-size view');
  }
}

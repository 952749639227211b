/**
 * Decoding Open Inference Protocol (KServe v2) REST infer bodies, with Triton's binary tensor
 * extension (a JSON header followed by raw little-endian tensor bytes, the header's byte length
 * travelling in the `Inference-Header-Content-Length` HTTP header): the server's request parser
 * and the client's response decoder. Bytes in, Tensors out; no HTTP here. Pure functions; safe
 * on any thread.
 *
 * JSON `data` (flat or nested) is converted into Tensor.data (raw little-endian bytes of the
 * datatype; BYTES elements as a 4-byte little-endian length followed by the bytes); 64-bit
 * values beyond 2^53 may come as decimal strings, read exactly. Every failure is a SkiffError:
 * BAD_REQUEST for malformed bodies, INVALID_INPUT for tensor contents that do not add up,
 * UNSUPPORTED_DATATYPE for unknown datatype names.
 */
import { SkiffError } from '../errors.js';
import { isDataType, type DataType } from '../tensor/datatype.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  expectArray, expectBoolean, expectInteger, expectObject, expectString, optional, parseJsonBody,
  type JsonObject,
} from './safe-json.js';
import { checkTensorBytes, FP16_OVERFLOW, fp16FromNumber } from './oip-shared.js';
import type { OipInferRequest, OipInferResponse, OipLimits, OipRequestedOutput } from './oip-types.js';

// ---------------------------------------------------------------------------------------------
// Requests (server side)

/**
 * Parse and validate an infer request body. `headerLength` is the value of the
 * `Inference-Header-Content-Length` header, if the request had one.
 *
 * Element counts are checked against `limits.maxElements` before anything is allocated. JSON
 * `data` (flat or nested) is converted into fresh buffers; binary inputs' `data` are views into
 * `body` (no copy), so the caller hands `body` over and must not write to it afterwards.
 */
export function parseInferRequest(body: Uint8Array, headerLength: number | undefined, limits: OipLimits): OipInferRequest {
  const { json, tail } = splitBody(body, headerLength);
  const root = expectObject(parseJsonBody(json), 'request body');
  const id = optional(root.id, expectString, 'id');
  const params = optional(root.parameters, expectObject, 'parameters');
  // Any non-negative number: the query processor bounds it (absurd -> INVALID_DEADLINE, long -> clamped).
  const timeoutUs = optional(params?.timeout, expectNumber, 'parameters.timeout');
  const priority = optional(params?.priority, expectNonNegative, 'parameters.priority');
  const binaryOutput = optional(params?.binary_data_output, expectBoolean, 'parameters.binary_data_output') ?? false;
  const outputs = root.outputs === undefined ? undefined : readRequestedOutputs(root.outputs, binaryOutput);

  const inputsJson = expectArray(root.inputs, 'inputs');
  if (inputsJson.length === 0) throw new SkiffError('BAD_REQUEST', 'inputs must not be empty');
  const reader: TensorReader = { tail, offset: 0, maxElements: limits.maxElements, response: false };
  const req: OipInferRequest = { inputs: readTensors(inputsJson, 'inputs', reader), binaryOutput };
  if (id !== undefined) req.id = id;
  if (timeoutUs !== undefined) req.timeoutUs = timeoutUs;
  if (priority !== undefined) req.priority = priority;
  if (outputs !== undefined) req.outputs = outputs;
  return req;
}

function readRequestedOutputs(v: unknown, binaryDefault: boolean): OipRequestedOutput[] {
  const arr = expectArray(v, 'outputs');
  const seen = new Set<string>();
  const out: OipRequestedOutput[] = [];
  for (let i = 0; i < arr.length; i++) {
    const where = `outputs[${i}]`;
    const o = expectObject(arr[i], where);
    const name = expectString(o.name, `${where}.name`);
    if (seen.has(name)) throw new SkiffError('INVALID_INPUT', `output "${name}" is requested twice`);
    seen.add(name);
    const p = optional(o.parameters, expectObject, `${where}.parameters`);
    const binary = optional(p?.binary_data, expectBoolean, `${where}.parameters.binary_data`) ?? binaryDefault;
    out.push({ name, binary });
  }
  return out;
}

/**
 * Client side: decode an infer response into tensors with raw little-endian data, whichever form
 * each output came in. JSON null in a float output reads as NaN. Binary outputs' `data` are views
 * into `body`. A malformed response raises the same codes as a malformed request.
 */
export function decodeInferResponse(body: Uint8Array, headerLength?: number): OipInferResponse {
  const { json, tail } = splitBody(body, headerLength);
  const root = expectObject(parseJsonBody(json), 'response body');
  const res: OipInferResponse = {
    model_name: expectString(root.model_name, 'model_name'),
    model_version: expectString(root.model_version, 'model_version'),
    outputs: readTensors(expectArray(root.outputs, 'outputs'), 'outputs', {
      tail, offset: 0, maxElements: Number.MAX_SAFE_INTEGER, response: true,
    }),
  };
  const id = optional(root.id, expectString, 'id');
  if (id !== undefined) res.id = id;
  return res;
}

// ---------------------------------------------------------------------------------------------
// Reading tensors from JSON

interface TensorReader {
  /** The bytes after the JSON header. */
  tail: Uint8Array;
  /** How much of `tail` the tensors read so far have taken. */
  offset: number;
  maxElements: number;
  /**
   * Decoding a response: float null reads as NaN; INT64/UINT64 accept any integral number in range
   * (the type's maximum also as the double it rounds up to), as the encoder writes every digit.
   */
  response: boolean;
}

function splitBody(body: Uint8Array, headerLength: number | undefined): { json: Uint8Array; tail: Uint8Array } {
  if (headerLength === undefined) return { json: body, tail: body.subarray(body.length) };
  if (!Number.isSafeInteger(headerLength) || headerLength < 0 || headerLength > body.length) {
    throw new SkiffError('BAD_REQUEST', `Inference-Header-Content-Length ${headerLength} does not fit a body of ${body.length} bytes`);
  }
  return { json: body.subarray(0, headerLength), tail: body.subarray(headerLength) };
}

function readTensors(arr: unknown[], field: string, rd: TensorReader): Tensor[] {
  const seen = new Set<string>();
  const tensors: Tensor[] = [];
  for (let i = 0; i < arr.length; i++) {
    const t = readTensor(expectObject(arr[i], `${field}[${i}]`), `${field}[${i}]`, rd);
    if (seen.has(t.name)) throw new SkiffError('INVALID_INPUT', `tensor "${t.name}" appears twice in ${field}`);
    seen.add(t.name);
    tensors.push(t);
  }
  if (rd.offset !== rd.tail.length) {
    throw new SkiffError('BAD_REQUEST', `${rd.tail.length - rd.offset} bytes after the JSON header belong to no tensor`);
  }
  return tensors;
}

function readTensor(o: JsonObject, where: string, rd: TensorReader): Tensor {
  const name = expectString(o.name, `${where}.name`);
  const datatype = expectString(o.datatype, `${where}.datatype`);
  if (!isDataType(datatype)) throw new SkiffError('UNSUPPORTED_DATATYPE', `${where}: unknown datatype "${datatype}"`);
  const shape = readShape(expectArray(o.shape, `${where}.shape`), where);
  const count = countElements(shape, rd.maxElements, where);
  const params = optional(o.parameters, expectObject, `${where}.parameters`);
  const binarySize = optional(params?.binary_data_size, expectNonNegative, `${where}.parameters.binary_data_size`);

  if (binarySize !== undefined) {
    if (o.data !== undefined) throw new SkiffError('BAD_REQUEST', `${where} has both data and binary_data_size`);
    if (binarySize > rd.tail.length - rd.offset) {
      throw new SkiffError('BAD_REQUEST', `${where}: binary_data_size ${binarySize} runs past the end of the body`);
    }
    const data = rd.tail.subarray(rd.offset, rd.offset + binarySize);
    rd.offset += binarySize;
    const t: Tensor = { name, datatype, shape, data };
    checkTensorBytes(t, 'INVALID_INPUT', count);
    return t;
  }
  if (o.data === undefined) throw new SkiffError('BAD_REQUEST', `${where} has neither data nor binary_data_size`);
  return { name, datatype, shape, data: jsonTensorBytes(datatype, expectArray(o.data, `${where}.data`), count, where, rd.response) };
}

function readShape(arr: unknown[], where: string): number[] {
  for (let i = 0; i < arr.length; i++) {
    const d = arr[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new SkiffError('INVALID_INPUT', `${where}.shape must hold non-negative integers`);
    }
  }
  return arr as number[];
}

/** product(shape), refused as soon as it exceeds `max` (so nothing sized by it is ever allocated). */
function countElements(shape: number[], max: number, where: string): number {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > max) throw new SkiffError('INVALID_INPUT', `${where}: shape [${shape.join(',')}] has more than ${max} elements`);
  }
  return n;
}

const NO_RUN = (): void => {};

/** Deepest list nesting walked in `data` (a tensor of rank 32 at most; parseJsonBody bounds the rest). */
const MAX_DATA_DEPTH = 32;

/**
 * Visit `data` — flat, or lists nested in row-major order — as runs of consecutive scalars:
 * `run(src, from, to, at)` gets src[from..to) whose first element is element `at` of the tensor.
 * A flat list is one run. The walk is bounded (depth, and never past `count` elements) and
 * allocates nothing per element, so a nested body costs no flattened copy of itself.
 */
function forEachRun(data: unknown[], count: number, where: string, run: (src: unknown[], from: number, to: number, at: number) => void): void {
  let at = 0;
  const walk = (a: unknown[], depth: number): void => {
    if (depth > MAX_DATA_DEPTH) throw new SkiffError('INVALID_INPUT', `${where}: data nests lists more than ${MAX_DATA_DEPTH} deep`);
    let i = 0;
    while (i < a.length) {
      if (Array.isArray(a[i])) {
        walk(a[i] as unknown[], depth + 1);
        i++;
        continue;
      }
      let j = i + 1;
      while (j < a.length && !Array.isArray(a[j])) j++;
      if (at + (j - i) > count) throw new SkiffError('INVALID_INPUT', `${where}: data has more than the ${count} elements the shape needs`);
      run(a, i, j, at);
      at += j - i;
      i = j;
    }
  };
  walk(data, 0);
  if (at !== count) throw new SkiffError('INVALID_INPUT', `${where}: data has ${at} elements, shape needs ${count}`);
}

type IntArrayCtor = Uint8ArrayConstructor | Int8ArrayConstructor | Uint16ArrayConstructor
  | Int16ArrayConstructor | Uint32ArrayConstructor | Int32ArrayConstructor;

const SMALL_INTS: Partial<Record<DataType, { ctor: IntArrayCtor; min: number; max: number }>> = {
  UINT8: { ctor: Uint8Array, min: 0, max: 0xff },
  UINT16: { ctor: Uint16Array, min: 0, max: 0xffff },
  UINT32: { ctor: Uint32Array, min: 0, max: 0xffffffff },
  INT8: { ctor: Int8Array, min: -0x80, max: 0x7f },
  INT16: { ctor: Int16Array, min: -0x8000, max: 0x7fff },
  INT32: { ctor: Int32Array, min: -0x80000000, max: 0x7fffffff },
};

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

/** Smallest magnitude that rounds to infinity as a float32 (FLT_MAX plus half an ulp). */
const FP32_OVERFLOW = 3.4028235677973366e38;

function badElement(where: string, i: number, dt: DataType, v: unknown): never {
  // Never String() an object: JSON may give it a "toString" key that is not a function.
  const shown = typeof v === 'string' ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)
    : Array.isArray(v) ? 'an array' : typeof v === 'object' && v !== null ? 'an object' : String(v);
  throw new SkiffError('INVALID_INPUT', `${where}: element ${i} (${shown}) is not a valid ${dt} value`);
}

/**
 * A tensor's JSON `data` (flat, or nested lists in row-major order) -> the raw little-endian
 * bytes of `dt`, validating each element and that there are exactly `count` of them. Elements are
 * counted in a first walk and written straight into the typed array in a second (forEachRun), so
 * nothing of the input's size is allocated besides the result. `response`: data read
 * from a server's answer (null stands for a non-finite float, 64-bit maxima written in full).
 */
export function jsonTensorBytes(dt: DataType, data: unknown[], count: number, where: string, response: boolean): Uint8Array {
  // Count first (no allocation): a small body that declares a huge shape must not make the
  // server allocate the shape's worth of memory before its data is found short.
  if (dt !== 'BYTES') forEachRun(data, count, where, NO_RUN);
  switch (dt) {
    case 'FP32': {
      const out = new Float32Array(count);
      forEachRun(data, count, where, (src, from, to, at) => {
        for (let k = from, i = at; k < to; k++, i++) {
          const v = src[k];
          if (typeof v === 'number' && !(v >= FP32_OVERFLOW || v <= -FP32_OVERFLOW)) out[i] = v;
          else if (v === null && response) out[i] = NaN;
          else badElement(where, i, dt, v);
        }
      });
      return new Uint8Array(out.buffer);
    }
    case 'FP64': {
      const out = new Float64Array(count);
      forEachRun(data, count, where, (src, from, to, at) => {
        for (let k = from, i = at; k < to; k++, i++) {
          const v = src[k];
          if (typeof v === 'number') out[i] = v;
          else if (v === null && response) out[i] = NaN;
          else badElement(where, i, dt, v);
        }
      });
      return new Uint8Array(out.buffer);
    }
    case 'FP16': {
      const out = new Uint16Array(count);
      forEachRun(data, count, where, (src, from, to, at) => {
        for (let k = from, i = at; k < to; k++, i++) {
          const v = src[k];
          if (typeof v === 'number' && !(v >= FP16_OVERFLOW || v <= -FP16_OVERFLOW)) out[i] = fp16FromNumber(v);
          else if (v === null && response) out[i] = 0x7e00;
          else badElement(where, i, dt, v);
        }
      });
      return new Uint8Array(out.buffer);
    }
    case 'BOOL': {
      const out = new Uint8Array(count);
      forEachRun(data, count, where, (src, from, to, at) => {
        for (let k = from, i = at; k < to; k++, i++) {
          const v = src[k];
          if (v === true || v === 1) out[i] = 1;
          else if (v !== false && v !== 0) badElement(where, i, dt, v);
        }
      });
      return out;
    }
    case 'INT64':
    case 'UINT64': {
      const out = dt === 'INT64' ? new BigInt64Array(count) : new BigUint64Array(count);
      const min = dt === 'INT64' ? INT64_MIN : 0n;
      const max = dt === 'INT64' ? INT64_MAX : UINT64_MAX;
      // A response's maximum, written with all its digits, parses to the double just above it.
      const maxAsDouble = response ? Number(max) : NaN;
      forEachRun(data, count, where, (src, from, to, at) => {
        for (let k = from, i = at; k < to; k++, i++) {
          const v = src[k];
          const b = v === maxAsDouble ? max : toBigInt(v, response);
          if (b === undefined || b < min || b > max) badElement(where, i, dt, v);
          out[i] = b;
        }
      });
      return new Uint8Array(out.buffer);
    }
    case 'BYTES':
      return stringsToBytes(data, count, where);
    default: {
      const { ctor, min, max } = SMALL_INTS[dt]!;
      const out = new ctor(count);
      forEachRun(data, count, where, (src, from, to, at) => {
        for (let k = from, i = at; k < to; k++, i++) {
          const v = src[k];
          if (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max) out[i] = v;
          else badElement(where, i, dt, v);
        }
      });
      return new Uint8Array(out.buffer);
    }
  }
}

const DECIMAL = /^-?[0-9]{1,20}$/;

/** A JSON integer as BigInt: safe-integer numbers (any integral number when `lenient`) or decimal strings. */
function toBigInt(v: unknown, lenient: boolean): bigint | undefined {
  if (typeof v === 'number') return (lenient ? Number.isInteger(v) : Number.isSafeInteger(v)) ? BigInt(v) : undefined;
  if (typeof v === 'string' && DECIMAL.test(v)) return BigInt(v);
  return undefined;
}

const LONE_SURROGATE = /\p{Cs}/u;
const encoder = new TextEncoder();

/** JSON strings -> BYTES wire form (4-byte little-endian length + UTF-8 bytes, per element). */
function stringsToBytes(data: unknown[], count: number, where: string): Uint8Array {
  // Two walks: the first validates and sizes, the second writes into one buffer.
  let total = 0;
  forEachRun(data, count, where, (src, from, to, at) => {
    for (let k = from, i = at; k < to; k++, i++) {
      const v = src[k];
      if (typeof v !== 'string' || LONE_SURROGATE.test(v)) badElement(where, i, 'BYTES', v);
      total += 4 + Buffer.byteLength(v, 'utf8');
    }
  });
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  let off = 0;
  forEachRun(data, count, where, (src, from, to) => {
    for (let k = from; k < to; k++) {
      const { written } = encoder.encodeInto(src[k] as string, out.subarray(off + 4));
      dv.setUint32(off, written, true);
      off += 4 + written;
    }
  });
  return out;
}

function expectNumber(v: unknown, what: string): number {
  if (typeof v !== 'number' || !(v >= 0)) throw new SkiffError('BAD_REQUEST', `${what} must be a non-negative number`);
  return v;
}

function expectNonNegative(v: unknown, what: string): number {
  return expectInteger(v, what, 0);
}

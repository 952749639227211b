/**
 * Codec for the Open Inference Protocol (KServe v2) REST infer body, with Triton's binary tensor
 * extension: a JSON header followed by raw little-endian tensor bytes, the header's byte length
 * travelling in the `Inference-Header-Content-Length` HTTP header. Bytes in, Tensors out, and back;
 * no HTTP here. Pure functions; safe on any thread.
 *
 * JSON `data` is converted to and from Tensor.data (raw little-endian bytes of the datatype; BYTES
 * elements as a 4-byte little-endian length followed by the bytes). Numbers are written flat,
 * row-major. Responses write integers with all their digits (INT64/UINT64 too, so a client with an
 * exact integer parser loses nothing; JavaScript clients get Number()); requests write 64-bit values
 * beyond 2^53 as decimal strings, which the parser accepts exactly. Every failure is a SkiffError:
 * BAD_REQUEST for malformed bodies, INVALID_INPUT for tensor contents that do not add up,
 * UNSUPPORTED_DATATYPE for unknown datatype names.
 */
import { SkiffError, type ErrorCode } from '../errors.js';
import { ELEMENT_SIZE, isDataType, viewAs, type DataType } from '../tensor/datatype.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  expectArray, expectBoolean, expectInteger, expectObject, expectString, optional, parseJsonBody,
  type JsonObject,
} from './safe-json.js';

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

/** Client side: encode an infer request, with JSON `data` or (binary: true) in binary form. */
export function encodeInferRequest(r: {
  id?: string;
  inputs: Tensor[];
  timeoutUs?: number;
  priority?: number;
  /** Send input tensors in binary form. */
  binary?: boolean;
  /** Ask for every output in binary form (`parameters.binary_data_output`). */
  binaryOutput?: boolean;
  /** Outputs to return; `binary` is sent as the output's `binary_data` parameter when given. */
  outputs?: { name: string; binary?: boolean }[];
}): OipEncoded {
  let s = '{';
  if (r.id !== undefined) s += `"id":${JSON.stringify(r.id)},`;
  const params: string[] = [];
  if (r.timeoutUs !== undefined) params.push(`"timeout":${jsonInteger(r.timeoutUs, 'timeoutUs')}`);
  if (r.priority !== undefined) params.push(`"priority":${jsonInteger(r.priority, 'priority')}`);
  if (r.binaryOutput !== undefined) params.push(`"binary_data_output":${r.binaryOutput}`);
  if (params.length > 0) s += `"parameters":{${params.join(',')}},`;
  s += '"inputs":[';
  const binary: Uint8Array[] = [];
  for (let i = 0; i < r.inputs.length; i++) {
    const t = r.inputs[i]!;
    if (i > 0) s += ',';
    s += tensorHead(t);
    if (r.binary === true) {
      checkTensorBytes(t, 'INVALID_INPUT');
      s += `,"parameters":{"binary_data_size":${t.data.length}}}`;
      binary.push(t.data);
    } else {
      s += `,"data":${tensorDataJson(t, false)}}`;
    }
  }
  s += ']';
  if (r.outputs !== undefined) {
    s += ',"outputs":[';
    for (let i = 0; i < r.outputs.length; i++) {
      const o = r.outputs[i]!;
      if (i > 0) s += ',';
      s += `{"name":${JSON.stringify(o.name)}`;
      if (o.binary !== undefined) s += `,"parameters":{"binary_data":${o.binary}}`;
      s += '}';
    }
    s += ']';
  }
  return pack(s + '}', binary);
}

// ---------------------------------------------------------------------------------------------
// Responses

/**
 * Encode an infer response. Outputs for which `binary(name)` is true are sent in binary form after
 * the JSON, and `headerLength` is then set (the frontend sends it as
 * `Inference-Header-Content-Length`). Non-finite floats have no JSON form and are written as null.
 * BYTES elements that are not UTF-8 are decoded with replacement characters in JSON form.
 *
 * The returned body is a fresh buffer owned by the caller; it may be a slice of Node's shared
 * small-buffer pool, so do not transfer `body.buffer` to another thread.
 */
export function encodeInferResponse(r: {
  modelName: string;
  modelVersion: string;
  id?: string;
  outputs: Tensor[];
  binary: (name: string) => boolean;
}): OipEncoded {
  let s = `{"model_name":${JSON.stringify(r.modelName)},"model_version":${JSON.stringify(r.modelVersion)}`;
  if (r.id !== undefined) s += `,"id":${JSON.stringify(r.id)}`;
  s += ',"outputs":[';
  const binary: Uint8Array[] = [];
  for (let i = 0; i < r.outputs.length; i++) {
    const t = r.outputs[i]!;
    if (i > 0) s += ',';
    s += tensorHead(t);
    if (r.binary(t.name)) {
      checkTensorBytes(t, 'INTERNAL');
      s += `,"parameters":{"binary_data_size":${t.data.length}}}`;
      binary.push(t.data);
    } else {
      s += `,"data":${tensorDataJson(t, true)}}`;
    }
  }
  return pack(s + ']}', binary);
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
/** Smallest magnitude that rounds to infinity as a float16 (65504 plus half an ulp). */
const FP16_OVERFLOW = 65520;

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

// ---------------------------------------------------------------------------------------------
// Writing tensors as JSON

/** `{"name":..,"datatype":..,"shape":[..]` — the caller appends data or parameters and the brace. */
function tensorHead(t: Tensor): string {
  return `{"name":${JSON.stringify(t.name)},"datatype":"${t.datatype}","shape":[${t.shape.join(',')}]`;
}

/**
 * Check that `t.data` holds exactly product(shape) elements of its datatype (for BYTES: that it
 * splits into that many length-prefixed elements with no bytes left over).
 */
function checkTensorBytes(t: Tensor, code: ErrorCode, count = shapeCount(t, code)): void {
  const size = ELEMENT_SIZE[t.datatype];
  if (size > 0) {
    if (t.data.length !== count * size) {
      throw new SkiffError(code, `tensor "${t.name}": ${t.data.length} bytes, shape needs ${count * size} for ${t.datatype}`);
    }
    return;
  }
  const found = countBytesElements(t.data);
  if (found !== count) {
    throw new SkiffError(code, `tensor "${t.name}": BYTES data ${found < 0 ? 'is malformed' : `holds ${found} elements`}, shape needs ${count}`);
  }
}

function shapeCount(t: Tensor, code: ErrorCode): number {
  let n = 1;
  for (const d of t.shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new SkiffError(code, `tensor "${t.name}": shape [${t.shape.join(',')}] is not valid`);
    n *= d;
  }
  return n;
}

/** Number of length-prefixed elements in BYTES wire data, or -1 if it does not split exactly. */
function countBytesElements(b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let off = 0;
  let n = 0;
  while (off < b.length) {
    if (b.length - off < 4) return -1;
    const len = dv.getUint32(off, true);
    off += 4;
    if (len > b.length - off) return -1;
    off += len;
    n++;
  }
  return n;
}

// ignoreBOM: a BYTES element that starts with U+FEFF keeps it (the default decoders would drop it).
const utf8Strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Lenient = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * The JSON `data` array of a tensor, flat. For a response (`response`), data that does not match
 * the shape is an INTERNAL error, non-finite floats become null and non-UTF-8 BYTES are decoded with
 * replacement characters; for a request these are INVALID_INPUT errors.
 */
function tensorDataJson(t: Tensor, response: boolean): string {
  const code: ErrorCode = response ? 'INTERNAL' : 'INVALID_INPUT';
  checkTensorBytes(t, code);
  switch (t.datatype) {
    case 'FP32':
    case 'FP64':
      return floatsJson(viewAs(t.datatype, t.data) as Float32Array | Float64Array, t.name, response);
    case 'FP16': {
      const h = viewAs('FP16', t.data) as Uint16Array;
      const f = new Float64Array(h.length);
      for (let i = 0; i < h.length; i++) f[i] = fp16ToNumber(h[i]!);
      return floatsJson(f, t.name, response);
    }
    case 'BOOL': {
      let s = '[';
      for (let i = 0; i < t.data.length; i++) s += (i > 0 ? ',' : '') + (t.data[i] !== 0 ? 'true' : 'false');
      return s + ']';
    }
    case 'BYTES': {
      const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
      const dec = response ? utf8Lenient : utf8Strict;
      let s = '[';
      for (let off = 0; off < t.data.length;) {
        const len = dv.getUint32(off, true);
        let str: string;
        try {
          str = dec.decode(t.data.subarray(off + 4, off + 4 + len));
        } catch {
          throw new SkiffError(code, `tensor "${t.name}": a BYTES element is not UTF-8 and has no JSON form; send it in binary form`);
        }
        s += (off > 0 ? ',' : '') + JSON.stringify(str);
        off += 4 + len;
      }
      return s + ']';
    }
    case 'INT64':
    case 'UINT64':
      return response ? `[${viewAs(t.datatype, t.data).join(',')}]` : int64RequestJson(viewAs(t.datatype, t.data) as BigInt64Array);
    default:
      // join prints every digit, which is valid JSON.
      return `[${viewAs(t.datatype, t.data).join(',')}]`;
  }
}

/**
 * Floats as a JSON array. Built by string concatenation: measured about 4x faster than
 * JSON.stringify(Array.from(view)) for 784 FP32 values and 10x for 10. Keeps -0 as "-0".
 */
function floatsJson(view: Float32Array | Float64Array, name: string, response: boolean): string {
  let s = '[';
  for (let i = 0; i < view.length; i++) {
    const v = view[i]!;
    if (i > 0) s += ',';
    if (v - v === 0) {
      s += v === 0 && 1 / v < 0 ? '-0' : v;
    } else if (response) {
      s += 'null';
    } else {
      throw new SkiffError('INVALID_INPUT', `tensor "${name}": ${v} has no JSON form; send it in binary form`);
    }
  }
  return s + ']';
}

const SAFE_MAX = BigInt(Number.MAX_SAFE_INTEGER);

/** Request side: 64-bit values beyond the safe-integer range go as decimal strings, so they parse exactly. */
function int64RequestJson(view: BigInt64Array | BigUint64Array): string {
  let s = '[';
  for (let i = 0; i < view.length; i++) {
    const v = view[i]!;
    if (i > 0) s += ',';
    s += v <= SAFE_MAX && v >= -SAFE_MAX ? `${v}` : `"${v}"`;
  }
  return s + ']';
}

function jsonInteger(v: number, what: string): string {
  if (!Number.isSafeInteger(v) || v < 0) throw new SkiffError('INVALID_INPUT', `${what} must be a non-negative integer`);
  return String(v);
}

function expectNumber(v: unknown, what: string): number {
  if (typeof v !== 'number' || !(v >= 0)) throw new SkiffError('BAD_REQUEST', `${what} must be a non-negative number`);
  return v;
}

function expectNonNegative(v: unknown, what: string): number {
  return expectInteger(v, what, 0);
}

/** JSON text plus binary sections -> one body, allocated once. */
function pack(json: string, binary: Uint8Array[]): OipEncoded {
  if (binary.length === 0) return { body: Buffer.from(json, 'utf8') };
  const headerLength = Buffer.byteLength(json, 'utf8');
  let total = headerLength;
  for (const b of binary) total += b.length;
  const body = Buffer.allocUnsafe(total);
  body.write(json, 0, 'utf8');
  let off = headerLength;
  for (const b of binary) {
    body.set(b, off);
    off += b.length;
  }
  return { body, headerLength };
}

// ---------------------------------------------------------------------------------------------
// IEEE 754 half precision

const f64 = new Float64Array(1);
const f64Hi = new Uint32Array(f64.buffer, 4, 1);

/** The float16 bit pattern nearest to `x` (round to nearest, ties to even; overflow gives infinity). */
export function fp16FromNumber(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || (x === 0 && 1 / x < 0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= FP16_OVERFLOW) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24); // subnormal (or rounds up to the smallest normal)
  f64[0] = a;
  const e = (f64Hi[0]! >>> 20) - 1023; // -14..15 here
  const m = (a / 2 ** e - 1) * 1024; // exact: a / 2^e is in [1, 2)
  return sign | (((e + 15) << 10) + roundHalfEven(m)); // a mantissa carry bumps the exponent, as it should
}

function roundHalfEven(m: number): number {
  const f = Math.floor(m);
  const d = m - f;
  return d > 0.5 || (d === 0.5 && (f & 1) === 1) ? f + 1 : f;
}

/** The value of a float16 bit pattern. */
export function fp16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (1024 + m) * 2 ** (e - 25);
}

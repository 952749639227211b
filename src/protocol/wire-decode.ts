/**
 * Decoding the WebSocket wire codec: one FlatBuffers `Frame` (schemas/skiff.fbs, identifier
 * "SKF1") per binary message, into the plain values of wire-types.ts.
 *
 * Decoding runs on the server's single uWS thread for every message and must survive hostile
 * bytes. The flatbuffers TypeScript runtime has no verifier (its accessors read past the end of
 * the buffer without complaint), so `decodeFrame` reads through its own checked reader: every
 * offset, vtable, vector length and string is bounds-checked before use, loops are bounded by
 * the configured limits or by the buffer size, and what a frame can decode into is capped at a
 * small multiple of its own size: string and tensor bytes plus a fixed charge per decoded item
 * and tensor, so sub-objects shared by many references amplify neither the bytes allocated nor
 * the number of objects (and so the decode time).
 *
 * Failure model:
 *  - a frame whose root structure, item table or item id cannot be read throws
 *    `SkiffError('BAD_FRAME')`: nothing in it can be answered;
 *  - a request, feedback record or response whose id is readable but which is otherwise
 *    malformed gets an `error` (BAD_REQUEST / INVALID_INPUT / UNSUPPORTED_DATATYPE) and the rest
 *    of the frame still decodes, so the server can answer just that id.
 */
import { SkiffError, isErrorCode, type ErrorCode, type ErrorInfo } from '../errors.js';
import { DATATYPES, ELEMENT_SIZE, dataTypeFromWire } from '../tensor/datatype.js';
import type { Tensor } from '../tensor/tensor.js';
import { SlabAllocator } from '../tensor/slab.js';
import { DEFAULT_WIRE_LIMITS, type DecodedFrame, type UniformRequests, type WireFeedback, type WireLimits, type WireRequest, type WireResponse } from './wire-types.js';

/** Slab memory for decoded tensors that nobody releases (collected with their slab). */
const plainSlab = new SlabAllocator(0);

/** "SKF1" at bytes 4..7. */
const IDENT = [0x53, 0x4b, 0x46, 0x31] as const;
const FILE_IDENTIFIER = 'SKF1';
/** A frame may decode into at most this many bytes of strings and tensor data per frame byte (+ slack). */
const DECODE_BUDGET_FACTOR = 4;
const DECODE_BUDGET_SLACK = 65536;
/**
 * Budget charged per decoded tensor and per request/feedback/response, for the JS objects each
 * one costs whatever its bytes. A tensor the encoder writes takes at least ~32 frame bytes (its
 * table, a data vector and its slot in the list, names shared) and a request ~28, so honest
 * frames, even of many scalar tensors, stay inside the budget; a frame that references one
 * tensor or one list thousands of times runs out of it.
 */
const TENSOR_CHARGE = 64;
const ITEM_CHARGE = 32;
const MAX_FRAME_BYTES = 0x7fffffff;

// vtable byte offsets of each field (4 + 2 * field index in schemas/skiff.fbs).
const TENSOR_NAME = 4, TENSOR_DATATYPE = 6, TENSOR_SHAPE = 8, TENSOR_DATA = 10;
const ERROR_CODE = 4, ERROR_MESSAGE = 6, ERROR_RETRY = 8;
const REQ_ID = 4, REQ_MODEL = 6, REQ_VERSION = 8, REQ_TIMEOUT = 10, REQ_DEADLINE = 12,
  REQ_INPUTS = 14, REQ_OUTPUTS = 16, REQ_APP = 18, REQ_USER = 20;
const RES_ID = 4, RES_MODEL = 6, RES_VERSION = 8, RES_OUTPUTS = 10, RES_ERROR = 12,
  RES_IS_DEFAULT = 14, RES_EXPLANATION = 16, RES_USED = 18, RES_MISSING = 20;
const FB_ID = 4, FB_APP = 6, FB_USER = 8, FB_INPUTS = 10, FB_LABEL = 12;
const FRAME_REQUESTS = 4, FRAME_RESPONSES = 6, FRAME_FEEDBACK = 8, FRAME_CANCEL = 10, FRAME_ERROR = 12;

/** Element size by wire enum value; 0 for BYTES (variable length) and unknown values. */
const SIZE_BY_WIRE: readonly number[] = DATATYPES.map((d) => (d === 'INVALID' ? 0 : ELEMENT_SIZE[d]));
/** ignoreBOM: a string that starts with U+FEFF keeps it (the default decoder would drop it). */
const UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

/**
 * Recently decoded short ASCII strings, by a hash of their bytes: the model and tensor names of
 * a frame's requests repeat in every request, and a hit returns the same string without
 * allocating (building one character at a time costs an allocation per character).
 */
const RECENT_SIZE = 256;
const recent: (string | undefined)[] = new Array(RECENT_SIZE).fill(undefined);

/** Short ASCII strings (names, ids) are built directly; anything else goes through TextDecoder. */
function decodeUtf8(u8: Uint8Array, start: number, n: number): string {
  if (n === 0) return '';
  if (n <= 32) {
    const end = start + n;
    let h = n;
    for (let i = start; i < end; i++) {
      const c = u8[i]!;
      if (c >= 0x80) return UTF8.decode(u8.subarray(start, end));
      h = Math.imul(h ^ c, 0x01000193);
    }
    const slot = (h ^ (h >>> 15)) & (RECENT_SIZE - 1);
    const known = recent[slot];
    if (known !== undefined && known.length === n) {
      let same = true;
      for (let i = 0; i < n; i++) {
        if (known.charCodeAt(i) !== u8[start + i]) {
          same = false;
          break;
        }
      }
      if (same) return known;
    }
    let s = '';
    for (let i = start; i < end; i++) s += String.fromCharCode(u8[i]!);
    recent[slot] = s;
    return s;
  }
  return UTF8.decode(u8.subarray(start, start + n));
}

/** A name for an error message, truncated so hostile names cannot bloat error replies. */
function quote(name: string): string {
  return name.length <= 64 ? `'${name}'` : `'${name.slice(0, 60)}...'`;
}

/**
 * Thrown by the reader (a shared object, so no stack is captured on hostile input); the cause
 * is on the reader. Never escapes `decodeFrame`.
 */
const FAULT: object = Object.freeze({ fault: 'skiff-wire' });

/** Bounds-checked reads over one frame. Positions are byte offsets from the frame start. */
class Reader {
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly len: number;
  readonly limits: WireLimits;
  private budget: number;
  /** Element count of the vector located by the last `vector()` call. */
  n = 0;
  faultCode: ErrorCode = 'BAD_REQUEST';
  faultMessage = '';
  /** The fault concerns the whole frame even if raised while reading one item. */
  faultFrame = false;

  constructor(u8: Uint8Array, limits: WireLimits, readonly slab: SlabAllocator) {
    this.u8 = u8;
    this.dv = new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
    this.len = u8.byteLength;
    this.limits = limits;
    this.budget = DECODE_BUDGET_FACTOR * u8.byteLength + DECODE_BUDGET_SLACK;
  }

  fail(code: ErrorCode, message: string, frame = false): never {
    this.faultCode = code;
    this.faultMessage = message;
    this.faultFrame = frame;
    throw FAULT;
  }

  private spend(bytes: number): void {
    this.budget -= bytes;
    if (this.budget < 0) this.fail('BAD_FRAME', 'frame decodes to far more data than its size (shared sub-objects)', true);
  }

  /** Follows the uoffset stored at `p` (4 in-bounds bytes, checked by the caller). */
  deref(p: number): number {
    const o = this.dv.getUint32(p, true);
    const t = p + o;
    if (o === 0 || t >= this.len) this.fail('BAD_REQUEST', `offset at ${p} points outside the frame`);
    return t;
  }

  /** Validates the table at `pos` (vtable and table extent in bounds); returns its vtable position. */
  table(pos: number): number {
    const len = this.len;
    if (pos + 4 > len) this.fail('BAD_REQUEST', `table at ${pos} overruns the frame`);
    const vt = pos - this.dv.getInt32(pos, true);
    if (vt < 0 || vt + 4 > len) this.fail('BAD_REQUEST', `vtable of table at ${pos} is outside the frame`);
    const vsize = this.dv.getUint16(vt, true);
    if (vsize < 4 || (vsize & 1) !== 0 || vt + vsize > len) this.fail('BAD_REQUEST', `bad vtable at ${vt}`);
    const tsize = this.dv.getUint16(vt + 2, true);
    if (tsize < 4 || pos + tsize > len) this.fail('BAD_REQUEST', `table at ${pos} overruns the frame`);
    return vt;
  }

  /** Absolute position of a field of `size` bytes, or 0 when absent. */
  field(pos: number, vt: number, slot: number, size: number): number {
    if (slot >= this.dv.getUint16(vt, true)) return 0;
    const off = this.dv.getUint16(vt + slot, true);
    if (off === 0) return 0;
    if (off < 4 || off + size > this.dv.getUint16(vt + 2, true)) this.fail('BAD_REQUEST', `field ${slot} of table at ${pos} overruns it`);
    return pos + off;
  }

  /** Data start of the vector referenced at `p`; its length goes to `this.n`. */
  vector(p: number, elemSize: number): number {
    const t = this.deref(p);
    if (t + 4 > this.len) this.fail('BAD_REQUEST', `vector at ${t} overruns the frame`);
    const n = this.dv.getUint32(t, true);
    const start = t + 4;
    if (n * elemSize > this.len - start) this.fail('BAD_REQUEST', `vector at ${t} claims ${n} elements, beyond the frame`);
    this.n = n;
    return start;
  }

  string(p: number): string {
    const start = this.vector(p, 1);
    const n = this.n;
    if (start + n >= this.len || this.u8[start + n] !== 0) this.fail('BAD_REQUEST', `string at ${start - 4} is not terminated`);
    this.spend(n + 1);
    return decodeUtf8(this.u8, start, n);
  }

  optString(pos: number, vt: number, slot: number): string {
    const f = this.field(pos, vt, slot, 4);
    return f === 0 ? '' : this.string(f);
  }

  stringList(pos: number, vt: number, slot: number, max: number, what: string): string[] {
    const f = this.field(pos, vt, slot, 4);
    if (f === 0) return [];
    const start = this.vector(f, 4);
    const n = this.n;
    if (n > max) this.fail('BAD_REQUEST', `${n} ${what}; the limit is ${max}`);
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(this.string(start + 4 * i));
    return out;
  }

  id(pos: number, vt: number, slot: number): bigint {
    const f = this.field(pos, vt, slot, 8);
    return f === 0 ? 0n : this.dv.getBigUint64(f, true);
  }

  /** A signed 64-bit field as a number; NaN when outside the safe-integer range. */
  int(pos: number, vt: number, slot: number): number {
    const f = this.field(pos, vt, slot, 8);
    return f === 0 ? 0 : this.i64At(f);
  }

  i64At(p: number): number {
    const hi = this.dv.getInt32(p + 4, true);
    if (hi > 0x1fffff || hi < -0x200000) return NaN;
    const v = hi * 4294967296 + this.dv.getUint32(p, true);
    return Number.isSafeInteger(v) ? v : NaN;
  }

  /** Non-negative safe integer field, or an item fault. */
  count(pos: number, vt: number, slot: number, what: string): number {
    const v = this.int(pos, vt, slot);
    if (!(v >= 0)) this.fail('BAD_REQUEST', `${what} must be a non-negative integer below 2^53`);
    return v;
  }

  tensors(pos: number, vt: number, slot: number, what: string): Tensor[] {
    const f = this.field(pos, vt, slot, 4);
    if (f === 0) return [];
    const start = this.vector(f, 4);
    const n = this.n;
    const max = this.limits.maxTensorsPerRequest;
    if (n > max) this.fail('BAD_REQUEST', `${n} ${what} tensors; the limit is ${max}`);
    const out: Tensor[] = [];
    for (let i = 0; i < n; i++) out.push(this.tensor(start + 4 * i));
    return out;
  }

  /** One tensor; its data is copied out of the frame exactly once. */
  tensor(p: number): Tensor {
    this.spend(TENSOR_CHARGE);
    const pos = this.deref(p);
    const vt = this.table(pos);
    const name = this.optString(pos, vt, TENSOR_NAME);
    const df = this.field(pos, vt, TENSOR_DATATYPE, 1);
    const code = df === 0 ? 0 : this.u8[df]!;
    const datatype = dataTypeFromWire(code);
    if (datatype === undefined) {
      if (code === 0) this.fail('INVALID_INPUT', `tensor ${quote(name)} has no datatype`);
      this.fail('UNSUPPORTED_DATATYPE', `tensor ${quote(name)} has unknown datatype ${code}`);
    }

    const shape: number[] = [];
    let elements = 1;
    const sf = this.field(pos, vt, TENSOR_SHAPE, 4);
    if (sf !== 0) {
      const s = this.vector(sf, 8);
      const n = this.n;
      if (n > this.limits.maxDims) this.fail('INVALID_INPUT', `tensor ${quote(name)} has ${n} dims; the limit is ${this.limits.maxDims}`);
      for (let i = 0; i < n; i++) {
        const d = this.i64At(s + 8 * i);
        if (!(d >= 0)) this.fail('INVALID_INPUT', `tensor ${quote(name)} dim ${i} is negative or not below 2^53`);
        shape.push(d);
        elements *= d;
        if (elements > Number.MAX_SAFE_INTEGER) this.fail('INVALID_INPUT', `tensor ${quote(name)} has more than 2^53 elements`);
      }
    }

    let start = 0;
    let nbytes = 0;
    const bf = this.field(pos, vt, TENSOR_DATA, 4);
    if (bf !== 0) {
      start = this.vector(bf, 1);
      nbytes = this.n;
    }
    const size = SIZE_BY_WIRE[code]!;
    if (size !== 0 && nbytes !== elements * size) {
      this.fail('INVALID_INPUT', `tensor ${quote(name)} has ${nbytes} data bytes; shape [${shape.join(',')}] of ${datatype} needs ${elements * size}`);
    }
    this.spend(nbytes);
    // A copy in slab memory (8-byte aligned, so any element type can view it): a fresh
    // ArrayBuffer per tensor costs more than the rest of the decode together.
    return { name, datatype, shape, data: this.slab.copy(this.u8.subarray(start, start + nbytes)) };
  }

  errorInfo(p: number): ErrorInfo {
    const pos = this.deref(p);
    const vt = this.table(pos);
    const code = this.optString(pos, vt, ERROR_CODE);
    const message = this.optString(pos, vt, ERROR_MESSAGE);
    const rf = this.field(pos, vt, ERROR_RETRY, 4);
    const retry = rf === 0 ? 0 : this.dv.getUint32(rf, true);
    const info: ErrorInfo = isErrorCode(code)
      ? { code, message }
      : { code: 'INTERNAL', message: `unknown error code '${code}': ${message}` };
    if (retry !== 0) info.retryAfterMs = retry;
    return info;
  }

  /** Turns a pending item fault into that item's error; rethrows frame-level faults and real bugs. */
  absorb(e: unknown): ErrorInfo {
    if (e !== FAULT || this.faultFrame) throw e;
    return { code: this.faultCode, message: this.faultMessage };
  }

  request(p: number): WireRequest {
    this.spend(ITEM_CHARGE);
    const pos = this.deref(p);
    const vt = this.table(pos);
    const req: WireRequest = {
      id: this.id(pos, vt, REQ_ID), model: '', version: 0, timeoutUs: 0, deadlineUnixUs: 0,
      inputs: [], outputs: [], app: '', user: '',
    };
    try {
      req.model = this.optString(pos, vt, REQ_MODEL);
      req.app = this.optString(pos, vt, REQ_APP);
      req.user = this.optString(pos, vt, REQ_USER);
      if (req.model === '' && req.app === '') this.fail('BAD_REQUEST', 'request names neither a model nor an app');
      req.version = this.count(pos, vt, REQ_VERSION, 'version');
      req.timeoutUs = this.count(pos, vt, REQ_TIMEOUT, 'timeout_us');
      req.deadlineUnixUs = this.count(pos, vt, REQ_DEADLINE, 'deadline_unix_us');
      req.outputs = this.stringList(pos, vt, REQ_OUTPUTS, this.limits.maxTensorsPerRequest, 'output names');
      req.inputs = this.tensors(pos, vt, REQ_INPUTS, 'input');
    } catch (e) {
      req.error = this.absorb(e);
      req.inputs = [];
    }
    return req;
  }

  feedback(p: number): WireFeedback {
    this.spend(ITEM_CHARGE);
    const pos = this.deref(p);
    const vt = this.table(pos);
    const fbk: WireFeedback = { id: this.id(pos, vt, FB_ID), app: '', user: '', inputs: [], label: 0 };
    try {
      fbk.app = this.optString(pos, vt, FB_APP);
      if (fbk.app === '') this.fail('BAD_REQUEST', 'feedback names no app');
      fbk.user = this.optString(pos, vt, FB_USER);
      const lf = this.field(pos, vt, FB_LABEL, 8);
      fbk.label = lf === 0 ? 0 : this.dv.getFloat64(lf, true);
      fbk.inputs = this.tensors(pos, vt, FB_INPUTS, 'input');
    } catch (e) {
      fbk.error = this.absorb(e);
      fbk.inputs = [];
    }
    return fbk;
  }

  response(p: number): WireResponse {
    this.spend(ITEM_CHARGE);
    const pos = this.deref(p);
    const vt = this.table(pos);
    const res: WireResponse = { id: this.id(pos, vt, RES_ID), model: '', version: 0, outputs: [] };
    try {
      res.model = this.optString(pos, vt, RES_MODEL);
      res.version = this.count(pos, vt, RES_VERSION, 'version');
      const ef = this.field(pos, vt, RES_ERROR, 4);
      if (ef !== 0) res.error = this.errorInfo(ef);
      const df = this.field(pos, vt, RES_IS_DEFAULT, 1);
      if (df !== 0 && this.u8[df] !== 0) res.isDefault = true;
      const explanation = this.optString(pos, vt, RES_EXPLANATION);
      if (explanation !== '') res.defaultExplanation = explanation;
      const max = this.limits.maxRequestsPerFrame;
      const used = this.stringList(pos, vt, RES_USED, max, 'models_used entries');
      if (used.length > 0) res.modelsUsed = used;
      const missing = this.stringList(pos, vt, RES_MISSING, max, 'models_missing entries');
      if (missing.length > 0) res.modelsMissing = missing;
      res.outputs = this.tensors(pos, vt, RES_OUTPUTS, 'output');
    } catch (e) {
      res.error = this.absorb(e);
      res.outputs = [];
    }
    return res;
  }

  /**
   * The frame's requests as UniformRequests, or null when they are not uniform (any difference,
   * anything unusual: the general decoder then reads the frame and reports what is wrong).
   * Reads through the same checks and budget as the general decoder; copies nothing until every
   * request has been checked.
   */
  uniform(root: number, vt: number): UniformRequests | null {
    if (this.field(root, vt, FRAME_FEEDBACK, 4) !== 0 || this.field(root, vt, FRAME_CANCEL, 4) !== 0
      || this.field(root, vt, FRAME_RESPONSES, 4) !== 0 || this.field(root, vt, FRAME_ERROR, 4) !== 0) return null;
    const start = this.frameVector(root, vt, FRAME_REQUESTS, 4, 'requests');
    const n = this.n;
    if (n < 2) return null;
    const ids = new Array<bigint>(n);
    const starts = uniformStarts.length >= n ? uniformStarts : (uniformStarts = new Int32Array(Math.max(n, 2 * uniformStarts.length)));
    let model = '', version = 0, timeoutUs = 0, deadlineUnixUs = 0, name = '', code = 0, rowBytes = 0;
    let rowShape: number[] = [];
    for (let i = 0; i < n; i++) {
      this.spend(ITEM_CHARGE);
      const pos = this.deref(start + 4 * i);
      const rvt = this.table(pos);
      if (this.field(pos, rvt, REQ_APP, 4) !== 0 || this.field(pos, rvt, REQ_USER, 4) !== 0 || this.field(pos, rvt, REQ_OUTPUTS, 4) !== 0) return null;
      ids[i] = this.id(pos, rvt, REQ_ID);
      const m = this.optString(pos, rvt, REQ_MODEL);
      const v = this.count(pos, rvt, REQ_VERSION, 'version');
      const t = this.count(pos, rvt, REQ_TIMEOUT, 'timeout_us');
      const d = this.count(pos, rvt, REQ_DEADLINE, 'deadline_unix_us');
      const inf = this.field(pos, rvt, REQ_INPUTS, 4);
      if (inf === 0) return null;
      const list = this.vector(inf, 4);
      if (this.n !== 1) return null;
      // The input tensor, read as Reader.tensor() reads it.
      this.spend(TENSOR_CHARGE);
      const tp = this.deref(list);
      const tvt = this.table(tp);
      const tn = this.optString(tp, tvt, TENSOR_NAME);
      const df = this.field(tp, tvt, TENSOR_DATATYPE, 1);
      const c = df === 0 ? 0 : this.u8[df]!;
      const size = SIZE_BY_WIRE[c]!;
      if (size === 0) return null; // BYTES, or no or unknown datatype
      const sf = this.field(tp, tvt, TENSOR_SHAPE, 4);
      if (sf === 0) return null;
      const s = this.vector(sf, 8);
      const dims = this.n;
      if (dims < 1 || dims > this.limits.maxDims || this.i64At(s) !== 1) return null;
      const bf = this.field(tp, tvt, TENSOR_DATA, 4);
      if (bf === 0) return null;
      const data = this.vector(bf, 1);
      const nbytes = this.n;
      if (i === 0) {
        if (m === '') return null;
        model = m; version = v; timeoutUs = t; deadlineUnixUs = d; name = tn; code = c;
        let elements = 1;
        for (let k = 1; k < dims; k++) {
          const dim = this.i64At(s + 8 * k);
          if (!(dim >= 0)) return null;
          rowShape.push(dim);
          elements *= dim;
        }
        if (elements * size !== nbytes || elements > Number.MAX_SAFE_INTEGER) return null;
        rowBytes = nbytes;
      } else {
        if (m !== model || v !== version || t !== timeoutUs || d !== deadlineUnixUs || tn !== name || c !== code || nbytes !== rowBytes) return null;
        if (dims !== rowShape.length + 1) return null;
        for (let k = 1; k < dims; k++) if (this.i64At(s + 8 * k) !== rowShape[k - 1]) return null;
      }
      this.spend(nbytes);
      starts[i] = data;
    }
    // Every request checked: the rows, back to back in one piece of slab memory.
    const out = this.slab.alloc(n * rowBytes);
    const u8 = this.u8;
    for (let i = 0; i < n; i++) out.set(u8.subarray(starts[i]!, starts[i]! + rowBytes), i * rowBytes);
    return { ids, model, version, timeoutUs, deadlineUnixUs, name, datatype: dataTypeFromWire(code)!, rowShape, rowBytes, data: out };
  }

  /** Start and length (in `this.n`) of a frame-level vector, enforcing the per-frame limit. */
  frameVector(root: number, vt: number, slot: number, elemSize: number, what: string): number {
    const f = this.field(root, vt, slot, 4);
    if (f === 0) {
      this.n = 0;
      return 0;
    }
    const start = this.vector(f, elemSize);
    const max = this.limits.maxRequestsPerFrame;
    if (this.n > max) this.fail('BAD_FRAME', `frame holds ${this.n} ${what}; the limit is ${max}`, true);
    return start;
  }
}

/** Scratch for the data positions of a uniform frame's rows (grown as needed, never shrunk). */
let uniformStarts = new Int32Array(256);

/**
 * A frame of uniform requests (see UniformRequests) decoded without an object per request, or
 * null when the frame is anything else: then `decodeFrame` is the way to read it (nothing has
 * been taken from `slab` in that case). Never throws on hostile bytes.
 */
export function decodeUniformRequests(bytes: Uint8Array, limits: WireLimits = DEFAULT_WIRE_LIMITS, slab: SlabAllocator = plainSlab): UniformRequests | null {
  const len = bytes.byteLength;
  if (len < 8 || len > MAX_FRAME_BYTES || bytes[4] !== IDENT[0] || bytes[5] !== IDENT[1] || bytes[6] !== IDENT[2] || bytes[7] !== IDENT[3]) return null;
  const r = new Reader(asPlainBytes(bytes), limits, slab);
  try {
    const root = r.deref(0);
    return r.uniform(root, r.table(root));
  } catch (e) {
    if (e === FAULT) return null;
    throw e;
  }
}

function asPlainBytes(bytes: Uint8Array): Uint8Array {
  // A Buffer's slice() is a view; normalise so tensor copies are plain, independent Uint8Arrays.
  return bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Decodes one frame. `bytes` is only read during the call: every tensor's data is copied out
 * exactly once, into `slab` memory (8-byte aligned, so `viewAs` never copies; one reference on
 * the slab per tensor, which the owner may release once nothing reads the bytes), so the
 * caller may reuse or detach `bytes` afterwards (uWS neuters message buffers when the callback
 * returns).
 *
 * Throws `SkiffError('BAD_FRAME')` when the frame cannot be decoded at all; per-item problems
 * are reported in that item's `error` (its `inputs`/`outputs` are then empty).
 */
export function decodeFrame(bytes: Uint8Array, limits: WireLimits = DEFAULT_WIRE_LIMITS, slab: SlabAllocator = plainSlab): DecodedFrame {
  const len = bytes.byteLength;
  if (len < 8) throw new SkiffError('BAD_FRAME', `frame of ${len} bytes is too short`);
  if (len > MAX_FRAME_BYTES) throw new SkiffError('BAD_FRAME', 'frame exceeds 2 GiB');
  if (bytes[4] !== IDENT[0] || bytes[5] !== IDENT[1] || bytes[6] !== IDENT[2] || bytes[7] !== IDENT[3]) {
    throw new SkiffError('BAD_FRAME', `frame does not carry the "${FILE_IDENTIFIER}" identifier`);
  }
  // The frame's tensors (at most its length in bytes, aligned) land back to back in one slab.
  slab.reserve(len);
  const r = new Reader(asPlainBytes(bytes), limits, slab);
  try {
    const root = r.deref(0);
    const vt = r.table(root);
    const out: DecodedFrame = { requests: [], feedback: [], cancel: [], responses: [] };

    let start = r.frameVector(root, vt, FRAME_REQUESTS, 4, 'requests');
    for (let i = 0, n = r.n; i < n; i++) out.requests.push(r.request(start + 4 * i));

    start = r.frameVector(root, vt, FRAME_FEEDBACK, 4, 'feedback records');
    for (let i = 0, n = r.n; i < n; i++) out.feedback.push(r.feedback(start + 4 * i));

    start = r.frameVector(root, vt, FRAME_CANCEL, 8, 'cancels');
    for (let i = 0, n = r.n; i < n; i++) out.cancel.push(r.dv.getBigUint64(start + 8 * i, true));

    start = r.frameVector(root, vt, FRAME_RESPONSES, 4, 'responses');
    for (let i = 0, n = r.n; i < n; i++) out.responses.push(r.response(start + 4 * i));

    const ef = r.field(root, vt, FRAME_ERROR, 4);
    if (ef !== 0) out.error = r.errorInfo(ef);
    return out;
  } catch (e) {
    if (e === FAULT) throw new SkiffError('BAD_FRAME', r.faultMessage);
    throw e;
  }
}

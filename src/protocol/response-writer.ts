/**
 * A direct writer for frames of plain answers: the server's hottest encode. A frame that holds
 * only responses, each with an id, a model, a version and output tensors (no error, no default
 * flag or explanation, no models used or missing), is written straight into a reused buffer
 * with DataView stores, in the layout the FlatBuffers format fixes (schemas/skiff.fbs), instead
 * of going through the generic Builder's per-field calls. Every other frame goes through the
 * Builder (wire-encode.ts); both are read by any FlatBuffers reader alike.
 *
 * Layout, written back to front as FlatBuffers builders do (an offset always points to a
 * higher address): strings and shape vectors are written once per frame and shared; one
 * vtable serves every Response and one every Tensor; every field of those tables is written,
 * zero or not. Alignment is as the format asks: tables on 4 bytes, the u64/i64 fields of a
 * Response and shape elements on 8, and tensor data on 8 so that receivers can view FP32/INT64
 * data in place. Padding is zero, so equal inputs give equal bytes.
 */
import type { Tensor } from '../tensor/tensor.js';
import { DATATYPES } from '../tensor/datatype.js';
import type { WireResponse } from './wire-types.js';

const WIRE_CODE: ReadonlyMap<string, number> = new Map(DATATYPES.map((d, i) => [d, i] as [string, number]).filter(([d]) => d !== 'INVALID'));
const TWO_32 = 4294967296;
const MAX_U64 = (1n << 64n) - 1n;
const UTF8 = new TextEncoder();

// Response table: soffset | model | outputs | id (u64) | version (i64); 28 bytes, starting 4 mod 8.
const RESPONSE_SIZE = 28;
// Tensor table: soffset | name | shape | data | datatype (u8); 17 bytes, 4-aligned.
const TENSOR_SIZE = 17;
// vtables: [vtable bytes, table bytes, field offsets in schema order].
const RESPONSE_VTABLE = [4 + 2 * 4, RESPONSE_SIZE, 12, 4, 20, 8] as const; // id, model, version, outputs
const TENSOR_VTABLE = [4 + 2 * 4, TENSOR_SIZE, 4, 16, 8, 12] as const; // name, datatype, shape, data
const FRAME_VTABLE = [4 + 2 * 2, 8, 0, 4] as const; // requests (absent), responses

/**
 * The rows of one stacked answer (one model query that answered many requests), each written as
 * its own response without an object per row: row k's id, and row k of every stacked output.
 */
export interface AnswerRows {
  readonly model: string;
  readonly version: number;
  /** The answer's outputs; a stacked one holds every row, one after the other. */
  readonly outputs: readonly Tensor[];
  /** Per output: bytes of one row, or -1 when it is not stacked (every row gets all of it). */
  readonly rowBytes: readonly number[];
  /** Per output: the shape each row's tensor has. */
  readonly shapes: readonly (readonly number[])[];
  /** Request ids, by row. */
  readonly ids: readonly bigint[];
}

/** Rows `rows[from..to)` of an answer (`rows` null: rows from..to themselves), in one frame. */
export interface RowSlice {
  readonly src: AnswerRows;
  readonly rows: readonly number[] | null;
  readonly from: number;
  readonly to: number;
}

/** What a frame of answers is made of: single responses and slices of stacked answers. */
export type AnswerEntry = WireResponse | RowSlice;

export function isRowSlice(e: AnswerEntry): e is RowSlice {
  return (e as RowSlice).src !== undefined;
}

/** Whether a slice's outputs all have wire datatypes (model answers always do). */
function plainSlice(e: RowSlice): boolean {
  for (const t of e.src.outputs) if (!WIRE_CODE.has(t.datatype)) return false;
  return true;
}

/** Whether every entry can go through the direct writer. */
export function allPlain(entries: readonly AnswerEntry[]): boolean {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    if (isRowSlice(e) ? !plainSlice(e) : !isPlainResponse(e)) return false;
  }
  return true;
}

/** Whether `r` is a plain answer the direct writer can take. */
function isPlainResponse(r: WireResponse): boolean {
  if (r.error !== undefined || r.isDefault || r.defaultExplanation || (r.modelsUsed !== undefined && r.modelsUsed.length > 0)
    || (r.modelsMissing !== undefined && r.modelsMissing.length > 0)) return false;
  for (const t of r.outputs) if (!WIRE_CODE.has(t.datatype)) return false;
  return true;
}

function checkInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`${what} must be a safe integer, got ${v}`);
  return v;
}

/** Whether every character of `s` is ASCII (its UTF-8 bytes are its char codes). */
function ascii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}

export class ResponseWriter {
  private buf: ArrayBuffer;
  private u8: Uint8Array;
  private dv: DataView;
  /** Start of what has been written (everything from here to the end of the buffer). */
  private pos = 0;
  private readonly strings = new Map<string, number>();
  private lastShape: readonly number[] | null = null;
  private lastShapeAt = 0;
  /** Positions of the tables being listed (grow-only: only the first entries of a call count). */
  private readonly tensorScratch: number[] = [];
  private readonly responseScratch: number[] = [];
  private readonly nameScratch: number[] = [];
  private readonly shapeScratch: number[] = [];
  private readonly codeScratch: number[] = [];

  constructor(initialSize = 64 * 1024) {
    this.buf = new ArrayBuffer(Math.max(64, initialSize + 7) & ~7);
    this.u8 = new Uint8Array(this.buf);
    this.dv = new DataView(this.buf);
  }

  /**
   * The frame holding `entries`' answers in order (every entry plain: see allPlain). The bytes
   * are a view into the writer's buffer, valid until its next call.
   */
  write(entries: readonly AnswerEntry[]): Uint8Array {
    this.reserve(bound(entries));
    this.pos = this.buf.byteLength;
    this.strings.clear();
    this.lastShape = null;
    const respVt = this.vtable(RESPONSE_VTABLE);
    const tensorVt = this.vtable(TENSOR_VTABLE);
    const tables = this.responseScratch;
    let n = 0;
    for (const e of entries) n += isRowSlice(e) ? e.to - e.from : 1;
    // Back to front: the last response's table first, each table's index in the list kept.
    let k = n;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i]!;
      if (isRowSlice(e)) k = this.slice(e, k, respVt, tensorVt);
      else tables[--k] = this.response(e, respVt, tensorVt);
    }
    const list = this.offsets(tables, n);
    // The Frame: its vtable, then its table (soffset, responses).
    const frameVt = this.vtable(FRAME_VTABLE);
    const frame = this.alloc(8, 4);
    this.dv.setInt32(frame, frame - frameVt, true);
    this.dv.setUint32(frame + 4, list - (frame + 4), true);
    // Root offset and file identifier, the frame starting on an 8-byte boundary.
    const head = this.alloc(8, 8);
    this.dv.setUint32(head, frame - head, true);
    this.u8[head + 4] = 0x53; // S
    this.u8[head + 5] = 0x4b; // K
    this.u8[head + 6] = 0x46; // F
    this.u8[head + 7] = 0x31; // 1
    return this.u8.subarray(head);
  }

  private reserve(bytes: number): void {
    if (bytes <= this.buf.byteLength) return;
    let size = this.buf.byteLength;
    while (size < bytes) size *= 2;
    this.buf = new ArrayBuffer(size);
    this.u8 = new Uint8Array(this.buf);
    this.dv = new DataView(this.buf);
  }

  /**
   * Room for `size` bytes below what is written, starting on a multiple of `align` plus `skew`;
   * the padding up to what was written before is zeroed. Returns the start.
   */
  private alloc(size: number, align: number, skew = 0): number {
    const end = this.pos;
    const start = ((end - size - skew) & -align) + skew;
    const u8 = this.u8;
    for (let i = start + size; i < end; i++) u8[i] = 0;
    this.pos = start;
    return start;
  }

  private vtable(v: readonly number[]): number {
    const at = this.alloc(2 * v.length, 4);
    for (let i = 0; i < v.length; i++) this.dv.setUint16(at + 2 * i, v[i]!, true);
    return at;
  }

  private string(s: string): number {
    const known = this.strings.get(s);
    if (known !== undefined) return known;
    let at: number;
    if (ascii(s)) {
      const n = s.length;
      at = this.alloc(4 + n + 1, 4);
      const u8 = this.u8;
      for (let i = 0; i < n; i++) u8[at + 4 + i] = s.charCodeAt(i);
      u8[at + 4 + n] = 0;
      this.dv.setUint32(at, n, true);
    } else {
      const bytes = UTF8.encode(s);
      at = this.alloc(4 + bytes.length + 1, 4);
      this.u8.set(bytes, at + 4);
      this.u8[at + 4 + bytes.length] = 0;
      this.dv.setUint32(at, bytes.length, true);
    }
    this.strings.set(s, at);
    return at;
  }

  private shape(shape: readonly number[]): number {
    const last = this.lastShape;
    if (last !== null && (last === shape || sameDims(last, shape))) return this.lastShapeAt;
    const n = shape.length;
    // u32 count, then the i64 dims on 8-byte boundaries: the count sits at 4 mod 8.
    const at = this.alloc(4 + 8 * n, 8, 4);
    this.dv.setUint32(at, n, true);
    for (let i = 0; i < n; i++) {
      const d = checkInt(shape[i]!, 'shape dim');
      const hi = Math.floor(d / TWO_32);
      this.dv.setUint32(at + 4 + 8 * i, d - hi * TWO_32, true);
      this.dv.setInt32(at + 8 + 8 * i, hi, true);
    }
    this.lastShape = shape;
    this.lastShapeAt = at;
    return at;
  }

  private tensor(t: Tensor, vt: number): number {
    const vec = this.dataVector(t.data, 0, t.data.byteLength);
    const shape = this.shape(t.shape);
    return this.tensorTable(this.string(t.name), WIRE_CODE.get(t.datatype)!, shape, vec, vt);
  }

  /** A slice's rows, last first, into `responseScratch` below index `k`; returns the new `k`. */
  private slice(e: RowSlice, k: number, vt: number, tensorVt: number): number {
    const { src, rows } = e;
    const outs = src.outputs;
    const m = outs.length;
    const tables = this.responseScratch;
    const tensors = this.tensorScratch;
    // What every row shares is written once, above all of them: the model name, each output's
    // name and row shape.
    const model = this.string(src.model);
    const names = this.nameScratch;
    const shapes = this.shapeScratch;
    const codes = this.codeScratch;
    for (let j = 0; j < m; j++) {
      names[j] = this.string(outs[j]!.name);
      shapes[j] = this.shape(src.shapes[j]!);
      codes[j] = WIRE_CODE.get(outs[j]!.datatype)!;
    }
    for (let i = e.to - 1; i >= e.from; i--) {
      const row = rows === null ? i : rows[i]!;
      for (let j = m - 1; j >= 0; j--) tensors[j] = this.rowTensor(outs[j]!, src.rowBytes[j]!, row, names[j]!, codes[j]!, shapes[j]!, tensorVt);
      tables[--k] = this.responseTable(vt, model, this.offsets(tensors, m), src.ids[row]!, src.version);
    }
    return k;
  }

  /** Row `row` of a stacked output (`rowBytes` < 0: the whole output) as one tensor table. */
  private rowTensor(t: Tensor, rowBytes: number, row: number, nameAt: number, code: number, shapeAt: number, vt: number): number {
    const vec = rowBytes < 0 ? this.dataVector(t.data, 0, t.data.byteLength) : this.dataVector(t.data, row * rowBytes, rowBytes);
    return this.tensorTable(nameAt, code, shapeAt, vec, vt);
  }

  /** Bytes [from, from + n) of `src` as a data vector: the bytes on an 8-byte boundary, the u32 count before them. */
  private dataVector(src: Uint8Array, from: number, n: number): number {
    const vec = this.alloc(4 + n, 8, 4);
    this.dv.setUint32(vec, n, true);
    const u8 = this.u8;
    if (n <= 64) for (let i = 0; i < n; i++) u8[vec + 4 + i] = src[from + i]!;
    else u8.set(src.subarray(from, from + n), vec + 4);
    return vec;
  }

  /** A Response table: soffset, model, outputs, id (u64), version (i64). */
  private responseTable(vt: number, model: number, outputs: number, id: bigint, version: number): number {
    if (id < 0n || id > MAX_U64) throw new RangeError(`id must fit in 64 unsigned bits, got ${id}`);
    checkInt(version, 'version');
    const at = this.alloc(RESPONSE_SIZE, 8, 4);
    const dv = this.dv;
    dv.setInt32(at, at - vt, true);
    dv.setUint32(at + 4, model - (at + 4), true);
    dv.setUint32(at + 8, outputs - (at + 8), true);
    dv.setBigUint64(at + 12, id, true);
    const hi = Math.floor(version / TWO_32);
    dv.setUint32(at + 20, version - hi * TWO_32, true);
    dv.setInt32(at + 24, hi, true);
    return at;
  }

  private tensorTable(nameAt: number, code: number, shape: number, vec: number, vt: number): number {
    const at = this.alloc(TENSOR_SIZE, 4);
    const dv = this.dv;
    dv.setInt32(at, at - vt, true);
    dv.setUint32(at + 4, nameAt - (at + 4), true);
    dv.setUint32(at + 8, shape - (at + 8), true);
    dv.setUint32(at + 12, vec - (at + 12), true);
    this.u8[at + 16] = code;
    return at;
  }

  private response(r: WireResponse, vt: number, tensorVt: number): number {
    const outs = r.outputs;
    const tables = this.tensorScratch;
    for (let j = outs.length - 1; j >= 0; j--) tables[j] = this.tensor(outs[j]!, tensorVt);
    const outputs = this.offsets(tables, outs.length);
    return this.responseTable(vt, this.string(r.model), outputs, r.id, r.version);
  }

  /** A vector of offsets to the first `n` of `targets` (each written already, so above it). */
  private offsets(targets: readonly number[], n: number): number {
    const at = this.alloc(4 + 4 * n, 4);
    const dv = this.dv;
    dv.setUint32(at, n, true);
    for (let i = 0; i < n; i++) dv.setUint32(at + 4 + 4 * i, targets[i]! - (at + 4 + 4 * i), true);
    return at;
  }
}

function sameDims(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** More bytes than one response can take (strings at 3 bytes per character). */
function responseBound(model: string, outputs: readonly Tensor[], rowBytes: readonly number[] | null, shapes: readonly (readonly number[])[] | null): number {
  let n = RESPONSE_SIZE + 16 + 3 * model.length + 8 + 4 * outputs.length + 8;
  for (let j = 0; j < outputs.length; j++) {
    const t = outputs[j]!;
    const rb = rowBytes === null || rowBytes[j]! < 0 ? t.data.byteLength : rowBytes[j]!;
    const dims = shapes === null ? t.shape.length : shapes[j]!.length;
    n += TENSOR_SIZE + 8 + 3 * t.name.length + 8 + 8 * dims + 12 + rb + 12;
  }
  return n;
}

/** More bytes than the frame of `entries` can take. */
function bound(entries: readonly AnswerEntry[]): number {
  let n = 128;
  for (const e of entries) {
    if (isRowSlice(e)) n += (e.to - e.from) * responseBound(e.src.model, e.src.outputs, e.src.rowBytes, e.src.shapes);
    else n += responseBound(e.model, e.outputs, null, null);
  }
  return n;
}

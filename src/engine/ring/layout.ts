/**
 * Record layout shared by the main thread and the model workers: a "tensor list" record, used
 * for both a batch's inputs (main -> worker request ring) and its outputs (worker -> main
 * response ring). Imported by workers/: keep it dependency-free.
 *
 *   u32 seq | u32 status (0 ok, 1 error, 2 external) | u32 count | u32 aux (outputs: the model's run time in µs)
 *   count x { u32 datatype (wire number) | u32 ndims | u32 byteLength | u32 flags
 *             | u32 dims[ndims] | pad to 8 | data[byteLength] | pad to 8 }
 *   flags bit 0 (TENSOR_REFS): instead of its bytes, the tensor's data is a list of pieces of
 *             memory shared with the reader beforehand (the main thread's decode slabs), in
 *             order: u32 pieces | u32 0 | pieces x { u32 memory id | u32 offset | u32 length | u32 0 };
 *             byteLength is still the tensor's size. The memory must stay unchanged until the
 *             batch is answered (the reader copies the pieces out before it runs the batch).
 *   status 1: instead of tensors, u32 messageLength | utf-8 message
 *
 * All offsets are 8-byte aligned relative to the record start, and records start 8-byte
 * aligned in the ring, so typed views over tensor data need no copy when aligned to <= 8.
 */

export const STATUS_OK = 0;
export const STATUS_ERROR = 1;
/**
 * A marker: the record itself (too large for the ring) travels as a transferred ArrayBuffer
 * on the slot's side MessagePort, tagged with the same seq. Header only.
 */
export const STATUS_EXTERNAL = 2;

const LIST_HEADER = 16;
const TENSOR_HEADER = 16;
export const TENSOR_REFS = 1;
const REF_BYTES = 16;
const align8 = (n: number): number => (n + 7) & ~7;

export interface RecordTensor {
  datatype: number;
  dims: number[];
  /** A view into the record: valid only until the record is released (empty when `refs` is set). */
  data: Uint8Array;
  /** TENSOR_REFS: the data's pieces in shared memory, as (memory id, offset, length) triples. */
  refs?: number[];
  /** The tensor's size in bytes. */
  byteLength: number;
}

export interface TensorList {
  seq: number;
  status: number;
  aux: number;
  tensors: RecordTensor[];
  error?: string;
}

export function tensorBytesInRecord(ndims: number, byteLength: number): number {
  return TENSOR_HEADER + align8(ndims * 4) + align8(byteLength);
}

/** Record bytes of a tensor carried as `pieces` references to shared memory. */
export function tensorRefsBytesInRecord(ndims: number, pieces: number): number {
  return TENSOR_HEADER + align8(ndims * 4) + 8 + pieces * REF_BYTES;
}

export function tensorListBytes(tensors: readonly { ndims: number; byteLength: number; pieces?: number }[]): number {
  let n = LIST_HEADER;
  for (const t of tensors) n += t.pieces !== undefined ? tensorRefsBytesInRecord(t.ndims, t.pieces) : tensorBytesInRecord(t.ndims, t.byteLength);
  return n;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function errorRecordBytes(message: string): number {
  return LIST_HEADER + 4 + encoder.encode(message).byteLength;
}

/** Sequential writer over a reserved record. Write the header, then each tensor in order. */
export class TensorListWriter {
  private view!: DataView;
  private buf!: Uint8Array;
  private off = 0;

  begin(target: Uint8Array, seq: number, count: number, aux = 0): this {
    this.buf = target;
    this.view = new DataView(target.buffer, target.byteOffset, target.byteLength);
    this.view.setUint32(0, seq, true);
    this.view.setUint32(4, STATUS_OK, true);
    this.view.setUint32(8, count, true);
    this.view.setUint32(12, aux >>> 0, true);
    this.off = LIST_HEADER;
    return this;
  }

  /** Write a tensor header; returns the view its `byteLength` data bytes must be written to. */
  tensor(datatype: number, dims: readonly number[], byteLength: number): Uint8Array {
    const v = this.view;
    let o = this.off;
    v.setUint32(o, datatype, true);
    v.setUint32(o + 4, dims.length, true);
    v.setUint32(o + 8, byteLength, true);
    v.setUint32(o + 12, 0, true);
    o += TENSOR_HEADER;
    for (let i = 0; i < dims.length; i++) v.setUint32(o + i * 4, dims[i]!, true);
    o += align8(dims.length * 4);
    const data = this.buf.subarray(o, o + byteLength);
    this.off = o + align8(byteLength);
    return data;
  }

  /**
   * Write a TENSOR_REFS tensor header for `pieces` pieces of shared memory; then call piece()
   * once per piece, in order.
   */
  tensorRefs(datatype: number, dims: readonly number[], byteLength: number, pieces: number): void {
    const v = this.view;
    let o = this.off;
    v.setUint32(o, datatype, true);
    v.setUint32(o + 4, dims.length, true);
    v.setUint32(o + 8, byteLength, true);
    v.setUint32(o + 12, TENSOR_REFS, true);
    o += TENSOR_HEADER;
    for (let i = 0; i < dims.length; i++) v.setUint32(o + i * 4, dims[i]!, true);
    o += align8(dims.length * 4);
    v.setUint32(o, pieces, true);
    v.setUint32(o + 4, 0, true);
    this.off = o + 8;
  }

  piece(memory: number, offset: number, length: number): void {
    const v = this.view;
    const o = this.off;
    v.setUint32(o, memory, true);
    v.setUint32(o + 4, offset, true);
    v.setUint32(o + 8, length, true);
    v.setUint32(o + 12, 0, true);
    this.off = o + REF_BYTES;
  }

  /** The number of bytes written so far. */
  get length(): number {
    return this.off;
  }
}

export function writeErrorRecord(target: Uint8Array, seq: number, message: string, aux = 0): void {
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  const msg = encoder.encode(message);
  view.setUint32(0, seq, true);
  view.setUint32(4, STATUS_ERROR, true);
  view.setUint32(8, 0, true);
  view.setUint32(12, aux >>> 0, true);
  view.setUint32(LIST_HEADER, msg.byteLength, true);
  target.set(msg, LIST_HEADER + 4);
}

/** Write a header-only record (STATUS_EXTERNAL) of LIST_HEADER bytes. */
export function writeMarkerRecord(target: Uint8Array, seq: number, status: number): void {
  const view = new DataView(target.buffer, target.byteOffset, target.byteLength);
  view.setUint32(0, seq, true);
  view.setUint32(4, status, true);
  view.setUint32(8, 0, true);
  view.setUint32(12, 0, true);
}

export const MARKER_RECORD_BYTES = LIST_HEADER;

/** The status field of a record, without parsing the rest. */
export function recordStatus(rec: Uint8Array): number {
  return new DataView(rec.buffer, rec.byteOffset + 4, 4).getUint32(0, true);
}

/** The seq field of a record, without parsing the rest. */
export function recordSeq(rec: Uint8Array): number {
  return new DataView(rec.buffer, rec.byteOffset, 4).getUint32(0, true);
}

/** Parse a record. Tensor data are views into `rec`: copy what must outlive the record. */
export function readTensorList(rec: Uint8Array): TensorList {
  const v = new DataView(rec.buffer, rec.byteOffset, rec.byteLength);
  const seq = v.getUint32(0, true);
  const status = v.getUint32(4, true);
  const count = v.getUint32(8, true);
  const aux = v.getUint32(12, true);
  if (status === STATUS_ERROR) {
    const len = v.getUint32(LIST_HEADER, true);
    return { seq, status, aux, tensors: [], error: decoder.decode(rec.subarray(LIST_HEADER + 4, LIST_HEADER + 4 + len)) };
  }
  const tensors: RecordTensor[] = new Array(count);
  let o = LIST_HEADER;
  for (let t = 0; t < count; t++) {
    const datatype = v.getUint32(o, true);
    const ndims = v.getUint32(o + 4, true);
    const byteLength = v.getUint32(o + 8, true);
    const flags = v.getUint32(o + 12, true);
    o += TENSOR_HEADER;
    const dims: number[] = new Array(ndims);
    for (let i = 0; i < ndims; i++) dims[i] = v.getUint32(o + i * 4, true);
    o += align8(ndims * 4);
    if ((flags & TENSOR_REFS) !== 0) {
      const pieces = v.getUint32(o, true);
      o += 8;
      const refs: number[] = new Array(pieces * 3);
      for (let i = 0; i < pieces; i++, o += REF_BYTES) {
        refs[3 * i] = v.getUint32(o, true);
        refs[3 * i + 1] = v.getUint32(o + 4, true);
        refs[3 * i + 2] = v.getUint32(o + 8, true);
      }
      tensors[t] = { datatype, dims, data: rec.subarray(o, o), refs, byteLength };
      continue;
    }
    tensors[t] = { datatype, dims, data: rec.subarray(o, o + byteLength), byteLength };
    o += align8(byteLength);
  }
  return { seq, status, aux, tensors };
}

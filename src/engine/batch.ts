import { SkiffError, type ErrorInfo } from '../errors.js';
import type { Tensor, TensorSpec } from '../tensor/tensor.js';
import { outputSlab } from '../tensor/slab.js';
import type { DeadlineQueue, Queued } from './deadline-queue.js';
import type { OutputTensor } from './runner.js';
import type { ShapeQueue } from './shape-queues.js';

/**
 * Row stacking: which queued queries form a batch, and how a batch's outputs are cut back into
 * each query's answer. Pure mechanism over the queue and the tensors (no time, no I/O).
 */
export type Done = (err: ErrorInfo | null, outputs?: Tensor[]) => void;

export interface Query extends Queued {
  inputs: Tensor[];
  rows: number;
  /** Client requests this query carries (stacked rows count once each). */
  requests: number;
  /** Shapes of the non-batch dims: only queries with equal signatures share a batch. */
  sig: string;
  enqueuedAt: number;
  done: Done;
  finished: boolean;
}

export interface Batch {
  seq: number;
  queries: Query[];
  rows: number;
  dispatchedAt: number;
  /** The next queued query did not fit under the cap (AIMD: the cap limited this batch). */
  capLimited: boolean;
  /** The signature's queue it was taken from (its cap learns from the batch). */
  shape: ShapeQueue;
}

/**
 * Take one batch from a signature's queue (every query in it stacks with every other): the most
 * urgent query, then more in deadline order while the rows stay under `cap` and the input bytes
 * under `maxBytes`. The queue must not be empty.
 */
export function takeBatch(queue: DeadlineQueue<Query>, cap: number, maxBytes: number): { queries: Query[]; rows: number; capLimited: boolean } {
  const first = queue.pop()!;
  const queries = [first];
  let rows = first.rows;
  let bytes = queryBytes(first);
  let capLimited = false;
  while (rows < cap && queue.size > 0) {
    const q = queue.peek()!;
    if (rows + q.rows > cap) {
      capLimited = true;
      break;
    }
    const b = queryBytes(q);
    if (bytes + b > maxBytes) break;
    queue.pop();
    bytes += b;
    queries.push(q);
    rows += q.rows;
  }
  return { queries, rows, capLimited };
}

/** A query's signature: the non-batch dims of its inputs ('' when rows of any shape may share a batch). */
export function sigOf(inputs: readonly Tensor[]): string {
  let s = '';
  for (const t of inputs) s += t.shape.slice(1).join('x') + ';';
  return s;
}

function queryBytes(q: Query): number {
  let b = 0;
  for (const t of q.inputs) b += t.data.byteLength + 64;
  return b;
}

/** The stacked dims of each input for a batch (batchable: [rows, ...rest of the first query]). */
export function batchDims(queries: readonly Query[], rows: number, batchable: boolean): number[][] {
  const first = queries[0]!;
  return first.inputs.map((t) => (batchable ? [rows, ...t.shape.slice(1)] : t.shape));
}

/**
 * Cut a batch's outputs into each query's rows, copying out of the runner's memory (a ring
 * record, a message buffer) into slab memory the answer owns. Throws MODEL_ERROR when the
 * outputs do not match the model's description or the batch.
 */
export function splitOutputs(batch: Batch, outputs: readonly OutputTensor[], specs: readonly TensorSpec[], batchable: boolean): Tensor[][] {
  if (outputs.length !== specs.length) throw new SkiffError('MODEL_ERROR', `model returned ${outputs.length} outputs, expected ${specs.length}`);
  const perQuery: Tensor[][] = batch.queries.map(() => new Array(specs.length));
  for (let j = 0; j < specs.length; j++) {
    const t = outputs[j]!;
    const name = specs[j]!.name;
    const datatype = t.datatype;
    if (batch.queries.length === 1 && !batchable) {
      perQuery[0]![j] = { name, datatype, shape: [...t.dims], data: t.data.slice() };
      continue;
    }
    if (t.dims[0] !== batch.rows) {
      throw new SkiffError('MODEL_ERROR', `output ${name} has leading dim ${t.dims[0]}, expected the batch size ${batch.rows}`);
    }
    const rest = t.dims.slice(1);
    if (datatype === 'BYTES') {
      let perRow = 1;
      for (const d of rest) perRow *= d;
      let off = 0;
      batch.queries.forEach((q, k) => {
        const end = skipBytesElements(t.data, off, q.rows * perRow, name);
        perQuery[k]![j] = { name, datatype, shape: [q.rows, ...rest], data: outputSlab.copy(t.data.subarray(off, end)) };
        off = end;
      });
      continue;
    }
    const rowBytes = batch.rows > 0 ? t.data.byteLength / batch.rows : 0;
    let off = 0;
    batch.queries.forEach((q, k) => {
      const n = q.rows * rowBytes;
      perQuery[k]![j] = { name, datatype, shape: [q.rows, ...rest], data: outputSlab.copy(t.data.subarray(off, off + n)) };
      off += n;
    });
  }
  return perQuery;
}

/** The offset just past `count` BYTES elements (u32 length + bytes each) starting at `off`. */
function skipBytesElements(data: Uint8Array, off: number, count: number, name: string): number {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < count; i++) {
    if (off + 4 > data.byteLength) throw new SkiffError('MODEL_ERROR', `output ${name} holds fewer elements than its shape`);
    off += 4 + view.getUint32(off, true);
    if (off > data.byteLength) throw new SkiffError('MODEL_ERROR', `output ${name} has an element longer than its data`);
  }
  return off;
}

/** Rows [r0, r1) of a tensor whose leading dim is `rows` (a view, no copy). */
export function sliceRows(t: Tensor, rows: number, r0: number, r1: number): Tensor {
  const shape = [r1 - r0, ...t.shape.slice(1)];
  if (t.datatype === 'BYTES') {
    let perRow = 1;
    for (let d = 1; d < t.shape.length; d++) perRow *= t.shape[d]!;
    const start = skipBytesElements(t.data, 0, r0 * perRow, t.name);
    const end = skipBytesElements(t.data, start, (r1 - r0) * perRow, t.name);
    return { name: t.name, datatype: t.datatype, shape, data: t.data.subarray(start, end) };
  }
  const rowBytes = t.data.byteLength / rows;
  return { name: t.name, datatype: t.datatype, shape, data: t.data.subarray(r0 * rowBytes, r1 * rowBytes) };
}

/** Concatenate per-part outputs along the leading dim. */
export function concatRows(parts: Tensor[][]): Tensor[] {
  return parts[0]!.map((first, j) => {
    let bytes = 0;
    let rows = 0;
    for (const p of parts) {
      bytes += p[j]!.data.byteLength;
      rows += p[j]!.shape[0]!;
    }
    const data = new Uint8Array(bytes);
    let off = 0;
    for (const p of parts) {
      data.set(p[j]!.data, off);
      off += p[j]!.data.byteLength;
    }
    return { name: first.name, datatype: first.datatype, shape: [rows, ...first.shape.slice(1)], data };
  });
}

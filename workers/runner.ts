/**
 * Model worker: runs inside a piscina worker thread, one model version per pool.
 *
 * Each worker loads the model once (ONNX Runtime session, or a JS-function module) when the
 * thread starts. The main thread writes a batch's input tensors into a slot's request ring and
 * sends one tiny task {op:'run', slot, seq}; this worker reads the record, runs the model,
 * writes the output tensors into the same slot's response ring and returns the run time (µs).
 * A batch too large for a ring travels as a transferred ArrayBuffer instead (rare fallback).
 *
 * Threading contract: a slot has at most one batch in flight (enforced by the executor), so
 * for that batch this thread is the only consumer of slot.req and the only producer of
 * slot.res. No per-query data crosses the thread boundary by structured clone.
 */
import { workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { Piscina } from 'piscina';
import type * as Ort from 'onnxruntime-node';
import { Ring, maxRecordBytes } from '../src/engine/ring/ring.js';
import {
  readTensorList, recordSeq, TensorListWriter, tensorListBytes, writeErrorRecord, errorRecordBytes,
  type RecordTensor,
} from '../src/engine/ring/layout.js';
import {
  dataTypeFromOrt, dataTypeFromWire, dataTypeToWire, ORT_TYPE, viewAs, type DataType,
} from '../src/tensor/datatype.js';
import type { TensorSpec } from '../src/tensor/tensor.js';

export interface WorkerInit {
  kind: 'onnx' | 'js';
  modelPath: string;
  threads: number;
  slots: { req: SharedArrayBuffer; res: SharedArrayBuffer }[];
}

export type WorkerTask =
  | { op: 'describe' }
  | { op: 'run'; slot: number; seq: number; inline?: ArrayBuffer };

export interface ModelDescription {
  inputs: TensorSpec[];
  outputs: TensorSpec[];
}

/**
 * Result of a run: 0 when the output record is in the slot's response ring, or the record itself
 * (a transferred ArrayBuffer) when it did not fit. The record's aux field holds the run time (µs).
 */
export type RunResult = number | ArrayBuffer;

interface JsTensor {
  datatype: string;
  shape: number[];
  data: ArrayLike<number | bigint>;
}

interface Runner {
  description: ModelDescription;
  /** Run one batch; tensors come in description.inputs order; returns outputs in description.outputs order. */
  run(inputs: { datatype: DataType; dims: number[]; data: Uint8Array }[]): Promise<{ datatype: DataType; dims: number[]; bytes: Uint8Array }[]>;
}

const init = workerData as WorkerInit;

function dimsOf(shape: readonly (number | string)[]): number[] {
  return shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1));
}

function toBytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function onnxRunner(path: string, threads: number): Promise<Runner> {
  // Loaded only for ONNX models: JS-model workers (and their replacements) start without it.
  const ort = await import('onnxruntime-node');
  const options: Ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  };
  if (threads > 1) (options as Record<string, unknown>).extra = { session: { intra_op: { allow_spinning: '0' } } };
  const session = await ort.InferenceSession.create(path, options);
  const spec = (m: Ort.InferenceSession.ValueMetadata): TensorSpec => {
    if (!m.isTensor) throw new Error(`model value '${m.name}' is not a tensor`);
    const datatype = dataTypeFromOrt(String(m.type));
    if (!datatype) throw new Error(`model value '${m.name}' has unsupported type ${String(m.type)}`);
    return { name: m.name, datatype, shape: dimsOf(m.shape) };
  };
  const description: ModelDescription = {
    inputs: session.inputMetadata.map(spec),
    outputs: session.outputMetadata.map(spec),
  };
  const inNames = description.inputs.map((i) => i.name);
  const outNames = description.outputs.map((o) => o.name);
  // ORT rejects SharedArrayBuffer-backed tensors, so each batch is copied out of the ring into
  // one reusable plain buffer per input: a fresh allocation per batch (often above malloc's mmap
  // threshold, page-faulted on every batch) cost more than the copy. Reuse is safe: this worker
  // runs one batch at a time and ORT reads its inputs only during run().
  const scratch: ArrayBuffer[] = inNames.map(() => new ArrayBuffer(0));
  const copyOut = (i: number, src: Uint8Array): Uint8Array => {
    if (scratch[i]!.byteLength < src.byteLength) scratch[i] = new ArrayBuffer(Math.max(src.byteLength, scratch[i]!.byteLength * 2));
    const dst = new Uint8Array(scratch[i]!, 0, src.byteLength);
    dst.set(src);
    return dst;
  };
  return {
    description,
    async run(inputs) {
      const feeds: Record<string, Ort.Tensor> = {};
      for (let i = 0; i < inputs.length; i++) {
        const t = inputs[i]!;
        if (t.datatype === 'BYTES') throw new Error('BYTES inputs are not supported by the ONNX runner');
        const data = viewAs(t.datatype, copyOut(i, t.data));
        feeds[inNames[i]!] = new ort.Tensor(ORT_TYPE[t.datatype] as 'float32', data as Float32Array, t.dims);
      }
      const results = await session.run(feeds);
      return outNames.map((name, i) => {
        const r = results[name]!;
        const datatype = description.outputs[i]!.datatype;
        if (typeof r.data[0] === 'string' || datatype === 'BYTES') throw new Error(`output '${name}' is a string tensor; not supported`);
        return { datatype, dims: [...r.dims], bytes: toBytes(r.data as ArrayBufferView) };
      });
    },
  };
}

async function jsRunner(path: string): Promise<Runner> {
  const mod = (await import(pathToFileURL(path).href)) as {
    metadata?: ModelDescription;
    predict?: (inputs: Record<string, JsTensor>) => Record<string, JsTensor> | Promise<Record<string, JsTensor>>;
  };
  if (!mod.metadata || typeof mod.predict !== 'function') {
    throw new Error('a JS model must export `metadata` and `predict`');
  }
  const description = mod.metadata;
  const predict = mod.predict;
  return {
    description,
    async run(inputs) {
      const record: Record<string, JsTensor> = {};
      inputs.forEach((t, i) => {
        const spec = description.inputs[i]!;
        record[spec.name] = { datatype: t.datatype, shape: t.dims, data: viewAs(t.datatype, t.data.slice()) };
      });
      const out = await predict(record);
      return description.outputs.map((spec) => {
        const o = out[spec.name];
        if (!o || !ArrayBuffer.isView(o.data)) throw new Error(`JS model did not return output '${spec.name}' as a typed array`);
        return { datatype: spec.datatype, dims: [...o.shape], bytes: toBytes(o.data as ArrayBufferView) };
      });
    },
  };
}

const runner: Runner = init.kind === 'js' ? await jsRunner(init.modelPath) : await onnxRunner(init.modelPath, init.threads);
const slots = init.slots.map((s) => ({ req: new Ring(s.req), res: new Ring(s.res) }));
const writer = new TensorListWriter();

function decodeInputs(rec: Uint8Array): { seq: number; inputs: { datatype: DataType; dims: number[]; data: Uint8Array }[] } {
  const list = readTensorList(rec);
  return {
    seq: list.seq,
    inputs: list.tensors.map((t: RecordTensor) => {
      const datatype = dataTypeFromWire(t.datatype);
      if (!datatype) throw new Error(`bad datatype ${t.datatype} in request record`);
      return { datatype, dims: t.dims, data: t.data };
    }),
  };
}

function writeOutputs(target: Uint8Array, seq: number, runUs: number, outs: { datatype: DataType; dims: number[]; bytes: Uint8Array }[]): void {
  writer.begin(target, seq, outs.length, runUs);
  for (const o of outs) writer.tensor(dataTypeToWire(o.datatype), o.dims, o.bytes.byteLength).set(o.bytes);
}

async function run(task: Extract<WorkerTask, { op: 'run' }>): Promise<RunResult> {
  const slot = slots[task.slot];
  if (!slot) throw new Error(`no slot ${task.slot}`);
  let rec: Uint8Array | null;
  if (task.inline) rec = new Uint8Array(task.inline);
  else {
    rec = slot.req.peek();
    // A record left by a batch whose worker died is stale: skip to this task's record.
    while (rec && recordSeq(rec) !== task.seq) {
      slot.req.release();
      rec = slot.req.peek();
    }
    if (!rec) throw new Error(`slot ${task.slot}: request ring empty for batch ${task.seq}`);
  }
  let decoded;
  try {
    decoded = decodeInputs(rec);
  } finally {
    if (!task.inline) slot.req.release();
  }
  const t0 = performance.now();
  let outs;
  try {
    outs = await runner.run(decoded.inputs);
  } catch (err) {
    // Model failure: answer the whole batch with an error record (status 1).
    const message = (err instanceof Error ? err.message : String(err)).slice(0, 4096);
    const target = slot.res.reserve(errorRecordBytes(message));
    if (!target) throw new Error(`model error: ${message}`);
    writeErrorRecord(target, task.seq, message, Math.round((performance.now() - t0) * 1000));
    slot.res.commit();
    return 0;
  }
  const runUs = Math.round((performance.now() - t0) * 1000);
  const size = tensorListBytes(outs.map((o) => ({ ndims: o.dims.length, byteLength: o.bytes.byteLength })));
  const target = size <= maxRecordBytes(slot.res.capacity) ? slot.res.reserve(size) : null;
  if (target) {
    writeOutputs(target, task.seq, runUs, outs);
    slot.res.commit();
    return 0;
  }
  const record = new ArrayBuffer(size);
  writeOutputs(new Uint8Array(record), task.seq, runUs, outs);
  return Piscina.move(record) as unknown as RunResult;
}

export default async function handle(task: WorkerTask): Promise<ModelDescription | RunResult> {
  if (task.op === 'describe') return runner.description;
  return run(task);
}

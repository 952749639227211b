/**
 * Model worker: runs inside a piscina worker thread, one model version per pool.
 *
 * Each worker loads the model once (ONNX Runtime session, or a JS-function module) when the
 * thread starts. The pool then gives each worker one long-running task, {op:'serve'}, with its
 * slot's ring pair: the worker takes batches from the request ring in order, runs the model
 * and writes each batch's output record into the response ring, for as long as the pool
 * lives. Both sides sleep with Atomics.waitAsync and wake each other through the rings, so a
 * batch costs no piscina task and no structured clone, and the main thread can queue the next
 * batch while this one runs. A record too large for a ring travels on the slot's side port.
 *
 * Threading contract: for its slot this thread is the only consumer of `req` and the only
 * producer of `res`; the main thread is the other side of both.
 */
import { workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import type * as Ort from 'onnxruntime-node';
import { Ring, maxRecordBytes } from '../src/engine/ring/ring.js';
import {
  readTensorList, recordSeq, recordStatus, TensorListWriter, tensorListBytes, writeErrorRecord, errorRecordBytes,
  writeMarkerRecord, MARKER_RECORD_BYTES, STATUS_EXTERNAL, type RecordTensor,
} from '../src/engine/ring/layout.js';
import { SideChannel } from '../src/engine/ring/side-channel.js';
import {
  dataTypeFromOrt, dataTypeFromWire, dataTypeToWire, ORT_TYPE, viewAs, type DataType,
} from '../src/tensor/datatype.js';
import type { TensorSpec } from '../src/tensor/tensor.js';
import type { ModelDescription, WorkerInit, WorkerTask } from '../src/engine/ring/protocol.js';

interface JsTensor {
  datatype: string;
  shape: number[];
  data: ArrayLike<number | bigint>;
}

interface Runner {
  description: ModelDescription;
  /**
   * Run one batch; tensors come in description.inputs order; returns outputs in
   * description.outputs order. Input views are read only before run() returns its promise
   * (copied synchronously), so the caller may release their memory right after the call.
   */
  run(inputs: { datatype: DataType; dims: number[]; data: Uint8Array }[]): Promise<{ datatype: DataType; dims: number[]; bytes: Uint8Array }[]>;
  /** Free the model's native resources (no run after this). */
  release(): Promise<void>;
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
    release: () => session.release(),
    async run(inputs) {
      const feeds: Record<string, Ort.Tensor> = {};
      for (let i = 0; i < inputs.length; i++) {
        const t = inputs[i]!;
        if (t.datatype === 'BYTES') throw new Error('BYTES inputs are not supported by the ONNX runner');
        // Ring bytes (shared memory) are copied out; inputs gathered from shared pieces already are.
        const data = viewAs(t.datatype, t.data.buffer instanceof SharedArrayBuffer ? copyOut(i, t.data) : t.data);
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
    release: () => Promise.resolve(),
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
const writer = new TensorListWriter();

type Inputs = { datatype: DataType; dims: number[]; data: Uint8Array }[];
type Outputs = { datatype: DataType; dims: number[]; bytes: Uint8Array }[];

/**
 * Per input, a reusable plain buffer that a TENSOR_REFS input is gathered into from the shared
 * memory it names (the one copy of those bytes on this thread; ORT takes the buffer as it is).
 * Reuse is safe for the reason copyOut's is: one batch at a time, read only during run().
 */
const gathered: ArrayBuffer[] = [];

function gather(i: number, t: RecordTensor, side: SideChannel): Uint8Array {
  if (!gathered[i] || gathered[i]!.byteLength < t.byteLength) gathered[i] = new ArrayBuffer(Math.max(t.byteLength, (gathered[i]?.byteLength ?? 0) * 2));
  const dst = new Uint8Array(gathered[i]!, 0, t.byteLength);
  const refs = t.refs!;
  let off = 0;
  for (let p = 0; p < refs.length; p += 3) {
    const mem = side.memory(refs[p]!);
    if (!mem) throw new Error(`request record names unknown shared memory ${refs[p]}`);
    const start = refs[p + 1]!;
    const len = refs[p + 2]!;
    if (off + len > t.byteLength || start + len > mem.byteLength) throw new Error('request record piece out of bounds');
    dst.set(mem.subarray(start, start + len), off);
    off += len;
  }
  if (off !== t.byteLength) throw new Error('request record pieces do not add up to the tensor');
  return dst;
}

/** Shared memories a request record names that have not arrived yet (its side messages are on the way). */
function missingMemories(rec: Uint8Array, side: SideChannel): number[] {
  let missing: number[] | null = null;
  for (const t of readTensorList(rec).tensors) {
    if (!t.refs) continue;
    for (let p = 0; p < t.refs.length; p += 3) if (!side.memory(t.refs[p]!)) (missing ??= []).push(t.refs[p]!);
  }
  return missing ?? [];
}

function decodeInputs(rec: Uint8Array, side: SideChannel): Inputs {
  return readTensorList(rec).tensors.map((t: RecordTensor, i) => {
    const datatype = dataTypeFromWire(t.datatype);
    if (!datatype) throw new Error(`bad datatype ${t.datatype} in request record`);
    return { datatype, dims: t.dims, data: t.refs ? gather(i, t, side) : t.data };
  });
}

function writeOutputs(target: Uint8Array, seq: number, runUs: number, outs: Outputs): void {
  writer.begin(target, seq, outs.length, runUs);
  for (const o of outs) writer.tensor(dataTypeToWire(o.datatype), o.dims, o.bytes.byteLength).set(o.bytes);
}

/** Reserve `size` bytes in the response ring, waiting while the main thread has not read enough. */
async function reserveOutput(res: Ring, size: number): Promise<Uint8Array> {
  for (;;) {
    const target = res.reserve(size);
    if (target) return target;
    await res.whenReleased(50);
  }
}

/**
 * One slot's serve loop. Per request record, in ring order: decode (or fetch the external
 * record), start the model run (which copies the inputs), release the request record, await
 * the outputs, write the output record (a model error becomes an error record for the whole
 * batch). The run time in µs goes in the output record's aux field. Never returns: the pool ends
 * it by terminating the thread (close, park, watchdog), or a crash or out-of-memory does.
 */
async function serve(task: Extract<WorkerTask, { op: 'serve' }>): Promise<never> {
  const req = new Ring(task.req);
  const res = new Ring(task.res);
  // Asked to stop (the pool is about to terminate this thread): wait for the run in flight,
  // release the model, say so. No batch comes after a stop.
  let running: Promise<unknown> = Promise.resolve();
  const side: SideChannel = new SideChannel(task.port, undefined, () => {
    running.catch(() => undefined).then(() => runner.release()).catch(() => undefined).then(() => side.stopped());
  });
  const maxRecord = maxRecordBytes(res.capacity);
  try {
    for (;;) {
      const rec = req.peek();
      if (!rec) {
        await req.whenReadable();
        continue;
      }
      const seq = recordSeq(rec);
      const status = recordStatus(rec);
      let pending: Promise<Outputs>;
      const t0 = performance.now();
      if (status === STATUS_EXTERNAL) {
        req.release();
        const record = new Uint8Array(await side.wait(seq));
        for (const id of missingMemories(record, side)) await side.waitMemory(id);
        pending = Promise.resolve().then(() => runner.run(decodeInputs(record, side)));
      } else {
        // Shared memory the record names is posted before the record is committed, but may
        // not have been delivered yet: wait for it (once per memory; the record stays put).
        for (const id of missingMemories(rec, side)) await side.waitMemory(id);
        try {
          pending = runner.run(decodeInputs(rec, side));
        } catch (err) {
          pending = Promise.reject(err);
        } finally {
          req.release();
        }
      }
      running = pending;
      let outs: Outputs;
      try {
        outs = await pending;
      } catch (err) {
        // Model failure: answer the whole batch with an error record (status 1).
        const message = (err instanceof Error ? err.message : String(err)).slice(0, 4096);
        const target = await reserveOutput(res, errorRecordBytes(message));
        writeErrorRecord(target, seq, message, Math.round((performance.now() - t0) * 1000));
        res.commit();
        continue;
      }
      const runUs = Math.round((performance.now() - t0) * 1000);
      const size = tensorListBytes(outs.map((o) => ({ ndims: o.dims.length, byteLength: o.bytes.byteLength })));
      if (size <= maxRecord) {
        writeOutputs(await reserveOutput(res, size), seq, runUs, outs);
      } else {
        const record = new ArrayBuffer(size);
        writeOutputs(new Uint8Array(record), seq, runUs, outs);
        side.send(seq, record);
        writeMarkerRecord(await reserveOutput(res, MARKER_RECORD_BYTES), seq, STATUS_EXTERNAL);
      }
      res.commit();
    }
  } finally {
    side.close();
  }
}

export default async function handle(task: WorkerTask): Promise<ModelDescription> {
  if (task.op === 'describe') return runner.description;
  return serve(task);
}

/**
 * Encoding the WebSocket wire codec: plain values (wire-types.ts) into one FlatBuffers `Frame`
 * (schemas/skiff.fbs, identifier "SKF1") with the flatc-generated builders
 * (src/protocol/generated). Tensor data vectors are 8-byte aligned within the frame so
 * receivers can view FP32/INT64 data without copying.
 */
import { Builder } from 'flatbuffers';
import * as fb from './generated/skiff_generated.js';
import type { ErrorInfo } from '../errors.js';
import { DATATYPES } from '../tensor/datatype.js';
import type { Tensor } from '../tensor/tensor.js';
import type { FeedbackInit, FrameInit, RequestInit, WireResponse } from './wire-types.js';
import { allPlain, isRowSlice, ResponseWriter, type AnswerEntry, type RowSlice } from './response-writer.js';

export type { AnswerEntry, AnswerRows, RowSlice } from './response-writer.js';

const WIRE_BY_NAME: Readonly<Record<string, number>> = Object.freeze(
  Object.fromEntries(DATATYPES.map((d, i) => [d, i]).filter(([d]) => d !== 'INVALID')),
);

const TWO_32 = 4294967296;
const MAX_U64 = (1n << 64n) - 1n;
const SCRATCH = new DataView(new ArrayBuffer(8));

function checkInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v)) throw new RangeError(`${what} must be a safe integer, got ${v}`);
  return v;
}

/**
 * Writes frames into one reusable Builder. The scratch offset arrays are reused too; each level
 * of nesting has its own so building a child never clobbers the parent's list.
 */
class FrameWriter {
  readonly b: Builder;
  private readonly items: number[] = [];
  private readonly tensorsScratch: number[] = [];
  private readonly stringsScratch: number[] = [];

  constructor(initialSize: number) {
    this.b = new Builder(initialSize);
  }

  /** Writes a uint64 id field through a scratch DataView instead of BigInt arithmetic (skipped when 0). */
  private idField(index: number, id: bigint): void {
    if (id === 0n) return;
    if (id < 0n || id > MAX_U64) throw new RangeError(`id must fit in 64 unsigned bits, got ${id}`);
    const b = this.b;
    SCRATCH.setBigUint64(0, id, true);
    b.prep(8, 0);
    b.addInt32(SCRATCH.getInt32(4, true));
    b.addInt32(SCRATCH.getInt32(0, true));
    b.slot(index);
  }

  /** Writes an int64 field from a number without going through BigInt (skipped when 0). */
  private int64Field(index: number, v: number, what: string): void {
    if (checkInt(v, what) === 0) return;
    const b = this.b;
    const hi = Math.floor(v / TWO_32);
    b.prep(8, 0);
    b.addInt32(hi | 0);
    b.addInt32((v - hi * TWO_32) | 0);
    b.slot(index);
  }

  private dims(shape: readonly number[]): number {
    const b = this.b;
    const n = shape.length;
    if (n === 0) return 0;
    b.startVector(8, n, 8);
    for (let i = n - 1; i >= 0; i--) {
      const d = checkInt(shape[i]!, 'shape dim');
      const hi = Math.floor(d / TWO_32);
      b.addInt32(hi | 0);
      b.addInt32((d - hi * TWO_32) | 0);
    }
    return b.endVector();
  }

  /** Writes `list` as a vector of offsets and empties it for reuse. */
  private offsets(list: number[]): number {
    const b = this.b;
    b.startVector(4, list.length, 4);
    for (let i = list.length - 1; i >= 0; i--) b.addOffset(list[i]!);
    list.length = 0;
    return b.endVector();
  }

  private stringVector(names: readonly string[] | undefined): number {
    if (names === undefined || names.length === 0) return 0;
    const list = this.stringsScratch;
    // createSharedString('') returns 0 (no string), which is not a valid vector element.
    for (const s of names) list.push(s === '' ? this.b.createString(s) : this.b.createSharedString(s));
    return this.offsets(list);
  }

  private tensor(t: Tensor): number {
    const b = this.b;
    const wire = WIRE_BY_NAME[t.datatype];
    if (wire === undefined) throw new TypeError(`unknown datatype '${String(t.datatype)}'`);
    const name = b.createSharedString(t.name);
    const shape = this.dims(t.shape);
    let data = 0;
    if (t.data.byteLength > 0) {
      // Pad so that the vector's first data byte lands on an 8-byte boundary of the frame.
      b.prep(8, t.data.byteLength);
      data = b.createByteVector(t.data);
    }
    fb.Tensor.startTensor(b);
    if (name !== 0) fb.Tensor.addName(b, name);
    fb.Tensor.addDatatype(b, wire);
    if (shape !== 0) fb.Tensor.addShape(b, shape);
    if (data !== 0) fb.Tensor.addData(b, data);
    return fb.Tensor.endTensor(b);
  }

  private tensorVector(tensors: readonly Tensor[] | undefined): number {
    if (tensors === undefined || tensors.length === 0) return 0;
    const list = this.tensorsScratch;
    for (const t of tensors) list.push(this.tensor(t));
    return this.offsets(list);
  }

  private error(e: ErrorInfo): number {
    const b = this.b;
    const code = b.createSharedString(e.code);
    const message = e.message ? b.createString(e.message) : 0;
    fb.Error.startError(b);
    fb.Error.addCode(b, code);
    if (message !== 0) fb.Error.addMessage(b, message);
    if (e.retryAfterMs) fb.Error.addRetryAfterMs(b, checkInt(e.retryAfterMs, 'retryAfterMs'));
    return fb.Error.endError(b);
  }

  private request(r: RequestInit): number {
    const b = this.b;
    const model = r.model ? b.createSharedString(r.model) : 0;
    const app = r.app ? b.createSharedString(r.app) : 0;
    const user = r.user ? b.createSharedString(r.user) : 0;
    const inputs = this.tensorVector(r.inputs);
    const outputs = this.stringVector(r.outputs);
    fb.Request.startRequest(b);
    this.idField(0, r.id ?? 0n);
    this.int64Field(2, r.version ?? 0, 'version');
    this.int64Field(3, r.timeoutUs ?? 0, 'timeoutUs');
    this.int64Field(4, r.deadlineUnixUs ?? 0, 'deadlineUnixUs');
    if (model !== 0) fb.Request.addModel(b, model);
    if (inputs !== 0) fb.Request.addInputs(b, inputs);
    if (outputs !== 0) fb.Request.addOutputs(b, outputs);
    if (app !== 0) fb.Request.addApp(b, app);
    if (user !== 0) fb.Request.addUser(b, user);
    return fb.Request.endRequest(b);
  }

  private feedback(f: FeedbackInit): number {
    const b = this.b;
    const app = f.app ? b.createSharedString(f.app) : 0;
    const user = f.user ? b.createSharedString(f.user) : 0;
    const inputs = this.tensorVector(f.inputs);
    fb.Feedback.startFeedback(b);
    this.idField(0, f.id ?? 0n);
    if (f.label !== undefined) fb.Feedback.addLabel(b, f.label);
    if (app !== 0) fb.Feedback.addApp(b, app);
    if (user !== 0) fb.Feedback.addUser(b, user);
    if (inputs !== 0) fb.Feedback.addInputs(b, inputs);
    return fb.Feedback.endFeedback(b);
  }

  private response(r: WireResponse): number {
    const b = this.b;
    const model = r.model ? b.createSharedString(r.model) : 0;
    const outputs = this.tensorVector(r.outputs);
    const error = r.error ? this.error(r.error) : 0;
    const explanation = r.defaultExplanation ? b.createString(r.defaultExplanation) : 0;
    const used = this.stringVector(r.modelsUsed);
    const missing = this.stringVector(r.modelsMissing);
    fb.Response.startResponse(b);
    this.idField(0, r.id);
    this.int64Field(2, r.version, 'version');
    if (model !== 0) fb.Response.addModel(b, model);
    if (outputs !== 0) fb.Response.addOutputs(b, outputs);
    if (error !== 0) fb.Response.addError(b, error);
    if (r.isDefault) fb.Response.addIsDefault(b, true);
    if (explanation !== 0) fb.Response.addDefaultExplanation(b, explanation);
    if (used !== 0) fb.Response.addModelsUsed(b, used);
    if (missing !== 0) fb.Response.addModelsMissing(b, missing);
    return fb.Response.endResponse(b);
  }

  private cancel(ids: readonly bigint[]): number {
    const b = this.b;
    b.startVector(8, ids.length, 8);
    for (let i = ids.length - 1; i >= 0; i--) {
      const id = ids[i]!;
      if (id < 0n || id > MAX_U64) throw new RangeError(`cancel id must fit in 64 unsigned bits, got ${id}`);
      b.addInt64(id);
    }
    return b.endVector();
  }

  /** Builds a whole frame; returns a view of the builder's buffer valid until the next write. */
  write(frame: FrameInit): Uint8Array {
    const b = this.b;
    b.clear();
    const items = this.items;
    items.length = 0;
    let requests = 0, feedback = 0, responses = 0, cancel = 0, error = 0;
    if (frame.requests && frame.requests.length > 0) {
      for (const r of frame.requests) items.push(this.request(r));
      requests = this.offsets(items);
    }
    if (frame.feedback && frame.feedback.length > 0) {
      for (const f of frame.feedback) items.push(this.feedback(f));
      feedback = this.offsets(items);
    }
    if (frame.responses && frame.responses.length > 0) {
      for (const r of frame.responses) items.push(this.response(r));
      responses = this.offsets(items);
    }
    if (frame.cancel && frame.cancel.length > 0) cancel = this.cancel(frame.cancel);
    if (frame.error) error = this.error(frame.error);
    fb.Frame.startFrame(b);
    if (requests !== 0) fb.Frame.addRequests(b, requests);
    if (responses !== 0) fb.Frame.addResponses(b, responses);
    if (feedback !== 0) fb.Frame.addFeedback(b, feedback);
    if (cancel !== 0) fb.Frame.addCancel(b, cancel);
    if (error !== 0) fb.Frame.addError(b, error);
    fb.Frame.finishFrameBuffer(b, fb.Frame.endFrame(b));
    return b.asUint8Array();
  }
}

const sharedWriter = new FrameWriter(4096);
const sharedDirect = new ResponseWriter(4096);

/** A frame of plain answers only: the direct writer takes it (response-writer.ts). */
function plainAnswers(frame: FrameInit): boolean {
  const rs = frame.responses;
  if (rs === undefined || rs.length === 0) return false;
  if ((frame.requests && frame.requests.length > 0) || (frame.feedback && frame.feedback.length > 0)
    || (frame.cancel && frame.cancel.length > 0) || frame.error) return false;
  return allPlain(rs);
}

/**
 * Encodes a frame into a fresh Uint8Array owned by the caller. Absent fields, empty strings and
 * empty lists are omitted (a frame of plain answers goes through the direct writer, which writes
 * every field of its responses and tensors). Throws RangeError/TypeError for values the wire
 * cannot carry (non-integer or unsafe int64 fields and dims, unknown datatypes).
 */
export function encodeFrame(frame: FrameInit): Uint8Array {
  if (plainAnswers(frame)) return sharedDirect.write(frame.responses!).slice();
  return sharedWriter.write(frame).slice();
}

/** A slice's rows as responses (row k of each stacked output is a view of it), appended to `out`. */
function sliceResponses(e: RowSlice, out: WireResponse[]): void {
  const { src } = e;
  for (let i = e.from; i < e.to; i++) {
    const row = e.rows === null ? i : e.rows[i]!;
    out.push({
      id: src.ids[row]!, model: src.model, version: src.version,
      outputs: src.outputs.map((t, j) => {
        const rb = src.rowBytes[j]!;
        return { name: t.name, datatype: t.datatype, shape: [...src.shapes[j]!], data: rb < 0 ? t.data : t.data.subarray(row * rb, (row + 1) * rb) };
      }),
    });
  }
}

/**
 * The Builder's encoding of any frame, plain answers included (the reference the direct
 * writer's output is checked against).
 */
export function encodeFrameWithBuilder(frame: FrameInit): Uint8Array {
  return sharedWriter.write(frame).slice();
}

/**
 * Encodes response frames for the server's hot path with one reused Builder.
 *
 * OWNERSHIP: the returned bytes are a view into the encoder's buffer and are valid only until
 * the next `encode()` call on the same encoder. Send them immediately (uWS `ws.send` copies
 * or writes them synchronously) and never keep a reference. The buffer grows to the largest
 * frame encoded and is kept for reuse. One encoder per thread; not re-entrant.
 */
export class ResponseEncoder {
  private readonly writer: FrameWriter;
  private readonly direct: ResponseWriter;

  constructor(initialSize = 64 * 1024) {
    this.writer = new FrameWriter(initialSize);
    this.direct = new ResponseWriter(initialSize);
  }

  /**
   * One frame of answers: single responses and slices of stacked answers, in order. Plain ones
   * (the common case) go through the direct writer; a frame with anything else (an error, an
   * application's answer) through the Builder, its slices' rows made into responses first.
   */
  encode(entries: readonly AnswerEntry[]): Uint8Array {
    if (entries.length > 0 && allPlain(entries)) return this.direct.write(entries);
    const responses: WireResponse[] = [];
    for (const e of entries) {
      if (isRowSlice(e)) sliceResponses(e, responses);
      else responses.push(e);
    }
    return this.writer.write({ responses });
  }
}

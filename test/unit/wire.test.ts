import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Builder, ByteBuffer } from 'flatbuffers';
import * as fb from '../../src/protocol/generated/skiff_generated.js';
import { decodeFrame, decodeUniformRequests } from '../../src/protocol/wire-decode.js';
import { ResponseEncoder, encodeFrame, encodeFrameWithBuilder } from '../../src/protocol/wire-encode.js';
import { DEFAULT_WIRE_LIMITS, type DecodedFrame, type RequestInit, type WireLimits, type WireResponse } from '../../src/protocol/wire-types.js';
import { SkiffError } from '../../src/errors.js';
import { applyByteOps, byteMutations } from '../fuzz/mutate.js';
import { DATATYPES, ELEMENT_SIZE, elementCount, viewAs, type DataType } from '../../src/tensor/datatype.js';
import type { Tensor } from '../../src/tensor/tensor.js';

// ---------------------------------------------------------------------------------------------
// helpers

/** Deterministic bytes so every tensor's content is distinct and checkable. */
function bytesOf(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function tensor(name: string, datatype: DataType, shape: number[], seed = 1): Tensor {
  const size = datatype === 'BYTES' ? 3 : ELEMENT_SIZE[datatype];
  return { name, datatype, shape, data: bytesOf(elementCount(shape) * size, seed) };
}

const ALL_TYPES = DATATYPES.filter((d): d is DataType => d !== 'INVALID');

function expectBadFrame(fn: () => unknown, re?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof SkiffError, `expected SkiffError, got ${String(e)}`);
    assert.equal(e.code, 'BAD_FRAME');
    if (re) assert.match(e.message, re);
    return true;
  });
}

/** Raw builders from the generated code, to craft frames the codec's encoder refuses to write. */
interface RawTensor { name?: string; datatype: number; shape?: bigint[]; data?: Uint8Array }
function rawTensor(b: Builder, t: RawTensor): number {
  const name = t.name ? b.createString(t.name) : 0;
  const shape = t.shape ? fb.Tensor.createShapeVector(b, t.shape) : 0;
  const data = t.data ? b.createByteVector(t.data) : 0;
  fb.Tensor.startTensor(b);
  if (name) fb.Tensor.addName(b, name);
  fb.Tensor.addDatatype(b, t.datatype);
  if (shape) fb.Tensor.addShape(b, shape);
  if (data) fb.Tensor.addData(b, data);
  return fb.Tensor.endTensor(b);
}
function rawRequest(b: Builder, id: bigint, model: string, inputs: number[], version = 0n): number {
  const m = model ? b.createString(model) : 0;
  const ins = fb.Request.createInputsVector(b, inputs);
  return fb.Request.createRequest(b, id, m, version, 0n, 0n, ins, 0, 0, 0);
}
function rawFrame(b: Builder, requests: number[]): Uint8Array {
  const v = fb.Frame.createRequestsVector(b, requests);
  fb.Frame.startFrame(b);
  fb.Frame.addRequests(b, v);
  fb.Frame.finishFrameBuffer(b, fb.Frame.endFrame(b));
  return b.asUint8Array().slice();
}

/** Invariants every successful decode must satisfy, whatever the input bytes were. */
function assertSane(f: DecodedFrame, frameLen: number, limits: WireLimits): void {
  let decoded = 0;
  const checkTensors = (ts: Tensor[]): void => {
    assert.ok(ts.length <= limits.maxTensorsPerRequest);
    for (const t of ts) {
      assert.ok(ALL_TYPES.includes(t.datatype));
      assert.ok(t.shape.length <= limits.maxDims);
      for (const d of t.shape) assert.ok(Number.isSafeInteger(d) && d >= 0);
      const n = elementCount(t.shape);
      assert.ok(n >= 0);
      if (t.datatype !== 'BYTES') assert.equal(t.data.byteLength, n * ELEMENT_SIZE[t.datatype]);
      assert.equal(t.data.byteOffset % 8, 0);
      decoded += t.data.byteLength + t.name.length;
    }
  };
  for (const list of [f.requests, f.feedback, f.responses]) assert.ok(list.length <= limits.maxRequestsPerFrame);
  assert.ok(f.cancel.length <= limits.maxRequestsPerFrame);
  for (const r of f.requests) {
    if (r.error) assert.ok(['BAD_REQUEST', 'INVALID_INPUT', 'UNSUPPORTED_DATATYPE'].includes(r.error.code));
    else assert.ok(r.model !== '' || r.app !== '');
    for (const v of [r.version, r.timeoutUs, r.deadlineUnixUs]) assert.ok(Number.isSafeInteger(v) && v >= 0);
    checkTensors(r.inputs);
    decoded += r.model.length + r.app.length + r.user.length;
  }
  for (const x of f.feedback) checkTensors(x.inputs);
  for (const x of f.responses) checkTensors(x.outputs);
  // Decoding can never blow a frame up beyond a small multiple of its size.
  assert.ok(decoded <= 4 * frameLen + 65536, `decoded ${decoded} bytes from a ${frameLen}-byte frame`);
}

// ---------------------------------------------------------------------------------------------
// round trips

test('requests with every datatype round-trip exactly, with 8-byte aligned data', () => {
  const inputs = ALL_TYPES.map((dt, i) => tensor(`in_${dt}`, dt, [2, 3], i + 1));
  inputs.push(tensor('scalar', 'FP32', [], 99), tensor('empty', 'INT64', [0, 5], 98));
  const req: RequestInit = {
    id: 42n, model: 'mnist', version: 3, timeoutUs: 1500, deadlineUnixUs: 1_700_000_000_000_000,
    inputs, outputs: ['probs', 'logits'], app: 'digits', user: 'u-7',
  };
  const bytes = encodeFrame({ requests: [req] });
  const f = decodeFrame(bytes);
  assert.equal(f.requests.length, 1);
  assert.deepEqual(f.requests[0], req);
  assert.deepEqual(f.feedback, []);
  assert.deepEqual(f.cancel, []);
  assert.deepEqual(f.responses, []);
  assert.equal(f.error, undefined);

  // Encoder side: tensor data vectors start 8-byte aligned within the frame (read with the
  // generated accessors, which also confirms our hand-written field offsets match the schema).
  const root = fb.Frame.getRootAsFrame(new ByteBuffer(bytes));
  assert.ok(fb.Frame.bufferHasIdentifier(new ByteBuffer(bytes)));
  const r = root.requests(0)!;
  assert.equal(r.id(), 42n);
  assert.equal(r.model(), 'mnist');
  assert.equal(r.version(), 3n);
  assert.equal(r.timeoutUs(), 1500n);
  assert.equal(r.deadlineUnixUs(), 1_700_000_000_000_000n);
  assert.equal(r.app(), 'digits');
  assert.equal(r.user(), 'u-7');
  assert.deepEqual([r.outputs(0), r.outputs(1)], ['probs', 'logits']);
  assert.equal(r.inputsLength(), inputs.length);
  for (let i = 0; i < inputs.length; i++) {
    const t = r.inputs(i)!;
    assert.equal(t.name(), inputs[i]!.name);
    assert.equal(DATATYPES[t.datatype()], inputs[i]!.datatype);
    const data = t.dataArray();
    if (inputs[i]!.data.byteLength > 0) {
      assert.equal(data!.byteOffset % 8, 0, `${inputs[i]!.name} data not 8-byte aligned in the frame`);
      assert.deepEqual(data, inputs[i]!.data);
    }
  }
  // Decoder side: FP32/INT64/FP64 views need no copy.
  for (const t of f.requests[0]!.inputs) {
    assert.equal(t.data.byteOffset % 8, 0);
    if (t.datatype !== 'BYTES') assert.equal(viewAs(t.datatype, t.data).buffer, t.data.buffer);
  }
});

test('frames built with the generated builders decode (field offsets agree with flatc)', () => {
  const b = new Builder(256);
  const t = rawTensor(b, { name: 'x', datatype: fb.DataType.FP64, shape: [2n], data: new Uint8Array(16).fill(7) });
  const req = rawRequest(b, 9n, 'm', [t], 4n);
  const bytes = rawFrame(b, [req]);
  const f = decodeFrame(bytes);
  assert.deepEqual(f.requests, [{
    id: 9n, model: 'm', version: 4, timeoutUs: 0, deadlineUnixUs: 0, app: '', user: '', outputs: [],
    inputs: [{ name: 'x', datatype: 'FP64', shape: [2], data: new Uint8Array(16).fill(7) }],
  }]);
});

test('many requests, feedback and cancels in one frame', () => {
  const requests: RequestInit[] = [];
  for (let i = 0; i < 300; i++) {
    requests.push({
      id: BigInt(i) * 1_000_003n + 1n,
      model: i % 3 === 0 ? '' : `model-${i % 5}`,
      app: i % 3 === 0 ? 'app' : '',
      user: i % 2 ? `user-${i}` : '',
      version: i % 4, timeoutUs: i * 10, deadlineUnixUs: 0,
      inputs: [tensor('x', 'FP32', [1, i % 7], i), tensor('y', 'INT32', [i % 3], i + 1000)],
      outputs: i % 2 ? ['out'] : [],
    });
  }
  const feedback = [
    { id: 5000n, app: 'app', user: 'alice', inputs: [tensor('x', 'UINT8', [4], 3)], label: 2.5 },
    { id: 5001n, app: 'app', user: '', inputs: [], label: -1 },
  ];
  const cancel = [1n, 2n ** 64n - 1n, 77n];
  const frame = encodeFrame({ requests, feedback, cancel });
  const f = decodeFrame(frame);
  assert.deepEqual(f.requests, requests);
  assert.deepEqual(f.feedback, feedback);
  assert.deepEqual(f.cancel, cancel);
  // Tensor bytes are copies, not views of the frame (uWS reuses its buffer after the callback),
  // 8-byte aligned so any element type views them in place, and never overlapping.
  const copies = f.requests.flatMap((r) => r.inputs).filter((t) => t.data.byteLength > 0);
  assert.ok(copies.length > 300);
  for (const t of copies) {
    assert.notEqual(t.data.buffer, frame.buffer);
    assert.equal(t.data.byteOffset % 8, 0);
  }
  const byBuffer = new Map<ArrayBufferLike, [number, number][]>();
  for (const t of copies) {
    const list = byBuffer.get(t.data.buffer) ?? [];
    list.push([t.data.byteOffset, t.data.byteOffset + t.data.byteLength]);
    byBuffer.set(t.data.buffer, list);
  }
  for (const spans of byBuffer.values()) {
    spans.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1], 'tensor copies overlap');
  }
  const before = f.requests.map((r) => r.inputs.map((t) => t.data.slice()));
  frame.fill(0xee);
  assert.deepEqual(f.requests.map((r) => r.inputs.map((t) => t.data.slice())), before, 'decoded tensors do not depend on the frame bytes');
});

test('responses with outputs, errors, defaults and model lists round-trip; empty optionals stay absent', () => {
  const responses: WireResponse[] = [
    { id: 1n, model: 'mnist', version: 2, outputs: [tensor('probs', 'FP32', [1, 10], 5)] },
    { id: 2n, model: 'mnist', version: 0, outputs: [], error: { code: 'OVERLOADED', message: 'queue full', retryAfterMs: 25 } },
    { id: 3n, model: 'digits', version: 0, outputs: [tensor('label', 'INT64', [1], 6)], isDefault: true,
      defaultExplanation: 'no model answered in time', modelsUsed: ['a:1', 'b:2'], modelsMissing: ['c:1'] },
    { id: 4n, model: '', version: 0, outputs: [], error: { code: 'MODEL_NOT_FOUND', message: '' } },
  ];
  const f = decodeFrame(encodeFrame({ responses }));
  assert.deepEqual(f.responses, responses);
  const bare = decodeFrame(encodeFrame({ responses: [{ id: 5n, model: 'm', version: 1, outputs: [], modelsUsed: [], isDefault: false }] }));
  assert.deepEqual(bare.responses, [{ id: 5n, model: 'm', version: 1, outputs: [] }]);
  const frameErr = decodeFrame(encodeFrame({ error: { code: 'BAD_FRAME', message: 'nope' } }));
  assert.deepEqual(frameErr.error, { code: 'BAD_FRAME', message: 'nope' });
});

test('an error code unknown to this build decodes as INTERNAL carrying the original code', () => {
  const b = new Builder(128);
  const code = b.createString('SOMETHING_NEW');
  const msg = b.createString('details');
  const err = fb.Error.createError(b, code, msg, 0);
  fb.Frame.startFrame(b);
  fb.Frame.addError(b, err);
  fb.Frame.finishFrameBuffer(b, fb.Frame.endFrame(b));
  const f = decodeFrame(b.asUint8Array());
  assert.equal(f.error!.code, 'INTERNAL');
  assert.match(f.error!.message, /SOMETHING_NEW.*details/);
});

test('ResponseEncoder reuses its buffer, output matches encodeFrame, bytes valid until the next call', () => {
  const enc = new ResponseEncoder(64);
  const r1: WireResponse[] = Array.from({ length: 64 }, (_, i) => ({
    id: BigInt(i + 1), model: 'mnist', version: 1, outputs: [tensor('probs', 'FP32', [1, 10], i)],
  }));
  const a = enc.encode(r1);
  assert.deepEqual(a, encodeFrame({ responses: r1 }));
  assert.deepEqual(decodeFrame(a).responses, r1);
  const aCopy = a.slice();
  const r2: WireResponse[] = [{ id: 999n, model: 'other', version: 7, outputs: [tensor('z', 'INT8', [3], 1)] }];
  const b = enc.encode(r2);
  assert.equal(b.buffer, a.buffer, 'the builder buffer is reused');
  assert.notDeepEqual(a, aCopy, 'earlier bytes are overwritten by the next encode (documented)');
  assert.deepEqual(decodeFrame(b).responses, r2);
});

test('decoded tensors own their bytes: the input buffer can be changed or detached afterwards', () => {
  const t = tensor('x', 'FP32', [4], 3);
  const bytes = encodeFrame({ requests: [{ id: 1n, model: 'm', inputs: [t] }] });
  // Place the frame at an odd offset inside a Buffer, as a network stack might.
  const backing = Buffer.alloc(bytes.length + 3);
  backing.set(bytes, 3);
  const view = backing.subarray(3);
  const f = decodeFrame(view);
  const data = f.requests[0]!.inputs[0]!.data;
  assert.equal(data.constructor, Uint8Array);
  assert.deepEqual(data, t.data);
  backing.fill(0);
  assert.deepEqual(data, t.data);

  const ab = bytes.slice().buffer;
  const g = decodeFrame(new Uint8Array(ab));
  structuredClone(ab, { transfer: [ab] }); // detaches, as uWS neuters message buffers
  assert.equal(ab.byteLength, 0);
  assert.deepEqual(g.requests[0]!.inputs[0]!.data, t.data);
});

test('the encoder refuses values the wire cannot carry', () => {
  const ok: Tensor = tensor('x', 'FP32', [2], 1);
  assert.throws(() => encodeFrame({ requests: [{ id: 1n, model: 'm', inputs: [{ ...ok, shape: [1.5] }] }] }), RangeError);
  assert.throws(() => encodeFrame({ requests: [{ id: 1n, model: 'm', version: 2 ** 60 }] }), RangeError);
  assert.throws(() => encodeFrame({ requests: [{ id: -1n, model: 'm' }] }), RangeError);
  assert.throws(() => encodeFrame({ requests: [{ id: 2n ** 64n, model: 'm' }] }), RangeError);
  assert.throws(() => encodeFrame({ cancel: [-5n] }), RangeError);
  assert.throws(() => encodeFrame({ requests: [{ id: 1n, model: 'm', inputs: [{ ...ok, datatype: 'FLOAT' as DataType }] }] }), TypeError);
  // A failed encode leaves the shared builder usable.
  assert.deepEqual(decodeFrame(encodeFrame({ cancel: [3n] })).cancel, [3n]);
});

// ---------------------------------------------------------------------------------------------
// per-request error isolation

test('one bad request among good ones gets its own error; the others decode fully', () => {
  const limits: WireLimits = { maxTensorsPerRequest: 3, maxRequestsPerFrame: 100, maxDims: 4 };
  const good = (id: bigint): RequestInit => ({ id, model: 'm', inputs: [tensor('x', 'FP32', [2, 2], Number(id))] });
  const cases: Array<{ req: RequestInit; code: string }> = [
    { req: { id: 101n, model: 'm', inputs: [{ ...tensor('x', 'FP32', [2, 2]), shape: [2, -2] }] }, code: 'INVALID_INPUT' },
    { req: { id: 102n, model: 'm', inputs: [{ ...tensor('x', 'FP32', [2, 2]), data: new Uint8Array(15) }] }, code: 'INVALID_INPUT' },
    { req: { id: 103n, model: 'm', inputs: [1, 2, 3, 4].map((i) => tensor(`x${i}`, 'UINT8', [1], i)) }, code: 'BAD_REQUEST' },
    { req: { id: 104n, inputs: [tensor('x', 'FP32', [1])] }, code: 'BAD_REQUEST' },
    { req: { id: 105n, model: 'm', inputs: [tensor('x', 'UINT8', [1, 1, 1, 1, 1])] }, code: 'INVALID_INPUT' },
    { req: { id: 106n, model: 'm', version: -1 }, code: 'BAD_REQUEST' },
    { req: { id: 107n, model: 'm', outputs: ['a', 'b', 'c', 'd'] }, code: 'BAD_REQUEST' },
  ];
  const requests: RequestInit[] = [good(1n)];
  for (const c of cases) requests.push(c.req, good(c.req.id! + 1000n));
  const f = decodeFrame(encodeFrame({ requests }), limits);
  assert.equal(f.requests.length, requests.length);
  for (let i = 0; i < f.requests.length; i++) {
    const got = f.requests[i]!;
    assert.equal(got.id, requests[i]!.id);
    const bad = cases.find((c) => c.req.id === got.id);
    if (bad) {
      assert.equal(got.error?.code, bad.code, `request ${got.id}: ${got.error?.message}`);
      assert.deepEqual(got.inputs, []);
    } else {
      assert.equal(got.error, undefined);
      assert.deepEqual(got, { ...requests[i], version: 0, timeoutUs: 0, deadlineUnixUs: 0, outputs: [], app: '', user: '' });
    }
  }
});

test('datatype enum values: unknown -> UNSUPPORTED_DATATYPE, missing -> INVALID_INPUT; huge dims -> INVALID_INPUT', () => {
  const b = new Builder(512);
  const reqs = [
    rawRequest(b, 1n, 'm', [rawTensor(b, { name: 'x', datatype: 99, shape: [1n], data: new Uint8Array(1) })]),
    rawRequest(b, 2n, 'm', [rawTensor(b, { name: 'x', datatype: 0, shape: [1n], data: new Uint8Array(1) })]),
    rawRequest(b, 3n, 'm', [rawTensor(b, { name: 'x', datatype: fb.DataType.UINT8, shape: [2n ** 60n], data: new Uint8Array(1) })]),
    rawRequest(b, 4n, 'm', [rawTensor(b, { name: 'x', datatype: fb.DataType.UINT8, shape: [2n ** 30n, 2n ** 30n], data: new Uint8Array(1) })]),
    rawRequest(b, 5n, 'm', [rawTensor(b, { name: 'x', datatype: fb.DataType.UINT8, shape: [3n], data: new Uint8Array(3) })]),
    rawRequest(b, 6n, 'm', [], 2n ** 62n),
  ];
  const f = decodeFrame(rawFrame(b, reqs));
  assert.deepEqual(f.requests.map((r) => r.error?.code), [
    'UNSUPPORTED_DATATYPE', 'INVALID_INPUT', 'INVALID_INPUT', 'INVALID_INPUT', undefined, 'BAD_REQUEST',
  ]);
  assert.deepEqual(f.requests[4]!.inputs[0]!.shape, [3]);
});

test('a structurally broken request with a readable id is isolated too', () => {
  const good = { id: 1n, model: 'm', inputs: [tensor('x', 'FP32', [2], 1)] };
  const victim = { id: 2n, model: 'victim-model-name', inputs: [] };
  const bytes = encodeFrame({ requests: [good, victim] });
  // Corrupt the victim's model string length so it runs past the frame end.
  const name = new TextEncoder().encode('victim-model-name');
  const at = Buffer.from(bytes).indexOf(Buffer.from(name)) - 4;
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, 0x7ffffff0, true);
  const f = decodeFrame(bytes);
  assert.equal(f.requests[0]!.error, undefined);
  assert.equal(f.requests[1]!.id, 2n);
  assert.equal(f.requests[1]!.error?.code, 'BAD_REQUEST');
});

// ---------------------------------------------------------------------------------------------
// frame-level errors and hostile input

test('undecodable frames throw BAD_FRAME', () => {
  expectBadFrame(() => decodeFrame(new Uint8Array(0)), /too short/);
  expectBadFrame(() => decodeFrame(new Uint8Array(7)), /too short/);
  const ok = encodeFrame({ requests: [{ id: 1n, model: 'm' }] });
  const wrongId = ok.slice();
  wrongId[7] = 0x32; // "SKF2"
  expectBadFrame(() => decodeFrame(wrongId), /identifier/);
  const badRoot = ok.slice();
  new DataView(badRoot.buffer).setUint32(0, 0xfffffff0, true);
  expectBadFrame(() => decodeFrame(badRoot));
  expectBadFrame(() => decodeFrame(ok.subarray(0, 12)));
  const many = encodeFrame({ requests: Array.from({ length: 11 }, (_, i) => ({ id: BigInt(i), model: 'm' })) });
  expectBadFrame(() => decodeFrame(many, { ...DEFAULT_WIRE_LIMITS, maxRequestsPerFrame: 10 }), /11 requests/);
  assert.equal(decodeFrame(many, { ...DEFAULT_WIRE_LIMITS, maxRequestsPerFrame: 11 }).requests.length, 11);
});

test('a hostile vector length is rejected without iterating', () => {
  const bytes = encodeFrame({ requests: [{ id: 1n, model: 'm' }] });
  // The requests vector length sits where the root table's requests offset points.
  const root = fb.Frame.getRootAsFrame(new ByteBuffer(bytes));
  const bb = root.bb!;
  const vecLenAt = bb.__vector(root.bb_pos + bb.__offset(root.bb_pos, 4)) - 4;
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  assert.equal(dv.getUint32(vecLenAt, true), 1);
  dv.setUint32(vecLenAt, 0xffffffff, true);
  const t0 = performance.now();
  expectBadFrame(() => decodeFrame(bytes));
  dv.setUint32(vecLenAt, 3000, true); // within the limit but beyond the frame
  expectBadFrame(() => decodeFrame(bytes));
  assert.ok(performance.now() - t0 < 1000);
});

test('shared sub-objects cannot amplify a frame into huge allocations', () => {
  // One request with a 64 KiB tensor, referenced 2000 times: 128 MB if decoded naively.
  const b = new Builder(1 << 17);
  const t = rawTensor(b, { name: 'x', datatype: fb.DataType.UINT8, shape: [65536n], data: new Uint8Array(65536) });
  const req = rawRequest(b, 1n, 'm', [t]);
  const bytes = rawFrame(b, new Array<number>(2000).fill(req));
  assert.ok(bytes.length < 80_000);
  expectBadFrame(() => decodeFrame(bytes), /far more data/);

  // Same for strings: one 32 KiB name shared by many output-name slots.
  const b2 = new Builder(1 << 16);
  const s = b2.createString('n'.repeat(32768));
  const outs = fb.Request.createOutputsVector(b2, new Array<number>(60).fill(s));
  const m = b2.createString('m');
  const r2 = fb.Request.createRequest(b2, 1n, m, 0n, 0n, 0n, 0, outs, 0, 0);
  const bytes2 = rawFrame(b2, new Array<number>(60).fill(r2));
  expectBadFrame(() => decodeFrame(bytes2), /far more data/);
});

function validFrames(): Uint8Array[] {
  return [
    encodeFrame({
      requests: [
        { id: 1n, model: 'mnist', version: 2, inputs: [tensor('x', 'FP32', [1, 4], 1), tensor('s', 'BYTES', [2], 2)], outputs: ['p'] },
        { id: 2n, app: 'a', user: 'u', timeoutUs: 100, inputs: [tensor('y', 'INT64', [2, 1], 3)] },
      ],
      feedback: [{ id: 3n, app: 'a', user: 'u', inputs: [tensor('x', 'UINT16', [3], 4)], label: 1 }],
      cancel: [9n, 10n],
    }),
    encodeFrame({
      responses: [
        { id: 1n, model: 'm', version: 1, outputs: [tensor('p', 'FP64', [2], 5)], modelsUsed: ['m:1'] },
        { id: 2n, model: 'm', version: 1, outputs: [], error: { code: 'OVERLOADED', message: 'x', retryAfterMs: 3 }, isDefault: true, defaultExplanation: 'e' },
      ],
      error: { code: 'INTERNAL', message: 'frame' },
    }),
    encodeFrame({ requests: Array.from({ length: 8 }, (_, i) => ({ id: BigInt(i), model: 'm', inputs: [tensor('x', 'INT8', [i], i)] })) }),
  ];
}

/** Decodes; must either succeed with sane output or throw SkiffError BAD_FRAME, quickly. */
function decodeHostile(bytes: Uint8Array, limits: WireLimits): void {
  const t0 = performance.now();
  try {
    assertSane(decodeFrame(bytes, limits), bytes.byteLength, limits);
  } catch (e) {
    if (!(e instanceof SkiffError) || e.code !== 'BAD_FRAME') throw e;
  }
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `decode took ${ms} ms`);
}

const SMALL_LIMITS: WireLimits = { maxTensorsPerRequest: 4, maxRequestsPerFrame: 6, maxDims: 3 };

test('fuzz: random bytes only ever yield BAD_FRAME or sane frames', () => {
  const withIdent = fc.uint8Array({ minLength: 8, maxLength: 512 }).map((b) => {
    const c = b.slice();
    c.set([0x53, 0x4b, 0x46, 0x31], 4);
    return c;
  });
  fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), withIdent), fc.boolean(), (bytes, small) => {
    decodeHostile(bytes, small ? SMALL_LIMITS : DEFAULT_WIRE_LIMITS);
  }), { numRuns: 8000 });
});

test('fuzz: mutated valid frames only ever yield BAD_FRAME, per-item errors or sane frames', () => {
  const frames = validFrames();
  const interesting = [0, 1, 2, 3, 4, 7, 8, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0x80000000, 0xfffffffc, 0xffffffff];
  const u32 = fc.oneof(fc.constantFrom(...interesting), fc.nat(0xffffffff), fc.nat(600));
  const op = fc.oneof(
    fc.record({ kind: fc.constant('byte' as const), at: fc.nat(), value: fc.nat(255) }),
    fc.record({ kind: fc.constant('u16' as const), at: fc.nat(), value: fc.nat(0xffff) }),
    fc.record({ kind: fc.constant('u32' as const), at: fc.nat(), value: u32 }),
    fc.record({ kind: fc.constant('truncate' as const), at: fc.nat(), value: fc.constant(0) }),
    fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), value: fc.nat(16) }),
  );
  let perItemErrors = 0;
  let badFrames = 0;
  let clean = 0;
  fc.assert(fc.property(fc.nat(frames.length - 1), fc.array(op, { minLength: 1, maxLength: 4 }), fc.boolean(), (which, ops, small) => {
    let bytes = frames[which]!.slice();
    for (const o of ops) {
      if (bytes.length < 8) break;
      // Keep the identifier most of the time so mutations reach the structure behind it.
      const at = 8 + (o.at % Math.max(1, bytes.length - 8));
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      if (o.kind === 'byte') bytes[at] = o.value;
      else if (o.kind === 'u16' && at + 2 <= bytes.length) dv.setUint16(at, o.value, true);
      else if (o.kind === 'u32' && at + 4 <= bytes.length) dv.setUint32(at & ~3, o.value >>> 0, true);
      else if (o.kind === 'truncate') bytes = bytes.slice(0, at);
      else if (o.kind === 'splice') {
        const out = new Uint8Array(bytes.length + o.value);
        out.set(bytes.subarray(0, at));
        out.set(bytes.subarray(at), at + o.value);
        bytes = out;
      }
    }
    const limits = small ? SMALL_LIMITS : DEFAULT_WIRE_LIMITS;
    try {
      const f = decodeFrame(bytes, limits);
      assertSane(f, bytes.byteLength, limits);
      if ([...f.requests, ...f.feedback, ...f.responses].some((x) => x.error)) perItemErrors++;
      else clean++;
    } catch (e) {
      if (!(e instanceof SkiffError) || e.code !== 'BAD_FRAME') throw e;
      badFrames++;
    }
  }), { numRuns: 14000 });
  // The mutations must exercise all three outcomes, or the fuzzing is not reaching the decoder.
  assert.ok(perItemErrors > 100 && badFrames > 100 && clean > 100, JSON.stringify({ perItemErrors, badFrames, clean }));
});

// ---------------------------------------------------------------------------------------------
// the direct writer of plain answers (response-writer.ts)

test('frames of plain answers: the direct writer reads back, through the generated reader and decodeFrame, as the Builder\'s frame does, aligned', () => {
  const plain = fc.record({
    id: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    model: fc.oneof(fc.constantFrom('mnist', 'm', ''), fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 })),
    version: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 2 ** 40 }), fc.constant(Number.MAX_SAFE_INTEGER)),
    outputs: fc.array(fc.record({
      name: fc.oneof(fc.constantFrom('probs', 'output', ''), fc.string({ unit: 'binary', maxLength: 5 })),
      datatype: fc.constantFrom(...ALL_TYPES),
      shape: fc.oneof(fc.constant<number[]>([1, 10]), fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 })),
      seed: fc.integer({ min: 1, max: 1000 }),
    }), { maxLength: 3 }),
  });
  fc.assert(fc.property(fc.array(plain, { minLength: 1, maxLength: 20 }), (items) => {
    const responses: WireResponse[] = items.map((r) => ({
      id: r.id, model: r.model, version: r.version, outputs: r.outputs.map((t) => tensor(t.name, t.datatype, t.shape, t.seed)),
    }));
    const direct = encodeFrame({ responses });
    const viaBuilder = encodeFrameWithBuilder({ responses });
    assert.deepEqual(decodeFrame(direct), decodeFrame(viaBuilder));
    assert.deepEqual(decodeFrame(direct).responses, responses);
    // The flatc-generated reader sees the same values, and every tensor's data is 8-byte aligned.
    const f = fb.Frame.getRootAsFrame(new ByteBuffer(direct));
    assert.ok(fb.Frame.bufferHasIdentifier(new ByteBuffer(direct)));
    assert.equal(f.responsesLength(), responses.length);
    responses.forEach((want, i) => {
      const got = f.responses(i)!;
      assert.equal(got.id(), want.id);
      assert.equal(got.model() ?? '', want.model);
      assert.equal(Number(got.version()), want.version);
      assert.equal(got.outputsLength(), want.outputs.length);
      want.outputs.forEach((t, j) => {
        const g = got.outputs(j)!;
        assert.equal(g.name() ?? '', t.name);
        assert.equal(DATATYPES[g.datatype()], t.datatype);
        assert.deepEqual(Array.from({ length: g.shapeLength() }, (_, d) => Number(g.shape(d))), t.shape);
        const data = g.dataArray() ?? new Uint8Array(0);
        assert.deepEqual(data, t.data);
        if (data.byteLength > 0) assert.equal((data.byteOffset - direct.byteOffset) % 8, 0, 'tensor data 8-byte aligned in the frame');
      });
    });
  }), { numRuns: 300, seed: 15 });
});

test('the direct writer: equal answers give equal bytes, the buffer grows and is reused, and what it cannot carry is refused like the Builder refuses it', () => {
  const enc = new ResponseEncoder(64);
  const big: WireResponse[] = Array.from({ length: 300 }, (_, i) => ({ id: BigInt(i), model: 'tiny', version: 3, outputs: [tensor('y', 'FP32', [1, 10], i)] }));
  const a = enc.encode(big).slice();
  assert.deepEqual(enc.encode(big), a);
  assert.deepEqual(decodeFrame(a).responses, big);
  // A frame with anything else in it (an error answer) goes through the Builder; both read back.
  const mixed: WireResponse[] = [big[0]!, { id: 7n, model: 'tiny', version: 0, outputs: [], error: { code: 'MODEL_ERROR', message: 'x' } }];
  assert.deepEqual(decodeFrame(enc.encode(mixed)).responses, mixed);
  assert.throws(() => encodeFrame({ responses: [{ id: 1n << 64n, model: 'm', version: 1, outputs: [] }] }), RangeError);
  assert.throws(() => encodeFrame({ responses: [{ id: 1n, model: 'm', version: 1.5, outputs: [] }] }), RangeError);
  assert.throws(() => encodeFrame({ responses: [{ id: 1n, model: 'm', version: 1, outputs: [tensor('x', 'FP32', [1])].map((t) => ({ ...t, shape: [Number.MAX_SAFE_INTEGER + 2] })) }] }), RangeError);
});

test('answer slices: the rows of stacked answers are written as one response per row, equal to the responses they stand for, alone or beside single answers and errors', () => {
  const enc = new ResponseEncoder(64);
  const n = 5;
  const stacked = tensor('probs', 'FP32', [n, 3], 9); // 12 bytes per row
  const whole = tensor('meta', 'INT64', [2], 4); // not stacked: every row gets all of it
  const src = { model: 'tiny', version: 2, outputs: [stacked, whole], rowBytes: [12, -1], shapes: [[1, 3], [2]], ids: [10n, 11n, 12n, 13n, (1n << 64n) - 1n] };
  const rowOf = (row: number): WireResponse => ({
    id: src.ids[row]!, model: 'tiny', version: 2,
    outputs: [{ ...stacked, shape: [1, 3], data: stacked.data.subarray(row * 12, row * 12 + 12) }, whole],
  });
  const single: WireResponse = { id: 99n, model: 'other', version: 0, outputs: [tensor('y', 'BYTES', [2], 3)] };
  const error: WireResponse = { id: 98n, model: 'tiny', version: 0, outputs: [], error: { code: 'DEADLINE_EXCEEDED', message: 'late' } };
  const cases: [Parameters<ResponseEncoder['encode']>[0], WireResponse[]][] = [
    [[{ src, rows: null, from: 0, to: n }], [0, 1, 2, 3, 4].map(rowOf)],
    [[single, { src, rows: null, from: 1, to: 3 }, single], [single, rowOf(1), rowOf(2), single]],
    [[{ src, rows: [4, 0, 2], from: 1, to: 3 }], [rowOf(0), rowOf(2)]],
    // With an error answer in the frame the Builder writes it all, the slice's rows included.
    [[{ src, rows: null, from: 3, to: 5 }, error], [rowOf(3), rowOf(4), error]],
  ];
  for (const [entries, want] of cases) {
    const bytes = enc.encode(entries);
    assert.deepEqual(decodeFrame(bytes).responses, want);
    const f = fb.Frame.getRootAsFrame(new ByteBuffer(bytes));
    for (let i = 0; i < want.length; i++) {
      const data = f.responses(i)!.outputs(0)?.dataArray();
      if (data && data.byteLength > 0) assert.equal((data.byteOffset - bytes.byteOffset) % 8, 0);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// uniform request frames (decodeUniformRequests)

/** What decodeFrame makes of a uniform frame, rebuilt from decodeUniformRequests' result. */
function expandUniform(bytes: Uint8Array): DecodedFrame['requests'] | null {
  const u = decodeUniformRequests(bytes);
  if (u === null) return null;
  return u.ids.map((id, k) => ({
    id, model: u.model, version: u.version, timeoutUs: u.timeoutUs, deadlineUnixUs: u.deadlineUnixUs, inputs: [{
      name: u.name, datatype: u.datatype, shape: [1, ...u.rowShape], data: u.data.subarray(k * u.rowBytes, (k + 1) * u.rowBytes),
    }], outputs: [], app: '', user: '',
  }));
}

test('a uniform frame decodes without an object per request to what decodeFrame reads; any difference between its requests sends it to decodeFrame', () => {
  const base = (i: number): RequestInit => ({ id: BigInt(i + 1), model: 'tiny', version: 2, timeoutUs: 5000, inputs: [tensor('input', 'FP32', [1, 3, 2], i + 1)] });
  const frame = (n: number, change?: (r: RequestInit, i: number) => RequestInit) => encodeFrame({ requests: Array.from({ length: n }, (_, i) => (change ? change(base(i), i) : base(i))) });
  const bytes = frame(64);
  const got = expandUniform(bytes);
  assert.ok(got);
  assert.deepEqual(got, decodeFrame(bytes).requests);
  // Every kind of difference, in the last request, and one request alone: not uniform.
  const last = (f: (r: RequestInit) => RequestInit) => (r: RequestInit, i: number) => (i === 7 ? f(r) : r);
  const variants: [string, Uint8Array][] = [
    ['one request', frame(1)],
    ['another model', frame(8, last((r) => ({ ...r, model: 'tinz' })))],
    ['another version', frame(8, last((r) => ({ ...r, version: 3 })))],
    ['another timeout', frame(8, last((r) => ({ ...r, timeoutUs: 1 })))],
    ['a deadline', frame(8, last((r) => ({ ...r, deadlineUnixUs: 1 })))],
    ['an app', frame(8, last((r) => ({ ...r, app: 'a' })))],
    ['a user', frame(8, last((r) => ({ ...r, user: 'u' })))],
    ['an output list', frame(8, last((r) => ({ ...r, outputs: ['y'] })))],
    ['another input name', frame(8, last((r) => ({ ...r, inputs: [tensor('x', 'FP32', [1, 3, 2])] })))],
    ['another datatype', frame(8, last((r) => ({ ...r, inputs: [tensor('input', 'FP64', [1, 3, 2])] })))],
    ['another row shape', frame(8, last((r) => ({ ...r, inputs: [tensor('input', 'FP32', [1, 2, 3])] })))],
    ['two rows', frame(8, last((r) => ({ ...r, inputs: [tensor('input', 'FP32', [2, 3, 2])] })))],
    ['two inputs', frame(8, last((r) => ({ ...r, inputs: [tensor('input', 'FP32', [1, 3, 2]), tensor('input', 'FP32', [1, 3, 2])] })))],
    ['no input', frame(8, last((r) => ({ ...r, inputs: [] })))],
    ['strings', frame(8, (r) => ({ ...r, inputs: [tensor('input', 'BYTES', [1, 2])] }))],
    ['no model', frame(8, (r) => ({ ...r, model: '' }))],
    ['a feedback record', encodeFrame({ requests: [base(0), base(1)], feedback: [{ id: 9n, app: 'a', inputs: [tensor('input', 'FP32', [1, 3, 2])], label: 1 }] })],
    ['a cancel', encodeFrame({ requests: [base(0), base(1)], cancel: [4n] })],
  ];
  for (const [what, b] of variants) assert.equal(decodeUniformRequests(b), null, what);
});

test('decodeUniformRequests never throws on mutated frames, and whatever it accepts decodeFrame reads the same way', () => {
  const seeds = [4, 16, 200].map((n) => encodeFrame({ requests: Array.from({ length: n }, (_, i) => ({ id: BigInt(i * 3), model: 'm', inputs: [tensor('in', 'INT16', [1, 5], i)] })) }));
  fc.assert(fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), byteMutations(4), (k, ops) => {
    const bytes = applyByteOps(seeds[k]!, ops, seeds);
    const got = expandUniform(bytes);
    if (got === null) return;
    assert.deepEqual(got, decodeFrame(bytes).requests);
  }), { numRuns: 3000, seed: 15 });
});

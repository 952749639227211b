/**
 * Fuzz campaigns for the WebSocket FlatBuffers decoder (`decodeFrame`, src/protocol/wire-decode.ts):
 *  - `wireRandom`: random bytes, with and without the "SKF1" identifier and a plausible root
 *    offset, and word-structured noise biased towards small offsets;
 *  - `wireStructured`: random frames built by `encodeFrame`, including values the decoder must
 *    refuse per item (negative counts, dims and data lengths that disagree, names missing); an
 *    oracle predicts which items are refused, and accepted items must round-trip exactly. Now
 *    and then an amplification frame instead (sub-objects shared by thousands of references);
 *  - `wireMutated`: byte mutations, truncations, insertions and crossovers of valid frames.
 * A frame-level failure must be BAD_FRAME; item errors must be BAD_REQUEST, INVALID_INPUT or
 * UNSUPPORTED_DATATYPE. Decoded tensors must hold exactly the bytes their shape declares.
 */
import fc from 'fast-check';
import { Builder } from 'flatbuffers';
import * as fb from '../../src/protocol/generated/skiff_generated.js';
import { ErrorCodes, isErrorCode, type ErrorCode } from '../../src/errors.js';
import { decodeFrame } from '../../src/protocol/wire-decode.js';
import { encodeFrame } from '../../src/protocol/wire-encode.js';
import { DEFAULT_WIRE_LIMITS, type DecodedFrame, type FeedbackInit, type FrameInit, type RequestInit, type WireLimits, type WireResponse } from '../../src/protocol/wire-types.js';
import { DATATYPES, ELEMENT_SIZE, type DataType } from '../../src/tensor/datatype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Tally, fcOptions, type Accepted } from './harness.js';
import { applyByteOps, byteMutations } from './mutate.js';

export const ALL_TYPES: readonly DataType[] = DATATYPES.filter((d): d is DataType => d !== 'INVALID');
const ITEM_CODES: readonly ErrorCode[] = ['BAD_REQUEST', 'INVALID_INPUT', 'UNSUPPORTED_DATATYPE'];
const SMALL_LIMITS: WireLimits = { maxTensorsPerRequest: 4, maxRequestsPerFrame: 6, maxDims: 3 };
const IDENT = [0x53, 0x4b, 0x46, 0x31];

/** Bytes decoded into (tensor data and strings) and per-item codes; checks decoded tensors. */
export function inspectFrame(f: DecodedFrame, limits: WireLimits): Accepted {
  let bytes = 0;
  const codes: ErrorCode[] = [];
  const tensors = (ts: readonly Tensor[]): void => {
    if (ts.length > limits.maxTensorsPerRequest) throw new Error(`decoded ${ts.length} tensors past the limit`);
    for (const t of ts) {
      if (t.shape.length > limits.maxDims) throw new Error(`decoded ${t.shape.length} dims past the limit`);
      let n = 1;
      for (const d of t.shape) {
        if (!Number.isSafeInteger(d) || d < 0) throw new Error(`decoded dim ${d}`);
        n *= d;
      }
      const size = ELEMENT_SIZE[t.datatype];
      if (size > 0 && t.data.byteLength !== n * size) {
        throw new Error(`decoded ${t.datatype}[${t.shape.join(',')}] with ${t.data.byteLength} data bytes`);
      }
      bytes += t.data.byteLength + t.name.length;
    }
  };
  const item = (x: { error?: { code: ErrorCode } }): void => {
    if (x.error === undefined) return;
    if (!ITEM_CODES.includes(x.error.code)) throw new Error(`item error with code ${x.error.code}`);
    codes.push(x.error.code);
  };
  for (const r of f.requests) {
    item(r);
    tensors(r.inputs);
    bytes += r.model.length + r.app.length + r.user.length;
    for (const o of r.outputs) bytes += o.length;
  }
  for (const b of f.feedback) {
    item(b);
    tensors(b.inputs);
    bytes += b.app.length + b.user.length;
  }
  for (const r of f.responses) {
    // A response's error is data (any code a server sent, INTERNAL for an unknown one), not a refusal.
    if (r.error !== undefined && !isErrorCode(r.error.code)) throw new Error(`response error with code ${r.error.code}`);
    tensors(r.outputs);
    bytes += r.model.length + (r.defaultExplanation?.length ?? 0) + (r.error?.message.length ?? 0);
    for (const s of [...(r.modelsUsed ?? []), ...(r.modelsMissing ?? [])]) bytes += s.length;
  }
  bytes += 8 * f.cancel.length + (f.error?.message.length ?? 0);
  return { outputBytes: bytes, itemCodes: codes };
}

function decodeOne(t: Tally, bytes: Uint8Array, limits: WireLimits): DecodedFrame | undefined {
  return t.check(bytes, () => decodeFrame(bytes, limits), (f) => inspectFrame(f, limits));
}

// ---------------------------------------------------------------------------------------------
// random bytes

const u32Word = fc.oneof(
  { weight: 3, arbitrary: fc.nat({ max: 64 }) },
  { weight: 1, arbitrary: fc.nat({ max: 0xffff }) },
  { weight: 1, arbitrary: fc.nat({ max: 0xffffffff }) },
);

const randomFrameBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ minLength: 8, maxLength: 512 }).map((b) => {
    b.set(IDENT, 4);
    return b;
  }),
  fc.tuple(fc.nat({ max: 255 }), fc.uint8Array({ minLength: 8, maxLength: 256 })).map(([root, b]) => {
    new DataView(b.buffer).setUint32(0, root % b.length, true);
    b.set(IDENT, 4);
    return b;
  }),
  fc.array(u32Word, { minLength: 2, maxLength: 96 }).map((words) => {
    const b = new Uint8Array(words.length * 4);
    const dv = new DataView(b.buffer);
    words.forEach((w, i) => dv.setUint32(4 * i, w, true));
    b.set(IDENT, 4);
    return b;
  }),
);

export function wireRandom(runs: number, seed: number): Tally {
  const t = new Tally('wire.random', seed, ['BAD_FRAME']);
  fc.assert(fc.property(randomFrameBytes, fc.boolean(), (bytes, small) => {
    decodeOne(t, bytes, small ? SMALL_LIMITS : DEFAULT_WIRE_LIMITS);
  }), fcOptions(runs, seed));
  return t.finish();
}

// ---------------------------------------------------------------------------------------------
// structured frames

const dim = fc.oneof(
  { weight: 8, arbitrary: fc.nat({ max: 4 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, -(2 ** 40), 2 ** 32, 2 ** 53 - 1, 1 << 20) },
);

const shortName = fc.oneof(fc.constantFrom('', 'input', 'x', 'clf', 'app'), fc.string({ maxLength: 10 }), fc.string({ unit: 'binary', maxLength: 6 }));

/** A tensor whose data usually matches its shape (when that is small), otherwise random bytes. */
const tensorArb: fc.Arbitrary<Tensor> = fc.record({
  name: shortName,
  datatype: fc.constantFrom(...ALL_TYPES),
  shape: fc.array(dim, { maxLength: 4 }),
  match: fc.nat({ max: 5 }),
  junk: fc.uint8Array({ maxLength: 48 }),
}).map(({ name, datatype, shape, match, junk }) => {
  let n = 1;
  for (const d of shape) n *= d;
  const size = ELEMENT_SIZE[datatype];
  const want = n * size;
  const data = match > 0 && size > 0 && n >= 0 && want <= 4096 ? new Uint8Array(want).fill(match) : junk;
  return { name, datatype, shape, data };
});

const int64ish = fc.oneof(
  { weight: 6, arbitrary: fc.nat({ max: 1_000_000 }) },
  { weight: 1, arbitrary: fc.constantFrom(-1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER) },
);
const id64 = fc.oneof(fc.bigInt({ min: 0n, max: 1000n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }));
const tensorList = fc.oneof({ weight: 9, arbitrary: fc.array(tensorArb, { maxLength: 3 }) }, { weight: 1, arbitrary: fc.array(tensorArb, { minLength: 4, maxLength: 6 }) });

const requestArb: fc.Arbitrary<RequestInit> = fc.record({
  id: id64, model: shortName, version: int64ish, timeoutUs: int64ish, deadlineUnixUs: int64ish,
  inputs: tensorList, outputs: fc.array(shortName, { maxLength: 3 }), app: shortName, user: shortName,
});
const feedbackArb: fc.Arbitrary<FeedbackInit> = fc.record({
  id: id64, app: shortName, user: shortName, inputs: tensorList, label: fc.double(),
});
const responseArb: fc.Arbitrary<WireResponse> = fc.record({
  id: id64, model: shortName, version: fc.nat(), outputs: tensorList,
  error: fc.option(fc.record({ code: fc.constantFrom(...(Object.keys(ErrorCodes) as ErrorCode[])), message: fc.string({ maxLength: 20 }) }), { nil: undefined }),
  isDefault: fc.boolean(), defaultExplanation: fc.string({ maxLength: 12 }),
  modelsUsed: fc.array(shortName, { maxLength: 3 }), modelsMissing: fc.array(shortName, { maxLength: 3 }),
}, { requiredKeys: ['id', 'model', 'version', 'outputs'] });

export const frameArb: fc.Arbitrary<FrameInit> = fc.record({
  requests: fc.array(requestArb, { maxLength: 4 }),
  feedback: fc.array(feedbackArb, { maxLength: 2 }),
  cancel: fc.array(id64, { maxLength: 3 }),
  responses: fc.array(responseArb, { maxLength: 2 }),
}, { requiredKeys: [] });

/** The decoder's contract for one tensor: is it refused? */
function tensorRefused(t: Tensor, limits: WireLimits): boolean {
  if (t.shape.length > limits.maxDims) return true;
  let n = 1;
  for (const d of t.shape) {
    if (d < 0) return true;
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return true;
  }
  const size = ELEMENT_SIZE[t.datatype];
  return size > 0 && t.data.byteLength !== n * size;
}

function tensorsRefused(ts: readonly Tensor[] | undefined, limits: WireLimits): boolean {
  return (ts ?? []).length > limits.maxTensorsPerRequest || (ts ?? []).some((t) => tensorRefused(t, limits));
}

function requestRefused(r: RequestInit, limits: WireLimits): boolean {
  return (!r.model && !r.app) || r.version! < 0 || r.timeoutUs! < 0 || r.deadlineUnixUs! < 0
    || r.outputs!.length > limits.maxTensorsPerRequest || tensorsRefused(r.inputs, limits);
}

/** A string as it comes back from UTF-8 (lone surrogates become U+FFFD). */
function utf8(s: string | undefined): string {
  return Buffer.from(s ?? '', 'utf8').toString('utf8');
}

function sameTensors(decoded: readonly Tensor[], sent: readonly Tensor[]): boolean {
  return decoded.length === sent.length && decoded.every((t, i) => {
    const u = sent[i]!;
    return t.name === utf8(u.name) && t.datatype === u.datatype && t.shape.join() === u.shape.join()
      && Buffer.compare(Buffer.from(t.data), Buffer.from(u.data)) === 0;
  });
}

/** Check a decoded frame against what was encoded; throws on any disagreement. */
function checkRoundTrip(init: FrameInit, f: DecodedFrame, limits: WireLimits): void {
  const fail = (what: string): never => {
    throw new Error(`structured frame: ${what}`);
  };
  const reqs = init.requests ?? [];
  if (f.requests.length !== reqs.length || f.feedback.length !== (init.feedback ?? []).length
    || f.responses.length !== (init.responses ?? []).length || f.cancel.length !== (init.cancel ?? []).length) fail('item counts differ');
  reqs.forEach((r, i) => {
    const d = f.requests[i]!;
    if (d.id !== r.id) fail(`request ${i} id`);
    if (requestRefused(r, limits) !== (d.error !== undefined)) fail(`request ${i}: refused=${d.error !== undefined}, oracle says ${requestRefused(r, limits)}`);
    if (d.error === undefined && (d.model !== utf8(r.model) || d.app !== utf8(r.app) || d.user !== utf8(r.user) || !sameTensors(d.inputs, r.inputs!)
      || d.outputs.join('\0') !== r.outputs!.map(utf8).join('\0') || d.version !== r.version || d.timeoutUs !== r.timeoutUs)) fail(`request ${i} differs`);
  });
  (init.feedback ?? []).forEach((b, i) => {
    const d = f.feedback[i]!;
    const refused = !b.app || tensorsRefused(b.inputs, limits);
    if (refused !== (d.error !== undefined)) fail(`feedback ${i}: refused=${d.error !== undefined}, oracle says ${refused}`);
    if (d.error === undefined && (!sameTensors(d.inputs, b.inputs!) || !(d.label === b.label || (Number.isNaN(d.label) && Number.isNaN(b.label))))) fail(`feedback ${i} differs`);
  });
  (init.cancel ?? []).forEach((c, i) => {
    if (f.cancel[i] !== c) fail(`cancel ${i}`);
  });
}

/**
 * An amplification attempt the encoder never writes: `requests` requests whose input vectors all
 * point at one shared vector of `tensors` references to one shared UINT8 tensor of `dataBytes`
 * bytes. Decoding copies each reference, so the frame claims requests × tensors × dataBytes bytes.
 */
export function sharedSubObjectFrame(requests: number, tensors: number, dataBytes: number): Uint8Array {
  const b = new Builder(1024);
  const data = b.createByteVector(new Uint8Array(dataBytes));
  const shape = fb.Tensor.createShapeVector(b, [BigInt(dataBytes)]);
  const tensor = fb.Tensor.createTensor(b, b.createString('x'), fb.DataType.UINT8, shape, data);
  const inputs = fb.Request.createInputsVector(b, new Array<number>(tensors).fill(tensor));
  const model = b.createString('m');
  const reqs = Array.from({ length: requests }, (_, i) => fb.Request.createRequest(b, BigInt(i + 1), model, 0n, 0n, 0n, inputs, 0, 0, 0));
  const list = fb.Frame.createRequestsVector(b, reqs);
  fb.Frame.startFrame(b);
  fb.Frame.addRequests(b, list);
  fb.Frame.finishFrameBuffer(b, fb.Frame.endFrame(b));
  return b.asUint8Array().slice();
}

const sharedArb = fc.record({
  requests: fc.oneof({ weight: 9, arbitrary: fc.integer({ min: 1, max: 64 }) }, { weight: 1, arbitrary: fc.constantFrom(1024, 4096) }),
  tensors: fc.integer({ min: 1, max: 64 }),
  dataBytes: fc.oneof(fc.nat({ max: 4096 }), fc.constantFrom(65536, 256 * 1024)),
});

export function wireStructured(runs: number, seed: number): Tally {
  const t = new Tally('wire.structured', seed, ['BAD_FRAME']);
  const arb = fc.oneof(
    { weight: 99, arbitrary: fc.record({ kind: fc.constant('frame' as const), init: frameArb, which: fc.nat({ max: 7 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('shared' as const), shape: sharedArb }) },
  );
  fc.assert(fc.property(arb, (c) => {
    if (c.kind === 'shared') {
      // Refused as a whole (BAD_FRAME) or decoded within the output bound the harness checks.
      decodeOne(t, sharedSubObjectFrame(c.shape.requests, c.shape.tensors, c.shape.dataBytes), DEFAULT_WIRE_LIMITS);
      return;
    }
    const limits = c.which === 0 ? SMALL_LIMITS : DEFAULT_WIRE_LIMITS;
    const bytes = encodeFrame(c.init);
    const f = decodeOne(t, bytes, limits);
    // A frame the encoder wrote is always decodable as a whole (only items may be refused).
    if (f === undefined) throw new Error('an encoded frame was refused as a whole');
    checkRoundTrip(c.init, f, limits);
  }), fcOptions(runs, seed));
  return t.finish();
}

// ---------------------------------------------------------------------------------------------
// mutations of valid frames

/** Valid frames to mutate: typical requests plus a sample of random structured frames. */
export function seedFrames(seed: number, count = 96): Uint8Array[] {
  const input = (n: number): Tensor => ({ name: 'input', datatype: 'FP32', shape: [n, 64], data: new Uint8Array(n * 256).fill(7) });
  const typical: FrameInit[] = [
    { requests: [{ id: 1n, model: 'clf', inputs: [input(1)], timeoutUs: 100_000 }] },
    { requests: [{ id: 2n, model: 'clf', version: 1, inputs: [input(2)], outputs: ['label', 'probabilities'] }, { id: 3n, app: 'app', user: 'u', inputs: [input(1)] }] },
    { feedback: [{ id: 4n, app: 'app', user: 'u', label: 3, inputs: [input(1)] }], cancel: [9n, 10n] },
    { responses: [{ id: 5n, model: 'clf', version: 1, outputs: [{ name: 'label', datatype: 'INT64', shape: [1], data: new Uint8Array(8) }], modelsUsed: ['clf:1'] }] },
    { requests: [{ id: 6n, model: 'm', inputs: [{ name: 's', datatype: 'BYTES', shape: [2], data: new Uint8Array([1, 0, 0, 0, 65, 0, 0, 0, 0]) }] }] },
  ];
  const sampled = fc.sample(frameArb, { numRuns: count, seed });
  return [...typical, ...sampled].map((f) => encodeFrame(f));
}

export function wireMutated(runs: number, seed: number): Tally {
  const t = new Tally('wire.mutated', seed, ['BAD_FRAME']);
  const pool = seedFrames(seed);
  fc.assert(fc.property(fc.nat({ max: pool.length - 1 }), byteMutations(5), fc.nat({ max: 7 }), fc.boolean(), (which, ops, lim, keepIdent) => {
    const bytes = applyByteOps(pool[which]!, ops, pool, keepIdent ? 8 : 0);
    decodeOne(t, bytes, lim === 0 ? SMALL_LIMITS : DEFAULT_WIRE_LIMITS);
  }), fcOptions(runs, seed));
  return t.finish();
}

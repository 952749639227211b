/**
 * Fuzz campaigns for the Open Inference Protocol request parser (`parseInferRequest`,
 * src/protocol/oip-decode.ts), JSON and binary tensor forms:
 *  - `oipJsonRandom`: random JSON values, random text and random bytes as the body;
 *  - `oipStructured`: valid requests (every datatype, JSON or binary data) with unknown junk
 *    keys added anywhere, which must parse to exactly the tensors sent, or with a
 *    prototype-polluting key, which must be refused; plus requests whose every field is drawn
 *    from valid values or typed junk;
 *  - `oipMutated`: byte mutations of valid bodies, and JSON-level mutations of their header;
 *  - `oipHeaderLength`: valid bodies with a wrong Inference-Header-Content-Length, always refused.
 * Refusals must be BAD_REQUEST, INVALID_INPUT or UNSUPPORTED_DATATYPE. An accepted request's
 * tensors must hold exactly the bytes their shape declares, within the element limit.
 */
import fc from 'fast-check';
import type { ErrorCode } from '../../src/errors.js';
import { parseInferRequest } from '../../src/protocol/oip-decode.js';
import { encodeInferRequest } from '../../src/protocol/oip-encode.js';
import type { OipEncoded, OipInferRequest, OipLimits } from '../../src/protocol/oip-types.js';
import { ELEMENT_SIZE, type DataType } from '../../src/tensor/datatype.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Tally, fcOptions, type Accepted } from './harness.js';
import { applyByteOps, applyJsonOps, byteMutations, edgeValue, HOSTILE_KEYS, jsonMutations } from './mutate.js';
import { ALL_TYPES } from './wire-campaigns.js';

export const OIP_CODES: readonly ErrorCode[] = ['BAD_REQUEST', 'INVALID_INPUT', 'UNSUPPORTED_DATATYPE'];
const BIG: OipLimits = { maxElements: 1 << 16 };
const SMALL: OipLimits = { maxElements: 16 };
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
const utf8 = new TextEncoder();

/** Elements of BYTES wire data, or -1 when it does not split into length-prefixed elements. */
function bytesElements(b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let n = 0;
  for (let off = 0; off < b.length; n++) {
    if (b.length - off < 4) return -1;
    const len = dv.getUint32(off, true);
    if (len > b.length - off - 4) return -1;
    off += 4 + len;
  }
  return n;
}

/** Invariants of an accepted request; returns the bytes its tensors hold. */
export function inspectRequest(r: OipInferRequest, limits: OipLimits): Accepted {
  let bytes = 0;
  const names = new Set<string>();
  if (r.inputs.length === 0) throw new Error('accepted a request without inputs');
  for (const t of r.inputs) {
    if (names.has(t.name)) throw new Error(`accepted input '${t.name}' twice`);
    names.add(t.name);
    let n = 1;
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`accepted dim ${String(d)}`);
      n *= d;
    }
    if (n > limits.maxElements) throw new Error(`accepted ${n} elements past the limit ${limits.maxElements}`);
    const size = ELEMENT_SIZE[t.datatype];
    const ok = size > 0 ? t.data.byteLength === n * size : bytesElements(t.data) === n;
    if (!ok) throw new Error(`accepted ${t.datatype}[${t.shape.join(',')}] with ${t.data.byteLength} data bytes`);
    bytes += t.data.byteLength;
  }
  return { outputBytes: bytes };
}

function parseOne(t: Tally, body: Uint8Array, headerLength: number | undefined, limits: OipLimits): OipInferRequest | undefined {
  return t.check(body, () => parseInferRequest(body, headerLength, limits), (r) => inspectRequest(r, limits));
}

// ---------------------------------------------------------------------------------------------
// valid requests

/** Random bytes turned into valid values of `dt` (finite floats, 0/1 booleans), `count` elements. */
function valuesOf(dt: DataType, count: number, noise: Uint8Array, strings: readonly string[]): Uint8Array {
  if (dt === 'BYTES') {
    const parts = Array.from({ length: count }, (_, i) => utf8.encode(strings[i % strings.length] ?? ''));
    const out = new Uint8Array(parts.reduce((a, p) => a + 4 + p.length, 0));
    const dv = new DataView(out.buffer);
    let off = 0;
    for (const p of parts) {
      dv.setUint32(off, p.length, true);
      out.set(p, off + 4);
      off += 4 + p.length;
    }
    return out;
  }
  const size = ELEMENT_SIZE[dt];
  const out = new Uint8Array(count * size);
  for (let i = 0; i < out.length; i++) out[i] = noise[i % noise.length]!;
  for (let i = 0; i < count; i++) {
    const top = i * size + size - 1; // most significant byte (little-endian)
    if (dt === 'BOOL') out[i] = out[i]! & 1;
    else if (dt === 'FP16' || dt === 'FP32' || dt === 'FP64') {
      // Clear one exponent bit: no infinities or NaNs. And no -0: re-serialised JSON writes it as 0.
      out[top] = out[top]! & 0xbf;
      if (out[top] === 0x80 && out.subarray(i * size, top).every((b) => b === 0)) out[top] = 0;
    }
  }
  return out;
}

const smallShape = fc.array(fc.nat({ max: 4 }), { maxLength: 3 });

function validTensor(name: string): fc.Arbitrary<Tensor> {
  return fc.record({
    datatype: fc.constantFrom(...ALL_TYPES),
    shape: smallShape,
    noise: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    strings: fc.array(fc.oneof(fc.string({ maxLength: 5 }), fc.string({ maxLength: 3, unit: 'grapheme' })), { minLength: 1, maxLength: 3 }),
  }).map(({ datatype, shape, noise, strings }) => {
    const count = shape.reduce((a, b) => a * b, 1);
    return { name, datatype, shape, data: valuesOf(datatype, count, noise, strings) };
  });
}

export interface ValidRequest {
  inputs: Tensor[];
  encoded: OipEncoded;
}

const tensorName = fc.oneof(fc.constantFrom('input', 'x', 'k', 'input_ids'), fc.string({ maxLength: 6 }));

export const validRequestArb: fc.Arbitrary<ValidRequest> = fc.record({
  tensors: fc.uniqueArray(tensorName, { minLength: 1, maxLength: 3 }).chain((names) => fc.tuple(...names.map(validTensor))),
  binary: fc.boolean(),
  id: fc.option(fc.string({ maxLength: 8 }), { nil: undefined }),
  timeoutUs: fc.option(fc.nat(), { nil: undefined }),
  binaryOutput: fc.option(fc.boolean(), { nil: undefined }),
  outputs: fc.option(fc.uniqueArray(fc.record({ name: tensorName, binary: fc.option(fc.boolean(), { nil: undefined }) }, { requiredKeys: ['name'] }), {
    maxLength: 3, selector: (o) => o.name,
  }), { nil: undefined }),
}).map(({ tensors, binary, id, timeoutUs, binaryOutput, outputs }) => ({
  inputs: tensors,
  encoded: encodeInferRequest({ inputs: tensors, binary, id, timeoutUs, binaryOutput, outputs }),
}));

/** Does a parsed JSON value hold `__proto__`, `constructor` or `prototype` as a key anywhere? */
export function hasForbiddenKey(v: unknown): boolean {
  if (typeof v !== 'object' || v === null) return false;
  if (Array.isArray(v)) return v.some(hasForbiddenKey);
  return Object.keys(v).some((k) => FORBIDDEN.has(k) || hasForbiddenKey((v as Record<string, unknown>)[k]));
}

function sameTensors(a: readonly Tensor[], b: readonly Tensor[]): boolean {
  return a.length === b.length && a.every((t, i) => {
    const u = b[i]!;
    return t.name === u.name && t.datatype === u.datatype && t.shape.join() === u.shape.join()
      && Buffer.compare(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), Buffer.from(u.data.buffer, u.data.byteOffset, u.data.byteLength)) === 0;
  });
}

/** The JSON header of an encoded body, as a value. */
function headerOf(e: OipEncoded): unknown {
  const json = e.headerLength === undefined ? e.body : e.body.subarray(0, e.headerLength);
  return JSON.parse(Buffer.from(json.buffer, json.byteOffset, json.byteLength).toString('utf8'));
}

/** `json` text followed by the binary tail of `e`, with the matching header length. */
function withHeader(e: OipEncoded, json: string): { body: Uint8Array; headerLength?: number } {
  const head = utf8.encode(json);
  if (e.headerLength === undefined) return { body: head };
  const tail = e.body.subarray(e.headerLength);
  const body = new Uint8Array(head.length + tail.length);
  body.set(head);
  body.set(tail, head.length);
  return { body, headerLength: head.length };
}

// ---------------------------------------------------------------------------------------------
// campaigns

const randomBody: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 3, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => utf8.encode(JSON.stringify(v))) },
  { weight: 2, arbitrary: fc.dictionary(fc.oneof(fc.constantFrom(...HOSTILE_KEYS), fc.string({ maxLength: 6 })), edgeValue, { maxKeys: 4 }).map((v) => utf8.encode(JSON.stringify(v))) },
  { weight: 1, arbitrary: fc.string({ maxLength: 64 }).map((s) => utf8.encode(s)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
);

export function oipJsonRandom(runs: number, seed: number): Tally {
  const t = new Tally('oip.json-random', seed, OIP_CODES);
  fc.assert(fc.property(randomBody, fc.option(fc.nat({ max: 80 }), { nil: undefined }), fc.boolean(), (body, headerLength, small) => {
    parseOne(t, body, headerLength, small ? SMALL : BIG);
  }), fcOptions(runs, seed));
  return t.finish();
}

/** Junk keys the parser does not read (a forbidden one is added separately). */
const junkKeyOps = fc.array(fc.record({
  kind: fc.constant('addKey' as const),
  path: fc.array(fc.nat(), { maxLength: 4 }),
  key: fc.oneof(fc.constantFrom('x', 'extra', 'model_name', 'toString', 'valueOf', 'hasOwnProperty', 'length', '$ref', 'zz'), fc.string({ minLength: 3, maxLength: 6 }).map((s) => `junk_${s}`)),
  value: edgeValue,
}), { maxLength: 3 });

/** A tensor whose every field is either valid or typed junk. */
const junkTensor = fc.record({
  name: fc.oneof({ weight: 3, arbitrary: tensorName }, { weight: 1, arbitrary: edgeValue }),
  datatype: fc.oneof({ weight: 4, arbitrary: fc.constantFrom<unknown>(...ALL_TYPES) }, { weight: 1, arbitrary: fc.constantFrom<unknown>('INVALID', 'fp32', 'FP128', '', 'STRING') }, { weight: 1, arbitrary: edgeValue }),
  shape: fc.oneof({ weight: 4, arbitrary: fc.array(fc.oneof(fc.nat({ max: 4 }), fc.constantFrom(-1, 0.5, 2 ** 31, 2 ** 53, 1e300)), { maxLength: 4 }) }, { weight: 1, arbitrary: edgeValue }),
  elements: fc.array(fc.oneof({ weight: 4, arbitrary: fc.integer({ min: -2, max: 300 }) }, { weight: 2, arbitrary: fc.double() }, { weight: 1, arbitrary: edgeValue }), { minLength: 1, maxLength: 8 }),
  form: fc.constantFrom('match', 'nested', 'random', 'binary', 'both', 'none'),
  binarySize: fc.oneof(fc.nat({ max: 64 }), edgeValue),
}).map((j) => {
  const o: Record<string, unknown> = { name: j.name, datatype: j.datatype, shape: j.shape };
  const count = Array.isArray(j.shape) && j.shape.every((d) => typeof d === 'number' && d >= 0 && d <= 4) ? (j.shape as number[]).reduce((a, b) => a * b, 1) : 3;
  const data = Array.from({ length: count }, (_, i) => j.elements[i % j.elements.length]);
  if (j.form === 'match') o.data = data;
  else if (j.form === 'nested') o.data = [data.slice(0, 1), data.slice(1)];
  else if (j.form === 'random') o.data = j.elements;
  else if (j.form === 'binary') o.parameters = { binary_data_size: j.binarySize };
  else if (j.form === 'both') Object.assign(o, { data, parameters: { binary_data_size: j.binarySize } });
  return o;
});

const junkRequest = fc.record({
  id: fc.oneof(fc.string({ maxLength: 6 }), edgeValue),
  parameters: fc.oneof(fc.record({ timeout: fc.oneof(fc.nat(), edgeValue), priority: fc.oneof(fc.nat(), edgeValue), binary_data_output: fc.oneof(fc.boolean(), edgeValue) }, { requiredKeys: [] }), edgeValue),
  inputs: fc.oneof({ weight: 5, arbitrary: fc.array(junkTensor, { maxLength: 3 }) }, { weight: 1, arbitrary: edgeValue }),
  outputs: fc.oneof(fc.array(fc.record({ name: fc.oneof(tensorName, edgeValue), parameters: fc.oneof(fc.record({ binary_data: fc.oneof(fc.boolean(), edgeValue) }), edgeValue) }, { requiredKeys: [] }), { maxLength: 3 }), edgeValue),
}, { requiredKeys: ['inputs'] });

export function oipStructured(runs: number, seed: number): Tally {
  const t = new Tally('oip.structured', seed, OIP_CODES);
  const arb = fc.oneof(
    fc.record({ kind: fc.constant('valid' as const), req: validRequestArb, junk: junkKeyOps, hostile: fc.nat({ max: 9 }), hostilePath: fc.array(fc.nat(), { maxLength: 4 }) }),
    fc.record({ kind: fc.constant('junk' as const), req: junkRequest, tail: fc.uint8Array({ maxLength: 48 }), small: fc.boolean() }),
  );
  fc.assert(fc.property(arb, (c) => {
    if (c.kind === 'junk') {
      const json = utf8.encode(JSON.stringify(c.req));
      const body = new Uint8Array(json.length + c.tail.length);
      body.set(json);
      body.set(c.tail, json.length);
      parseOne(t, body, c.tail.length > 0 ? json.length : undefined, c.small ? SMALL : BIG);
      return;
    }
    // hostile === 0: also add a forbidden key somewhere (junk values may hold some too).
    const ops = c.hostile === 0 ? [...c.junk, { kind: 'addKey' as const, path: c.hostilePath, key: [...FORBIDDEN][c.hostilePath.length % 3]!, value: 1 }] : c.junk;
    const json = applyJsonOps(headerOf(c.req.encoded), ops);
    const { body, headerLength } = withHeader(c.req.encoded, json);
    const parsed = parseOne(t, body, headerLength, BIG);
    if (hasForbiddenKey(JSON.parse(json))) {
      if (parsed !== undefined) throw new Error('a body with a prototype-polluting key was accepted');
    } else if (parsed === undefined || !sameTensors(parsed.inputs, c.req.inputs)) {
      throw new Error('a valid request with unknown junk keys was refused or parsed differently');
    }
  }), fcOptions(runs, seed));
  return t.finish();
}

/** Valid encoded requests to mutate. */
export function seedRequests(seed: number, count = 96): OipEncoded[] {
  return fc.sample(validRequestArb, { numRuns: count, seed }).map((r) => r.encoded);
}

export function oipMutated(runs: number, seed: number): Tally {
  const t = new Tally('oip.mutated', seed, OIP_CODES);
  const pool = seedRequests(seed);
  const bodies = pool.map((e) => e.body);
  const headers = pool.map(headerOf);
  const arb = fc.oneof(
    fc.record({ kind: fc.constant('bytes' as const), which: fc.nat({ max: pool.length - 1 }), ops: byteMutations(5) }),
    fc.record({ kind: fc.constant('json' as const), which: fc.nat({ max: pool.length - 1 }), ops: jsonMutations(3), stale: fc.nat({ max: 9 }) }),
  );
  fc.assert(fc.property(arb, fc.boolean(), (c, small) => {
    const e = pool[c.which]!;
    const limits = small ? SMALL : BIG;
    if (c.kind === 'bytes') {
      parseOne(t, applyByteOps(e.body, c.ops, bodies), e.headerLength, limits);
      return;
    }
    const { body, headerLength } = withHeader(e, applyJsonOps(headers[c.which], c.ops));
    // Now and then keep the old header length: the JSON changed size but the header did not.
    parseOne(t, body, c.stale === 0 ? e.headerLength : headerLength, limits);
  }), fcOptions(runs, seed));
  return t.finish();
}

const wrongLength = fc.oneof(
  fc.integer({ min: -8, max: 8 }).filter((d) => d !== 0).map((d) => ({ delta: d })),
  fc.constantFrom<number | undefined>(undefined, -1, 0, 0.5, NaN, Infinity, 2 ** 53, 2 ** 32, Number.MAX_SAFE_INTEGER).map((v) => ({ value: v })),
  fc.nat({ max: 4096 }).map((v) => ({ value: v })),
);

export function oipHeaderLength(runs: number, seed: number): Tally {
  const t = new Tally('oip.header-length', seed, OIP_CODES);
  const pool = seedRequests(seed ^ 0x5eed);
  fc.assert(fc.property(fc.nat({ max: pool.length - 1 }), wrongLength, (which, w) => {
    const e = pool[which]!;
    const right = e.headerLength ?? e.body.length;
    const given = 'delta' in w ? right + w.delta : w.value;
    // Without binary data, no header and a header covering the whole body mean the same.
    const fine = given === right || (given === undefined && e.headerLength === undefined) || (given === undefined && right === e.body.length);
    const parsed = parseOne(t, e.body, given, BIG);
    if (fine !== (parsed !== undefined)) {
      throw new Error(`header length ${given} for a ${e.body.length}-byte body with a ${right}-byte header: accepted=${parsed !== undefined}`);
    }
  }), fcOptions(runs, seed));
  return t.finish();
}

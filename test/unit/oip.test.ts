import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SkiffError, type ErrorCode } from '../../src/errors.js';
import { decodeInferResponse, parseInferRequest } from '../../src/protocol/oip-decode.js';
import { encodeInferRequest, encodeInferResponse } from '../../src/protocol/oip-encode.js';
import { fp16FromNumber, fp16ToNumber } from '../../src/protocol/oip-shared.js';
import type { OipLimits } from '../../src/protocol/oip-types.js';
import { DATATYPES, ELEMENT_SIZE, type DataType } from '../../src/tensor/datatype.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const LIMITS: OipLimits = { maxElements: 1 << 20 };
const utf8 = new TextEncoder();

function jsonBody(obj: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(obj));
}

/** A Triton-style binary body built by hand: JSON header, then the sections back to back. */
function binaryBody(header: unknown, ...sections: Uint8Array[]): { body: Uint8Array; headerLength: number } {
  const head = jsonBody(header);
  return { body: Buffer.concat([head, ...sections]), headerLength: head.length };
}

function parse(obj: unknown, limits = LIMITS) {
  return parseInferRequest(jsonBody(obj), undefined, limits);
}

function oneInput(input: Record<string, unknown>): unknown {
  return { inputs: [{ name: 'x', ...input }] };
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

/** BYTES wire form, built independently of the module under test. */
function bytesWire(elements: (string | Uint8Array)[]): Uint8Array {
  const parts: Buffer[] = [];
  for (const e of elements) {
    const b = typeof e === 'string' ? Buffer.from(e, 'utf8') : Buffer.from(e);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(b.length);
    parts.push(len, b);
  }
  return new Uint8Array(Buffer.concat(parts));
}

function codeOf(fn: () => unknown): ErrorCode | 'none' {
  try {
    fn();
    return 'none';
  } catch (err) {
    assert.ok(err instanceof SkiffError, `expected a SkiffError, got ${String(err)}`);
    return err.code;
  }
}

function assertSameTensors(actual: Tensor[], expected: Tensor[]): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.equal(a.name, e.name);
    assert.equal(a.datatype, e.datatype);
    assert.deepEqual(a.shape, e.shape);
    assert.ok(Buffer.from(a.data).equals(Buffer.from(e.data)), `data of ${e.name} (${e.datatype}) differs`);
  }
}

/**
 * What a 64-bit integer tensor becomes after its JSON response is read by JSON.parse: each value
 * rounded to a double, clamped to the type's range. Other tensors are unchanged.
 */
function throughJsonNumbers(t: Tensor): Tensor {
  if (t.datatype !== 'INT64' && t.datatype !== 'UINT64') return t;
  const signed = t.datatype === 'INT64';
  const src = signed ? new BigInt64Array(t.data.slice().buffer) : new BigUint64Array(t.data.slice().buffer);
  const [min, max] = signed ? [-(2n ** 63n), 2n ** 63n - 1n] : [0n, 2n ** 64n - 1n];
  const out = signed ? new BigInt64Array(src.length) : new BigUint64Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const r = BigInt(Number(src[i]!));
    out[i] = r > max ? max : r < min ? min : r;
  }
  return { ...t, data: bytesOf(out) };
}

// One representative tensor per datatype, including the extremes of each range: the JSON a client
// would send, and the bytes it must become.
const CASES: { dt: DataType; json: unknown[]; bytes: Uint8Array }[] = [
  { dt: 'BOOL', json: [true, false, 1, 0], bytes: new Uint8Array([1, 0, 1, 0]) },
  { dt: 'UINT8', json: [0, 255, 7, 128], bytes: new Uint8Array([0, 255, 7, 128]) },
  { dt: 'UINT16', json: [0, 65535, 300, 1], bytes: bytesOf(new Uint16Array([0, 65535, 300, 1])) },
  { dt: 'UINT32', json: [0, 4294967295, 70000, 1], bytes: bytesOf(new Uint32Array([0, 4294967295, 70000, 1])) },
  {
    dt: 'UINT64', json: [0, '18446744073709551615', 2 ** 53 - 1, '9007199254740993'],
    bytes: bytesOf(new BigUint64Array([0n, 2n ** 64n - 1n, 2n ** 53n - 1n, 2n ** 53n + 1n])),
  },
  { dt: 'INT8', json: [-128, 127, 0, -1], bytes: bytesOf(new Int8Array([-128, 127, 0, -1])) },
  { dt: 'INT16', json: [-32768, 32767, 0, -1], bytes: bytesOf(new Int16Array([-32768, 32767, 0, -1])) },
  { dt: 'INT32', json: [-2147483648, 2147483647, 0, -1], bytes: bytesOf(new Int32Array([-2147483648, 2147483647, 0, -1])) },
  {
    dt: 'INT64', json: ['-9223372036854775808', '9223372036854775807', -(2 ** 53 - 1), 5],
    bytes: bytesOf(new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, -(2n ** 53n - 1n), 5n])),
  },
  { dt: 'FP16', json: [1, -2, 65504, 2 ** -24], bytes: bytesOf(new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001])) },
  { dt: 'FP32', json: [1.5, -2.5e-8, 3.4028234663852886e38, 1e-45], bytes: bytesOf(new Float32Array([1.5, -2.5e-8, 3.4028234663852886e38, 1e-45])) },
  { dt: 'FP64', json: [Math.PI, -1e308, 5e-324, 0], bytes: bytesOf(new Float64Array([Math.PI, -1e308, 5e-324, 0])) },
  { dt: 'BYTES', json: ['', 'abc', 'héllo 🐟', '\u0000'], bytes: bytesWire(['', 'abc', 'héllo 🐟', '\u0000']) },
];

test('every datatype: JSON data becomes the right little-endian bytes', () => {
  for (const c of CASES) {
    const r = parse(oneInput({ datatype: c.dt, shape: [2, 2], data: c.json }));
    assertSameTensors(r.inputs, [{ name: 'x', datatype: c.dt, shape: [2, 2], data: c.bytes }]);
  }
});

test('every datatype: a hand-built binary body parses to its bytes, as views into the body', () => {
  for (const c of CASES) {
    const { body, headerLength } = binaryBody(
      { inputs: [{ name: 'x', datatype: c.dt, shape: [4], parameters: { binary_data_size: c.bytes.length } }] },
      c.bytes,
    );
    const r = parseInferRequest(body, headerLength, LIMITS);
    assertSameTensors(r.inputs, [{ name: 'x', datatype: c.dt, shape: [4], data: c.bytes }]);
    assert.equal(r.inputs[0]!.data.buffer, body.buffer, 'binary input data should alias the body');
  }
});

test('every datatype round-trips through encodeInferRequest/parseInferRequest, JSON and binary', () => {
  for (const c of CASES) {
    const t: Tensor = { name: 'in', datatype: c.dt, shape: [1, 4], data: c.bytes };
    for (const binary of [false, true]) {
      const e = encodeInferRequest({ inputs: [t], binary });
      assert.equal(e.headerLength !== undefined, binary);
      assertSameTensors(parseInferRequest(e.body, e.headerLength, LIMITS).inputs, [t]);
    }
  }
});

test('every datatype round-trips through encodeInferResponse/decodeInferResponse, JSON and binary', () => {
  for (const c of CASES) {
    const t: Tensor = { name: 'out', datatype: c.dt, shape: [4], data: c.bytes };
    for (const binary of [false, true]) {
      const e = encodeInferResponse({ modelName: 'm', modelVersion: '3', id: 'q', outputs: [t], binary: () => binary });
      assert.equal(e.headerLength !== undefined, binary);
      const d = decodeInferResponse(e.body, e.headerLength);
      assert.equal(d.model_name, 'm');
      assert.equal(d.model_version, '3');
      assert.equal(d.id, 'q');
      assertSameTensors(d.outputs, [binary ? t : throughJsonNumbers(t)]);
    }
  }
});

test('JSON response text: numbers, booleans, strings, all integer digits, flat data', () => {
  const outputs: Tensor[] = [
    { name: 'b', datatype: 'BOOL', shape: [2], data: new Uint8Array([0, 3]) },
    { name: 'i', datatype: 'INT64', shape: [2], data: bytesOf(new BigInt64Array([2n ** 62n + 1n, -7n])) },
    { name: 'h', datatype: 'FP16', shape: [2], data: bytesOf(new Uint16Array([0x3800, 0xc000])) },
    { name: 's', datatype: 'BYTES', shape: [1, 1], data: bytesWire(['a"b']) },
    { name: 'f', datatype: 'FP32', shape: [2, 2], data: bytesOf(new Float32Array([0.5, -1, 2, 3])) },
  ];
  const e = encodeInferResponse({ modelName: 'm', modelVersion: '1', outputs, binary: () => false });
  const text = Buffer.from(e.body).toString('utf8');
  assert.ok(text.includes('[4611686018427387905,-7]'), text);
  const doc = JSON.parse(text) as { id?: string; outputs: { name: string; datatype: string; shape: number[]; data: unknown[] }[] };
  assert.equal(doc.id, undefined);
  assert.deepEqual(doc.outputs.map((o) => o.data), [[false, true], [2 ** 62, -7], [0.5, -2], ['a"b'], [0.5, -1, 2, 3]]);
  assert.deepEqual(doc.outputs.map((o) => o.shape), [[2], [2], [2], [1, 1], [2, 2]]);
  assert.deepEqual(doc.outputs.map((o) => o.datatype), ['BOOL', 'INT64', 'FP16', 'BYTES', 'FP32']);
});

test('binary response: JSON header then raw sections in output order, mixed with JSON outputs', () => {
  const a: Tensor = { name: 'a', datatype: 'FP32', shape: [3], data: bytesOf(new Float32Array([1, 2, 3])) };
  const b: Tensor = { name: 'b', datatype: 'INT8', shape: [2], data: new Uint8Array([1, 255]) };
  const c: Tensor = { name: 'c', datatype: 'BYTES', shape: [2], data: bytesWire(['x', 'yz']) };
  const e = encodeInferResponse({ modelName: 'm', modelVersion: '1', outputs: [a, b, c], binary: (n) => n !== 'b' });
  assert.ok(e.headerLength !== undefined);
  const head = JSON.parse(Buffer.from(e.body.subarray(0, e.headerLength)).toString()) as {
    outputs: { name: string; data?: unknown; parameters?: { binary_data_size: number } }[];
  };
  assert.deepEqual(head.outputs[0]!.parameters, { binary_data_size: 12 });
  assert.equal(head.outputs[0]!.data, undefined);
  assert.deepEqual(head.outputs[1]!.data, [1, -1]);
  assert.equal(head.outputs[1]!.parameters, undefined);
  assert.deepEqual(head.outputs[2]!.parameters, { binary_data_size: c.data.length });
  assert.ok(Buffer.from(e.body.subarray(e.headerLength)).equals(Buffer.concat([a.data, c.data])));
  assertSameTensors(decodeInferResponse(e.body, e.headerLength).outputs, [a, b, c]);
});

test('responses: non-finite floats are null in JSON and NaN again when decoded; bad BYTES are replaced', () => {
  const f: Tensor = { name: 'f', datatype: 'FP32', shape: [3], data: bytesOf(new Float32Array([NaN, Infinity, -1])) };
  const h: Tensor = { name: 'h', datatype: 'FP16', shape: [1], data: bytesOf(new Uint16Array([0x7c00])) };
  const s: Tensor = { name: 's', datatype: 'BYTES', shape: [1], data: bytesWire([new Uint8Array([0x61, 0xff])]) };
  const e = encodeInferResponse({ modelName: 'm', modelVersion: '1', outputs: [f, h, s], binary: () => false });
  const doc = JSON.parse(Buffer.from(e.body).toString()) as { outputs: { data: unknown[] }[] };
  assert.deepEqual(doc.outputs.map((o) => o.data), [[null, null, -1], [null], ['a\ufffd']]);
  const d = decodeInferResponse(e.body);
  const fd = new Float32Array(d.outputs[0]!.data.slice().buffer);
  assert.ok(Number.isNaN(fd[0]) && Number.isNaN(fd[1]) && fd[2] === -1);
  assert.ok(Number.isNaN(fp16ToNumber(new Uint16Array(d.outputs[1]!.data.slice().buffer)[0]!)));
});

test('negative zero is kept both ways in JSON', () => {
  const text = '{"inputs":[{"name":"a","datatype":"FP32","shape":[2],"data":[-0,0]},{"name":"b","datatype":"FP64","shape":[1],"data":[-0.0]},{"name":"c","datatype":"FP16","shape":[1],"data":[-0]}]}';
  const r = parseInferRequest(utf8.encode(text), undefined, LIMITS);
  const expected: Tensor[] = [
    { name: 'a', datatype: 'FP32', shape: [2], data: bytesOf(new Float32Array([-0, 0])) },
    { name: 'b', datatype: 'FP64', shape: [1], data: bytesOf(new Float64Array([-0])) },
    { name: 'c', datatype: 'FP16', shape: [1], data: bytesOf(new Uint16Array([0x8000])) },
  ];
  assertSameTensors(r.inputs, expected);
  assert.ok(Object.is(new Float32Array(r.inputs[0]!.data.slice().buffer)[0], -0));
  const e = encodeInferResponse({ modelName: 'm', modelVersion: '1', outputs: expected, binary: () => false });
  assert.ok(Buffer.from(e.body).toString().includes('"data":[-0,0]'));
  assertSameTensors(decodeInferResponse(e.body).outputs, expected);
  assertSameTensors(parseInferRequest(encodeInferRequest({ inputs: expected }).body, undefined, LIMITS).inputs, expected);
});

test('encoders refuse tensors whose bytes do not match their shape', () => {
  const bad: Tensor = { name: 'x', datatype: 'FP32', shape: [2], data: new Uint8Array(7) };
  assert.equal(codeOf(() => encodeInferResponse({ modelName: 'm', modelVersion: '1', outputs: [bad], binary: () => false })), 'INTERNAL');
  assert.equal(codeOf(() => encodeInferResponse({ modelName: 'm', modelVersion: '1', outputs: [bad], binary: () => true })), 'INTERNAL');
  assert.equal(codeOf(() => encodeInferRequest({ inputs: [bad] })), 'INVALID_INPUT');
  assert.equal(codeOf(() => encodeInferRequest({ inputs: [bad], binary: true })), 'INVALID_INPUT');
  const badBytes: Tensor = { name: 's', datatype: 'BYTES', shape: [1], data: new Uint8Array([9, 0, 0, 0, 1]) };
  assert.equal(codeOf(() => encodeInferRequest({ inputs: [badBytes], binary: true })), 'INVALID_INPUT');
});

test('request encoder: values with no JSON form are refused, binary form carries them', () => {
  const nan: Tensor = { name: 'x', datatype: 'FP64', shape: [1], data: bytesOf(new Float64Array([NaN])) };
  assert.equal(codeOf(() => encodeInferRequest({ inputs: [nan] })), 'INVALID_INPUT');
  const raw: Tensor = { name: 's', datatype: 'BYTES', shape: [1], data: bytesWire([new Uint8Array([0xc3])]) };
  assert.equal(codeOf(() => encodeInferRequest({ inputs: [raw] })), 'INVALID_INPUT');
  for (const t of [nan, raw]) {
    const e = encodeInferRequest({ inputs: [t], binary: true });
    assertSameTensors(parseInferRequest(e.body, e.headerLength, LIMITS).inputs, [t]);
  }
});

test('request fields: id, timeout, priority, binary outputs and per-output overrides', () => {
  const data = { name: 'x', datatype: 'INT32', shape: [1], data: [1] };
  const r = parse({
    id: 'abc', parameters: { timeout: 2500, priority: 2, binary_data_output: true, unknown_extension: { any: 1 } },
    inputs: [data], outputs: [{ name: 'y' }, { name: 'z', parameters: { binary_data: false } }],
  });
  assert.equal(r.id, 'abc');
  assert.equal(r.timeoutUs, 2500);
  assert.equal(r.priority, 2);
  assert.equal(r.binaryOutput, true);
  assert.deepEqual(r.outputs, [{ name: 'y', binary: true }, { name: 'z', binary: false }]);

  const plain = parse({ inputs: [data] });
  assert.equal(plain.binaryOutput, false);
  assert.equal('id' in plain || 'timeoutUs' in plain || 'priority' in plain || 'outputs' in plain, false);
  assert.deepEqual(parse({ inputs: [data], outputs: [{ name: 'y', parameters: { binary_data: true } }] }).outputs, [{ name: 'y', binary: true }]);

  const e = encodeInferRequest({
    id: 'q', timeoutUs: 10, priority: 1, binaryOutput: true,
    inputs: [{ name: 'x', datatype: 'UINT8', shape: [1], data: new Uint8Array([4]) }], outputs: [{ name: 'o', binary: false }, { name: 'p' }],
  });
  const back = parseInferRequest(e.body, e.headerLength, LIMITS);
  assert.deepEqual(
    { id: back.id, t: back.timeoutUs, p: back.priority, b: back.binaryOutput, o: back.outputs },
    { id: 'q', t: 10, p: 1, b: true, o: [{ name: 'o', binary: false }, { name: 'p', binary: true }] },
  );
});

test('a Triton-client-style binary request: mixed binary and JSON inputs, sections in input order', () => {
  const a = bytesOf(new Int32Array([1, 2, 3, 4]));
  const c = bytesWire(['hello', '']);
  const { body, headerLength } = binaryBody({
    inputs: [
      { name: 'INPUT0', shape: [1, 4], datatype: 'INT32', parameters: { binary_data_size: 16 } },
      { name: 'INPUT1', shape: [2], datatype: 'FP64', data: [0.25, 8] },
      { name: 'INPUT2', shape: [2], datatype: 'BYTES', parameters: { binary_data_size: c.length } },
    ],
    outputs: [{ name: 'OUTPUT0', parameters: { binary_data: true } }],
  }, a, c);
  const r = parseInferRequest(body, headerLength, LIMITS);
  assertSameTensors(r.inputs, [
    { name: 'INPUT0', datatype: 'INT32', shape: [1, 4], data: a },
    { name: 'INPUT1', datatype: 'FP64', shape: [2], data: bytesOf(new Float64Array([0.25, 8])) },
    { name: 'INPUT2', datatype: 'BYTES', shape: [2], data: c },
  ]);
  assert.deepEqual(r.outputs, [{ name: 'OUTPUT0', binary: true }]);
});

test('nested data is flattened row-major; the count must still match', () => {
  const flat = parse(oneInput({ datatype: 'INT16', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }));
  const nested = parse(oneInput({ datatype: 'INT16', shape: [2, 3], data: [[1, 2, 3], [4, 5, 6]] }));
  const deeper = parse(oneInput({ datatype: 'INT16', shape: [2, 3], data: [[[1], [2, 3]], [4, [5, [6]]]] }));
  const expected = bytesOf(new Int16Array([1, 2, 3, 4, 5, 6]));
  for (const r of [flat, nested, deeper]) assertSameTensors(r.inputs, [{ name: 'x', datatype: 'INT16', shape: [2, 3], data: expected }]);
  assert.equal(parse(oneInput({ datatype: 'FP32', shape: [0, 3], data: [] })).inputs[0]!.data.length, 0);
  assert.equal(parse(oneInput({ datatype: 'FP32', shape: [2, 0], data: [[], []] })).inputs[0]!.data.length, 0);
  assert.equal(parse(oneInput({ datatype: 'FP32', shape: [], data: [7] })).inputs[0]!.data.length, 4);
  for (const data of [[1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7], [[1, 2, 3], [4, 5]], [[1, 2, 3], [4, 5, 6], [7]], [[]], []]) {
    assert.equal(codeOf(() => parse(oneInput({ datatype: 'INT16', shape: [2, 3], data }))), 'INVALID_INPUT', JSON.stringify(data));
  }
});

test('element values must fit the datatype', () => {
  const bad: [DataType, unknown][] = [
    ['UINT8', 256], ['UINT8', -1], ['INT8', -129], ['INT8', 128], ['UINT16', 65536], ['INT16', -32769],
    ['UINT32', -1], ['UINT32', 2 ** 32], ['INT32', 2 ** 31], ['INT32', 1.5], ['UINT8', 0.1], ['INT32', '5'],
    ['INT64', 2 ** 53], ['INT64', 1.5], ['INT64', '9223372036854775808'], ['INT64', '-9223372036854775809'],
    ['INT64', '12a'], ['INT64', ' 1'], ['INT64', '1e3'], ['INT64', ''], ['INT64', true],
    ['UINT64', -1], ['UINT64', '-1'], ['UINT64', '18446744073709551616'], ['UINT64', '123456789012345678901'],
    ['BOOL', 2], ['BOOL', 'true'], ['BOOL', null],
    ['FP32', '1.0'], ['FP32', null], ['FP32', 1e39], ['FP32', -3.5e38], ['FP64', true], ['FP16', 70000], ['FP16', -65520],
    ['BYTES', 5], ['BYTES', null], ['BYTES', 'lone \ud800 surrogate'], ['INT32', { a: 1 }],
    ['INT32', { toString: 1 }], ['FP32', { valueOf: {}, toString: {} }], ['BYTES', { toString: 'x' }], ['INT64', { toString: 1 }],
  ];
  for (const [dt, v] of bad) {
    assert.equal(codeOf(() => parse(oneInput({ datatype: dt, shape: [1], data: [v] }))), 'INVALID_INPUT', `${dt} ${JSON.stringify(v)}`);
  }
  // Just inside the ranges.
  assert.equal(codeOf(() => parse(oneInput({ datatype: 'FP16', shape: [1], data: [65519.99] }))), 'none');
  assert.equal(codeOf(() => parse(oneInput({ datatype: 'FP32', shape: [1], data: [3.4028235e38] }))), 'none');
  assert.equal(codeOf(() => parse(oneInput({ datatype: 'INT64', shape: [1], data: ['-0'] }))), 'none');
});

test('datatype, shape and structure errors carry the right codes', () => {
  const cases: [unknown, ErrorCode][] = [
    [oneInput({ datatype: 'FP8', shape: [1], data: [1] }), 'UNSUPPORTED_DATATYPE'],
    [oneInput({ datatype: 'INVALID', shape: [1], data: [1] }), 'UNSUPPORTED_DATATYPE'],
    [oneInput({ datatype: 'fp32', shape: [1], data: [1] }), 'UNSUPPORTED_DATATYPE'],
    [oneInput({ datatype: 11, shape: [1], data: [1] }), 'BAD_REQUEST'],
    [oneInput({ shape: [1], data: [1] }), 'BAD_REQUEST'],
    [oneInput({ datatype: 'FP32', shape: 1, data: [1] }), 'BAD_REQUEST'],
    [oneInput({ datatype: 'FP32', data: [1] }), 'BAD_REQUEST'],
    [oneInput({ datatype: 'FP32', shape: [-1], data: [1] }), 'INVALID_INPUT'],
    [oneInput({ datatype: 'FP32', shape: [-1, -1], data: [1] }), 'INVALID_INPUT'],
    [oneInput({ datatype: 'FP32', shape: [-2, -3], data: [1, 2, 3, 4, 5, 6] }), 'INVALID_INPUT'],
    [oneInput({ datatype: 'FP32', shape: [1.5], data: [1] }), 'INVALID_INPUT'],
    [oneInput({ datatype: 'FP32', shape: ['1'], data: [1] }), 'INVALID_INPUT'],
    [oneInput({ datatype: 'FP32', shape: [1] }), 'BAD_REQUEST'],
    [oneInput({ datatype: 'FP32', shape: [1], data: 1 }), 'BAD_REQUEST'],
    [oneInput({ datatype: 'FP32', shape: [1], data: [1], parameters: [] }), 'BAD_REQUEST'],
    [oneInput({ datatype: 'FP32', shape: [1], data: [1], parameters: { binary_data_size: 4 } }), 'BAD_REQUEST'],
    [oneInput({ datatype: 'FP32', shape: [1], parameters: { binary_data_size: -4 } }), 'BAD_REQUEST'],
    [{ inputs: [{ datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ inputs: [{ name: 7, datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ inputs: [] }, 'BAD_REQUEST'],
    [{ inputs: {} }, 'BAD_REQUEST'],
    [{ inputs: [5] }, 'BAD_REQUEST'],
    [{}, 'BAD_REQUEST'],
    [[], 'BAD_REQUEST'],
    ['inputs', 'BAD_REQUEST'],
    [{ id: 5, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ parameters: { timeout: -1 }, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ parameters: { timeout: '5' }, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ parameters: { priority: 0.5 }, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ parameters: { binary_data_output: 1 }, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ parameters: 3, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ outputs: {}, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ outputs: [{ name: 'y', parameters: { binary_data: 'yes' } }], inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'BAD_REQUEST'],
    [{ outputs: [{ name: 'y' }, { name: 'y' }], inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }] }, 'INVALID_INPUT'],
    [{ inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [1] }, { name: 'x', datatype: 'INT8', shape: [1], data: [1] }] }, 'INVALID_INPUT'],
  ];
  for (const [body, code] of cases) assert.equal(codeOf(() => parse(body)), code, JSON.stringify(body));
});

test('huge shapes are refused before anything is allocated', () => {
  const before = process.memoryUsage().arrayBuffers;
  const t0 = performance.now();
  for (const shape of [[1e9, 1e9], [2 ** 53 - 1, 2 ** 53 - 1], [1e9, 1e9, 1e9, 1e9]]) {
    assert.equal(codeOf(() => parse(oneInput({ datatype: 'FP64', shape, data: [] }))), 'INVALID_INPUT');
    const { body, headerLength } = binaryBody(oneInput({ datatype: 'FP64', shape, parameters: { binary_data_size: 0 } }));
    assert.equal(codeOf(() => parseInferRequest(body, headerLength, LIMITS)), 'INVALID_INPUT');
  }
  assert.ok(performance.now() - t0 < 500);
  assert.ok(process.memoryUsage().arrayBuffers - before < 64 << 20);
  // The limit is inclusive and applies even when the data is all there.
  const small = { maxElements: 6 };
  assert.equal(codeOf(() => parse(oneInput({ datatype: 'UINT8', shape: [2, 3], data: [1, 2, 3, 4, 5, 6] }), small)), 'none');
  assert.equal(codeOf(() => parse(oneInput({ datatype: 'UINT8', shape: [7], data: [1, 2, 3, 4, 5, 6, 7] }), small)), 'INVALID_INPUT');
  // A zero dimension makes the count 0, whatever the other dimensions are.
  assert.equal(codeOf(() => parse(oneInput({ datatype: 'UINT8', shape: [1e9, 0], data: [] }), small)), 'none');
});

test('binary framing errors', () => {
  const four = bytesOf(new Float32Array([1, 2, 3, 4]));
  const input = (size: number, dt = 'FP32', shape = [4]) => ({ inputs: [{ name: 'x', datatype: dt, shape, parameters: { binary_data_size: size } }] });
  const run = (header: unknown, tail: Uint8Array, headerLength?: number) => {
    const b = binaryBody(header, tail);
    return codeOf(() => parseInferRequest(b.body, headerLength ?? b.headerLength, LIMITS));
  };
  assert.equal(run(input(16), four), 'none');
  assert.equal(run(input(12), four.subarray(0, 12)), 'INVALID_INPUT'); // size does not match shape
  assert.equal(run(input(12, 'FP32', [3]), four), 'BAD_REQUEST'); // 4 bytes left over
  assert.equal(run(input(20), four), 'BAD_REQUEST'); // runs past the end
  assert.equal(run(input(16, 'FP32', [2, 3]), four), 'INVALID_INPUT');
  assert.equal(run(oneInput({ datatype: 'FP32', shape: [1], data: [1] }), four), 'BAD_REQUEST'); // bytes nobody claims
  // binary_data_size with no header length: there are no binary bytes at all.
  assert.equal(codeOf(() => parseInferRequest(jsonBody(input(16)), undefined, LIMITS)), 'BAD_REQUEST');
  const ok = binaryBody(input(16), four);
  for (const hl of [-1, ok.body.length + 1, 1.5, NaN, Infinity]) {
    assert.equal(codeOf(() => parseInferRequest(ok.body, hl, LIMITS)), 'BAD_REQUEST', String(hl));
  }
  assert.equal(codeOf(() => parseInferRequest(ok.body, ok.headerLength - 1, LIMITS)), 'BAD_REQUEST');
  // A header length equal to the body length is a plain JSON body.
  const plain = jsonBody(oneInput({ datatype: 'UINT8', shape: [1], data: [3] }));
  assert.equal(parseInferRequest(plain, plain.length, LIMITS).inputs[0]!.data[0], 3);
  // BYTES sections must split into exactly the declared number of elements.
  const two = bytesWire(['ab', 'c']);
  assert.equal(run(input(two.length, 'BYTES', [2]), two), 'none');
  assert.equal(run(input(two.length, 'BYTES', [3]), two), 'INVALID_INPUT');
  assert.equal(run(input(two.length, 'BYTES', [1]), two), 'INVALID_INPUT');
  const truncated = two.subarray(0, two.length - 1);
  assert.equal(run(input(truncated.length, 'BYTES', [2]), truncated), 'INVALID_INPUT');
  const shortPrefix = new Uint8Array([1, 0]);
  assert.equal(run(input(2, 'BYTES', [1]), shortPrefix), 'INVALID_INPUT');
});

test('prototype-pollution keys and deep nesting are refused', () => {
  const input = '{"name":"x","datatype":"FP32","shape":[1],"data":[1]}';
  for (const text of [
    `{"__proto__":{"admin":true},"inputs":[${input}]}`,
    `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":[1],"parameters":{"constructor":{"prototype":{"admin":true}}}}]}`,
    `{"parameters":{"prototype":1},"inputs":[${input}]}`,
  ]) {
    assert.equal(codeOf(() => parseInferRequest(utf8.encode(text), undefined, LIMITS)), 'BAD_REQUEST', text);
  }
  assert.equal(({} as Record<string, unknown>).admin, undefined);
  const deep = `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":${'['.repeat(100)}1${']'.repeat(100)}}]}`;
  assert.equal(codeOf(() => parseInferRequest(utf8.encode(deep), undefined, LIMITS)), 'BAD_REQUEST');
  const hugeDeep = `{"inputs":[{"name":"x","datatype":"FP32","shape":[1],"data":${'['.repeat(300_000)}${']'.repeat(300_000)}}]}`;
  assert.equal(codeOf(() => parseInferRequest(utf8.encode(hugeDeep), undefined, LIMITS)), 'BAD_REQUEST');
});

test('decodeInferResponse validates the response', () => {
  const good = { model_name: 'm', model_version: '1', outputs: [{ name: 'y', datatype: 'FP32', shape: [1], data: [1] }] };
  assert.equal(codeOf(() => decodeInferResponse(jsonBody(good))), 'none');
  assert.equal(codeOf(() => decodeInferResponse(jsonBody({ ...good, model_name: 1 }))), 'BAD_REQUEST');
  assert.equal(codeOf(() => decodeInferResponse(jsonBody({ model_name: 'm', outputs: [] }))), 'BAD_REQUEST');
  assert.equal(codeOf(() => decodeInferResponse(jsonBody({ ...good, outputs: [{ name: 'y', datatype: 'FP32', shape: [2], data: [1] }] }))), 'INVALID_INPUT');
  assert.equal(codeOf(() => decodeInferResponse(jsonBody({ ...good, outputs: [{ name: 'y', datatype: 'Q', shape: [1], data: [1] }] }))), 'UNSUPPORTED_DATATYPE');
  // INT64 beyond 2^53 read from JSON numbers: the nearest double, clamped to the type's range.
  const big = utf8.encode('{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"INT64","shape":[2],"data":[9223372036854775807,4611686018427387905]}]}');
  assert.deepEqual(Array.from(new BigInt64Array(decodeInferResponse(big).outputs[0]!.data.slice().buffer)), [2n ** 63n - 1n, 2n ** 62n]);
});

test('fp16 conversion: known values, rounding to nearest even, overflow', () => {
  const known: [number, number][] = [
    [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [65519.99, 0x7bff],
    [65520, 0x7c00], [1e6, 0x7c00], [-Infinity, 0xfc00], [2 ** -14, 0x0400], [2 ** -24, 0x0001],
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even is 0
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal units: even is 2
    [2 ** -25 + 2 ** -40, 0x0001], // just above the tie
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: even mantissa 0
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 1+2^-10 and 1+2^-9: even mantissa 2
    [2 - 2 ** -12, 0x4000], // rounds up across the exponent boundary
    [1023 * 2 ** -24 + 2 ** -25, 0x0400], // largest subnormal + half a unit rounds (to even) into the normals
    [0.1, 0x2e66], [1 / 3, 0x3555], [Math.PI, 0x4248],
  ];
  for (const [x, bits] of known) assert.equal(fp16FromNumber(x), bits, `fp16(${x})`);
  assert.equal(fp16FromNumber(NaN) & 0x7c00, 0x7c00);
  assert.ok(Number.isNaN(fp16ToNumber(fp16FromNumber(NaN))));
  assert.equal(fp16ToNumber(0x7bff), 65504);
  assert.equal(fp16ToNumber(0x0001), 2 ** -24);
  assert.equal(fp16ToNumber(0xfc00), -Infinity);
  assert.ok(Object.is(fp16ToNumber(0x8000), -0));
});

test('fp16 conversion: every non-NaN half survives number and back; nearest is chosen in between', () => {
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue;
    assert.equal(fp16FromNumber(fp16ToNumber(h)), h);
  }
  fc.assert(fc.property(fc.double({ min: -65504, max: 65504, noNaN: true }), (x) => {
    const h = fp16FromNumber(x);
    const m = h & 0x7fff; // magnitude bits: consecutive values are consecutive halves
    const a = Math.abs(x);
    const err = Math.abs(fp16ToNumber(m) - a);
    for (const n of m > 0 ? [m - 1, m + 1] : [m + 1]) {
      const other = Math.abs(fp16ToNumber(n) - a);
      assert.ok(err <= other, `${x} -> ${fp16ToNumber(h)}, but ${fp16ToNumber(n)} is nearer`);
      if (err === other) assert.equal(m & 1, 0, `tie at ${x} must round to even`);
    }
    if (x !== 0) assert.equal(h >>> 15, x < 0 ? 1 : 0);
  }), { numRuns: 5000 });
});

// ---------------------------------------------------------------------------------------------
// Property-based tests

const ALL_TYPES = DATATYPES.filter((d): d is DataType => d !== 'INVALID');

function elementArb(dt: DataType): fc.Arbitrary<unknown> {
  switch (dt) {
    case 'BOOL': return fc.constantFrom(0, 1);
    case 'UINT8': return fc.integer({ min: 0, max: 0xff });
    case 'UINT16': return fc.integer({ min: 0, max: 0xffff });
    case 'UINT32': return fc.integer({ min: 0, max: 0xffffffff });
    case 'INT8': return fc.integer({ min: -0x80, max: 0x7f });
    case 'INT16': return fc.integer({ min: -0x8000, max: 0x7fff });
    case 'INT32': return fc.integer({ min: -0x80000000, max: 0x7fffffff });
    case 'INT64': return fc.bigInt(-(2n ** 63n), 2n ** 63n - 1n);
    case 'UINT64': return fc.bigInt(0n, 2n ** 64n - 1n);
    case 'FP16': return fc.integer({ min: 0, max: 0xffff }).filter((h) => (h & 0x7c00) !== 0x7c00);
    case 'FP32': return fc.float({ noNaN: true, noDefaultInfinity: true });
    case 'FP64': return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'BYTES': return fc.string({ unit: 'binary', maxLength: 8 });
  }
}

function toBytes(dt: DataType, values: unknown[]): Uint8Array {
  switch (dt) {
    case 'BOOL': case 'UINT8': return new Uint8Array(values as number[]);
    case 'UINT16': return bytesOf(new Uint16Array(values as number[]));
    case 'UINT32': return bytesOf(new Uint32Array(values as number[]));
    case 'INT8': return bytesOf(new Int8Array(values as number[]));
    case 'INT16': return bytesOf(new Int16Array(values as number[]));
    case 'INT32': return bytesOf(new Int32Array(values as number[]));
    case 'INT64': return bytesOf(new BigInt64Array(values as bigint[]));
    case 'UINT64': return bytesOf(new BigUint64Array(values as bigint[]));
    case 'FP16': return bytesOf(new Uint16Array(values as number[]));
    case 'FP32': return bytesOf(new Float32Array(values as number[]));
    case 'FP64': return bytesOf(new Float64Array(values as number[]));
    case 'BYTES': return bytesWire(values as string[]);
  }
}

function tensorArb(name: string): fc.Arbitrary<Tensor> {
  return fc.record({ dt: fc.constantFrom(...ALL_TYPES), shape: fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 3 }) })
    .chain(({ dt, shape }) => {
      const n = shape.reduce((a, b) => a * b, 1);
      return fc.array(elementArb(dt), { minLength: n, maxLength: n })
        .map((values): Tensor => ({ name, datatype: dt, shape, data: toBytes(dt, values) }));
    });
}

const tensorsArb: fc.Arbitrary<Tensor[]> = fc.uniqueArray(fc.string({ maxLength: 6 }), { minLength: 1, maxLength: 3 })
  .chain((names) => fc.tuple(...names.map(tensorArb)));

test('property: valid tensors round-trip exactly through request encode/parse, JSON and binary', () => {
  fc.assert(fc.property(tensorsArb, fc.boolean(), fc.option(fc.string({ maxLength: 5 }), { nil: undefined }), (tensors, binary, id) => {
    const e = encodeInferRequest({ id, inputs: tensors, binary });
    const r = parseInferRequest(e.body, e.headerLength, LIMITS);
    assertSameTensors(r.inputs, tensors);
    assert.equal(r.id, id);
  }), { numRuns: 1500 });
});

test('property: responses round-trip through encode/decode (64-bit JSON integers read as doubles)', () => {
  fc.assert(fc.property(tensorsArb, fc.array(fc.boolean(), { minLength: 3, maxLength: 3 }), (tensors, binaryFlags) => {
    const binary = new Map(tensors.map((t, i) => [t.name, binaryFlags[i]!]));
    const e = encodeInferResponse({ modelName: 'm', modelVersion: 'v', outputs: tensors, binary: (n) => binary.get(n)! });
    assert.equal(e.headerLength !== undefined, tensors.some((t) => binary.get(t.name)));
    const d = decodeInferResponse(e.body, e.headerLength);
    assertSameTensors(d.outputs, tensors.map((t) => (binary.get(t.name) ? t : throughJsonNumbers(t))));
  }), { numRuns: 1500 });
});

// Fuzzing: whatever the body, the codec returns consistent tensors or throws a SkiffError with a
// client-facing code, and never takes long.

const FUZZ_LIMITS: OipLimits = { maxElements: 4096 };
const CLIENT_CODES: ReadonlySet<ErrorCode> = new Set(['BAD_REQUEST', 'INVALID_INPUT', 'UNSUPPORTED_DATATYPE']);
const fuzzStats = { runs: 0, accepted: 0, slowestMs: 0 };

function bytesElementCount(b: Uint8Array): number {
  let off = 0;
  let n = 0;
  while (off < b.length) {
    assert.ok(b.length - off >= 4);
    off += 4 + Buffer.from(b.buffer, b.byteOffset, b.byteLength).readUInt32LE(off);
    n++;
  }
  assert.equal(off, b.length);
  return n;
}

function assertConsistent(tensors: Tensor[]): void {
  for (const t of tensors) {
    assert.ok(ALL_TYPES.includes(t.datatype));
    assert.ok(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0));
    const count = t.shape.reduce((a, b) => a * b, 1);
    const size = ELEMENT_SIZE[t.datatype];
    if (size > 0) assert.equal(t.data.length, count * size);
    else assert.equal(bytesElementCount(t.data), count);
  }
}

function survives(body: Uint8Array, headerLength: number | undefined): void {
  const t0 = performance.now();
  const attempts = [
    () => assertConsistent(parseInferRequest(body, headerLength, FUZZ_LIMITS).inputs),
    () => assertConsistent(decodeInferResponse(body, headerLength).outputs),
  ];
  for (const attempt of attempts) {
    try {
      attempt();
      fuzzStats.accepted++;
    } catch (err) {
      if (!(err instanceof SkiffError) || !CLIENT_CODES.has(err.code)) throw err;
    }
  }
  fuzzStats.runs++;
  fuzzStats.slowestMs = Math.max(fuzzStats.slowestMs, performance.now() - t0);
}

test('fuzz: random bytes with random header lengths', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), fc.option(fc.integer({ min: -2, max: 300 }), { nil: undefined }), survives),
    { numRuns: 4000 });
});

test('fuzz: random JSON documents', () => {
  fc.assert(fc.property(fc.jsonValue(), fc.boolean(), (v, asHeader) => {
    const b = jsonBody(v);
    survives(b, asHeader ? b.length : undefined);
  }), { numRuns: 4000 });
});

test('fuzz: request- and response-shaped documents with wrong, odd and boundary values', () => {
  const junk = fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(...ALL_TYPES, 'FP8', '', 'INVALID', '__proto__'),
    fc.constantFrom(1e9, -1, 2 ** 53, 1.5, 2 ** 31, -0, 65520, 1e39, '18446744073709551616', '-1'),
    fc.constantFrom({ toString: 1 }, { valueOf: {}, toString: {} }, { length: 3 }, { hasOwnProperty: 1 }),
  );
  const element = fc.oneof(fc.integer({ min: -300, max: 300 }), fc.double(), fc.boolean(), fc.string({ maxLength: 4 }), junk);
  const data = fc.oneof(fc.array(fc.oneof(element, fc.array(element, { maxLength: 4 })), { maxLength: 12 }), junk);
  const shape = fc.oneof(fc.array(fc.oneof(fc.integer({ min: 0, max: 5 }), junk), { maxLength: 4 }), junk);
  const params = fc.oneof(fc.record({ binary_data_size: fc.oneof(fc.integer({ min: 0, max: 64 }), junk), binary_data: junk }, { requiredKeys: [] }), junk);
  const tensor = fc.record({
    name: fc.oneof(fc.constantFrom('a', 'b'), junk), datatype: fc.oneof(fc.constantFrom(...ALL_TYPES), junk), shape, data, parameters: params,
  }, { requiredKeys: [] });
  const doc = fc.record({
    id: fc.oneof(fc.string({ maxLength: 3 }), junk),
    parameters: fc.oneof(fc.record({ timeout: junk, priority: junk, binary_data_output: fc.oneof(fc.boolean(), junk) }, { requiredKeys: [] }), junk),
    inputs: fc.oneof(fc.array(tensor, { maxLength: 3 }), junk),
    outputs: fc.oneof(fc.array(tensor, { maxLength: 3 }), junk),
    model_name: fc.oneof(fc.constant('m'), junk),
    model_version: fc.oneof(fc.constant('1'), junk),
  }, { requiredKeys: [] });
  fc.assert(fc.property(doc, fc.uint8Array({ maxLength: 64 }), fc.integer({ min: -3, max: 3 }), (d, tail, skew) => {
    const b = binaryBody(d, tail);
    survives(b.body, tail.length === 0 && skew === 0 ? undefined : b.headerLength + skew);
  }), { numRuns: 6000 });
});

test('fuzz: mutated valid request and response bodies', () => {
  const mutation = fc.record({
    kind: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate', 'header'),
    pos: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
  });
  fc.assert(fc.property(tensorsArb, fc.boolean(), fc.boolean(), fc.array(mutation, { minLength: 1, maxLength: 4 }), (tensors, binary, asResponse, mutations) => {
    const e = asResponse
      ? encodeInferResponse({ modelName: 'm', modelVersion: '1', outputs: tensors, binary: () => binary })
      : encodeInferRequest({ inputs: tensors, binary });
    let body = Buffer.from(e.body);
    let headerLength = e.headerLength;
    for (const m of mutations) {
      const pos = body.length === 0 ? 0 : m.pos % body.length;
      if (m.kind === 'flip' && body.length > 0) body[pos] = body[pos]! ^ (1 << (m.byte & 7));
      else if (m.kind === 'set' && body.length > 0) body[pos] = m.byte;
      else if (m.kind === 'insert') body = Buffer.concat([body.subarray(0, pos), Buffer.from([m.byte]), body.subarray(pos)]);
      else if (m.kind === 'delete') body = Buffer.concat([body.subarray(0, pos), body.subarray(pos + 1)]);
      else if (m.kind === 'truncate') body = body.subarray(0, pos);
      else if (m.kind === 'header') headerLength = m.byte % 3 === 0 ? undefined : (headerLength ?? body.length) + (m.byte % 7) - 3;
    }
    survives(body, headerLength);
  }), { numRuns: 6000 });
});

test('fuzz totals: at least 20,000 bodies, some accepted, none slow', () => {
  assert.ok(fuzzStats.runs >= 20_000, `${fuzzStats.runs} fuzz runs`);
  assert.ok(fuzzStats.accepted > 0, 'fuzzing should reach the success path sometimes');
  assert.ok(fuzzStats.slowestMs < 1000, `slowest body took ${fuzzStats.slowestMs} ms`);
});

/**
 * Fast model fixtures for tests and benchmarks: seeded random weights, no training. Each writer
 * creates `<repoDir>/<name>/<version>/model.onnx` (or `model.mjs` for JS-function models),
 * creating directories as needed, and returns the model's declared inputs/outputs plus a JS
 * reference `forward` that computes what the model should return.
 *
 * Writers are synchronous and overwrite existing files. `forward` allocates fresh outputs and
 * never keeps or mutates its inputs.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AnyTypedArray, DataType } from '../tensor/datatype.js';
import type { TensorSpec } from '../tensor/tensor.js';
import { buildModel } from './onnx-writer.js';
import { classify, classifierModel, classCount, inputDim, randomMlp, type Mlp } from './nets.js';

/** A decoded tensor: `data` is the typed array of `datatype` (BigInt64Array for INT64). */
export interface HostTensor {
  datatype: DataType;
  shape: number[];
  data: AnyTypedArray;
}

export type HostTensors = Record<string, HostTensor>;

export interface ModelFixture {
  name: string;
  version: number;
  /** Path of the written model file: `<repoDir>/<name>/<version>/model.onnx|model.mjs`. */
  file: string;
  /** Declared inputs/outputs; -1 marks the variable batch dimension. */
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** JS reference of the model's computation. Throws if an input is missing or mis-shaped. */
  forward(inputs: HostTensors): HostTensors;
}

interface Versioned {
  version?: number;
}

function versionDir(repoDir: string, name: string, version: number): string {
  const dir = join(repoDir, name, String(version));
  mkdirSync(dir, { recursive: true });
  return dir;
}

function writeOnnx(repoDir: string, name: string, version: number, bytes: Uint8Array): string {
  const file = join(versionDir(repoDir, name, version), 'model.onnx');
  writeFileSync(file, bytes);
  return file;
}

/** Fetch input `spec.name` and check its datatype and shape against the spec (-1 matches any). */
function take<T extends AnyTypedArray>(inputs: HostTensors, spec: TensorSpec): { shape: number[]; data: T } {
  const t = inputs[spec.name];
  if (!t) throw new TypeError(`missing input '${spec.name}'`);
  const fits = t.datatype === spec.datatype && t.shape.length === spec.shape.length
    && t.shape.every((d, i) => spec.shape[i] === -1 || spec.shape[i] === d);
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (!fits || t.data.length !== count) {
    throw new TypeError(`input '${spec.name}': expected ${spec.datatype}[${spec.shape.join(',')}], got ${t.datatype}[${t.shape.join(',')}] with ${t.data.length} values`);
  }
  return { shape: t.shape, data: t.data as T };
}

/** Write `net` as a classifier model (input `input`, outputs `probabilities` and `label`). */
export function writeNet(repoDir: string, name: string, net: Mlp, version = 1): ModelFixture {
  const d = inputDim(net);
  const c = classCount(net);
  const input: TensorSpec = { name: 'input', datatype: 'FP32', shape: [-1, d] };
  return {
    name,
    version,
    file: writeOnnx(repoDir, name, version, classifierModel(net)),
    inputs: [input],
    outputs: [
      { name: 'probabilities', datatype: 'FP32', shape: [-1, c] },
      { name: 'label', datatype: 'INT64', shape: [-1] },
    ],
    forward(inputs) {
      const x = take<Float32Array>(inputs, input);
      const n = x.shape[0]!;
      const out = classify(net, x.data, n);
      return {
        probabilities: { datatype: 'FP32', shape: [n, c], data: out.probabilities },
        label: { datatype: 'INT64', shape: [n], data: out.label },
      };
    },
  };
}

export interface ClassifierOptions extends Versioned {
  seed: number;
  inputDim?: number;
  classes?: number;
  /** Hidden layer width; omitted means a single Gemm (softmax regression). */
  hidden?: number;
}

/** Random-weight classifier: `input` [N, inputDim=64] FP32 -> `probabilities` [N, classes=10], `label` [N]. */
export function writeClassifier(repoDir: string, name: string, opts: ClassifierOptions): ModelFixture {
  const d = opts.inputDim ?? 64;
  const c = opts.classes ?? 10;
  const sizes = opts.hidden === undefined ? [d, c] : [d, opts.hidden, c];
  return writeNet(repoDir, name, randomMlp(sizes, opts.seed), opts.version);
}

/** Compute-bound benchmark model: random 784-1024-1024-10 ReLU MLP with the classifier outputs (~7.5 MB). */
export function writeComputeMlp(repoDir: string, name: string, opts: { seed: number } & Versioned): ModelFixture {
  return writeNet(repoDir, name, randomMlp([784, 1024, 1024, 10], opts.seed), opts.version);
}

/**
 * Two inputs of different datatypes, two outputs of different datatypes:
 *   `x` [N,4] FP32, `k` [N,1] INT64  ->  `y` [N,4] FP32 = x * float(k) (k broadcast along each row),
 *                                        `k_next` [N,1] INT64 = k + 1.
 */
export function writeMultiIO(repoDir: string, name: string, opts: Versioned = {}): ModelFixture {
  const version = opts.version ?? 1;
  const xSpec: TensorSpec = { name: 'x', datatype: 'FP32', shape: [-1, 4] };
  const kSpec: TensorSpec = { name: 'k', datatype: 'INT64', shape: [-1, 1] };
  const bytes = buildModel({
    inputs: [{ name: 'x', elemType: 'FP32', shape: ['N', 4] }, { name: 'k', elemType: 'INT64', shape: ['N', 1] }],
    outputs: [{ name: 'y', elemType: 'FP32', shape: ['N', 4] }, { name: 'k_next', elemType: 'INT64', shape: ['N', 1] }],
    initializers: [{ name: 'one', datatype: 'INT64', dims: [], data: new BigInt64Array([1n]) }],
    nodes: [
      { op: 'Cast', inputs: ['k'], outputs: ['k_float'], attrs: { to: { int: 1 /* FLOAT */ } } },
      { op: 'Mul', inputs: ['x', 'k_float'], outputs: ['y'] },
      { op: 'Add', inputs: ['k', 'one'], outputs: ['k_next'] },
    ],
  });
  return {
    name,
    version,
    file: writeOnnx(repoDir, name, version, bytes),
    inputs: [xSpec, kSpec],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [-1, 4] }, { name: 'k_next', datatype: 'INT64', shape: [-1, 1] }],
    forward(inputs) {
      const x = take<Float32Array>(inputs, xSpec);
      const k = take<BigInt64Array>(inputs, kSpec);
      const n = x.shape[0]!;
      if (k.shape[0] !== n) throw new TypeError(`inputs 'x' and 'k' disagree on the batch size`);
      const y = new Float32Array(n * 4);
      const kNext = new BigInt64Array(n);
      for (let r = 0; r < n; r++) {
        const kf = Math.fround(Number(k.data[r]!));
        for (let j = 0; j < 4; j++) y[r * 4 + j] = x.data[r * 4 + j]! * kf;
        kNext[r] = k.data[r]! + 1n;
      }
      return {
        y: { datatype: 'FP32', shape: [n, 4], data: y },
        k_next: { datatype: 'INT64', shape: [n, 1], data: kNext },
      };
    },
  };
}

/** All dims fixed (no batch dim): `x` [2,3] FP32 -> `y` [2,3] FP32 = 2x + 1. */
export function writeFixedShape(repoDir: string, name: string, opts: Versioned = {}): ModelFixture {
  const version = opts.version ?? 1;
  const xSpec: TensorSpec = { name: 'x', datatype: 'FP32', shape: [2, 3] };
  const bytes = buildModel({
    inputs: [{ name: 'x', elemType: 'FP32', shape: [2, 3] }],
    outputs: [{ name: 'y', elemType: 'FP32', shape: [2, 3] }],
    initializers: [
      { name: 'two', datatype: 'FP32', dims: [], data: new Float32Array([2]) },
      { name: 'one', datatype: 'FP32', dims: [], data: new Float32Array([1]) },
    ],
    nodes: [
      { op: 'Mul', inputs: ['x', 'two'], outputs: ['x2'] },
      { op: 'Add', inputs: ['x2', 'one'], outputs: ['y'] },
    ],
  });
  return {
    name,
    version,
    file: writeOnnx(repoDir, name, version, bytes),
    inputs: [xSpec],
    outputs: [{ name: 'y', datatype: 'FP32', shape: [2, 3] }],
    forward(inputs) {
      const x = take<Float32Array>(inputs, xSpec);
      return { y: { datatype: 'FP32', shape: [2, 3], data: x.data.map((v) => Math.fround(v * 2) + 1) } };
    },
  };
}

/** `input` [N, dim=784] FP32 -> `output` [N, dim] FP32, unchanged (a transport-bound benchmark model). */
export function writeIdentity(repoDir: string, name: string, opts: { dim?: number } & Versioned = {}): ModelFixture {
  const version = opts.version ?? 1;
  const dim = opts.dim ?? 784;
  const inSpec: TensorSpec = { name: 'input', datatype: 'FP32', shape: [-1, dim] };
  const bytes = buildModel({
    inputs: [{ name: 'input', elemType: 'FP32', shape: ['N', dim] }],
    outputs: [{ name: 'output', elemType: 'FP32', shape: ['N', dim] }],
    nodes: [{ op: 'Identity', inputs: ['input'], outputs: ['output'] }],
  });
  return {
    name,
    version,
    file: writeOnnx(repoDir, name, version, bytes),
    inputs: [inSpec],
    outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, dim] }],
    forward(inputs) {
      const x = take<Float32Array>(inputs, inSpec);
      return { output: { datatype: 'FP32', shape: [...x.shape], data: x.data.slice() } };
    },
  };
}

export interface DelayOptions extends Versioned {
  /** Fixed blocking time per predict call, in milliseconds. */
  delayMs: number;
  /** Extra blocking time per input row, in microseconds. Default 0. */
  perRowUs?: number;
  /** Extra blocking time per input element (rows x width), in microseconds: wide rows cost more. Default 0. */
  perElementUs?: number;
  /** Row width; 'any': [N, -1], each batch may have its own width (queries of several shapes). */
  dim?: number | 'any';
}

function delaySource(delayMs: number, perRowUs: number, perElementUs: number, dim: number, metadata: object): string {
  return `// Generated by skiff modelgen (writeDelayModel): a JS-function model for tests and benchmarks.
// Each predict call blocks its thread for ${delayMs} ms + ${perRowUs} us per row + ${perElementUs} us
// per element (Atomics.wait, no CPU burn), then returns output = input * 2.
const DELAY_MS = ${delayMs};
const PER_ROW_US = ${perRowUs};
const PER_ELEMENT_US = ${perElementUs};
const DIM = ${dim}; // 0: any width
const cell = new Int32Array(new SharedArrayBuffer(4));

export const metadata = ${JSON.stringify(metadata)};

function block(ms) {
  const end = performance.now() + ms;
  for (let left = ms; left > 0; left = end - performance.now()) Atomics.wait(cell, 0, 0, left);
}

export function predict(inputs) {
  const x = inputs.input;
  const width = DIM || (x && x.shape[1]);
  if (!x || x.datatype !== 'FP32' || x.shape.length !== 2 || x.shape[1] !== width || x.data.length !== x.shape[0] * width) {
    throw new TypeError('input: expected FP32 [N,' + (DIM || 'D') + ']');
  }
  const rows = x.shape[0];
  block(DELAY_MS + (rows * PER_ROW_US + rows * width * PER_ELEMENT_US) / 1000);
  const out = new Float32Array(rows * width);
  for (let i = 0; i < out.length; i++) out[i] = x.data[i] * 2;
  return { output: { datatype: 'FP32', shape: [rows, width], data: out } };
}
`;
}

/**
 * A JS-function model that adds 1 to its FP32 [N,4] input, except on a "poison" input
 * (x[0] = 666), where it runs `fault` (JS source: throw, exit, loop, allocate...) instead. For
 * tests of worker failures. Returns the model file.
 */
export function writeFaultyModel(repoDir: string, name: string, fault: string): string {
  const file = join(versionDir(repoDir, name, 1), 'model.mjs');
  writeFileSync(file, `
export const metadata = {
  inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 4] }],
  outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 4] }],
};
export function predict(inputs) {
  const x = inputs.input.data;
  if (x[0] === 666) { ${fault} }
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] + 1;
  return { output: { datatype: 'FP32', shape: inputs.input.shape, data: y } };
}
`);
  return file;
}

/**
 * JS-function model `<version>/model.mjs`: `input` [N, dim=4] FP32 -> `output` [N, dim] FP32 = 2 * input,
 * blocking the calling thread for delayMs + N * perRowUs per call. Exports `metadata` and `predict`.
 */
export function writeDelayModel(repoDir: string, name: string, opts: DelayOptions): ModelFixture {
  const version = opts.version ?? 1;
  const dim = opts.dim ?? 4;
  const perRowUs = opts.perRowUs ?? 0;
  const perElementUs = opts.perElementUs ?? 0;
  for (const [k, v] of [['delayMs', opts.delayMs], ['perRowUs', perRowUs], ['perElementUs', perElementUs]] as const) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${k} must be a finite number >= 0, got ${v}`);
  }
  if (dim !== 'any' && (!Number.isSafeInteger(dim) || dim < 1)) throw new RangeError(`dim must be a positive integer or 'any', got ${dim}`);
  const width = dim === 'any' ? -1 : dim;
  const inSpec: TensorSpec = { name: 'input', datatype: 'FP32', shape: [-1, width] };
  const outSpec: TensorSpec = { name: 'output', datatype: 'FP32', shape: [-1, width] };
  const file = join(versionDir(repoDir, name, version), 'model.mjs');
  writeFileSync(file, delaySource(opts.delayMs, perRowUs, perElementUs, dim === 'any' ? 0 : dim, { inputs: [inSpec], outputs: [outSpec] }));
  return {
    name,
    version,
    file,
    inputs: [inSpec],
    outputs: [outSpec],
    forward(inputs) {
      const x = take<Float32Array>(inputs, inSpec);
      return { output: { datatype: 'FP32', shape: [...x.shape], data: x.data.map((v) => v * 2) } };
    },
  };
}

/** Write `<repoDir>/<name>/config.json` (the model's serving configuration) as pretty JSON. */
export function writeModelConfig(repoDir: string, name: string, config: Readonly<Record<string, unknown>>): string {
  const dir = join(repoDir, name);
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(config, null, 2) + '\n');
  return file;
}

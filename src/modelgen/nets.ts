/**
 * Dense ReLU networks as weights, as ONNX classifier graphs, and as a JS reference forward pass
 * (the oracle tests compare onnxruntime against).
 *
 * Every classifier graph has input `input` [N, D] FP32 (N symbolic) and outputs
 * `probabilities` [N, C] FP32 (Softmax over axis 1 of the logits) and `label` [N] INT64
 * (ArgMax of the logits over axis 1, first index on ties, keepdims=0).
 */
import { buildModel, type InitializerSpec, type NodeSpec } from './onnx-writer.js';
import { Prng } from './prng.js';

/** One fully connected layer: y = x W + b with W stored [inDim, outDim] row-major. */
export interface Dense {
  inDim: number;
  outDim: number;
  w: Float32Array;
  b: Float32Array;
}

/** A stack of Dense layers with ReLU between them (none after the last, which gives the logits). */
export interface Mlp {
  layers: Dense[];
}

export interface ClassifierOutput {
  logits: Float32Array;
  probabilities: Float32Array;
  label: BigInt64Array;
}

export const BATCH_DIM = 'N';

export function inputDim(net: Mlp): number {
  return net.layers[0]!.inDim;
}

export function classCount(net: Mlp): number {
  return net.layers[net.layers.length - 1]!.outDim;
}

/** `sizes` = [in, hidden..., out]; He-normal weights and small uniform biases, drawn from `seed`. */
export function randomMlp(sizes: readonly number[], seed: number): Mlp {
  const prng = new Prng(seed);
  const layers: Dense[] = [];
  for (let l = 0; l + 1 < sizes.length; l++) {
    const inDim = sizes[l]!;
    const outDim = sizes[l + 1]!;
    const std = Math.sqrt(2 / inDim);
    layers.push({ inDim, outDim, w: prng.fill(inDim * outDim, (p) => p.normal() * std), b: prng.fill(outDim, (p) => p.uniform(-0.1, 0.1)) });
  }
  return { layers };
}

/** Serialize `net` as an ONNX classifier (Gemm/Relu layers, Softmax and ArgMax heads). */
export function classifierModel(net: Mlp, docString = ''): Uint8Array {
  const initializers: InitializerSpec[] = [];
  const nodes: NodeSpec[] = [];
  let prev = 'input';
  net.layers.forEach((layer, l) => {
    const last = l === net.layers.length - 1;
    initializers.push(
      { name: `W${l}`, datatype: 'FP32', dims: [layer.inDim, layer.outDim], data: layer.w },
      { name: `B${l}`, datatype: 'FP32', dims: [layer.outDim], data: layer.b },
    );
    const z = last ? 'logits' : `z${l}`;
    nodes.push({ op: 'Gemm', inputs: [prev, `W${l}`, `B${l}`], outputs: [z] });
    if (!last) {
      nodes.push({ op: 'Relu', inputs: [z], outputs: [`h${l}`] });
      prev = `h${l}`;
    }
  });
  nodes.push(
    { op: 'Softmax', inputs: ['logits'], outputs: ['probabilities'], attrs: { axis: { int: 1 } } },
    { op: 'ArgMax', inputs: ['logits'], outputs: ['label'], attrs: { axis: { int: 1 }, keepdims: { int: 0 } } },
  );
  return buildModel({
    inputs: [{ name: 'input', elemType: 'FP32', shape: [BATCH_DIM, inputDim(net)] }],
    outputs: [
      { name: 'probabilities', elemType: 'FP32', shape: [BATCH_DIM, classCount(net)] },
      { name: 'label', elemType: 'INT64', shape: [BATCH_DIM] },
    ],
    initializers,
    nodes,
    docString,
  });
}

/** Dense layer on one row: out = relu?(x W + b), accumulated in float64, stored as FP32. */
function denseRow(layer: Dense, x: Float32Array, xOff: number, out: Float32Array, relu: boolean, acc: Float64Array): void {
  const { inDim, outDim, w, b } = layer;
  for (let j = 0; j < outDim; j++) acc[j] = b[j]!;
  for (let i = 0; i < inDim; i++) {
    const xi = x[xOff + i]!;
    if (xi === 0) continue;
    const row = i * outDim;
    for (let j = 0; j < outDim; j++) acc[j] += xi * w[row + j]!;
  }
  for (let j = 0; j < outDim; j++) out[j] = relu && acc[j]! < 0 ? 0 : acc[j]!;
}

/** Numerically stable softmax of `z` into `out` (float64 internally). */
export function softmaxRow(z: ArrayLike<number>, out: Float32Array | Float64Array): void {
  let max = -Infinity;
  for (let j = 0; j < z.length; j++) if (z[j]! > max) max = z[j]!;
  let sum = 0;
  for (let j = 0; j < z.length; j++) sum += Math.exp(z[j]! - max);
  for (let j = 0; j < z.length; j++) out[j] = Math.exp(z[j]! - max) / sum;
}

/** First index of the maximum (ONNX ArgMax with select_last_index=0). */
export function argmaxRow(z: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < z.length; j++) if (z[j]! > z[best]!) best = j;
  return best;
}

/** JS reference forward pass over `n` rows of `x` (n * inDim, row-major). Allocates its outputs. */
export function classify(net: Mlp, x: Float32Array, n: number): ClassifierOutput {
  const d = inputDim(net);
  const c = classCount(net);
  if (x.length !== n * d) throw new RangeError(`expected ${n}x${d} inputs, got ${x.length} values`);
  const widest = Math.max(...net.layers.map((l) => l.outDim));
  const acc = new Float64Array(widest);
  const bufs = [new Float32Array(widest), new Float32Array(widest)];
  const logits = new Float32Array(n * c);
  const probabilities = new Float32Array(n * c);
  const label = new BigInt64Array(n);
  for (let r = 0; r < n; r++) {
    let src = x;
    let off = r * d;
    net.layers.forEach((layer, l) => {
      const last = l === net.layers.length - 1;
      const dst = last ? logits.subarray(r * c, (r + 1) * c) : bufs[l % 2]!;
      denseRow(layer, src, off, dst, !last, acc);
      src = dst;
      off = 0;
    });
    const z = logits.subarray(r * c, (r + 1) * c);
    softmaxRow(z, probabilities.subarray(r * c, (r + 1) * c));
    label[r] = BigInt(argmaxRow(z));
  }
  return { logits, probabilities, label };
}

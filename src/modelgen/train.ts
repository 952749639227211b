/**
 * Seeded, plain-JS training of the demo classifiers: softmax regression and ReLU MLPs trained
 * with minibatch Adam on softmax cross-entropy, plus a deliberately weak model and a broken one.
 * Single-threaded and deterministic: equal data, options and seed give identical weights.
 */
import { IMAGE_SIZE, NUM_CLASSES, type Split } from './mnist-data.js';
import { classify, randomMlp, softmaxRow, type Mlp } from './nets.js';
import { Prng } from './prng.js';

export interface TrainOptions {
  seed: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** Decoupled weight decay (AdamW style), per step, scaled by the learning rate. Default 0. */
  weightDecay?: number;
  /** Train on the first `examples` rows of the split only. Default: all. */
  examples?: number;
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;

/** Adam state for one parameter array. */
class AdamParam {
  readonly m: Float32Array;
  readonly v: Float32Array;
  constructor(readonly p: Float32Array, readonly g: Float32Array) {
    this.m = new Float32Array(p.length);
    this.v = new Float32Array(p.length);
  }

  step(t: number, lr: number, scale: number, decay: number): void {
    const { p, g, m, v } = this;
    const c1 = 1 - BETA1 ** t;
    const c2 = 1 - BETA2 ** t;
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]! * scale;
      m[i] = BETA1 * m[i]! + (1 - BETA1) * gi;
      v[i] = BETA2 * v[i]! + (1 - BETA2) * gi * gi;
      p[i] = p[i]! * (1 - lr * decay) - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + EPS);
      g[i] = 0;
    }
  }
}

/**
 * Train a ReLU MLP with layer sizes `sizes` (e.g. [784, 10] is softmax regression) on `data`.
 * Backpropagation skips zero activations, which makes the sparse MNIST input layer cheap.
 */
export function trainMlp(data: Split, sizes: readonly number[], opts: TrainOptions): Mlp {
  const prng = new Prng(opts.seed);
  const net = randomMlp(sizes, prng.int(2 ** 31));
  const L = net.layers.length;
  const d = sizes[0]!;
  if (data.x.length !== data.n * d) throw new RangeError(`data rows are not ${d} wide`);
  const n = Math.min(opts.examples ?? data.n, data.n);
  const gw = net.layers.map((l) => new Float32Array(l.w.length));
  const gb = net.layers.map((l) => new Float32Array(l.b.length));
  const params = net.layers.flatMap((l, i) => [new AdamParam(l.w, gw[i]!), new AdamParam(l.b, gb[i]!)]);
  // acts[l] is the input of layer l for the current row; acts[L] the logits.
  const acts = sizes.map((s) => new Float64Array(s));
  const deltas = sizes.map((s) => new Float64Array(s));
  const order = Int32Array.from({ length: n }, (_, i) => i);
  let t = 0;
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    prng.shuffle(order);
    for (let start = 0; start < n; start += opts.batchSize) {
      const end = Math.min(start + opts.batchSize, n);
      for (let k = start; k < end; k++) {
        const row = order[k]!;
        const a0 = acts[0]!;
        for (let i = 0; i < d; i++) a0[i] = data.x[row * d + i]!;
        for (let l = 0; l < L; l++) {
          const { inDim, outDim, w, b } = net.layers[l]!;
          const a = acts[l]!;
          const z = acts[l + 1]!;
          for (let j = 0; j < outDim; j++) z[j] = b[j]!;
          for (let i = 0; i < inDim; i++) {
            const ai = a[i]!;
            if (ai === 0) continue;
            const off = i * outDim;
            for (let j = 0; j < outDim; j++) z[j] += ai * w[off + j]!;
          }
          if (l < L - 1) for (let j = 0; j < outDim; j++) if (z[j]! < 0) z[j] = 0;
        }
        const top = deltas[L]!;
        softmaxRow(acts[L]!, top);
        top[data.y[row]!] -= 1;
        for (let l = L - 1; l >= 0; l--) {
          const { inDim, outDim, w } = net.layers[l]!;
          const a = acts[l]!;
          const dz = deltas[l + 1]!;
          const gW = gw[l]!;
          const gB = gb[l]!;
          for (let j = 0; j < outDim; j++) gB[j] += dz[j]!;
          const dPrev = deltas[l]!;
          for (let i = 0; i < inDim; i++) {
            const ai = a[i]!;
            if (ai === 0) {
              dPrev[i] = 0; // ReLU gradient is zero here (and the input layer needs no delta)
              continue;
            }
            const off = i * outDim;
            let s = 0;
            for (let j = 0; j < outDim; j++) {
              gW[off + j] += ai * dz[j]!;
              s += w[off + j]! * dz[j]!;
            }
            dPrev[i] = s;
          }
        }
      }
      t++;
      for (const p of params) p.step(t, opts.learningRate, 1 / (end - start), opts.weightDecay ?? 0);
    }
  }
  return net;
}

/** Multinomial logistic regression on MNIST (784 -> 10). */
export function trainSoftmaxRegression(data: Split, seed = 1): Mlp {
  return trainMlp(data, [IMAGE_SIZE, NUM_CLASSES], { seed, epochs: 8, batchSize: 64, learningRate: 0.01, weightDecay: 1e-4 });
}

/** 784-H-10 ReLU MLP on MNIST. */
export function trainHiddenMlp(data: Split, seed = 2, hidden = 128): Mlp {
  return trainMlp(data, [IMAGE_SIZE, hidden, NUM_CLASSES], { seed, epochs: 10, batchSize: 32, learningRate: 0.001 });
}

/**
 * A deliberately weak classifier: logistic regression that sees only the first 50 training rows
 * (5 per class, the split being class-interleaved) for three passes from a random start.
 */
export function trainWeak(data: Split, seed = 3): Mlp {
  return trainMlp(data, [IMAGE_SIZE, NUM_CLASSES], { seed, epochs: 3, batchSize: 10, learningRate: 0.01, examples: 50 });
}

/** A broken classifier: untrained random weights, so about chance (10%) accuracy on MNIST. */
export function brokenClassifier(seed = 4): Mlp {
  return randomMlp([IMAGE_SIZE, NUM_CLASSES], seed);
}

/** Fraction of `split` rows the JS reference forward pass labels correctly. */
export function accuracy(net: Mlp, split: Split): number {
  const { label } = classify(net, split.x, split.n);
  let hits = 0;
  for (let i = 0; i < split.n; i++) if (Number(label[i]) === split.y[i]) hits++;
  return hits / split.n;
}

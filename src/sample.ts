import { loadMnist } from './modelgen/mnist-data.js';

/**
 * `skiff sample`: a request body holding one held-out MNIST digit (never seen in training): 784
 * floats in [0, 1], the 28x28 image row by row, as the demo models take it.
 */
export function sampleBody(format: 'oip' | 'clipper', index: number): { body: string; label: number } {
  const { test } = loadMnist();
  if (!Number.isInteger(index) || index < 0 || index >= test.n) throw new RangeError(`--index must be in [0, ${test.n - 1}]`);
  const pixels = Array.from(test.x.subarray(index * 784, (index + 1) * 784), (v) => Math.round(v * 1000) / 1000);
  const body = format === 'oip'
    ? { inputs: [{ name: 'input', shape: [1, 784], datatype: 'FP32', data: pixels }] }
    : { input: pixels };
  return { body: JSON.stringify(body), label: test.y[index]! };
}

/**
 * Microbenchmark of the OIP REST codec's hot path: parsing an MNIST-sized FP32 request (JSON and
 * binary form) and encoding a 10-float response, with JSON.stringify as the baseline the
 * hand-built encoder was chosen against. Run: node dist/bench/micro-oip.js
 */
import { parseInferRequest } from '../src/protocol/oip-decode.js';
import { encodeInferRequest, encodeInferResponse } from '../src/protocol/oip-encode.js';
import type { Tensor } from '../src/tensor/tensor.js';

function fp32Tensor(name: string, n: number): Tensor {
  const f = new Float32Array(n);
  for (let i = 0; i < n; i++) f[i] = Math.random() * 2 - 1;
  return { name, datatype: 'FP32', shape: [1, n], data: new Uint8Array(f.buffer) };
}

/** Median over 9 rounds of the mean time per call, in microseconds. */
function measure(fn: () => unknown, iterations: number): number {
  for (let i = 0; i < iterations; i++) fn();
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    rounds.push(Number(process.hrtime.bigint() - t0) / iterations / 1000);
  }
  rounds.sort((a, b) => a - b);
  return rounds[4]!;
}

const limits = { maxElements: 1 << 24 };
const input = fp32Tensor('input', 784);
const jsonReq = encodeInferRequest({ inputs: [input] });
const binReq = encodeInferRequest({ inputs: [input], binary: true });
const out10 = fp32Tensor('logits', 10);
const out784 = fp32Tensor('logits', 784);
const respond = (t: Tensor, binary: boolean) => () =>
  encodeInferResponse({ modelName: 'mnist', modelVersion: '1', id: 'r1', outputs: [t], binary: () => binary });
const stringifyBaseline = (t: Tensor) => () =>
  Buffer.from(JSON.stringify({
    model_name: 'mnist', model_version: '1', id: 'r1',
    outputs: [{ name: t.name, datatype: t.datatype, shape: t.shape, data: Array.from(new Float32Array(t.data.buffer)) }],
  }));

const rows: [string, number][] = [
  [`parse FP32[784] JSON request (${jsonReq.body.length} B)`, measure(() => parseInferRequest(jsonReq.body, undefined, limits), 2000)],
  [`parse FP32[784] binary request (${binReq.body.length} B)`, measure(() => parseInferRequest(binReq.body, binReq.headerLength, limits), 20000)],
  ['encode FP32[10] JSON response', measure(respond(out10, false), 50000)],
  ['encode FP32[10] JSON response, JSON.stringify baseline', measure(stringifyBaseline(out10), 50000)],
  ['encode FP32[10] binary response', measure(respond(out10, true), 50000)],
  ['encode FP32[784] JSON response', measure(respond(out784, false), 2000)],
  ['encode FP32[784] JSON response, JSON.stringify baseline', measure(stringifyBaseline(out784), 2000)],
];
for (const [name, us] of rows) console.log(`${name.padEnd(58)} ${us.toFixed(2).padStart(8)} us`);

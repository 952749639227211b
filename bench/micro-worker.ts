/**
 * Microbenchmark of one model worker (workers/runner.ts) behind its piscina pool, without the
 * executor or any frontend: a batch is written into the slot's request ring, the worker's serve
 * loop wakes, runs it and writes the output record, which is read back once the response ring
 * wakes this thread. Reports, per batch size, the worker's own run time (the record's aux field:
 * copy out of the ring + ONNX Runtime + output conversion) and the rest of the round trip (the
 * two thread wake-ups). Run: node dist/bench/micro-worker.js [model.onnx]
 */
import { join } from 'node:path';
import { WorkerRunner } from '../src/engine/worker-runner.js';
import type { BatchAnswer } from '../src/engine/runner.js';
import { DEMO_REPOSITORY } from '../src/paths.js';
import { createHistogram, percentiles, recordUs } from './lib/histogram.js';

const model = process.argv[2] ?? join(DEMO_REPOSITORY, 'mnist_mlp', '1', 'model.onnx');
const runner = await WorkerRunner.start({ kind: 'onnx', modelPath: model, replicas: 1, threads: 1, requestRingBytes: 1 << 23, responseRingBytes: 1 << 23 });
let onAnswer: (a: BatchAnswer) => void = () => undefined;
runner.bind({ answered: (_r, a) => onAnswer(a), settled: () => undefined, lost: (_r, l) => { throw new Error(l.error); }, added: () => undefined });
const slot = runner.replicas[0]!;
const dim = runner.description.inputs[0]!.shape[1]!;
let seq = 0;
console.log(`${model}\nbatch   run p50    run p99   hand-off p50  hand-off p99  (µs, ${1000} batches each)`);
for (const rows of [1, 16, 64, 256]) {
  const data = new Uint8Array(new Float32Array(rows * dim).map((_, i) => (i % 255) / 255).buffer);
  const run = createHistogram();
  const handoff = createHistogram();
  for (let i = 0; i < 1100; i++) {
    const s = ++seq;
    const t0 = performance.now();
    const answer = new Promise<BatchAnswer>((resolve) => (onAnswer = resolve));
    slot.send({ seq: s, rows, dims: [[rows, dim]], parts: [{ rows, inputs: [{ name: 'input', datatype: 'FP32', shape: [rows, dim], data }] }] });
    const out = await answer;
    const us = (performance.now() - t0) * 1000;
    if (i < 100) continue;
    recordUs(run, out.runUs);
    recordUs(handoff, us - out.runUs);
  }
  const r = percentiles(run);
  const h = percentiles(handoff);
  console.log(`${String(rows).padStart(5)} ${String(r.p50).padStart(10)} ${String(r.p99).padStart(10)} ${String(h.p50).padStart(14)} ${String(h.p99).padStart(13)}`);
}
await runner.close();

/**
 * Microbenchmark of the machine costs the engine's design rests on (docs/benchmarks.md, "Where
 * the time goes"): what a thread wake-up costs the thread that sends it, the round trip of two
 * threads waking each other with Atomics.waitAsync (what a batch's hand-off to a worker and back
 * costs, without any model), and copying a 3 KB tensor into fresh versus reused memory.
 * Run: node dist/bench/micro-threads.js
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { SlabAllocator } from '../src/tensor/slab.js';

const ROUNDS = 2000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1]!;
const p99 = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
const dist = (xs: number[]): string => `p50 ${median(xs).toFixed(1)} µs  p99 ${p99(xs).toFixed(1)} µs  mean ${mean(xs).toFixed(1)} µs`;

/** A worker that waits on cell 0 (async) and, when woken, echoes the value into cell 1. */
const ECHO = `
const { workerData } = require('node:worker_threads');
const a = new Int32Array(workerData);
const keepAlive = setInterval(() => {}, 1 << 30);
(async () => {
  for (let seen = 0;;) {
    const w = Atomics.waitAsync(a, 0, seen);
    if (w.async) await w.value;
    seen = Atomics.load(a, 0);
    if (seen === -1) { clearInterval(keepAlive); return; }
    Atomics.store(a, 1, seen);
    Atomics.notify(a, 1);
  }
})();`;

async function wakeCosts(): Promise<void> {
  const a = new Int32Array(new SharedArrayBuffer(64));
  let t0 = performance.now();
  for (let i = 0; i < 1e6; i++) Atomics.notify(a, 3);
  console.log(`Atomics.notify, nobody waiting:            ${((performance.now() - t0) * 1e3 / 1e6 * 1e3).toFixed(0)} ns`);

  const w = new Worker(ECHO, { eval: true, workerData: a.buffer });
  await sleep(200);
  const notify: number[] = [];
  const rtt: number[] = [];
  for (let i = 1; i <= ROUNDS; i++) {
    await sleep(0); // let the worker go back to sleep
    t0 = performance.now();
    Atomics.store(a, 0, i);
    Atomics.notify(a, 0);
    notify.push((performance.now() - t0) * 1000);
    for (;;) {
      const r = Atomics.waitAsync(a, 1, i - 1);
      if (r.async) await r.value;
      if (Atomics.load(a, 1) === i) break;
    }
    rtt.push((performance.now() - t0) * 1000);
  }
  Atomics.store(a, 0, -1);
  Atomics.notify(a, 0);
  await w.terminate();
  console.log(`Atomics.notify to a waiting thread:        ${dist(notify)} (cost to the sender)`);
  console.log(`waitAsync round trip (wake worker, back):  ${dist(rtt)}`);

  const { port1, port2 } = new MessageChannel();
  const w2 = new Worker(`require('node:worker_threads').workerData.on('message', () => {});`, { eval: true, workerData: port2, transferList: [port2] });
  await sleep(200);
  const post: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await sleep(0);
    t0 = performance.now();
    port1.postMessage(i);
    post.push((performance.now() - t0) * 1000);
  }
  port1.close();
  await w2.terminate();
  console.log(`postMessage(number) to a sleeping thread:  ${dist(post)} (cost to the sender)`);
}

function copyCosts(): void {
  const src = new Uint8Array(3136).fill(7); // one 784-float row
  const perSlab = Math.floor((1 << 20) / src.byteLength);
  const slabs = 300;
  const n = slabs * perSlab;
  const reused = new Uint8Array(1 << 20);
  let t0 = performance.now();
  for (let r = 0; r < slabs; r++) for (let i = 0; i < perSlab; i++) reused.set(src, i * src.byteLength);
  console.log(`copy 3 KB into reused memory:              ${((performance.now() - t0) * 1000 / n).toFixed(2)} µs`);
  t0 = performance.now();
  for (let r = 0; r < slabs; r++) {
    const fresh = new Uint8Array(1 << 20);
    for (let i = 0; i < perSlab; i++) fresh.set(src, i * src.byteLength);
  }
  console.log(`copy 3 KB into fresh 1 MB buffers:         ${((performance.now() - t0) * 1000 / n).toFixed(2)} µs`);
  t0 = performance.now();
  for (let i = 0; i < n; i++) src.slice();
  console.log(`slice() 3 KB (a buffer per tensor):        ${((performance.now() - t0) * 1000 / n).toFixed(2)} µs`);
  // Steady state of the decoder's allocator: copy, release, reuse.
  const slab = new SlabAllocator();
  t0 = performance.now();
  let held: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    held.push(slab.copy(src));
    if (held.length === 64) {
      for (const v of held) slab.release(v);
      held = [];
    }
  }
  console.log(`SlabAllocator copy + release (recycled):   ${((performance.now() - t0) * 1000 / n).toFixed(2)} µs  (${slab.stats.allocated} slabs allocated, ${slab.stats.reused} reuses)`);
}

await wakeCosts();
copyCosts();

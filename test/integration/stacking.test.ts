import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeClassifier, writeDelayModel, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { encodeFrame } from '../../src/protocol/wire-encode.js';
import { tensorSlab } from '../../src/tensor/slab.js';
import { assertClose, bytesOf, classifierReference, f32, i64, rawExchange, serve, tempDir } from './helpers.js';

/**
 * Stacking: a frame's single-row requests for a batchable model without a prediction cache are
 * answered as one stacked query. Each request must still get exactly one answer of its own,
 * equal to running it alone; cancels, duplicates and mixed frames keep their per-request meaning.
 */
describe('WebSocket frames: many single-row requests stacked into one query', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  const N = 300;
  const x = new Float32Array(N * 64);
  let probs: Float32Array;
  let labels: BigInt64Array;

  before(async () => {
    const fx = writeClassifier(tmp.dir, 'clf', { seed: 8 });
    writeModelConfig(tmp.dir, 'clf', { cache_bytes: 0, max_batch_size: 128 });
    writeClassifier(tmp.dir, 'cached', { seed: 8 });
    writeModelConfig(tmp.dir, 'cached', { cache_bytes: 1 << 20 });
    writeDelayModel(tmp.dir, 'slow', { delayMs: 100, dim: 4 });
    writeDelayModel(tmp.dir, 'double', { delayMs: 0, dim: 16 });
    writeModelConfig(tmp.dir, 'double', { cache_bytes: 0, max_batch_size: 96 });
    // A generous objective, so AIMD lets the batch cap (and with it the stack size) grow.
    writeModelConfig(tmp.dir, 'slow', { cache_bytes: 0, max_batch_size: 16, latency_objective_us: 2_000_000 });
    const ref = await classifierReference(fx.file, N, { seed: 9, range: 2 });
    x.set(ref.x);
    ({ probs, labels } = ref);
    server = await serve(tmp.dir);
    assert.deepEqual(server.loadReport.failed, []);
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
  });

  const row = (i: number) => ({ name: 'input', datatype: 'FP32' as const, shape: [1, 64], data: bytesOf(x.subarray(i * 64, (i + 1) * 64)) });
  /** A stack is at most one batch: send full frames until AIMD has raised the model's cap to `cap`. */
  async function warm(model: string, dim: number, cap: number): Promise<void> {
    const ex = server.registry.resolve(model).executor!;
    const input = { name: 'input', datatype: 'FP32' as const, shape: [1, dim], data: bytesOf(new Float32Array(dim)) };
    for (let i = 0; i < 200 && ex.batchCap < cap; i++) {
      const n = ex.batchCap;
      await rawExchange(server.wsUrl, [encodeFrame({ requests: Array.from({ length: n }, (_, k) => ({ id: BigInt(k), model, inputs: [input] })) })], n);
    }
    assert.ok(ex.batchCap >= cap, `${model}: batch cap ${ex.batchCap} after ${ex.counters.batches} batches`);
  }
  const queued = (model: string) => server.registry.resolve(model).executor!.latency.queueWaitUs.totalCount;

  it('answers each request of the frame with its own row, as in-process ORT; the engine queues one query per batch', async () => {
    await warm('clf', 64, 100);
    const ex = server.registry.resolve('clf').executor!;
    const q0 = queued('clf');
    const n0 = ex.counters.queries;
    const frame = encodeFrame({ requests: Array.from({ length: N }, (_, i) => ({ id: BigInt(1000 + i), model: 'clf', inputs: [row(i)] })) });
    const { responses } = await rawExchange(server.wsUrl, [frame], N);
    assert.equal(responses.length, N);
    assert.equal(new Set(responses.map((r) => r.id)).size, N, 'one answer per id');
    for (const r of responses) {
      const i = Number(r.id) - 1000;
      assert.equal(r.error, undefined, r.error?.message);
      const p = r.outputs.find((o) => o.name === 'probabilities')!;
      assert.deepEqual(p.shape, [1, 10]);
      assertClose(f32(p), probs.subarray(i * 10, i * 10 + 10), 1e-5, `row ${i}`);
      assert.equal(i64(r.outputs.find((o) => o.name === 'label')!)[0], labels[i]);
    }
    // Stacks of up to one batch (the AIMD cap, 100..128 rows): three queued queries, not 300.
    assert.equal(queued('clf') - q0, 3, 'queued as three stacked queries');
    assert.equal(ex.counters.queries - n0, N, 'counted per request');
  });

  it('with a prediction cache the requests run one by one (entries stay per request)', async () => {
    const q0 = queued('cached');
    const frame = encodeFrame({ requests: Array.from({ length: 20 }, (_, i) => ({ id: BigInt(i), model: 'cached', inputs: [row(i)] })) });
    const { responses } = await rawExchange(server.wsUrl, [frame], 20);
    assert.ok(responses.every((r) => r.error === undefined));
    assert.equal(queued('cached') - q0, 20);
  });

  it('a cancel reaches only its own request of a stack; the others are answered', async () => {
    await warm('slow', 4, 8);
    const input = (v: number) => ({ name: 'input', datatype: 'FP32' as const, shape: [1, 4], data: bytesOf(new Float32Array([v, v, v, v])) });
    // Keep the model busy so the stack waits in the queue, then cancel one request of it.
    const busy = encodeFrame({ requests: [{ id: 1n, model: 'slow', inputs: [input(0)] }] });
    const stack = encodeFrame({ requests: Array.from({ length: 8 }, (_, k) => ({ id: BigInt(10 + k), model: 'slow', inputs: [input(k)] })) });
    const cancel = encodeFrame({ cancel: [13n] });
    const q0 = queued('slow');
    const { responses } = await rawExchange(server.wsUrl, [busy, stack, cancel], 9);
    assert.equal(queued('slow') - q0, 2, 'the busy query and ONE stacked query of eight ran');
    assert.equal(responses.length, 9);
    const byId = new Map(responses.map((r) => [r.id, r]));
    assert.equal(byId.size, 9, 'exactly one answer per id');
    assert.equal(byId.get(13n)!.error?.code, 'CANCELLED');
    for (let k = 0; k < 8; k++) {
      if (k === 3) continue;
      const r = byId.get(BigInt(10 + k))!;
      assert.equal(r.error, undefined, r.error?.message);
      assert.deepEqual(Array.from(f32(r.outputs[0]!)), [2 * k, 2 * k, 2 * k, 2 * k]);
    }
  });

  it('cancelling every request of a stack answers each CANCELLED once', async () => {
    const input = (v: number) => ({ name: 'input', datatype: 'FP32' as const, shape: [1, 4], data: bytesOf(new Float32Array([v, 0, 0, 0])) });
    const busy = encodeFrame({ requests: [{ id: 1n, model: 'slow', inputs: [input(1)] }] });
    const stack = encodeFrame({ requests: [2n, 3n, 4n].map((id) => ({ id, model: 'slow', inputs: [input(Number(id))] })) });
    const { responses } = await rawExchange(server.wsUrl, [busy, stack, encodeFrame({ cancel: [2n, 3n, 4n] })], 4);
    const codes = new Map(responses.map((r) => [r.id, r.error?.code ?? 'OK']));
    assert.deepEqual([...codes.entries()].sort(), [[1n, 'OK'], [2n, 'CANCELLED'], [3n, 'CANCELLED'], [4n, 'CANCELLED']]);
    assert.equal(responses.length, 4);
  });

  it('decoder memory reused across frames never changes an answer (many frames in flight, unique inputs)', async () => {
    const FRAMES = 120;
    const PER = 64; // 120 x 64 x 64 B = 480 KB per round: slabs fill, are released and come back
    const frames: Uint8Array[] = [];
    for (let f = 0; f < FRAMES; f++) {
      frames.push(encodeFrame({ requests: Array.from({ length: PER }, (_, k) => {
        const id = f * PER + k;
        return { id: BigInt(id), model: 'double', inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [1, 16], data: bytesOf(new Float32Array(16).fill(id)) }] };
      }) }));
    }
    const reused0 = tensorSlab.stats.reused;
    for (let round = 0; round < 6; round++) {
      const { responses } = await rawExchange(server.wsUrl, frames, FRAMES * PER);
      assert.equal(new Set(responses.map((r) => r.id)).size, FRAMES * PER);
      for (const r of responses) {
        assert.equal(r.error, undefined, r.error?.message);
        const out = f32(r.outputs[0]!);
        assert.ok(out.every((v) => v === 2 * Number(r.id)), `answer for ${r.id} is ${out[0]}, expected ${2 * Number(r.id)}`);
      }
    }
    assert.ok(tensorSlab.stats.reused > reused0, 'decoder slabs were released and reused');
  });

  it('a repeated id in the frame is refused DUPLICATE_ID; other shapes and models in the frame run on their own', async () => {
    const frame = encodeFrame({ requests: [
      { id: 1n, model: 'clf', inputs: [row(0)] },
      { id: 2n, model: 'clf', inputs: [row(1)] },
      { id: 2n, model: 'clf', inputs: [row(2)] },
      { id: 3n, model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 64], data: bytesOf(x.subarray(3 * 64, 5 * 64)) }] },
      { id: 4n, model: 'slow', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: bytesOf(new Float32Array([1, 2, 3, 4])) }] },
      { id: 5n, model: 'clf', inputs: [row(5)] },
    ] });
    const { responses } = await rawExchange(server.wsUrl, [frame], 6);
    const codes = responses.map((r) => `${r.id}:${r.error?.code ?? 'OK'}`).sort();
    assert.deepEqual(codes, ['1:OK', '2:DUPLICATE_ID', '2:OK', '3:OK', '4:OK', '5:OK']);
    const r3 = responses.find((r) => r.id === 3n)!;
    assert.deepEqual(Array.from(i64(r3.outputs.find((o) => o.name === 'label')!)), [labels[3], labels[4]]);
    const r5 = responses.find((r) => r.id === 5n)!;
    assert.equal(i64(r5.outputs.find((o) => o.name === 'label')!)[0], labels[5]);
  });
});

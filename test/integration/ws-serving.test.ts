import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeClassifier, writeDelayModel, writeFixedShape, writeMultiIO, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { encodeFrame } from '../../src/protocol/wire-encode.js';
import type { ErrorInfo } from '../../src/errors.js';
import { assertClose, bytesOf, classifierReference, f32, i64, rawExchange, serve, tempDir } from './helpers.js';

describe('WebSocket + FlatBuffers serving', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  let client: SkiffClient;
  const frameErrors: ErrorInfo[] = [];
  const N = 200;
  const x = new Float32Array(N * 64);
  let probs: Float32Array;
  let labels: BigInt64Array;

  before(async () => {
    const fx = writeClassifier(tmp.dir, 'clf', { seed: 3 });
    writeMultiIO(tmp.dir, 'multi');
    writeFixedShape(tmp.dir, 'fixed');
    writeDelayModel(tmp.dir, 'slow', { delayMs: 150, dim: 4 });
    writeModelConfig(tmp.dir, 'slow', { max_batch_size: 1, cache_bytes: 0 });
    const ref = await classifierReference(fx.file, N, { seed: 5, range: 2 });
    x.set(ref.x);
    ({ probs, labels } = ref);
    server = await serve(tmp.dir);
    assert.deepEqual(server.loadReport.failed, [], 'every model loads');
    client = await SkiffClient.connect(server.wsUrl, { onFrameError: (e) => frameErrors.push(e) });
  });
  after(async () => {
    await client?.close();
    await server?.close();
    tmp.cleanup();
  });

  const row = (i: number) => ({ name: 'input', datatype: 'FP32' as const, shape: [1, 64], data: bytesOf(x.subarray(i * 64, (i + 1) * 64)) });

  it('answers many requests carried in one frame, each by its id, equal to in-process ORT', async () => {
    const answers = await client.inferMany(Array.from({ length: N }, (_, i) => ({ model: 'clf', inputs: [row(i)] })));
    answers.forEach((a, i) => {
      assert.equal(a.error, undefined, a.error?.message);
      assert.equal(a.model, 'clf');
      assert.equal(a.version, 1);
      const p = a.outputs.find((o) => o.name === 'probabilities')!;
      const l = a.outputs.find((o) => o.name === 'label')!;
      assert.deepEqual(p.shape, [1, 10]);
      assertClose(f32(p), probs.subarray(i * 10, i * 10 + 10), 1e-5, `row ${i}`);
      assert.equal(i64(l)[0], labels[i]);
    });
    const ex = server.registry.resolve('clf').executor!;
    assert.ok(ex.latency.batchRows.maxValue > 1, 'requests of one frame are batched together');
  });

  it('returns answers out of order: a fast model overtakes a slow one sent first', async () => {
    const order: string[] = [];
    const slow = client.infer({ model: 'slow', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: bytesOf(new Float32Array([1, 2, 3, 4])) }] })
      .then((r) => { order.push('slow'); return r; });
    const fast = client.infer({ model: 'clf', inputs: [row(0)] }).then((r) => { order.push('fast'); return r; });
    const [s] = await Promise.all([slow, fast]);
    assert.deepEqual(order, ['fast', 'slow']);
    assert.deepEqual(Array.from(f32(s.outputs[0]!)), [2, 4, 6, 8]);
  });

  it('serves several inputs and outputs with INT64 tensors, and fixed-shape models', async () => {
    const r = await client.infer({
      model: 'multi',
      inputs: [
        { name: 'x', datatype: 'FP32', shape: [2, 4], data: bytesOf(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8])) },
        { name: 'k', datatype: 'INT64', shape: [2, 1], data: bytesOf(new BigInt64Array([2n, -1n])) },
      ],
    });
    assert.equal(r.error, undefined, r.error?.message);
    const y = r.outputs.find((o) => o.name === 'y')!;
    const k = r.outputs.find((o) => o.name === 'k_next')!;
    assert.deepEqual(Array.from(f32(y)), [2, 4, 6, 8, -5, -6, -7, -8]);
    assert.equal(k.datatype, 'INT64');
    assert.deepEqual(Array.from(i64(k)), [3n, 0n]);
    const fixed = await client.infer({ model: 'fixed', inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 3], data: bytesOf(new Float32Array([0, 1, 2, 3, 4, 5])) }] });
    assert.equal(fixed.error, undefined, fixed.error?.message);
    assert.deepEqual(fixed.outputs[0]!.shape, [2, 3]);
    assert.deepEqual(Array.from(f32(fixed.outputs[0]!)), [1, 3, 5, 7, 9, 11]);
  });

  it('answers bad requests with coded error records and keeps serving the rest of the frame', async () => {
    const good = row(1);
    const answers = await client.inferMany([
      { model: 'nope', inputs: [good] },
      { model: 'clf', version: 9, inputs: [good] },
      { model: 'clf', inputs: [{ ...good, datatype: 'FP64', data: new Uint8Array(64 * 8) }] },
      { model: 'clf', inputs: [{ ...good, shape: [1, 63], data: new Uint8Array(63 * 4) }] },
      { model: 'clf', inputs: [{ ...good, name: 'wrong' }] },
      { model: 'clf', inputs: [good], outputs: ['nope'] },
      { model: 'fixed', inputs: [{ name: 'x', datatype: 'FP32', shape: [3, 3], data: new Uint8Array(36) }] },
      { model: 'clf', inputs: [good] },
    ]);
    assert.deepEqual(answers.map((a) => a.error?.code ?? 'OK'), [
      'MODEL_NOT_FOUND', 'VERSION_NOT_FOUND', 'INVALID_INPUT', 'INVALID_INPUT', 'INVALID_INPUT', 'INVALID_INPUT', 'INVALID_INPUT', 'OK',
    ]);
    assert.equal(i64(answers[7]!.outputs.find((o) => o.name === 'label')!)[0], labels[1]);
  });

  it('rejects a byte length that does not match the shape and a reused in-flight id, per request', async () => {
    const slowInput = { name: 'input', datatype: 'FP32' as const, shape: [1, 4], data: bytesOf(new Float32Array(4)) };
    const frame = encodeFrame({ requests: [
      { id: 900n, model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Uint8Array(10) }] },
      { id: 5n, model: 'slow', inputs: [slowInput] },
      { id: 5n, model: 'slow', inputs: [slowInput] },
    ] });
    const { responses } = await rawExchange(server.wsUrl, [frame], 3);
    const byId = (id: bigint) => responses.filter((r) => r.id === id).map((r) => r.error?.code ?? 'OK').sort();
    assert.deepEqual(byId(900n), ['INVALID_INPUT']);
    assert.deepEqual(byId(5n), ['DUPLICATE_ID', 'OK']);
  });

  it('answers an undecodable or text frame with a frame-level BAD_FRAME and stays up', async () => {
    const { frameErrors: errs } = await rawExchange(server.wsUrl, [new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9]), new Uint8Array(64)], 2);
    assert.deepEqual(errs.map((e) => e.code), ['BAD_FRAME', 'BAD_FRAME']);
    const r = await client.infer({ model: 'clf', inputs: [row(2)] });
    assert.equal(i64(r.outputs.find((o) => o.name === 'label')!)[0], labels[2]);
    assert.equal(frameErrors.length, 0);
  });
});

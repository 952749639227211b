import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import { assertClose, classifierReference, getJson, postJson, serve, tempDir } from './helpers.js';

/**
 * The acceptance scenario: a model directory the server has never seen, a classifier
 * input [N,64] FP32 -> probabilities [N,10] FP32 + label [N] INT64, no config file. OIP infer on
 * 540 rows in one request and on 540 concurrent single-row requests must return exactly what ORT
 * gives in-process.
 */
describe('OIP REST on an unseen model directory (no config.json)', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  let expectedProbs: Float32Array;
  let expectedLabels: BigInt64Array;
  const N = 540;
  const x = new Float32Array(N * 64);

  before(async () => {
    const fx = writeClassifier(tmp.dir, 'digits64', { seed: 7, hidden: 32 });
    const ref = await classifierReference(fx.file, N, { seed: 99, range: 1 });
    x.set(ref.x);
    expectedProbs = ref.probs;
    expectedLabels = ref.labels;
    server = await serve(tmp.dir);
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it('reports metadata read from the ONNX session, with -1 for the batch dim', async () => {
    const { status, json } = await getJson(`${server.url}/v2/models/digits64`);
    assert.equal(status, 200);
    assert.deepEqual(json.inputs, [{ name: 'input', datatype: 'FP32', shape: [-1, 64] }]);
    assert.deepEqual(json.outputs, [
      { name: 'probabilities', datatype: 'FP32', shape: [-1, 10] },
      { name: 'label', datatype: 'INT64', shape: [-1] },
    ]);
    assert.deepEqual(json.versions, ['1']);
    assert.equal((await getJson(`${server.url}/v2/models/digits64/ready`)).status, 200);
    assert.equal((await getJson(`${server.url}/v2/health/ready`)).status, 200);
  });

  it('540 rows in one request equal in-process ORT', async () => {
    const { status, json } = await postJson(`${server.url}/v2/models/digits64/infer`, {
      id: 'all-rows',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [N, 64], data: Array.from(x) }],
    });
    assert.equal(status, 200, JSON.stringify(json).slice(0, 300));
    assert.equal(json.id, 'all-rows');
    assert.equal(json.model_name, 'digits64');
    assert.equal(json.model_version, '1');
    const probs = json.outputs.find((o: any) => o.name === 'probabilities');
    const label = json.outputs.find((o: any) => o.name === 'label');
    assert.deepEqual(probs.shape, [N, 10]);
    assert.equal(label.datatype, 'INT64');
    assert.deepEqual(label.shape, [N]);
    assertClose(probs.data, expectedProbs, 1e-5, 'probabilities');
    assert.deepEqual(label.data, Array.from(expectedLabels, Number));
  });

  it('540 concurrent single-row requests equal in-process ORT, and are batched', async () => {
    const replies = await Promise.all(Array.from({ length: N }, (_, i) =>
      postJson(`${server.url}/v2/models/digits64/infer`, {
        inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: Array.from(x.subarray(i * 64, (i + 1) * 64)) }],
        outputs: [{ name: 'label' }, { name: 'probabilities' }],
      })));
    replies.forEach((r, i) => {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.deepEqual(r.json.outputs.map((o: any) => o.name), ['label', 'probabilities']);
      assert.equal(r.json.outputs[0].data[0], Number(expectedLabels[i]));
      assertClose(r.json.outputs[1].data, expectedProbs.subarray(i * 10, (i + 1) * 10), 1e-5, `row ${i}`);
    });
    const ex = server.registry.resolve('digits64').executor!;
    assert.ok(ex.latency.batchRows.maxValue > 1, `expected batches of more than one row, max was ${ex.latency.batchRows.maxValue}`);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeClassifier, writeFaultyModel, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { bytesOf, postJson, serve, tempDir } from './helpers.js';

/**
 * Faulty models: a model that throws, a worker that exits, a worker that runs out of memory, a
 * worker stuck in an endless loop. Each misbehaves only on a "poison" input (x[0] = 666), so the
 * same model serves normal queries before and after. Under load from a healthy model, every
 * query is answered exactly once and the server keeps serving.
 */
const FAULTS: Record<string, string> = {
  thrower: `throw new Error('model exploded on poison input');`,
  exiter: `process.exit(3);`,
  hog: `const keep = []; for (;;) keep.push(new Array(1e6).fill(Math.random()));`,
  spinner: `for (;;) {}`,
};

function writeFaulty(repo: string, name: string, fault: string): void {
  writeFaultyModel(repo, name, fault);
  writeModelConfig(repo, name, { max_batch_size: 1, cache_bytes: 0, batch_timeout_ms: 1500, max_consecutive_failures: 3, max_worker_memory_mb: 48 });
}

describe('faulty models: every query answered once, others unaffected, server keeps serving', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  let client: SkiffClient;

  before(async () => {
    for (const [name, fault] of Object.entries(FAULTS)) writeFaulty(tmp.dir, name, fault);
    writeClassifier(tmp.dir, 'healthy', { seed: 1, inputDim: 4, classes: 3 });
    writeModelConfig(tmp.dir, 'healthy', { cache_bytes: 0 });
    server = await serve(tmp.dir);
    for (const name of Object.keys(FAULTS)) {
      server.apps.add({ name: `app_${name}`, input_type: 'floats', input_shape: [4], latency_slo_micros: 300_000, default_output: -1, policy: 'single', models: [name] });
    }
    client = await SkiffClient.connect(server.wsUrl);
  });
  after(async () => {
    await client?.close();
    await server?.close();
    tmp.cleanup();
  });

  const q = (model: string, x0: number) => client.infer({ model, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: bytesOf(new Float32Array([x0, 1, 2, 3])) }] });

  /** Healthy background load while `body` runs; returns its counts. */
  async function underLoad(body: () => Promise<void>) {
    let stop = false;
    const counts = { sent: 0, ok: 0, bad: 0 };
    const loops = Array.from({ length: 4 }, async () => {
      while (!stop) {
        counts.sent++;
        const r = await client.infer({ model: 'healthy', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: bytesOf(new Float32Array([counts.sent % 5, 0, 1, 2])) }] });
        if (r.error) counts.bad++;
        else counts.ok++;
      }
    });
    await body();
    stop = true;
    await Promise.all(loops);
    return counts;
  }

  for (const name of Object.keys(FAULTS)) {
    it(`${name}: the poison query gets MODEL_ERROR, the model recovers, the app answers its default`, async () => {
      const counts = await underLoad(async () => {
        const before = await q(name, 1);
        assert.equal(before.error, undefined, before.error?.message);
        assert.deepEqual(Array.from(new Float32Array(before.outputs[0]!.data.slice().buffer)), [2, 2, 3, 4]);
        const t0 = performance.now();
        const poison = await q(name, 666);
        assert.equal(poison.error?.code, 'MODEL_ERROR', JSON.stringify(poison.error));
        if (name === 'spinner') assert.ok(performance.now() - t0 < 4000, 'a hung batch is cut at batch_timeout_ms');
        // The same model serves the next normal query (a replacement worker when it died).
        const afterQ = await q(name, 2);
        assert.equal(afterQ.error, undefined, afterQ.error?.message);
        assert.deepEqual(Array.from(new Float32Array(afterQ.outputs[0]!.data.slice().buffer)), [3, 2, 3, 4]);
        // Through an application, the poison input yields the default output by the deadline.
        const viaApp = await postJson(`${server.url}/app_${name}/predict`, { input: [666, 1, 2, 3] });
        assert.equal(viaApp.status, 200, JSON.stringify(viaApp.json));
        assert.equal(viaApp.json.default, true);
        assert.equal(viaApp.json.output, -1);
      });
      assert.equal(counts.ok + counts.bad, counts.sent, 'every healthy query answered once');
      assert.equal(counts.bad, 0, 'the healthy model is unaffected');
      assert.ok(counts.ok > 0);
    });
  }

  it('repeated worker failures mark the version failed, with the reason in the admin API', async () => {
    // The spinner already failed once (app + direct); two more hung batches reach the limit of 3.
    for (let i = 0; i < 3 && server.registry.list().find((m) => m.name === 'spinner')!.versions[0]!.state === 'ready'; i++) {
      const r = await q('spinner', 666);
      assert.equal(r.error?.code, 'MODEL_ERROR');
    }
    const m = (await postJson(`${server.adminUrl}/admin/get_model`, { model_name: 'spinner', model_version: 1 })).json;
    assert.equal(m.state, 'failed');
    assert.match(m.reason, /worker failures in a row/);
    const r = await q('spinner', 1);
    assert.equal(r.error?.code, 'MODEL_UNAVAILABLE');
    const ok = await q('healthy', 1);
    assert.equal(ok.error, undefined);
  });
});

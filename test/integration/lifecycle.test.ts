import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { writeClassifier, writeModelConfig, type ModelFixture } from '../../src/modelgen/fixtures.js';
import { Prng } from '../../src/modelgen/prng.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { bytesOf, i64, postJson, serve, tempDir } from './helpers.js';

/**
 * Model lifecycle under load: deploy, roll back, a failed load, replicas resized live, refused
 * paths. A background load runs through every change; each answer must be exactly once, carry
 * the version that served it, and equal that version's own output.
 */
describe('model lifecycle under steady load', () => {
  const tmp = tempDir();
  const outside = tempDir('skiff-outside-');
  let server: Awaited<ReturnType<typeof serve>>;
  let v1: ModelFixture;
  let v2: ModelFixture;
  const rows = 64;
  const xs = new Float32Array(rows * 8);

  before(async () => {
    v1 = writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 8, classes: 10, version: 1 });
    writeModelConfig(tmp.dir, 'clf', { max_batch_size: 16, cache_bytes: 0 });
    // v2 is prepared outside the served versions: it is deployed through add_model by path.
    v2 = writeClassifier(join(tmp.dir, 'staging'), 'clf', { seed: 2, inputDim: 8, classes: 10, version: 2 });
    const rng = new Prng(3);
    for (let i = 0; i < xs.length; i++) xs[i] = rng.uniform(-3, 3);
    server = await serve(tmp.dir, { uploadDir: join(tmp.dir, 'uploads') });
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
    outside.cleanup();
  });

  const admin = (call: string, body: unknown) => postJson(`${server.adminUrl}/admin/${call}`, body);
  const expectedLabel = (fx: ModelFixture, i: number): bigint => {
    const out = fx.forward({ input: { datatype: 'FP32', shape: [1, 8], data: xs.subarray(i * 8, i * 8 + 8) } });
    return (out.label!.data as BigInt64Array)[0]!;
  };

  /** Steady load until stop(): every query checked against the fixture of the version that served it. */
  function load(clients: SkiffClient[]) {
    let stopped = false;
    const stats = { sent: 0, answered: 0, errors: [] as string[], versions: new Map<number, number>(), wrong: 0 };
    const loops = clients.flatMap((c) => Array.from({ length: 4 }, async () => {
      while (!stopped) {
        const i = stats.sent++ % rows;
        const r = await c.infer({ model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 8], data: bytesOf(xs.subarray(i * 8, i * 8 + 8)) }] });
        stats.answered++;
        if (r.error) {
          stats.errors.push(r.error.code);
          continue;
        }
        stats.versions.set(r.version, (stats.versions.get(r.version) ?? 0) + 1);
        const fx = r.version === 1 ? v1 : v2;
        if (i64(r.outputs.find((o) => o.name === 'label')!)[0] !== expectedLabel(fx, i)) stats.wrong++;
      }
    }));
    return { stats, stop: async () => { stopped = true; await Promise.all(loops); } };
  }

  it('deploys v2 under load, then rolls back to v1: every query answered once, by a labelled version, no errors', async () => {
    const clients = await Promise.all([SkiffClient.connect(server.wsUrl), SkiffClient.connect(server.wsUrl)]);
    const l = load(clients);
    await new Promise((r) => setTimeout(r, 300));
    let r = await admin('add_model', { model_name: 'clf', model_version: 2, model_data_path: v2.file });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(server.registry.resolve('clf').version, 2);
    await new Promise((r) => setTimeout(r, 300));
    r = await admin('set_model_version', { model_name: 'clf', model_version: 1 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(server.registry.resolve('clf').version, 1);
    await new Promise((r) => setTimeout(r, 300));
    await l.stop();
    for (const c of clients) await c.close();
    console.log(`hot swap: ${l.stats.answered} queries, by version ${JSON.stringify([...l.stats.versions])}`);
    assert.equal(l.stats.answered, l.stats.sent, 'every query answered exactly once');
    assert.deepEqual(l.stats.errors, []);
    assert.equal(l.stats.wrong, 0, 'each answer equals the output of the version it names');
    assert.ok((l.stats.versions.get(1) ?? 0) > 0 && (l.stats.versions.get(2) ?? 0) > 0, 'both versions served');
    // Clipper's shape: versions as strings, is_current_version.
    const all = (await admin('get_all_models', { verbose: true })).json as { model_version: string; state: string; is_current_version: boolean }[];
    assert.deepEqual(all.map((m) => [m.model_version, m.state, m.is_current_version]), [['1', 'ready', true], ['2', 'unloaded', false]]);
  });

  it('a version that fails to load leaves the current one serving, with the reason reported', async () => {
    const bad = join(tmp.dir, 'staging', 'clf', '3');
    mkdirSync(bad, { recursive: true });
    writeFileSync(join(bad, 'model.onnx'), 'this is not an onnx model');
    const r = await admin('add_model', { model_name: 'clf', model_version: 3, model_data_path: join(bad, 'model.onnx') });
    assert.equal(r.status, 500);
    assert.equal(r.json.code, 'MODEL_LOAD_FAILED');
    assert.equal(server.registry.resolve('clf').version, 1);
    const m = (await admin('get_model', { model_name: 'clf', model_version: 3 })).json;
    assert.equal(m.state, 'failed');
    assert.ok(typeof m.reason === 'string' && m.reason.length > 0);
    const c = await SkiffClient.connect(server.wsUrl);
    const ok = await c.infer({ model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 8], data: bytesOf(xs.subarray(0, 8)) }] });
    assert.equal(ok.error, undefined);
    assert.equal(ok.version, 1);
    await c.close();
  });

  it('resizes replicas 1 -> 3 -> 1 under load without an error', async () => {
    const clients = [await SkiffClient.connect(server.wsUrl)];
    const l = load(clients);
    await new Promise((r) => setTimeout(r, 200));
    let r = await admin('set_num_replicas', { model_name: 'clf', num_replicas: 3 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(server.registry.resolve('clf').executor!.replicas, 3);
    await new Promise((r) => setTimeout(r, 200));
    r = await admin('set_num_replicas', { model_name: 'clf', num_replicas: 1 });
    assert.equal(r.status, 200);
    assert.equal(server.registry.resolve('clf').executor!.replicas, 1);
    await new Promise((r) => setTimeout(r, 200));
    await l.stop();
    await clients[0]!.close();
    assert.equal(l.stats.answered, l.stats.sent);
    assert.deepEqual(l.stats.errors, []);
    assert.equal(l.stats.wrong, 0);
  });

  it('refuses model paths that escape the repository and upload directory', async () => {
    const fx = writeClassifier(outside.dir, 'evil', { seed: 9, inputDim: 8 });
    let r = await admin('add_model', { model_name: 'evil', model_version: 1, model_data_path: fx.file });
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'PATH_NOT_ALLOWED');
    r = await admin('add_model', { model_name: 'evil', model_version: 1, model_data_path: join(tmp.dir, '..', '..', fx.file) });
    assert.equal(r.json.code, 'PATH_NOT_ALLOWED');
    // A symlink inside the repository that points outside is refused too.
    symlinkSync(fx.file, join(tmp.dir, 'link.onnx'));
    r = await admin('add_model', { model_name: 'evil', model_version: 1, model_data_path: join(tmp.dir, 'link.onnx') });
    assert.equal(r.json.code, 'PATH_NOT_ALLOWED');
    assert.equal(server.registry.has('evil'), false);
  });

  it('adds a model from bytes in the request, and deletes a version', async () => {
    const { readFileSync } = await import('node:fs');
    const bytes = readFileSync(v2.file).toString('base64');
    let r = await admin('add_model', { model_name: 'uploaded', model_version: 1, model_data_base64: bytes });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(server.registry.resolve('uploaded').version, 1);
    r = await admin('delete_versioned_model', { model_name: 'clf', model_version: 2 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await admin('delete_versioned_model', { model_name: 'clf', model_version: 2 });
    assert.equal(r.json.code, 'VERSION_NOT_FOUND');
  });

  it('OIP repository extension: index, unload, load', async () => {
    let r = await postJson(`${server.adminUrl}/v2/repository/index`, {});
    assert.equal(r.status, 200);
    assert.ok(r.json.some((e: any) => e.name === 'clf' && e.version === '1' && e.state === 'READY'));
    r = await postJson(`${server.adminUrl}/v2/repository/models/clf/unload`, {});
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const gone = await postJson(`${server.url}/v2/models/clf/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 8], data: Array.from(xs.subarray(0, 8)) }] });
    assert.equal(gone.status, 503);
    r = await postJson(`${server.adminUrl}/v2/repository/models/clf/load`, {});
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const back = await postJson(`${server.url}/v2/models/clf/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 8], data: Array.from(xs.subarray(0, 8)) }] });
    assert.equal(back.status, 200);
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { DEMO_REPOSITORY } from '../../src/paths.js';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import { loadMnist } from '../../src/modelgen/mnist-data.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { bytesOf, postJson, serve, tempDir } from './helpers.js';

/** Clipper's query and management REST APIs, with the exact shapes, on a real server. */
describe('Clipper REST: applications, predict, batch predict, update, admin', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  const { test } = loadMnist();
  const digit = (i: number) => Array.from(test.x.subarray(i * 784, (i + 1) * 784));
  const admin = (call: string, body: unknown, token?: string) =>
    postJson(`${server.adminUrl}/admin/${call}`, body, token ? { authorization: `Bearer ${token}` } : {});

  before(async () => {
    cpSync(DEMO_REPOSITORY, tmp.dir, { recursive: true });
    writeClassifier(tmp.dir, 'other64', { seed: 1 });
    server = await serve(tmp.dir);
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it('GET /admin/ping answers PONG', async () => {
    const r = await fetch(`${server.adminUrl}/admin/ping`);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'PONG');
  });

  it('add_app, add_model_links, get_application, get_linked_models, get_all_applications', async () => {
    let r = await admin('add_app', { name: 'mnist', input_type: 'floats', default_output: '-1', latency_slo_micros: 100000 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await admin('add_app', { name: 'mnist', input_type: 'floats', default_output: '-1', latency_slo_micros: 100000 });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'BAD_REQUEST');
    r = await admin('add_model_links', { app_name: 'mnist', model_names: ['mnist_mlp'] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await admin('get_linked_models', { app_name: 'mnist' });
    assert.deepEqual(r.json, ['mnist_mlp']);
    r = await admin('get_application', { name: 'mnist' });
    assert.equal(r.json.name, 'mnist');
    assert.equal(r.json.latency_slo_micros, 100000);
    assert.equal(r.json.default_output, '-1');
    assert.deepEqual(r.json.linked_models, ['mnist_mlp']);
    r = await admin('add_app', {
      name: 'vote', input_type: 'floats', default_output: -1, latency_slo_micros: 100000, policy: 'exp4',
      candidate_model_names: ['mnist_mlp', 'mnist_logreg:1'],
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await admin('get_all_applications', { verbose: false });
    assert.deepEqual(r.json, ['mnist', 'vote']);
    r = await admin('get_all_applications', { verbose: true });
    assert.equal(r.json.length, 2);
    assert.equal(r.json[1].policy, 'exp4');
  });

  it('refuses bad admin calls with coded JSON errors', async () => {
    const cases: [string, unknown, number, string][] = [
      ['add_app', { name: 'x' }, 400, 'BAD_REQUEST'],
      ['add_app', { name: 'y', default_output: 1, latency_slo_micros: 5, input_type: 'floats' }, 400, 'BAD_REQUEST'],
      ['add_app', { name: 'z', default_output: 1, latency_slo_micros: 5000, policy: 'nope' }, 400, 'BAD_REQUEST'],
      ['delete_model_links', { app_name: 'mnist', model_names: ['not_linked'] }, 400, 'BAD_REQUEST'],
      ['add_model_links', { app_name: 'mnist', model_names: 'mnist_mlp' }, 400, 'BAD_REQUEST'],
      ['no_such_call', {}, 404, 'NOT_FOUND'],
      ['add_model_links', { app_name: 'mnist', model_names: ['no_such_model'] }, 404, 'MODEL_NOT_FOUND'],
    ];
    for (const [call, body, status, code] of cases) {
      const r = await admin(call, body);
      assert.equal(r.status, status, `${call} ${JSON.stringify(r.json)}`);
      assert.equal(r.json.code, code, call);
      assert.equal(typeof r.json.error, 'string');
    }
    const bad = await admin('add_app', '{"name": ');
    assert.equal(bad.json.code, 'BAD_REQUEST');
  });

  it('POST /<app>/predict answers {query_id, output, default} with the models that produced it', async () => {
    const r = await postJson(`${server.url}/mnist/predict`, { input: digit(0) });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(typeof r.json.query_id, 'number');
    assert.equal(r.json.output, test.y[0]);
    assert.equal(r.json.default, false);
    assert.equal(r.json.default_explanation, undefined);
    assert.deepEqual(r.json.models_used, ['mnist_mlp:1']);
    const r2 = await postJson(`${server.url}/mnist/predict`, { input: digit(1) });
    assert.ok(r2.json.query_id > r.json.query_id);
  });

  it('POST /<app>/predict with input_batch answers {batch_predictions: [...]}', async () => {
    const r = await postJson(`${server.url}/vote/predict`, { input_batch: [digit(2), digit(3), digit(4)] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.batch_predictions.length, 3);
    r.json.batch_predictions.forEach((p: any, k: number) => {
      assert.equal(p.default, false);
      assert.equal(typeof p.query_id, 'number');
      assert.deepEqual(p.models_used.sort(), ['mnist_logreg:1', 'mnist_mlp:1']);
      assert.equal(p.probabilities.length, 10);
      assert.equal(p.output, p.probabilities.indexOf(Math.max(...p.probabilities)), `query ${k}`);
    });
  });

  it('answers the default, marked and explained, when no model is linked', async () => {
    await admin('add_app', { name: 'empty', input_type: 'floats', input_shape: [784], default_output: 7, latency_slo_micros: 20000 });
    const r = await postJson(`${server.url}/empty/predict`, { input: digit(0) });
    assert.equal(r.status, 200);
    assert.equal(r.json.default, true);
    assert.equal(r.json.output, 7);
    assert.equal(r.json.default_explanation, 'No connected models found for query');
  });

  it('POST /<app>/update takes {uid, input, label} and moves the selection state', async () => {
    await admin('add_app', { name: 'learn', input_type: 'floats', default_output: -1, latency_slo_micros: 100000, policy: 'exp4', models: ['mnist_mlp', 'mnist_weak'] });
    const before = (await admin('get_selection_state', { app_name: 'learn', uid: 42 })).json.weights;
    assert.ok(Math.abs(before.mnist_mlp - 0.5) < 1e-9);
    for (let i = 0; i < 40; i++) {
      const u = await postJson(`${server.url}/learn/update`, { uid: 42, input: digit(i), label: test.y[i] });
      assert.equal(u.status, 200, JSON.stringify(u.json));
      assert.equal(u.json.success, true);
    }
    const afterW = (await admin('get_selection_state', { app_name: 'learn', uid: 42 })).json.weights;
    assert.ok(afterW.mnist_mlp > 0.6, `the better model gains weight for user 42: ${JSON.stringify(afterW)}`);
    const global = (await admin('get_selection_state', { app_name: 'learn' })).json.weights;
    assert.ok(Math.abs(global.mnist_mlp - 0.5) < 1e-9, 'the app-wide state is separate from user 42');
  });

  it('refuses bad predict/update bodies with coded errors', async () => {
    const cases: [string, unknown, number, string][] = [
      ['/mnist/predict', { input: [1, 2, 3] }, 400, 'INVALID_INPUT'],
      ['/mnist/predict', { input: ['a'] }, 400, 'INVALID_INPUT'],
      ['/mnist/predict', {}, 400, 'BAD_REQUEST'],
      ['/mnist/predict', { input_batch: [] }, 400, 'BAD_REQUEST'],
      ['/nope/predict', { input: digit(0) }, 404, 'APP_NOT_FOUND'],
      ['/mnist/update', { uid: 1, input: digit(0) }, 400, 'BAD_REQUEST'],
      ['/mnist/update', { uid: 1, input: digit(0), label: 'x' }, 400, 'BAD_REQUEST'],
    ];
    for (const [path, body, status, code] of cases) {
      const r = await postJson(`${server.url}${path}`, body);
      assert.equal(r.status, status, `${path} ${JSON.stringify(r.json)}`);
      assert.equal(r.json.code, code, path);
      assert.equal(typeof r.json.cause, 'string');
    }
  });

  it('serves app queries and feedback over the WebSocket protocol too', async () => {
    const c = await SkiffClient.connect(server.wsUrl);
    const x = test.x.subarray(5 * 784, 6 * 784);
    const r = await c.infer({ app: 'vote', user: 'u1', inputs: [{ name: 'input', datatype: 'FP32', shape: [784], data: bytesOf(x) }] });
    assert.equal(r.error, undefined, r.error?.message);
    assert.equal(r.isDefault, undefined);
    assert.deepEqual([...r.modelsUsed!].sort(), ['mnist_logreg:1', 'mnist_mlp:1']);
    const out = r.outputs.find((t) => t.name === 'output')!;
    assert.equal(new Float64Array(out.data.slice().buffer)[0], test.y[5]);
    await c.close();
  });

  it('delete_model_links and delete_app', async () => {
    let r = await admin('delete_model_links', { app_name: 'vote', model_names: ['mnist_logreg:1'] });
    assert.deepEqual(r.json.app.linked_models, ['mnist_mlp']);
    r = await admin('delete_app', { name: 'vote' });
    assert.equal(r.status, 200);
    r = await postJson(`${server.url}/vote/predict`, { input: digit(0) });
    assert.equal(r.json.code, 'APP_NOT_FOUND');
  });
});

describe('admin token', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeClassifier(tmp.dir, 'm', { seed: 1 });
    server = await serve(tmp.dir, { adminToken: 's3cret' });
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
  });
  it('refuses admin calls without the bearer token', async () => {
    assert.equal((await fetch(`${server.adminUrl}/admin/ping`)).status, 401);
    const r = await postJson(`${server.adminUrl}/admin/get_all_applications`, {});
    assert.equal(r.status, 401);
    assert.equal(r.json.code, 'UNAUTHORIZED');
    const ok = await postJson(`${server.adminUrl}/admin/get_all_applications`, {}, { authorization: 'Bearer s3cret' });
    assert.equal(ok.status, 200);
  });
});

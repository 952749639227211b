/**
 * Drop-in for the clients people have (issue 13): the bodies and headers Clipper's
 * `clipper_admin.ClipperConnection` and Triton's `tritonclient.http` send, and what they read back
 * (learned from their source), against a real server on loopback.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync, deflateSync, inflateSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { serve, tempDir } from './helpers.js';
import { writeClassifier, writeModelConfig } from '../../src/modelgen/fixtures.js';

const T = { timeout: 120_000 };
// What ClipperConnection sends with every admin call (requests adds its own defaults).
const CLIPPER_HEADERS = { 'Content-type': 'application/json', Accept: '*/*', 'User-Agent': 'python-requests/2.28.1' };

async function clipper(url: string, call: string, body: unknown): Promise<{ status: number; json: any }> {
  const r = await fetch(`${url}/admin/${call}`, { method: 'POST', headers: CLIPPER_HEADERS, body: JSON.stringify(body) });
  const text = await r.text();
  let json: unknown = text;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, json };
}

describe('Clipper\'s admin client and query frontend', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    writeClassifier(tmp.dir, 'clf', { seed: 2, inputDim: 4, classes: 3, version: 2 });
    writeModelConfig(tmp.dir, 'clf', { version_policy: { all: true } });
    mkdirSync(join(tmp.dir, 'broken', '1'), { recursive: true });
    writeFileSync(join(tmp.dir, 'broken', '1', 'model.onnx'), 'not a graph');
    s = await serve(tmp.dir, { rpcPort: 0 });
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('register_application, get_app_info (and None for a missing app), get_all_apps, get_linked_models', T, async () => {
    let r = await clipper(s.adminUrl, 'add_app', { name: 'app1', input_type: 'floats', default_output: '-1.0', latency_slo_micros: 100000 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await clipper(s.adminUrl, 'get_application', { name: 'app1' });
    assert.equal(r.status, 200);
    assert.equal(r.json.name, 'app1');
    assert.equal(r.json.input_type, 'floats');
    assert.equal(r.json.latency_slo_micros, 100000);
    assert.deepEqual(r.json.linked_models, []);
    r = await clipper(s.adminUrl, 'get_application', { name: 'nope' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, {}, 'len(app_info) == 0: the client returns None');
    r = await clipper(s.adminUrl, 'get_all_applications', { verbose: false });
    assert.ok((r.json as string[]).includes('app1'));
    r = await clipper(s.adminUrl, 'get_linked_models', { app_name: 'app1' });
    assert.deepEqual(r.json, []);
  });

  it('an app with nothing linked answers its default with Clipper\'s explanation; predict/ with a trailing slash', T, async () => {
    const r = await fetch(`${s.url}/app1/predict/`, { method: 'POST', headers: { 'Content-type': 'application/json' }, body: JSON.stringify({ input: [1, 2, 3, 4] }) });
    assert.equal(r.status, 200);
    const j = await r.json() as Record<string, unknown>;
    assert.equal(j.default, true);
    assert.equal(j.output, '-1.0');
    assert.equal(j.default_explanation, 'No connected models found for query');
  });

  it('register_model as the client sends it: a repository version, or a container-backed one; get_model_info in Clipper\'s shape (None when missing)', T, async () => {
    // Version 1 of clf is in the repository: found there.
    let r = await clipper(s.adminUrl, 'add_model', { model_name: 'clf', model_version: '1', labels: ['a', 'b'], input_type: 'floats', container_name: 'NO_CONTAINER', model_data_path: 'DEPRECATED', batch_size: -1 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await clipper(s.adminUrl, 'get_model', { model_name: 'clf', model_version: '1' });
    assert.equal(r.json.model_name, 'clf');
    assert.equal(r.json.model_version, '1');
    assert.equal(r.json.is_current_version, true);
    assert.equal(r.json.input_type, 'floats');
    assert.deepEqual(r.json.labels, ['a', 'b']);
    assert.equal(r.json.container_name, 'NO_CONTAINER');
    assert.equal(r.json.batch_size, -1);
    assert.equal(r.json.kind, 'onnx');
    // Nothing in the repository: served by containers that connect for it.
    r = await clipper(s.adminUrl, 'add_model', { model_name: 'pyclf', model_version: '3', labels: ['x'], input_type: 'doubles', container_name: 'example/py:1', model_data_path: 'DEPRECATED', batch_size: -1 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await clipper(s.adminUrl, 'get_model', { model_name: 'pyclf', model_version: '3' });
    assert.equal(r.json.kind, 'container');
    assert.equal(r.json.container_name, 'example/py:1');
    assert.equal(r.json.input_type, 'doubles');
    assert.equal(r.json.model_data_path, 'DEPRECATED');
    for (const body of [{ model_name: 'none', model_version: '1' }, { model_name: 'clf', model_version: '9' }]) {
      r = await clipper(s.adminUrl, 'get_model', body);
      assert.equal(r.status, 200);
      assert.deepEqual(r.json, {});
    }
  });

  it('get_all_models(verbose) carries is_current_version, so get_current_model_version and stop_inactive_model_versions work', T, async () => {
    let r = await clipper(s.adminUrl, 'set_model_version', { model_name: 'clf', model_version: '2' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    r = await clipper(s.adminUrl, 'get_all_models', { verbose: true });
    const models = r.json as { model_name: string; model_version: string; is_current_version: boolean }[];
    const current = models.find((m) => m.model_name === 'clf' && m.is_current_version);
    assert.equal(current?.model_version, '2');
    // stop_inactive_model_versions: delete every version that is not current.
    for (const m of models.filter((x) => x.model_name === 'clf' && !x.is_current_version)) {
      r = await clipper(s.adminUrl, 'delete_versioned_model', { model_name: m.model_name, model_version: m.model_version });
      assert.equal(r.status, 200, JSON.stringify(r.json));
    }
    r = await clipper(s.adminUrl, 'get_all_models', { verbose: false });
    assert.ok((r.json as string[]).includes('clf:2') && !(r.json as string[]).includes('clf:1'));
  });

  it('link_model_to_app refuses a model that does not exist; a non-numeric version is refused with a coded error', T, async () => {
    let r = await clipper(s.adminUrl, 'add_model_links', { app_name: 'app1', model_names: ['ghost'] });
    assert.notEqual(r.status, 200);
    assert.equal(r.json.code, 'MODEL_NOT_FOUND');
    r = await clipper(s.adminUrl, 'add_model_links', { app_name: 'app1', model_names: ['clf'] });
    assert.equal(r.status, 200);
    r = await clipper(s.adminUrl, 'add_model', { model_name: 'clf', model_version: 'v1', labels: [], input_type: 'floats', container_name: 'x', model_data_path: 'DEPRECATED', batch_size: -1 });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'BAD_REQUEST');
  });

  it('get_all_model_replicas (/admin/get_all_containers) and get_model_replica_info', T, async () => {
    const r = await clipper(s.adminUrl, 'get_all_containers', { verbose: false });
    assert.ok((r.json as string[]).some((x) => /^clf:\d+:0$/.test(x)), JSON.stringify(r.json));
    const one = await clipper(s.adminUrl, 'get_container', { model_name: 'clf', model_version: '2', replica_id: 0 });
    assert.equal(one.json.model_id, 'clf:2');
    assert.equal(one.json.model_replica_id, 0);
    const none = await clipper(s.adminUrl, 'get_container', { model_name: 'clf', model_version: '2', replica_id: 7 });
    assert.deepEqual(none.json, {});
  });

  it('get_model without a version for a model whose only version failed names its state, not "version undefined"', T, async () => {
    const r = await clipper(s.adminUrl, 'get_model', { model_name: 'broken' });
    assert.equal(r.status, 200);
    assert.equal(r.json.model_version, '1');
    assert.equal(r.json.state, 'failed');
  });

  it('inspect_instance: GET /metrics with requests\' headers is Clipper\'s JSON; a Prometheus scrape gets the exposition', T, async () => {
    const j = await fetch(`${s.url}/metrics`, { headers: { Accept: '*/*', 'User-Agent': 'python-requests/2.28.1' } });
    assert.match(j.headers.get('content-type') ?? '', /json/);
    const body = await j.json() as Record<string, unknown>;
    for (const k of ['counters', 'ratio_counters', 'meters', 'histograms']) assert.ok(k in body, k);
    const p = await fetch(`${s.url}/metrics`, { headers: { Accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1' } });
    assert.match(p.headers.get('content-type') ?? '', /^text\/plain/);
    assert.match(await p.text(), /^# HELP /m);
  });

  it('a known route with the wrong method answers 405 with Allow', T, async () => {
    const r = await fetch(`${s.url}/v2/models/clf/infer`);
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'POST');
    assert.equal((await r.json() as { code: string }).code, 'METHOD_NOT_ALLOWED');
  });
});

describe('Clipper\'s per-query "version"', () => {
  it('pins the model version of an application\'s query', T, async () => {
    const tmp = tempDir();
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    writeClassifier(tmp.dir, 'clf', { seed: 2, inputDim: 4, classes: 3, version: 2 });
    writeModelConfig(tmp.dir, 'clf', { version_policy: { all: true } });
    const s = await serve(tmp.dir);
    try {
      const r = await clipper(s.adminUrl, 'add_app', { name: 'pinned', input_type: 'floats', default_output: '-1', latency_slo_micros: 1_000_000 });
      assert.equal(r.status, 200);
      assert.equal((await clipper(s.adminUrl, 'add_model_links', { app_name: 'pinned', model_names: ['clf'] })).status, 200);
      for (const [version, want] of [[undefined, 'clf:2'], ['1', 'clf:1'], [2, 'clf:2']] as const) {
        const p = await fetch(`${s.url}/pinned/predict`, { method: 'POST', headers: { 'Content-type': 'application/json' }, body: JSON.stringify({ input: [1, 2, 3, 4], ...(version !== undefined ? { version } : {}) }) });
        const j = await p.json() as { models_used: string[] };
        assert.deepEqual(j.models_used, [want], JSON.stringify(j));
      }
    } finally {
      await s.close();
      tmp.cleanup();
    }
  });
});

describe('Triton\'s HTTP client', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  const TOKEN = 'triton-token';
  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    writeModelConfig(tmp.dir, 'clf', { max_batch_size: 32, batch_wait_timeout_us: 700, replicas: 1 });
    s = await serve(tmp.dir, { adminToken: TOKEN });
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('server metadata lists the extensions Skiff serves; the model configuration extension answers Triton\'s JSON form', T, async () => {
    const meta = await (await fetch(`${s.url}/v2`)).json() as { extensions: string[] };
    for (const e of ['binary_tensor_data', 'model_configuration', 'model_repository', 'statistics']) assert.ok(meta.extensions.includes(e), e);
    assert.ok(!meta.extensions.includes('trace') && !meta.extensions.includes('system_shared_memory'));
    for (const path of ['/v2/models/clf/config', '/v2/models/clf/versions/1/config']) {
      const c = await (await fetch(`${s.url}${path}`)).json() as Record<string, any>;
      assert.equal(c.name, 'clf');
      assert.equal(c.platform, 'onnxruntime_onnx');
      assert.equal(c.max_batch_size, 32);
      assert.deepEqual(c.input, [{ name: 'input', data_type: 'TYPE_FP32', dims: [4] }]);
      assert.deepEqual(c.output.map((o: { name: string; data_type: string }) => [o.name, o.data_type]), [['probabilities', 'TYPE_FP32'], ['label', 'TYPE_INT64']]);
      assert.equal(c.dynamic_batching.max_queue_delay_microseconds, 700);
      assert.deepEqual(c.instance_group, [{ name: 'clf', kind: 'KIND_CPU', count: 1 }]);
    }
  });

  const inferBody = JSON.stringify({ inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }] });

  it('request_compression_algorithm gzip and deflate; a zip bomb is refused after a bounded decompression', T, async () => {
    const plain = await (await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', body: inferBody })).json();
    for (const [enc, pack] of [['gzip', gzipSync], ['deflate', deflateSync]] as const) {
      const r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', headers: { 'Content-Encoding': enc }, body: pack(Buffer.from(inferBody)) });
      assert.equal(r.status, 200, enc);
      assert.deepEqual(await r.json(), plain);
    }
    const bomb = gzipSync(Buffer.alloc(512 * 1024 * 1024, 0x20), { level: 9 });
    assert.ok(bomb.byteLength < 1024 * 1024);
    const r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', headers: { 'Content-Encoding': 'gzip' }, body: bomb });
    assert.equal(r.status, 413);
    assert.equal((await r.json() as { code: string }).code, 'PAYLOAD_TOO_LARGE');
    const br = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', headers: { 'Content-Encoding': 'br' }, body: inferBody });
    assert.equal(br.status, 415);
  });

  it('response_compression_algorithm: a large answer comes back compressed when the client accepts it', T, async () => {
    const rows = 512;
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [rows, 4], datatype: 'FP32', data: Array.from({ length: rows * 4 }, (_, i) => (i % 7) / 7) }] });
    for (const [enc, unpack] of [['gzip', gunzipSync], ['deflate', inflateSync]] as const) {
      // undici would decompress transparently: read the raw bytes through node:http instead.
      const { request } = await import('node:http');
      const raw = await new Promise<{ headers: Record<string, unknown>; bytes: Buffer }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: s.port, method: 'POST', path: '/v2/models/clf/infer', headers: { 'Accept-Encoding': enc, 'content-length': Buffer.byteLength(body) } }, (res) => {
          const parts: Buffer[] = [];
          res.on('data', (d: Buffer) => parts.push(d));
          res.on('end', () => resolve({ headers: res.headers, bytes: Buffer.concat(parts) }));
        });
        req.on('error', reject);
        req.end(body);
      });
      assert.equal(raw.headers['content-encoding'], enc);
      const json = JSON.parse(unpack(raw.bytes).toString()) as { outputs: { shape: number[] }[] };
      assert.deepEqual(json.outputs[0]!.shape, [rows, 3]);
    }
  });

  it('the repository extension on the main port with the admin token (and not without); load_model(config=...) applies or refuses an override', T, async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    // tritonclient posts an empty index request with no Content-Type.
    let r = await fetch(`${s.url}/v2/repository/index`, { method: 'POST', headers: auth, body: '' });
    assert.equal(r.status, 200);
    assert.ok((await r.json() as { name: string }[]).some((m) => m.name === 'clf'));
    r = await fetch(`${s.url}/v2/repository/index`, { method: 'POST', body: '' });
    assert.equal(r.status, 401);
    const config = JSON.stringify({ name: 'clf', max_batch_size: 8, dynamic_batching: { max_queue_delay_microseconds: 100 }, instance_group: [{ count: 2, kind: 'KIND_CPU' }] });
    r = await fetch(`${s.url}/v2/repository/models/clf/load`, { method: 'POST', headers: auth, body: JSON.stringify({ parameters: { config } }) });
    assert.equal(r.status, 200, await r.clone().text());
    const c = await (await fetch(`${s.url}/v2/models/clf/config`)).json() as Record<string, any>;
    assert.equal(c.max_batch_size, 8);
    assert.equal(c.dynamic_batching.max_queue_delay_microseconds, 100);
    assert.equal(c.instance_group[0].count, 2);
    r = await fetch(`${s.url}/v2/repository/models/clf/load`, { method: 'POST', headers: auth, body: JSON.stringify({ parameters: { config: JSON.stringify({ sequence_batching: {} }) } }) });
    assert.equal(r.status, 400);
    assert.equal((await r.json() as { code: string }).code, 'CONFIG_INVALID');
    r = await fetch(`${s.url}/v2/repository/models/clf/load`, { method: 'POST', headers: auth, body: JSON.stringify({ parameters: { config, 'file:1/model.onnx': 'AAAA' } }) });
    assert.equal((await r.json() as { code: string }).code, 'NOT_SUPPORTED');
    r = await fetch(`${s.url}/v2/repository/models/clf/unload`, { method: 'POST', headers: auth, body: JSON.stringify({ parameters: { unload_dependents: false } }) });
    assert.equal(r.status, 200);
  });

  it('trace, logging and shared-memory calls get a coded NOT_SUPPORTED, not a bare 404', T, async () => {
    for (const [method, path] of [['GET', '/v2/trace/setting'], ['POST', '/v2/trace/setting'], ['GET', '/v2/models/clf/trace/setting'], ['GET', '/v2/logging'], ['POST', '/v2/logging'],
      ['GET', '/v2/systemsharedmemory/status'], ['POST', '/v2/systemsharedmemory/region/r/register'], ['GET', '/v2/cudasharedmemory/status']] as const) {
      const r = await fetch(`${s.url}${path}`, { method, ...(method === 'POST' ? { body: '{}' } : {}) });
      assert.equal(r.status, 501, `${method} ${path}`);
      assert.equal((await r.json() as { code: string }).code, 'NOT_SUPPORTED');
    }
  });
});

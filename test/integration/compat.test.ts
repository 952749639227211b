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

  it('register_application with Clipper\'s input type names ("integers", "int", "double"), answered as Clipper names them', T, async () => {
    for (const [given, answered] of [['integers', 'integers'], ['int', 'integers'], ['double', 'doubles'], ['strings', 'strings']] as const) {
      const name = `typed-${given}`;
      let r = await clipper(s.adminUrl, 'add_app', { name, input_type: given, default_output: 'none', latency_slo_micros: 100000 });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      r = await clipper(s.adminUrl, 'get_application', { name });
      assert.equal(r.json.input_type, answered, given);
      assert.equal((await clipper(s.adminUrl, 'delete_app', { name })).status, 200);
    }
    const r = await clipper(s.adminUrl, 'add_app', { name: 'typed-bad', input_type: 'tensors', default_output: 'none', latency_slo_micros: 100000 });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'BAD_REQUEST');
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

  it('a known route with the wrong method answers 405 with Allow, on the main port and the admin listener', T, async () => {
    for (const [url, method, allow] of [
      [`${s.url}/v2/models/clf/infer`, 'GET', 'POST'], [`${s.url}/v2/models/clf/config`, 'POST', 'GET'], [`${s.url}/app1/predict`, 'GET', 'POST'],
      [`${s.url}/metrics`, 'DELETE', 'GET'], [`${s.adminUrl}/admin/get_model`, 'GET', 'POST'], [`${s.adminUrl}/admin/ping`, 'POST', 'GET'],
      [`${s.adminUrl}/v2/repository/models/clf/load`, 'GET', 'POST'],
    ] as const) {
      const r = await fetch(url, { method, headers: { 'Content-type': 'application/json' } });
      assert.equal(r.status, 405, `${method} ${url}`);
      assert.equal(r.headers.get('allow'), allow);
      assert.equal((await r.json() as { code: string }).code, 'METHOD_NOT_ALLOWED');
    }
    for (const url of [`${s.url}/v2/nothing`, `${s.adminUrl}/admin/no_such_call`]) {
      const r = await fetch(url);
      assert.equal(r.status, 404, url);
      assert.equal((await r.json() as { code: string }).code, 'NOT_FOUND');
    }
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

/** A raw HTTP exchange through node:http (fetch would decompress, and always sends an Accept). */
async function rawHttp(port: number, method: string, path: string, headers: Record<string, string | number>, body?: Uint8Array | string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; bytes: Buffer }> {
  const { request } = await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: Buffer.concat(parts) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('Clipper\'s add_model metadata survives a restart; add_model validates it as Clipper does', () => {
  it('labels, container_name, input_type, batch_size and the current version come back from --state-db', T, async () => {
    const tmp = tempDir();
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    const stateDb = join(tmp.dir, 'state.db');
    let s = await serve(tmp.dir, { stateDb, rpcPort: 0 });
    try {
      // register_model of the repository's version 1, as the client sends it (batch_size a cap here).
      let r = await clipper(s.adminUrl, 'add_model', { model_name: 'clf', model_version: '1', labels: ['prod', 'v1'], input_type: 'floats', container_name: 'registry.example/clf:1', model_data_path: 'DEPRECATED', batch_size: 16 });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      // deploy_model of a version only containers serve; Clipper's "integer" is recorded as "integers".
      r = await clipper(s.adminUrl, 'add_model', { model_name: 'pyclf', model_version: '2', labels: [], input_type: 'integer', container_name: 'example/py:2', model_data_path: 'DEPRECATED', batch_size: -1 });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      // Refused as Clipper's management frontend refuses them, and nothing is recorded.
      for (const bad of [{ input_type: 'tensors' }, { batch_size: 0 }, { batch_size: -2 }, { input_type: 7 }]) {
        r = await clipper(s.adminUrl, 'add_model', { model_name: 'other', model_version: '1', labels: [], input_type: 'floats', container_name: 'x', model_data_path: 'DEPRECATED', batch_size: -1, ...bad });
        assert.equal(r.status, 400, JSON.stringify(bad));
        assert.equal(r.json.code, 'BAD_REQUEST', JSON.stringify(bad));
      }
      assert.deepEqual((await clipper(s.adminUrl, 'get_model', { model_name: 'other', model_version: '1' })).json, {});
      await s.close();

      s = await serve(tmp.dir, { stateDb, rpcPort: 0 });
      r = await clipper(s.adminUrl, 'get_model', { model_name: 'clf', model_version: '1' });
      assert.equal(r.json.model_version, '1');
      assert.equal(r.json.is_current_version, true);
      assert.deepEqual(r.json.labels, ['prod', 'v1']);
      assert.equal(r.json.container_name, 'registry.example/clf:1');
      assert.equal(r.json.input_type, 'floats');
      assert.equal(r.json.batch_size, 16);
      assert.equal(r.json.state, 'ready');
      // batch_size 16 caps the version's batches (Triton's view of the same config).
      const c = await (await fetch(`${s.url}/v2/models/clf/config`)).json() as { max_batch_size: number };
      assert.equal(c.max_batch_size, 16);
      r = await clipper(s.adminUrl, 'get_model', { model_name: 'pyclf', model_version: '2' });
      assert.equal(r.json.kind, 'container');
      assert.equal(r.json.input_type, 'integers');
      assert.equal(r.json.container_name, 'example/py:2');
      assert.equal(r.json.batch_size, -1);
      // get_current_model_version reads it from get_all_models(verbose).
      r = await clipper(s.adminUrl, 'get_all_models', { verbose: true });
      const current = (r.json as { model_name: string; model_version: string; is_current_version: boolean }[]).filter((m) => m.is_current_version).map((m) => `${m.model_name}:${m.model_version}`).sort();
      assert.deepEqual(current, ['clf:1', 'pyclf:2']);
    } finally {
      await s.close();
      tmp.cleanup();
    }
  });
});

describe('Clipper\'s "version" naming a version the model does not have', () => {
  it('is refused with a coded error, as Clipper refuses it, not answered with the default', T, async () => {
    const tmp = tempDir();
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    const s = await serve(tmp.dir);
    try {
      assert.equal((await clipper(s.adminUrl, 'add_app', { name: 'a', input_type: 'floats', default_output: '-1', latency_slo_micros: 1_000_000 })).status, 200);
      assert.equal((await clipper(s.adminUrl, 'add_model_links', { app_name: 'a', model_names: ['clf'] })).status, 200);
      const p = await fetch(`${s.url}/a/predict`, { method: 'POST', headers: { 'Content-type': 'application/json' }, body: JSON.stringify({ input: [1, 2, 3, 4], version: '9' }) });
      const j = await p.json() as { code?: string; default?: boolean };
      assert.equal(p.status, 404, JSON.stringify(j));
      assert.equal(j.code, 'VERSION_NOT_FOUND');
      const bad = await fetch(`${s.url}/a/predict`, { method: 'POST', headers: { 'Content-type': 'application/json' }, body: JSON.stringify({ input: [1, 2, 3, 4], version: 'v1' }) });
      assert.equal(bad.status, 400);
      assert.equal((await bad.json() as { code: string }).code, 'BAD_REQUEST');
    } finally {
      await s.close();
      tmp.cleanup();
    }
  });
});

describe('Triton\'s HTTP client: compression, config overrides, metrics negotiation', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  const TOKEN = 'triton-token-2';
  const auth = { Authorization: `Bearer ${TOKEN}` };
  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    writeModelConfig(tmp.dir, 'clf', { max_batch_size: 512 });
    s = await serve(tmp.dir, { adminToken: TOKEN });
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });
  const inferBody = JSON.stringify({ inputs: [{ name: 'input', shape: [2, 4], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7, 8] }] });

  it('raw deflate is read too; a body that is not what its Content-Encoding says is a coded 400, and the server serves on', T, async () => {
    const plain = await (await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', body: inferBody })).json();
    const { deflateRawSync } = await import('node:zlib');
    let r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', headers: { 'Content-Encoding': 'deflate' }, body: deflateRawSync(Buffer.from(inferBody)) });
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), plain);
    for (const [enc, body] of [['gzip', Buffer.from(inferBody)], ['deflate', Buffer.from('\x78\x9cnot deflate')], ['gzip', gzipSync(Buffer.from(inferBody)).subarray(0, 20)]] as const) {
      r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', headers: { 'Content-Encoding': enc }, body });
      assert.equal(r.status, 400, enc);
      assert.equal((await r.json() as { code: string }).code, 'BAD_REQUEST');
    }
    r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', headers: { 'Content-Encoding': 'gzip' }, body: gzipSync(Buffer.from(inferBody)) });
    assert.deepEqual(await r.json(), plain);
  });

  it('binary outputs in a compressed answer: Inference-Header-Content-Length counts the decompressed header (as tritonclient reads it)', T, async () => {
    const rows = 512;
    const body = JSON.stringify({ inputs: [{ name: 'input', shape: [rows, 4], datatype: 'FP32', data: Array.from({ length: rows * 4 }, (_, i) => (i % 5) / 5) }], parameters: { binary_data_output: true } });
    const r = await rawHttp(s.port, 'POST', '/v2/models/clf/infer', { 'Accept-Encoding': 'gzip', 'content-length': Buffer.byteLength(body) }, body);
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'gzip');
    const plain = gunzipSync(r.bytes);
    const hl = Number(r.headers['inference-header-content-length']);
    const header = JSON.parse(plain.subarray(0, hl).toString()) as { outputs: { name: string; shape: number[]; parameters: { binary_data_size: number } }[] };
    const sizes = Object.fromEntries(header.outputs.map((o) => [o.name, o.parameters.binary_data_size]));
    assert.deepEqual(sizes, { probabilities: rows * 3 * 4, label: rows * 8 });
    assert.equal(hl + rows * 3 * 4 + rows * 8, plain.byteLength);
    // The probabilities of each row sum to 1: the bytes are the tensors, in order.
    const probs = new Float32Array(plain.buffer.slice(plain.byteOffset + hl, plain.byteOffset + hl + rows * 12));
    for (let i = 0; i < rows; i++) assert.ok(Math.abs(probs[i * 3]! + probs[i * 3 + 1]! + probs[i * 3 + 2]! - 1) < 1e-5);
  });

  it('load_model(config=...) with what get_model_config answered (edited) applies it; tensors that are not the model\'s are refused and change nothing', T, async () => {
    const config = await (await fetch(`${s.url}/v2/models/clf/config`)).json() as Record<string, any>;
    config.max_batch_size = 64;
    config.dynamic_batching = { max_queue_delay_microseconds: 300 };
    let r = await fetch(`${s.url}/v2/repository/models/clf/load`, { method: 'POST', headers: auth, body: JSON.stringify({ parameters: { config: JSON.stringify(config) } }) });
    assert.equal(r.status, 200, await r.clone().text());
    let now = await (await fetch(`${s.url}/v2/models/clf/config`)).json() as Record<string, any>;
    assert.equal(now.max_batch_size, 64);
    assert.equal(now.dynamic_batching.max_queue_delay_microseconds, 300);
    for (const bad of [
      { ...config, input: [{ name: 'input', data_type: 'TYPE_FP32', dims: [8] }] },
      { ...config, output: [{ name: 'label', data_type: 'TYPE_FP32', dims: [] }] },
      { ...config, max_batch_size: 128, dynamic_batching: { max_queue_delay_microseconds: 10, preferred_batch_size: [8, 16] } },
      { ...config, instance_group: [{ kind: 'KIND_GPU', count: 1, gpus: [0] }] },
      { ...config, max_batch_size: 128, parameters: { EXECUTION_ENV_PATH: { string_value: '$$TRITON_MODEL_DIRECTORY/env.tar.gz' } } },
      { ...config, max_batch_size: 128, version_policy: { latest: { num_versions: 0 } } },
    ]) {
      r = await fetch(`${s.url}/v2/repository/models/clf/load`, { method: 'POST', headers: auth, body: JSON.stringify({ parameters: { config: JSON.stringify(bad) } }) });
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal((await r.json() as { code: string }).code, 'CONFIG_INVALID', JSON.stringify(bad));
    }
    now = await (await fetch(`${s.url}/v2/models/clf/config`)).json() as Record<string, any>;
    assert.equal(now.max_batch_size, 64, 'a refused override changes nothing');
    r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', body: inferBody });
    assert.equal(r.status, 200);
    // A config string that is not JSON.
    r = await fetch(`${s.url}/v2/repository/models/clf/load`, { method: 'POST', headers: auth, body: JSON.stringify({ parameters: { config: '{"max_batch_size": ' } }) });
    assert.equal((await r.json() as { code: string }).code, 'CONFIG_INVALID');
  });

  it('GET /metrics: Prometheus 3\'s scrape gets the exposition (gzip when large), curl and no Accept get Clipper\'s JSON', T, async () => {
    // Something to measure first.
    await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', body: inferBody });
    const prometheus = {
      Accept: 'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
      'User-Agent': 'Prometheus/3.1.0', 'X-Prometheus-Scrape-Timeout-Seconds': '10',
    };
    const identity = await rawHttp(s.port, 'GET', '/metrics', { ...prometheus, 'Accept-Encoding': 'identity' });
    assert.match(String(identity.headers['content-type']), /^text\/plain/);
    assert.match(identity.bytes.toString(), /^# HELP /m);
    const gz = await rawHttp(s.port, 'GET', '/metrics', { ...prometheus, 'Accept-Encoding': 'gzip' });
    assert.match(String(gz.headers['content-type']), /^text\/plain/);
    assert.equal(gz.headers['content-encoding'] === 'gzip', identity.bytes.byteLength >= 8192, `${identity.bytes.byteLength} bytes; content-encoding ${gz.headers['content-encoding']}`);
    const text = gz.headers['content-encoding'] === 'gzip' ? gunzipSync(gz.bytes).toString() : gz.bytes.toString();
    assert.match(text, /^# TYPE /m);
    for (const headers of [{ Accept: '*/*', 'User-Agent': 'curl/7.88.1' }, {}] as Record<string, string>[]) {
      const j = await rawHttp(s.port, 'GET', '/metrics', headers);
      assert.match(String(j.headers['content-type']), /json/, JSON.stringify(headers));
      const report = JSON.parse(j.bytes.toString()) as Record<string, unknown>;
      assert.ok(Array.isArray(report.histograms) || typeof report.histograms === 'object', JSON.stringify(headers));
    }
  });
});

describe('request compression against the bytes-in-flight budget', () => {
  it('decompressed bytes count against --max-inflight-bytes: a body that inflates past it is SERVER_BUSY, and the budget is whole again after', T, async () => {
    const tmp = tempDir();
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    const s = await serve(tmp.dir, { maxInflightBytes: 1024 * 1024, maxBodyBytes: 64 * 1024 * 1024 });
    try {
      const request = (pad: Buffer): Buffer => Buffer.concat([Buffer.from('{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]'), pad, Buffer.from('}')]);
      // 8 MiB of random JSON whitespace around a valid request (about 2 MiB compressed): within the
      // body limit, far over the 1 MiB budget once inflated.
      const ws = Buffer.from(' \n\t\r');
      const pad = Buffer.alloc(8 * 1024 * 1024);
      for (let i = 0; i < pad.length; i++) pad[i] = ws[(Math.random() * 4) | 0]!;
      const big = gzipSync(request(pad));
      assert.ok(big.byteLength > 1024 * 1024);
      let r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', headers: { 'Content-Encoding': 'gzip' }, body: big });
      assert.equal(r.status, 503);
      assert.equal((await r.json() as { code: string }).code, 'SERVER_BUSY');
      assert.ok(r.headers.get('retry-after'));
      // The refused body gave every byte back: a body that needs almost the whole budget passes, again and again.
      const nearly = gzipSync(request(Buffer.alloc(1000 * 1024, 0x20)));
      for (let i = 0; i < 3; i++) {
        r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', headers: { 'Content-Encoding': 'gzip' }, body: nearly });
        assert.equal(r.status, 200, await r.clone().text());
      }
    } finally {
      await s.close();
      tmp.cleanup();
    }
  });
});

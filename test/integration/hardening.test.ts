/**
 * Safe by default (issue 14, items 1-4, 7 and 14), against real servers on loopback: what a web
 * page in the user's browser could do to the admin API and the WebSocket (cross-site posts, DNS
 * rebinding, foreign origins), the generated admin token, code upload, what errors reveal, body
 * and bytes-in-flight limits, and one server per port.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { postJson, serve, tempDir } from './helpers.js';
import { CLI } from './process-helpers.js';
import { writeClassifier, writeDelayModel, writeFaultyModel, writeIdentity, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { startServer } from '../../src/server.js';
import { silentLogger } from '../../src/log.js';

const JS_MODEL = Buffer.from('export const metadata = { inputs: [], outputs: [] }; export function predict() { return {}; }').toString('base64');

/** A raw HTTP request (fetch cannot set Host), answering status, headers and body. */
function raw(port: number, method: string, path: string, headers: Record<string, string>, body = ''): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, method, path, headers: { ...(body ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      let b = '';
      res.on('data', (d: Buffer) => { b += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
    });
    r.on('error', reject);
    r.end(body);
  });
}

const code = (body: string): string => (JSON.parse(body) as { code: string }).code;

function wsOpen(url: string, origin?: string): Promise<{ ok: boolean; status?: number }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, origin ? { origin } : {});
    ws.once('open', () => { ws.close(); resolve({ ok: true }); });
    ws.once('unexpected-response', (_req, res) => { resolve({ ok: false, status: res.statusCode }); ws.terminate(); });
    ws.once('error', () => resolve({ ok: false }));
  });
}

describe('the admin API refuses what a web page could send', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    s = await serve(tmp.dir, { adminToken: false, allowOrigins: ['https://ops.example.com'] });
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  const add = JSON.stringify({ model_name: 'evil', model_version: 1, model_kind: 'js', model_data_base64: JS_MODEL });

  it('a form or text/plain post (a cross-site simple request) is refused 415, before anything runs', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', '']) {
      const r = await raw(s.adminPort!, 'POST', '/admin/add_model', type ? { 'content-type': type, host: `127.0.0.1:${s.adminPort}` } : { host: `127.0.0.1:${s.adminPort}` }, add);
      assert.equal(r.status, 415, type);
      assert.equal(code(r.body), 'UNSUPPORTED_MEDIA_TYPE');
    }
    assert.equal(s.registry.has('evil'), false);
  });

  it('a Host that is not the listener\'s (DNS rebinding) is refused 403', async () => {
    for (const host of [`evil.example:${s.adminPort}`, 'attacker.test', `127.0.0.1.nip.io:${s.adminPort}`]) {
      const r = await raw(s.adminPort!, 'POST', '/admin/get_all_models', { host, 'content-type': 'application/json' }, '{}');
      assert.equal(r.status, 403, host);
      assert.equal(code(r.body), 'HOST_NOT_ALLOWED');
    }
    for (const host of [`127.0.0.1:${s.adminPort}`, `localhost:${s.adminPort}`, 'localhost']) {
      const r = await raw(s.adminPort!, 'POST', '/admin/get_all_models', { host, 'content-type': 'application/json' }, '{}');
      assert.equal(r.status, 200, host);
    }
  });

  it('a browser Origin other than the listener\'s own or an allowed one is refused 403', async () => {
    const host = `127.0.0.1:${s.adminPort}`;
    const post = (origin: string) => raw(s.adminPort!, 'POST', '/admin/get_all_models', { host, origin, 'content-type': 'application/json' }, '{}');
    const evil = await post('http://evil.example');
    assert.equal(evil.status, 403);
    assert.equal(code(evil.body), 'ORIGIN_NOT_ALLOWED');
    assert.equal((await post('null')).status, 403);
    assert.equal((await post(`http://${host}`)).status, 200);
    assert.equal((await post('https://ops.example.com')).status, 200);
  });

  it('executable code is not accepted through the network without --allow-code-upload; ONNX still is', async () => {
    const r = await postJson(`${s.adminUrl}/admin/add_model`, JSON.parse(add));
    assert.equal(r.status, 403);
    assert.equal(r.json.code, 'CODE_UPLOAD_FORBIDDEN');
    assert.equal(s.registry.has('evil'), false);
    const onnx = readFileSync(join(tmp.dir, 'clf', '1', 'model.onnx')).toString('base64');
    const ok = await postJson(`${s.adminUrl}/admin/add_model`, { model_name: 'clf2', model_version: 1, model_data_base64: onnx });
    assert.equal(ok.status, 200, JSON.stringify(ok.json));
  });

  it('--allow-code-upload lets a JS model in', async () => {
    const t2 = tempDir();
    const s2 = await serve(t2.dir, { adminToken: false, allowCodeUpload: true });
    try {
      const src = Buffer.from(`export const metadata = { inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 1] }], outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 1] }] };
export function predict({ input }) { return { output: { datatype: 'FP32', shape: input.shape, data: new Float32Array(input.data) } }; }`).toString('base64');
      const r = await postJson(`${s2.adminUrl}/admin/add_model`, { model_name: 'js1', model_version: 1, model_kind: 'js', model_data_base64: src });
      assert.equal(r.status, 200, JSON.stringify(r.json));
    } finally {
      await s2.close();
      t2.cleanup();
    }
  });

  it('the WebSocket refuses a cross-site Origin; clients without Origin, same-origin pages and allowed origins connect', async () => {
    assert.deepEqual(await wsOpen(s.wsUrl, 'http://evil.example'), { ok: false, status: 403 });
    assert.equal((await wsOpen(s.wsUrl)).ok, true);
    assert.equal((await wsOpen(s.wsUrl, `http://127.0.0.1:${s.port}`)).ok, true);
    assert.equal((await wsOpen(s.wsUrl, 'https://ops.example.com')).ok, true);
  });
});

describe('the admin token is the default', () => {
  it('is generated, written to a file only the user can read, required, and removed at shutdown', async () => {
    const tmp = tempDir();
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    const runtime = join(tmp.dir, 'runtime');
    const s = await startServer({ modelRepository: tmp.dir, port: 0, adminPort: 0, logger: silentLogger, tokenDir: runtime });
    try {
      const file = s.adminTokenFile!;
      assert.ok(file && file.startsWith(runtime));
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(statSync(runtime).mode & 0o777, 0o700);
      const token = readFileSync(file, 'utf8').trim();
      assert.equal(token, s.adminToken);
      assert.ok(token.length >= 32);
      const url = `http://127.0.0.1:${s.adminPort}/admin/get_all_models`;
      const none = await postJson(url, {});
      assert.equal(none.status, 401);
      assert.equal(none.json.code, 'UNAUTHORIZED');
      const wrong = await postJson(url, {}, { authorization: `Bearer ${token.slice(1)}x` });
      assert.equal(wrong.status, 401);
      const ok = await postJson(url, {}, { authorization: `Bearer ${token}` });
      assert.equal(ok.status, 200);
      // With the token in the header, a client that sends no Content-Type (tritonclient) is served.
      const bare = await raw(s.adminPort!, 'POST', '/v2/repository/index', { host: `127.0.0.1:${s.adminPort}`, authorization: `Bearer ${token}` }, '{}');
      assert.equal(bare.status, 200);
    } finally {
      await s.close();
    }
    assert.equal(existsSync(s.adminTokenFile!), false);
    tmp.cleanup();
  });
});

describe('errors do not reveal the server\'s internals', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeFaultyModel(tmp.dir, 'leaky', `throw new Error('cannot open ' + ${JSON.stringify(join(tmp.dir, 'secret', 'weights.bin'))} + '\\n    at load (/srv/model.mjs:1:1)');`);
    writeModelConfig(tmp.dir, 'leaky', { cache_bytes: 0, max_consecutive_failures: 0 });
    mkdirSync(join(tmp.dir, 'broken', '1'), { recursive: true });
    writeFileSync(join(tmp.dir, 'broken', '1', 'model.onnx'), 'not an onnx graph');
    s = await serve(tmp.dir);
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('a model error and a load failure carry no file path or stack, and point to the log', async () => {
    const r = await postJson(`${s.url}/v2/models/leaky/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [666, 0, 0, 0] }] });
    assert.equal(r.status, 500);
    assert.equal(r.json.code, 'MODEL_ERROR');
    assert.ok(!r.json.error.includes(tmp.dir), r.json.error);
    assert.ok(!/\n\s+at /.test(r.json.error), r.json.error);
    assert.match(r.json.error, /ref [0-9a-f]{8}/);
    const load = await postJson(`${s.adminUrl}/v2/repository/models/broken/load`, {});
    assert.equal(load.json.code, 'MODEL_LOAD_FAILED');
    assert.ok(!load.json.error.includes(tmp.dir), load.json.error);
    const info = await postJson(`${s.adminUrl}/admin/get_all_models`, { verbose: true });
    for (const m of info.json as { reason?: string }[]) assert.ok(!(m.reason ?? '').includes(tmp.dir), m.reason);
  });

  it('names echoed back are escaped and length-limited', async () => {
    // 3,000 characters: far past the 128 kept, and within the request line every uWS build takes
    // (the Node 22/24 build answers 431 past 4 KiB of headers).
    const name = `x${'\u0007'.repeat(3)}${'y'.repeat(3000)}`;
    const r = await postJson(`${s.adminUrl}/admin/${encodeURIComponent(name)}`, {});
    assert.equal(r.status, 404);
    assert.ok(r.json.error.length < 700, `${r.json.error.length}`);
    assert.ok(!r.json.error.includes('\u0007'));
  });
});

describe('bodies and bytes in flight are bounded', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    writeDelayModel(tmp.dir, 'slow', { delayMs: 300, dim: 4 });
    writeModelConfig(tmp.dir, 'slow', { cache_bytes: 0, max_batch_size: 65536, default_timeout_us: 30_000_000, max_queue_rows: 1_000_000 });
    s = await serve(tmp.dir, { maxInflightBytes: 2 * 1024 * 1024 });
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('refuses an over-limit Content-Length before reading a byte of the body (the default limit follows the models)', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const sock = connect(s.port, '127.0.0.1', () => {
        // Headers only: a server that waited for the body would never answer.
        sock.write(`POST /v2/models/clf/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${300 * 1024 * 1024}\r\n\r\n`);
      });
      let got = '';
      sock.on('data', (d) => {
        got += d.toString();
        if (got.includes('\r\n\r\n') && got.includes('}')) {
          sock.destroy();
          resolve(got);
        }
      });
      sock.on('error', reject);
      setTimeout(() => reject(new Error(`no answer: ${got}`)), 5000).unref();
    });
    assert.match(answer, /^HTTP\/1\.1 413/);
    assert.match(answer, /PAYLOAD_TOO_LARGE/);
  });

  it('answers 503 with a Retry-After when the bytes in flight would pass the budget', async () => {
    const row = Array.from({ length: 4 }, () => 0.5);
    // Each query: 32,768 rows x 4 floats = 512 KiB of input held until answered (the slow model holds them).
    const big = { inputs: [{ name: 'input', datatype: 'FP32', shape: [32768, 4], data: Array.from({ length: 32768 }, () => row).flat() }] };
    const results = await Promise.all(Array.from({ length: 8 }, () => postJson(`${s.url}/v2/models/slow/infer`, big)));
    const busy = results.filter((r) => r.status === 503);
    assert.ok(busy.length > 0, `statuses: ${results.map((r) => r.status)}`);
    assert.equal(busy[0]!.json.code, 'SERVER_BUSY');
    assert.ok(Number(busy[0]!.headers.get('retry-after')) >= 1);
    assert.ok(results.some((r) => r.status === 200), 'work within the budget is served');
  });
});

describe('one server per port', () => {
  it('a second server on a port in use fails at start and names the port and the option', async () => {
    const tmp = tempDir();
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    const first = await serve(tmp.dir);
    try {
      await assert.rejects(
        startServer({ modelRepository: tmp.dir, port: first.port, adminPort: 0, logger: silentLogger, adminToken: false }),
        (e: Error) => e.message.includes(`port ${first.port} is already in use`) && e.message.includes('--port'),
      );
      await assert.rejects(
        startServer({ modelRepository: tmp.dir, port: 0, adminPort: first.adminPort!, logger: silentLogger, adminToken: false }),
        (e: Error) => e.message.includes(`port ${first.adminPort} is already in use`) && e.message.includes('--admin-port'),
      );
      const r = spawnSync(process.execPath, [CLI, 'serve', '--model-repository', tmp.dir, '--port', String(first.port), '--admin-port', '0', '--no-admin-token'], { encoding: 'utf8', timeout: 30_000 });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, new RegExp(`^PORT_IN_USE: port ${first.port} is already in use`, "m"));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      // The first server still answers alone.
      assert.equal((await fetch(`${first.url}/v2/health/live`)).status, 200);
    } finally {
      await first.close();
      tmp.cleanup();
    }
  });
});

/** A WebSocket upgrade with the headers a browser sends, answering the refusal (or 101). */
function upgrade(port: number, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const r = request({
      host: '127.0.0.1', port, path: '/ws',
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    r.on('upgrade', (res, sock) => {
      sock.destroy();
      resolve({ status: res.statusCode ?? 0, body: '' });
    });
    r.on('response', (res) => {
      let b = '';
      res.on('data', (d: Buffer) => { b += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
    });
    r.on('error', reject);
    r.end();
  });
}

describe('browsers on the main port and the names the listeners answer to', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    // One --allow-origin value may be a comma list; a trailing slash is how people paste origins.
    s = await serve(tmp.dir, { allowOrigins: ['https://a.example, https://b.example/'], allowHosts: ['skiff.internal'] });
    await postJson(`${s.adminUrl}/admin/add_app`, { name: 'app', input_type: 'floats', default_output: '-1', latency_slo_micros: 1_000_000 });
    await postJson(`${s.adminUrl}/admin/add_model_links`, { app_name: 'app', model_names: ['clf'] });
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('--allow-origin takes a comma list, on the WebSocket and on the admin API', async () => {
    assert.equal((await wsOpen(s.wsUrl, 'https://b.example')).ok, true);
    assert.equal((await wsOpen(s.wsUrl, 'https://a.example')).ok, true);
    const r = await raw(s.adminPort!, 'POST', '/admin/get_all_models', { host: `127.0.0.1:${s.adminPort}`, origin: 'https://a.example', 'content-type': 'application/json' }, '{}');
    assert.equal(r.status, 200);
  });

  it('a DNS-rebinding page cannot open /ws (its Origin matches its Host, but the Host is not the listener\'s)', async () => {
    const r = await upgrade(s.port, { host: `rebind.example:${s.port}`, origin: `http://rebind.example:${s.port}` });
    assert.equal(r.status, 403);
    assert.equal(code(r.body), 'HOST_NOT_ALLOWED');
    assert.equal((await upgrade(s.port, { host: `127.0.0.1:${s.port}`, origin: `http://127.0.0.1:${s.port}` })).status, 101);
    assert.equal((await upgrade(s.port, { host: `skiff.internal:${s.port}`, origin: `http://skiff.internal:${s.port}` })).status, 101, '--allow-host');
    assert.equal((await upgrade(s.port, { host: `rebind.example:${s.port}` })).status, 101, 'no Origin: not a browser (a proxy may send any Host)');
  });

  it('a cross-site page cannot post queries or feedback to the main port; non-browser clients and same-origin pages can', async () => {
    const infer = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    const feedback = JSON.stringify({ uid: 7, input: [1, 2, 3, 4], label: 1 });
    for (const [path, body] of [['/v2/models/clf/infer', infer], ['/app/update', feedback], ['/app/predict', feedback]] as const) {
      const host = `127.0.0.1:${s.port}`;
      const evil = await raw(s.port, 'POST', path, { host, origin: 'http://evil.example', 'content-type': 'text/plain' }, body);
      assert.equal(evil.status, 403, path);
      assert.equal(code(evil.body), 'ORIGIN_NOT_ALLOWED');
      const rebind = await raw(s.port, 'POST', path, { host: `rebind.example:${s.port}`, origin: `http://rebind.example:${s.port}`, 'content-type': 'text/plain' }, body);
      assert.equal(rebind.status, 403, path);
      assert.equal(code(rebind.body), 'HOST_NOT_ALLOWED');
      assert.equal((await raw(s.port, 'POST', path, { host, 'content-type': 'application/json' }, body)).status, 200, path);
      assert.equal((await raw(s.port, 'POST', path, { host, origin: `http://${host}`, 'content-type': 'application/json' }, body)).status, 200, path);
      assert.equal((await raw(s.port, 'POST', path, { host, origin: 'https://a.example', 'content-type': 'application/json' }, body)).status, 200, path);
    }
  });

  it('--allow-host adds a name to the admin listener', async () => {
    const r = await raw(s.adminPort!, 'POST', '/admin/get_all_models', { host: `skiff.internal:${s.adminPort}`, 'content-type': 'application/json' }, '{}');
    assert.equal(r.status, 200);
  });

  it('a listener on another loopback address answers to that address', async () => {
    const t = tempDir();
    const s2 = await serve(t.dir, { host: '127.0.0.2', adminHost: '127.0.0.2' });
    try {
      const r = await new Promise<number>((resolve, reject) => {
        const q = request({ host: '127.0.0.2', port: s2.adminPort, method: 'POST', path: '/admin/get_all_models', headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        q.on('error', reject);
        q.end('{}');
      });
      assert.equal(r, 200);
    } finally {
      await s2.close();
      t.cleanup();
    }
  });
});

describe('start-up refusals', () => {
  it('no admin token is refused when the admin listener is not on loopback, and so is an empty one', async () => {
    const t = tempDir();
    try {
      await assert.rejects(startServer({ port: 0, adminPort: 0, adminHost: '0.0.0.0', adminToken: false, logger: silentLogger }),
        (e: { code?: string }) => e.code === 'CONFIG_INVALID');
      await assert.rejects(startServer({ port: 0, adminPort: 0, adminToken: '', logger: silentLogger }), (e: { code?: string }) => e.code === 'CONFIG_INVALID');
      const r = spawnSync(process.execPath, [CLI, 'serve', '--model-repository', t.dir, '--port', '0', '--admin-port', '0', '--admin-host', '0.0.0.0', '--no-admin-token'], { encoding: 'utf8', timeout: 30_000 });
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /--no-admin-token/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      t.cleanup();
    }
  });

  it('a port in use is a coded start-up error', async () => {
    const t = tempDir();
    const first = await serve(t.dir);
    try {
      await assert.rejects(startServer({ port: first.port, adminPort: 0, logger: silentLogger, adminToken: false }), (e: { code?: string }) => e.code === 'PORT_IN_USE');
      await assert.rejects(startServer({ port: 0, adminPort: first.adminPort!, logger: silentLogger, adminToken: false }), (e: { code?: string }) => e.code === 'PORT_IN_USE');
    } finally {
      await first.close();
      t.cleanup();
    }
  });

  it('the token is not written into a directory another user owns', { skip: process.getuid?.() !== 0 ? 'needs root to give a directory away' : false }, async () => {
    const t = tempDir();
    const foreign = join(t.dir, 'foreign');
    mkdirSync(foreign, { mode: 0o755 });
    chownSync(foreign, 65534, 65534);
    try {
      await assert.rejects(startServer({ port: 0, adminPort: 0, logger: silentLogger, tokenDir: foreign }), (e: { code?: string }) => e.code === 'CONFIG_INVALID');
      assert.deepEqual(readdirSync(foreign), []);
    } finally {
      t.cleanup();
    }
  });

  it('the CLI prints where the generated token is; that token opens the admin API and the dashboard', async () => {
    const t = tempDir();
    writeClassifier(t.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    const runtime = join(t.dir, 'run');
    const child = spawn(process.execPath, [CLI, 'serve', '--model-repository', t.dir, '--port', '0', '--admin-port', '0', '--log-level', 'warn'], { env: { ...process.env, SKIFF_RUNTIME_DIR: runtime, SKIFF_ADMIN_TOKEN: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\nready')) resolve();
        });
        child.once('exit', (c) => reject(new Error(`exited ${c}: ${out}`)));
      });
      const adminPort = /admin API\s+http:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1];
      const file = join(runtime, `admin-${adminPort}.token`);
      assert.ok(out.includes(file), out);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const token = readFileSync(file, 'utf8').trim();
      assert.ok(!out.includes(token), 'the token itself is not printed');
      const url = `http://127.0.0.1:${adminPort}`;
      assert.equal((await postJson(`${url}/admin/get_all_models`, {})).status, 401);
      assert.equal((await postJson(`${url}/admin/get_all_models`, {}, { authorization: `Bearer ${token}` })).status, 200);
      assert.equal((await fetch(`${url}/dashboard?token=${encodeURIComponent(token)}`)).status, 200);
      assert.equal((await fetch(`${url}/dashboard`)).status, 401);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      t.cleanup();
    }
  });
});

describe('code through the network needs the opt-in, however it is named', () => {
  it('a JS module left in the upload directory cannot be loaded by path without --allow-code-upload', async () => {
    const t = tempDir();
    const uploads = join(t.dir, 'uploads');
    const src = Buffer.from(`export const metadata = { inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, 1] }], outputs: [{ name: 'output', datatype: 'FP32', shape: [-1, 1] }] };
export function predict({ input }) { return { output: { datatype: 'FP32', shape: input.shape, data: new Float32Array(input.data) } }; }`).toString('base64');
    const open = await serve(t.dir, { uploadDir: uploads, allowCodeUpload: true });
    let path: string;
    try {
      assert.equal((await postJson(`${open.adminUrl}/admin/add_model`, { model_name: 'js1', model_version: 1, model_kind: 'js', model_data_base64: src })).status, 200);
      path = ((await postJson(`${open.adminUrl}/admin/get_model`, { model_name: 'js1' })).json as { model_data_path: string }).model_data_path;
    } finally {
      await open.close();
    }
    const shut = await serve(t.dir, { uploadDir: uploads });
    try {
      const file = join(uploads, 'js1', '1', 'model.mjs');
      assert.ok(existsSync(file), path);
      for (const p of [file, join(uploads, 'js1', '1')]) {
        const r = await postJson(`${shut.adminUrl}/admin/add_model`, { model_name: 'js2', model_version: 1, model_data_path: p });
        assert.equal(r.status, 403, JSON.stringify(r.json));
        assert.equal(r.json.code, 'CODE_UPLOAD_FORBIDDEN');
      }
      assert.equal(shut.registry.has('js2'), false);
    } finally {
      await shut.close();
      t.cleanup();
    }
  });
});

describe('what error answers and model listings reveal', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    // A path outside every directory the server knows (not the repository, home, temp or cwd).
    writeFaultyModel(tmp.dir, 'leaky', "throw new Error('cannot open /opt/acme-secret/weights.bin for reading');");
    writeModelConfig(tmp.dir, 'leaky', { cache_bytes: 0, max_consecutive_failures: 0 });
    mkdirSync(join(tmp.dir, 'broken', '1'), { recursive: true });
    writeFileSync(join(tmp.dir, 'broken', '1', 'model.onnx'), 'not an onnx graph');
    s = await serve(tmp.dir);
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('a model error names no file path, wherever it lies', async () => {
    const r = await postJson(`${s.url}/v2/models/leaky/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [666, 0, 0, 0] }] });
    assert.equal(r.json.code, 'MODEL_ERROR');
    assert.ok(!r.json.error.includes('/opt/acme-secret'), r.json.error);
    assert.match(r.json.error, /ref [0-9a-f]{8}/);
  });

  it('a failed load\'s reason is not shown with its paths by the repository index or the ready route', async () => {
    const index = await postJson(`${s.adminUrl}/v2/repository/index`, {});
    assert.equal(index.status, 200);
    const broken = (index.json as { name: string; reason?: string }[]).find((m) => m.name === 'broken');
    assert.ok(broken?.reason, JSON.stringify(index.json));
    assert.ok(!broken.reason.includes(tmp.dir), broken.reason);
    const ready = await fetch(`${s.url}/v2/models/broken/ready`);
    const body = await ready.text();
    assert.equal(ready.status, 503);
    assert.equal(code(body), 'MODEL_UNAVAILABLE');
    assert.ok(!body.includes(tmp.dir), body);
  });
});

describe('the body limit follows the models', () => {
  it('a body bigger than any model takes is refused from its Content-Length; a bigger model raises the limit', async () => {
    const t = tempDir();
    writeClassifier(t.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    const s = await serve(t.dir);
    try {
      // clf takes at most 64 rows of 4 numbers: the limit is the 1 MiB floor, far below 2 MiB.
      const head = (len: number) => new Promise<string>((resolve, reject) => {
        const sock = connect(s.port, '127.0.0.1', () => {
          sock.write(`POST /v2/models/clf/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${len}\r\n\r\n`);
        });
        let got = '';
        sock.on('data', (d) => {
          got += d.toString();
          if (got.includes('\r\n\r\n') && got.includes('}')) {
            sock.destroy();
            resolve(got);
          }
        });
        sock.on('error', reject);
        setTimeout(() => { sock.destroy(); resolve(got); }, 2000).unref();
      });
      assert.match(await head(2 * 1024 * 1024), /^HTTP\/1\.1 413/);
      // A model that takes 64 rows of 65,536 numbers: a 2 MiB body can now be one of its queries.
      writeIdentity(t.dir, 'wide', { dim: 65536 });
      const load = await postJson(`${s.adminUrl}/v2/repository/models/wide/load`, {});
      assert.equal(load.status, 200, JSON.stringify(load.json));
      const big = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }], pad: 'x'.repeat(2 * 1024 * 1024) });
      let status = 0;
      for (let i = 0; i < 30 && status !== 200; i++) {
        status = (await postJson(`${s.url}/v2/models/clf/infer`, big)).status;
        if (status === 413) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 200);
    } finally {
      await s.close();
      t.cleanup();
    }
  });
});

describe('the bytes-in-flight budget covers the WebSocket too', () => {
  it('queries over the budget are answered SERVER_BUSY with a retry delay; the rest are served', async () => {
    const t = tempDir();
    writeDelayModel(t.dir, 'slow', { delayMs: 300, dim: 4 });
    writeModelConfig(t.dir, 'slow', { cache_bytes: 0, max_batch_size: 65536, default_timeout_us: 30_000_000, max_queue_rows: 1_000_000 });
    const s = await serve(t.dir, { maxInflightBytes: 2 * 1024 * 1024 });
    const c = await SkiffClient.connect(s.wsUrl);
    try {
      // Each query: 32,768 rows x 4 floats = 512 KiB of input held until answered.
      const data = new Uint8Array(new Float32Array(32768 * 4).fill(0.5).buffer);
      const results = await Promise.all(Array.from({ length: 8 }, () =>
        c.infer({ model: 'slow', inputs: [{ name: 'input', datatype: 'FP32', shape: [32768, 4], data }] }).then((r) => r.error ?? null)));
      const busy = results.filter((e) => e !== null);
      assert.ok(busy.length > 0 && busy.length < 8, `${busy.length} refused`);
      for (const e of busy) {
        assert.equal(e!.code, 'SERVER_BUSY');
        assert.ok((e!.retryAfterMs ?? 0) > 0);
      }
    } finally {
      await c.close();
      await s.close();
      t.cleanup();
    }
  });
});

describe('what clients send reaches the log escaped and bounded', () => {
  it('a long model name and a control-laden request id are cut and escaped; a hidden detail is logged under the ref the client saw', async () => {
    const t = tempDir();
    writeFaultyModel(t.dir, 'leaky', "throw new Error('cannot open /opt/acme-secret/weights.bin');");
    writeModelConfig(t.dir, 'leaky', { cache_bytes: 0, max_consecutive_failures: 0 });
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(...chunk.toString().split('\n').filter(Boolean)); cb(); } }));
    const s = await serve(t.dir, { logger });
    try {
      const name = `m${'x'.repeat(3000)}`;
      const id = `id\r\n${'y'.repeat(100_000)}`;
      const r = await postJson(`${s.url}/v2/models/${encodeURIComponent(name)}/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [0, 0, 0, 0] }] });
      assert.equal(r.status, 404);
      const bad = await postJson(`${s.url}/v2/models/leaky/infer`, { id, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 3], data: [0, 0, 0] }] });
      assert.equal(bad.status, 400);
      const leaked = await postJson(`${s.url}/v2/models/leaky/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [666, 0, 0, 0] }] });
      const ref = /ref ([0-9a-f]{8})/.exec(leaked.json.error)![1]!;
      await new Promise((res) => setTimeout(res, 100));
      const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      for (const l of lines) assert.ok(l.length < 4096, `a log line of ${l.length} characters: ${l.slice(0, 300)}`);
      assert.ok(!lines.some((l) => l.includes('\u001b')), 'no raw control character');
      const notFound = records.find((x) => x.code === 'MODEL_NOT_FOUND');
      assert.ok(notFound, lines.join('\n'));
      assert.ok(String(notFound.target).length <= 129, `target: ${String(notFound.target).length} characters`);
      // The id came in the JSON body with its CR LF (the name came percent-encoded in the URL).
      const invalid = records.find((x) => x.code === 'INVALID_INPUT');
      assert.ok(invalid, lines.join('\n'));
      assert.ok(String(invalid.req).startsWith('id\\u000d\\u000a'), String(invalid.req));
      assert.ok(String(invalid.req).length <= 129, `req: ${String(invalid.req).length} characters`);
      const detail = records.find((x) => x.ref === ref && typeof x.detail === 'string');
      assert.ok(detail && String(detail.detail).includes('/opt/acme-secret/weights.bin'), 'the operator finds the full text under the ref');
    } finally {
      await s.close();
      t.cleanup();
    }
  });
});

describe('the default server (generated token, no opt-ins) against a web page\'s attack', () => {
  it('a cross-site or rebinding post of a JS model to add_model runs nothing, and neither does a tokenless or even a token-bearing one', async () => {
    const t = tempDir();
    const s = await startServer({ modelRepository: t.dir, port: 0, adminPort: 0, logger: silentLogger, tokenDir: join(t.dir, 'run') });
    try {
      const host = `127.0.0.1:${s.adminPort}`;
      const add = JSON.stringify({ model_name: 'evil', model_version: 1, model_kind: 'js', model_data_base64: JS_MODEL });
      const post = (headers: Record<string, string>) => raw(s.adminPort!, 'POST', '/admin/add_model', headers, add);
      const page = await post({ host, origin: 'http://evil.example', 'content-type': 'text/plain' });
      assert.equal(page.status, 403);
      assert.equal(code(page.body), 'ORIGIN_NOT_ALLOWED');
      const rebind = await post({ host: `evil.example:${s.adminPort}`, origin: `http://evil.example:${s.adminPort}`, 'content-type': 'text/plain' });
      assert.equal(rebind.status, 403);
      assert.equal(code(rebind.body), 'HOST_NOT_ALLOWED');
      const tokenless = await post({ host, 'content-type': 'application/json' });
      assert.equal(tokenless.status, 401);
      assert.equal(code(tokenless.body), 'UNAUTHORIZED');
      const withToken = await post({ host, 'content-type': 'application/json', authorization: `Bearer ${s.adminToken}` });
      assert.equal(withToken.status, 403);
      assert.equal(code(withToken.body), 'CODE_UPLOAD_FORBIDDEN');
      assert.equal(s.registry.has('evil'), false);
      assert.equal(existsSync(join(t.dir, '.uploads', 'evil')), false, 'nothing was written either');
    } finally {
      await s.close();
      t.cleanup();
    }
  });
});

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { writeClassifier, writeIdentity, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { decodeFrame } from '../../src/protocol/wire-decode.js';
import { encodeFrame } from '../../src/protocol/wire-encode.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { bytesOf, serve, tempDir } from './helpers.js';

const CLI = fileURLToPath(new URL('../../src/cli.js', import.meta.url));

function httpsGet(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { ca }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => { body += d.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    }).on('error', reject).end();
  });
}

describe('security defaults', () => {
  const tmp = tempDir();
  before(() => {
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    writeIdentity(tmp.dir, 'big', { dim: 65536 });
    writeModelConfig(tmp.dir, 'big', { cache_bytes: 0, max_batch_size: 8 });
  });
  after(() => tmp.cleanup());

  it('serves HTTPS and WSS on both listeners with a key and certificate given by path', async () => {
    const key = join(tmp.dir, 'key.pem');
    const cert = join(tmp.dir, 'cert.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    const ca = readFileSync(cert);
    const server = await serve(tmp.dir, { tls: { key, cert } });
    try {
      const live = await httpsGet(`https://127.0.0.1:${server.port}/v2/health/live`, ca);
      assert.equal(live.status, 200);
      const ping = await httpsGet(`https://127.0.0.1:${server.adminPort}/admin/ping`, ca);
      assert.equal(ping.body, 'PONG');
      const ws = new WebSocket(`wss://127.0.0.1:${server.port}/ws`, { ca });
      await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
      const answer = new Promise<Buffer>((res) => ws.once('message', (d: Buffer) => res(d)));
      ws.send(encodeFrame({ requests: [{ id: 1n, model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: new Uint8Array(16) }] }] }));
      const frame = decodeFrame(new Uint8Array(await answer));
      assert.equal(frame.responses[0]!.error, undefined);
      assert.equal(frame.responses[0]!.outputs.length, 2);
      ws.close();
    } finally {
      await server.close();
    }
  });

  it('refuses to expose the admin API beyond loopback without a token', () => {
    const r = spawnSync(process.execPath, [CLI, 'serve', '--model-repository', tmp.dir, '--port', '0', '--admin-port', '0', '--admin-host', '0.0.0.0', '--no-admin-token'], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, SKIFF_ADMIN_TOKEN: '' } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /admin-token/);
  });

  it('writes structured JSON logs without tensor data', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(...chunk.toString().split('\n').filter(Boolean)); cb(); } });
    const server = await serve(tmp.dir, { logger: pino({ level: 'debug' }, sink) });
    try {
      const c = await SkiffClient.connect(server.wsUrl);
      const marker = new Float32Array([1234.5678, 8765.4321, 1111.2222, 3333.4444]);
      await c.infer({ model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: bytesOf(marker) }] });
      await c.infer({ model: 'clf', inputs: [{ name: 'input', datatype: 'FP64', shape: [1, 4], data: new Uint8Array(32) }] });
      await c.close();
    } finally {
      await server.close();
    }
    assert.ok(lines.length > 3);
    for (const l of lines) {
      const rec = JSON.parse(l) as Record<string, unknown>;
      assert.equal(typeof rec.level, 'number');
      assert.equal(typeof rec.msg, 'string');
      assert.ok(!/1234\.56|8765\.43|1111\.22|3333\.44/.test(l), `tensor values leaked into a log line: ${l}`);
    }
  });

  it('closes a WebSocket client that stops reading, keeping server memory bounded', async () => {
    const server = await serve(tmp.dir, { wsMaxPendingBytes: 8 * 1024 * 1024 });
    try {
      const rss0 = process.memoryUsage().rss;
      const ws = new WebSocket(server.wsUrl, { maxPayload: 1 << 30 });
      await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
      // Stop reading: the socket's receive side is paused, replies pile up on the server.
      (ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const x = new Uint8Array(65536 * 4);
      let id = 1n;
      for (let f = 0; f < 40 && server.wsStats().slowReaderCloses === 0; f++) {
        ws.send(encodeFrame({ requests: Array.from({ length: 16 }, () => ({ id: id++, model: 'big', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 65536], data: x }] })) }));
        await new Promise((r) => setTimeout(r, 50));
      }
      for (let i = 0; i < 100 && server.wsStats().slowReaderCloses === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(server.wsStats().slowReaderCloses, 1, 'the slow reader was closed');
      const closed = new Promise<number>((res) => ws.once('close', (code) => res(code)));
      (ws as unknown as { _socket: { resume(): void } })._socket.resume();
      assert.equal(await closed, 4008);
      const growth = (process.memoryUsage().rss - rss0) / 1024 / 1024;
      console.log(`slow reader: closed after ${Number(id) - 1} requests of 256 KiB; RSS growth ${growth.toFixed(0)} MiB`);
      assert.ok(growth < 200, `RSS grew ${growth} MiB`);
      // Other clients are served.
      const c = await SkiffClient.connect(server.wsUrl);
      const r = await c.infer({ model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: new Uint8Array(16) }] });
      assert.equal(r.error, undefined);
      await c.close();
    } finally {
      await server.close();
    }
  });
});

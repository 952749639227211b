import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeClassifier, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { encodeInferRequest } from '../../src/protocol/oip-encode.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { getJson, postJson, serve, tempDir } from './helpers.js';

describe('bad input over REST and WebSocket: coded errors, server stays up', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  const good = { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Array(64).fill(0.5) }] };

  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 1 });
    writeClassifier(tmp.dir, 'badcfg', { seed: 2 });
    writeModelConfig(tmp.dir, 'badcfg', { max_batch_size: 'lots' });
    writeClassifier(tmp.dir, 'extra', { seed: 2 });
    writeModelConfig(tmp.dir, 'extra', { replicas: 1, colour: 'blue' });
    mkdirSync(join(tmp.dir, 'broken', '1'), { recursive: true });
    writeFileSync(join(tmp.dir, 'broken', '1', 'model.onnx'), 'not an onnx file');
    server = await serve(tmp.dir, { maxBodyBytes: 64 * 1024, maxFrameBytes: 64 * 1024 });
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it('does not load a model whose config.json is invalid, naming the model and the field', () => {
    const failed = Object.fromEntries(server.loadReport.failed.map((f) => [f.model, f.error]));
    assert.equal(failed.badcfg?.code, 'CONFIG_INVALID');
    assert.match(failed.badcfg!.message, /badcfg/);
    assert.match(failed.badcfg!.message, /max_batch_size/);
    assert.equal(failed.extra?.code, 'CONFIG_INVALID');
    assert.match(failed.extra!.message, /colour/);
    assert.equal(failed.broken?.code, 'MODEL_LOAD_FAILED');
    assert.ok(server.loadReport.loaded.includes('clf:1'));
    assert.equal(server.registry.has('badcfg'), false);
  });

  it('maps each malformed REST request to its status and code', async () => {
    const infer = `${server.url}/v2/models/clf/infer`;
    const cases: [string, unknown, number, string][] = [
      [infer, '{not json', 400, 'BAD_REQUEST'],
      [infer, { inputs: 'x' }, 400, 'BAD_REQUEST'],
      [infer, { inputs: [{ ...good.inputs[0], datatype: 'FP99' }] }, 400, 'UNSUPPORTED_DATATYPE'],
      [infer, { inputs: [{ ...good.inputs[0], datatype: 'INT32', data: new Array(64).fill(1) }] }, 400, 'INVALID_INPUT'],
      [infer, { inputs: [{ ...good.inputs[0], shape: [1, 65] }] }, 400, 'INVALID_INPUT'],
      [infer, { inputs: [{ ...good.inputs[0], shape: [2, 64] }] }, 400, 'INVALID_INPUT'],
      [infer, { inputs: [{ ...good.inputs[0], name: 'other' }] }, 400, 'INVALID_INPUT'],
      [infer, { ...good, outputs: [{ name: 'nope' }] }, 400, 'INVALID_INPUT'],
      [infer, { inputs: [{ ...good.inputs[0], shape: [1e9, 1e9] }] }, 400, 'INVALID_INPUT'],
      [infer, { inputs: [{ ...good.inputs[0], __proto__: { polluted: true } }], ['__proto__']: 1 }, 400, 'BAD_REQUEST'],
      [`${server.url}/v2/models/nope/infer`, good, 404, 'MODEL_NOT_FOUND'],
      [`${server.url}/v2/models/clf/versions/7/infer`, good, 404, 'VERSION_NOT_FOUND'],
      [`${server.url}/v2/models/clf/versions/x/infer`, good, 404, 'VERSION_NOT_FOUND'],
      [`${server.url}/v2/nowhere`, good, 404, 'NOT_FOUND'],
    ];
    for (const [url, body, status, code] of cases) {
      const raw = typeof body === 'string' ? body : JSON.stringify(body).replace('"polluted"', '"polluted"');
      const r = await postJson(url, raw);
      assert.equal(r.status, status, `${url} ${raw.slice(0, 80)} -> ${JSON.stringify(r.json)}`);
      assert.equal(r.json.code, code, raw.slice(0, 80));
      assert.equal(typeof r.json.error, 'string');
    }
    // A literal "__proto__" key (JSON.stringify drops it from object literals, so write it by hand).
    const polluted = await postJson(infer, '{"__proto__": {"x": 1}, "inputs": []}');
    assert.equal(polluted.status, 400);
    assert.equal(polluted.json.code, 'BAD_REQUEST');
  });

  it('refuses a binary body whose byte length does not match the shape', async () => {
    const enc = encodeInferRequest({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Uint8Array(256) }], binary: true });
    const cut = enc.body.subarray(0, enc.body.length - 8);
    const r = await fetch(`${server.url}/v2/models/clf/infer`, { method: 'POST', body: cut, headers: { 'inference-header-content-length': String(enc.headerLength) } });
    assert.equal(r.status, 400);
    assert.match(((await r.json()) as { code: string }).code, /BAD_REQUEST|INVALID_INPUT/);
  });

  it('refuses an oversize body with 413', async () => {
    const big = JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Array(20000).fill(0.123456789) }] });
    const r = await postJson(`${server.url}/v2/models/clf/infer`, big);
    assert.equal(r.status, 413);
    assert.equal(r.json.code, 'PAYLOAD_TOO_LARGE');
  });

  it('closes a WebSocket that sends an oversize frame, without affecting other clients', async () => {
    const other = await SkiffClient.connect(server.wsUrl);
    const victim = await SkiffClient.connect(server.wsUrl);
    const closed = victim.infer({ model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64 * 1024], data: new Uint8Array(256 * 1024) }] });
    await assert.rejects(closed);
    const ok = await other.infer({ model: 'clf', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: new Uint8Array(256) }] });
    assert.equal(ok.error, undefined);
    await other.close();
  });

  it('is still live and serving after all of it', async () => {
    assert.equal((await getJson(`${server.url}/v2/health/live`)).status, 200);
    const r = await postJson(`${server.url}/v2/models/clf/infer`, good);
    assert.equal(r.status, 200);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

/**
 * `skiff conformance URL`: every check passes against Skiff itself (run as a user runs it, through
 * the CLI), and a server that gets the protocol wrong fails the checks it gets wrong.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { serve, tempDir } from './helpers.js';
import { CLI } from './process-helpers.js';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import { runConformance } from '../../src/conformance/check.js';

const T = { timeout: 60_000 };

describe('skiff conformance', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  let broken: Server;
  let brokenUrl = '';
  before(async () => {
    writeClassifier(tmp.dir, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    s = await serve(tmp.dir, { adminToken: 'tok' });
    // A server that gets several things wrong: no platform, a wrong element count, a 200 for an unknown model.
    broken = createServer((req, res) => {
      const json = (status: number, v: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(v));
      };
      req.resume();
      req.on('end', () => {
        if (req.url === '/v2/health/live' || req.url === '/v2/health/ready') return json(200, {});
        if (req.url === '/v2') return json(200, { name: 'broken', version: '0', extensions: ['statistics', 'system_shared_memory', 'sequence'] });
        if (req.url === '/v2/models/m') return json(200, { name: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2] }], outputs: [{ name: 'y', datatype: 'FP32', shape: [1] }] });
        if (req.url === '/v2/models/m/ready') return json(200, {});
        if (req.url?.endsWith('/infer')) return json(200, { model_name: 'm', outputs: [{ name: 'y', datatype: 'FP32', shape: [1, 3], data: [1] }] });
        return json(200, {});
      });
    });
    await new Promise<void>((r) => broken.listen(0, '127.0.0.1', () => r()));
    const addr = broken.address();
    brokenUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  after(async () => {
    await s.close();
    await new Promise((r) => broken.close(r));
    tmp.cleanup();
  });

  it('passes every check against Skiff, run as a user runs it', T, async () => {
    const child = spawn(process.execPath, [CLI, 'conformance', s.url, '--header', 'Authorization: Bearer tok'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    assert.equal(code, 0, out);
    assert.doesNotMatch(out, /^FAIL/m);
    assert.match(out, /^PASS\s+model_repository/m);
    assert.match(out, /^PASS\s+POST \/v2\/models\/\{m\}\/infer with binary tensors/m);
    assert.match(out, /\d+ passed, 0 failed/);
    // Skiff claims none of these: listed, not run.
    for (const ext of ['trace', 'logging', 'system_shared_memory', 'cuda_shared_memory']) assert.match(out, new RegExp(`^SKIP\\s+${ext}:`, 'm'));
  });

  it('fails the checks a broken server gets wrong, and only those', T, async () => {
    const results = await runConformance({ url: brokenUrl, model: 'm' });
    const failed = results.filter((r) => !r.pass).map((r) => r.name);
    assert.ok(failed.some((n) => n.startsWith('GET /v2/models/{m}: model metadata')), 'no platform');
    assert.ok(failed.includes('an unknown model answers 404 {"error": ...}'));
    assert.ok(failed.includes('a malformed body answers 400 {"error": ...}'));
    assert.ok(failed.some((n) => n.startsWith('statistics')), 'claims statistics, serves none');
    assert.ok(results.find((r) => r.name === 'GET /v2/health/live answers 200')!.pass);
    assert.ok(results.find((r) => r.name.startsWith('model_repository'))!.skipped, 'not claimed: skipped');
    // Every claimed extension has a row: checked when it has a read-only call, else listed.
    assert.ok(failed.some((n) => n.startsWith('system_shared_memory')), 'the status is not a JSON list');
    assert.ok(results.find((r) => r.name.startsWith('sequence'))!.skipped, 'claimed, no check: listed as skipped');
    assert.ok(results.find((r) => r.name.startsWith('trace'))!.skipped, 'not claimed: skipped');
  });
});

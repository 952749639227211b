import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { writeClassifier, writeDelayModel } from '../../src/modelgen/fixtures.js';
import { serve, tempDir } from './helpers.js';

/**
 * The Python client (python/skiff/client.py, over flatc's Python code and websocket-client)
 * against a live server, run by Debian's python3: hundreds of queries in flight on one
 * connection with answers matched by id, a frame of many requests, an error answer, an
 * application query and feedback.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = '/usr/bin/python3';

describe('the Python WebSocket client', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeDelayModel(tmp.dir, 'double', { delayMs: 0 });
    writeClassifier(tmp.dir, 'clf', { seed: 4, inputDim: 4, classes: 3 });
    writeClassifier(tmp.dir, 'clf2', { seed: 5, inputDim: 4, classes: 3 });
    server = await serve(tmp.dir);
    server.apps.add({ name: 'pick', input_type: 'floats', input_shape: [4], latency_slo_micros: 1_000_000, default_output: -1, policy: 'exp3', models: ['clf', 'clf2'], seed: 1 });
  });
  after(async () => {
    await server?.close();
    tmp.cleanup();
  });

  it('streams many queries over one connection, answers matched by id; apps and feedback', { timeout: 120_000 }, async () => {
    // Asynchronously: the server runs in this process.
    const r = await promisify(execFile)(PYTHON, [`${ROOT}test/fixtures/python/client_drive.py`, server.wsUrl], {
      encoding: 'utf8', env: { ...process.env, PYTHONPATH: `${ROOT}python` }, timeout: 110_000,
    });
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(out.matched, 600, 'every answer is its own query\'s');
    assert.equal(out.ids_distinct, 600);
    assert.ok((out.peak_in_flight as number) >= 32, `many in flight at once (${String(out.peak_in_flight)})`);
    assert.equal(out.frame_matched, 50);
    assert.equal(out.unknown_model, 'MODEL_NOT_FOUND');
    assert.ok([0, 1, 2].includes(out.app_output as number), `the app answers a class: ${JSON.stringify(out.app_output)}`);
    assert.equal((out.app_models_used as string[]).length, 1);
    assert.equal(out.feedback_error, null);
    assert.ok((out.feedback_models as string[]).length >= 1);
  });
});

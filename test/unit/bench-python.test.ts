/**
 * Baseline (d), the FastAPI + numpy server: its numpy forward pass over the ONNX weights must
 * compute what ONNX Runtime computes on the same model files (the tiny demo MLP and the compute
 * MLP), and the hosted server must answer an OIP JSON request the load generator sends. Debian's
 * python3 packages are required: CI installs them, so their absence fails here with the list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { writeBenchModel } from '../../bench/lib/models.js';
import { buildRows } from '../../bench/lib/payload.js';
import { spawnChild } from '../../bench/lib/child.js';
import { FASTAPI_PACKAGES, FASTAPI_SCRIPT, PYTHON } from '../../bench/lib/python.js';
import { encodeInferRequest } from '../../src/protocol/oip-encode.js';
import { tempDir } from '../integration/helpers.js';

function requirePython(): void {
  const r = spawnSync(PYTHON, ['-c', 'import fastapi, uvicorn, uvloop, httptools, onnx, numpy'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `the Python baseline needs Debian's ${FASTAPI_PACKAGES} (apt-get install -y ...): ${r.error?.message ?? r.stderr}`);
}

test('numpy forward pass of the FastAPI baseline matches ONNX Runtime', async (t) => {
  requirePython();
  const repo = tempDir('skiff-bench-py-');
  t.after(() => repo.cleanup());
  for (const kind of ['tiny', 'compute'] as const) {
    const m = writeBenchModel(repo.dir, kind, kind);
    const rows = buildRows({ source: 'random', poolSize: 8 }, m.input, 7);
    const x = rows.data.slice(0, 8 * rows.elems);
    const session = await ort.InferenceSession.create(m.file);
    const want = await session.run({ input: new ort.Tensor('float32', x, [8, rows.elems]) });
    const nested = Array.from({ length: 8 }, (_, r) => Array.from(x.subarray(r * rows.elems, (r + 1) * rows.elems)));
    const py = spawnSync(PYTHON, [FASTAPI_SCRIPT, 'forward', m.file], { input: JSON.stringify({ input: nested }), encoding: 'utf8', maxBuffer: 1 << 26 });
    assert.equal(py.status, 0, `${kind}: numpy forward failed: ${py.stderr}`);
    const got = JSON.parse(py.stdout) as Record<string, { shape: number[]; data: number[] }>;
    assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${kind}: outputs`);
    for (const [name, w] of Object.entries(want)) {
      const g = got[name]!;
      assert.deepEqual(g.shape, w.dims.map(Number), `${kind}.${name}: shape`);
      const wd = Array.from(w.data as ArrayLike<number | bigint>, Number);
      if (w.type === 'int64') assert.deepEqual(g.data, wd, `${kind}.${name}: labels`);
      else for (let i = 0; i < wd.length; i++) assert.ok(Math.abs(g.data[i]! - wd[i]!) <= 1e-5 + 1e-4 * Math.abs(wd[i]!), `${kind}.${name}[${i}]: numpy ${g.data[i]} vs ORT ${wd[i]}`);
    }
    await session.release();
  }
});

test('FastAPI baseline host: starts two uvicorn workers and answers the generator\'s OIP JSON', async (t) => {
  requirePython();
  const repo = tempDir('skiff-bench-py-');
  t.after(() => repo.cleanup());
  const m = writeBenchModel(repo.dir, 'tiny', 'tiny');
  const host = await spawnChild(new URL('../../bench/baselines/fastapi-host.js', import.meta.url), { args: [m.file, m.name, '1', '2'] });
  t.after(() => host.stop());
  const rows = buildRows({ source: 'random', poolSize: 1 }, m.input, 1);
  const body = encodeInferRequest({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 784], data: new Uint8Array(rows.data.slice(0, 784).buffer) }] }).body;
  const r = await fetch(`http://127.0.0.1:${host.ready.port}/v2/models/${m.name}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(r.status, 200);
  const answer = (await r.json()) as { outputs: { name: string; shape: number[] }[] };
  assert.deepEqual(answer.outputs.map((o) => [o.name, o.shape]), [['probabilities', [1, 10]], ['label', [1]]]);
  assert.ok(join(FASTAPI_SCRIPT).endsWith('fastapi_numpy.py'));
});

/**
 * Real `skiff serve` processes: what an operator did stays done after kill -9 (unloads and
 * deletes of repository versions), the --apps rule on an existing state database, and a
 * shutdown bounded by --drain-timeout-ms even with a hung model.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeClassifier, writeFaultyModel, writeModelConfig } from '../../src/modelgen/fixtures.js';
import { postJson, tempDir } from './helpers.js';
import { spawnServer } from './process-helpers.js';

const T = { timeout: 120_000 };

describe('acknowledged removals survive kill -9', () => {
  it('an unloaded model and a deleted repository version do not come back from the repository', T, async () => {
    const tmp = tempDir();
    const repo = join(tmp.dir, 'repo');
    const db = join(tmp.dir, 'state.db');
    writeClassifier(repo, 'gone', { seed: 1, inputDim: 4, classes: 3 });
    writeClassifier(repo, 'multi', { seed: 2, inputDim: 4, classes: 3 });
    writeClassifier(repo, 'multi', { seed: 3, inputDim: 4, classes: 3, version: 2 });
    writeModelConfig(repo, 'multi', { version_policy: { all: true } });
    try {
      const s1 = await spawnServer(['--model-repository', repo, '--state-db', db]);
      assert.equal((await postJson(`${s1.adminUrl}/v2/repository/models/gone/unload`, {})).status, 200);
      assert.equal((await postJson(`${s1.adminUrl}/admin/set_model_version`, { model_name: 'multi', model_version: 1 })).status, 200);
      const del = await postJson(`${s1.adminUrl}/admin/delete_versioned_model`, { model_name: 'multi', model_version: 2 });
      assert.equal(del.status, 200, JSON.stringify(del.json));
      s1.child.kill('SIGKILL');
      await s1.exited;

      const s2 = await spawnServer(['--model-repository', repo, '--state-db', db]);
      try {
        const index = (await postJson(`${s2.adminUrl}/v2/repository/index`, {})).json as { name: string; version: string; state: string }[];
        assert.ok(index.some((e) => e.name === 'gone' && e.state !== 'READY'), JSON.stringify(index));
        assert.ok(!index.some((e) => e.name === 'gone' && e.state === 'READY'));
        assert.ok(!index.some((e) => e.name === 'multi' && e.version === '2'), `multi:2 came back: ${JSON.stringify(index)}`);
        assert.equal((await fetch(`${s2.url}/v2/models/gone/ready`)).status === 200, false);
        // An explicit load brings the model back.
        assert.equal((await postJson(`${s2.adminUrl}/v2/repository/models/gone/load`, {})).status, 200);
        assert.equal((await fetch(`${s2.url}/v2/models/gone/ready`)).status, 200);
      } finally {
        s2.child.kill('SIGKILL');
        await s2.exited;
      }
    } finally {
      tmp.cleanup();
    }
  });
});

describe('--apps on an existing state database', () => {
  it('the database wins, and a warning names every application the file disagrees on', T, async () => {
    const tmp = tempDir();
    const repo = join(tmp.dir, 'repo');
    const db = join(tmp.dir, 'state.db');
    const apps = join(tmp.dir, 'apps.json');
    writeClassifier(repo, 'clf', { seed: 1, inputDim: 4, classes: 3 });
    const app = (name: string, slo: number) => ({ name, input_type: 'floats', default_output: -1, latency_slo_micros: slo, models: ['clf'] });
    try {
      writeFileSync(apps, JSON.stringify([app('kept', 10_000), app('same', 20_000)]));
      const s1 = await spawnServer(['--model-repository', repo, '--state-db', db, '--apps', apps]);
      s1.child.kill('SIGTERM');
      await s1.exited;
      writeFileSync(apps, JSON.stringify([app('kept', 99_000), app('same', 20_000), app('newer', 30_000)]));
      const s2 = await spawnServer(['--model-repository', repo, '--state-db', db, '--apps', apps]);
      try {
        const kept = await postJson(`${s2.adminUrl}/admin/get_application`, { name: 'kept' });
        assert.equal(kept.json.latency_slo_micros, 10_000, 'the database definition is kept');
        const newer = await postJson(`${s2.adminUrl}/admin/get_application`, { name: 'newer' });
        assert.deepEqual(newer.json, {}, 'the file\'s new application is not created (Clipper answers {} for an unknown app)');
        await new Promise((r) => setTimeout(r, 200));
        const warning = s2.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; apps?: string[] }).find((l) => Array.isArray(l.apps));
        assert.ok(warning, `a warning about the apps file: ${s2.stderr()}`);
        assert.deepEqual([...warning.apps!].sort(), ['kept', 'newer']);
      } finally {
        s2.child.kill('SIGTERM');
        await s2.exited;
      }
    } finally {
      tmp.cleanup();
    }
  });
});

describe('a bounded shutdown', () => {
  it('--drain-timeout-ms bounds the whole shutdown with a hung model; the query it held is answered', T, async () => {
    const tmp = tempDir();
    writeFaultyModel(tmp.dir, 'hang', 'for (;;) {}');
    writeModelConfig(tmp.dir, 'hang', { cache_bytes: 0, batch_timeout_ms: 0, default_timeout_us: 60_000_000 });
    try {
      const s = await spawnServer(['--model-repository', tmp.dir, '--drain-timeout-ms', '500']);
      const hung = fetch(`${s.url}/v2/models/hang/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [666, 0, 0, 0] }] }) });
      await new Promise((r) => setTimeout(r, 300));
      const t0 = performance.now();
      s.child.kill('SIGTERM');
      const answer = await hung;
      const code = await s.exited;
      const ms = performance.now() - t0;
      assert.equal(code, 0);
      assert.ok(ms < 5000, `shutdown took ${ms.toFixed(0)} ms`);
      assert.equal(answer.status, 503);
      assert.equal(((await answer.json()) as { code: string }).code, 'SHUTTING_DOWN');
    } finally {
      tmp.cleanup();
    }
  });
});

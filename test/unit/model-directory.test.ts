/**
 * openModelDirectory: the layouts a platform's storage step leaves in a one-model directory
 * (KServe's /mnt/models), and the directories it must refuse rather than guess at.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openModelDirectory, type ModelDirectory, type RepositoryModel } from '../../src/models/repository.js';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import { tempDir } from '../integration/helpers.js';

function modelOf(found: ModelDirectory): RepositoryModel {
  if (found.layout === 'repository') throw new Error('expected one model, got a repository');
  return found.model;
}

function code(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

/** A model file written by the fixtures, then moved to `file` (a KServe single-object download). */
function onnxAt(file: string, seed = 1): void {
  const t = tempDir();
  const f = writeClassifier(t.dir, 'x', { seed });
  renameSync(f.file, file);
  t.cleanup();
}

test('a single object (<dir>/<any>.onnx) is version 1, with <dir>/config.json as its config', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  onnxAt(join(d.dir, 'mnist-v3.onnx'));
  writeFileSync(join(d.dir, 'config.json'), JSON.stringify({ max_batch_size: 7 }));
  writeFileSync(join(d.dir, 'README.md'), 'not a model');
  const found = openModelDirectory(d.dir, 'mnist');
  assert.equal(found.layout, 'file');
  const m = modelOf(found);
  assert.equal(m.name, 'mnist');
  assert.deepEqual(m.selected.map((v) => [v.version, v.path, v.kind]), [[1, join(d.dir, 'mnist-v3.onnx'), 'onnx']]);
  assert.equal(m.config.max_batch_size, 7);
});

test('<dir>/model.onnx is taken even beside other .onnx files', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  onnxAt(join(d.dir, 'model.onnx'));
  onnxAt(join(d.dir, 'other.onnx'), 2);
  const found = openModelDirectory(d.dir, 'm');
  assert.equal(found.layout, 'file');
  assert.equal(modelOf(found).selected[0]!.path, join(d.dir, 'model.onnx'));
});

test('version directories (<dir>/<v>/model.onnx): the newest is selected unless the config says otherwise', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  for (const v of [1, 3]) {
    mkdirSync(join(d.dir, String(v)));
    onnxAt(join(d.dir, String(v), 'model.onnx'), v);
  }
  mkdirSync(join(d.dir, 'lost+found'));
  const found = openModelDirectory(d.dir, 'isvc-name');
  assert.equal(found.layout, 'versions');
  assert.deepEqual(modelOf(found).available.map((v) => v.version), [1, 3]);
  assert.deepEqual(modelOf(found).selected.map((v) => v.version), [3]);
  writeFileSync(join(d.dir, 'config.json'), JSON.stringify({ version_policy: { all: true } }));
  assert.deepEqual(modelOf(openModelDirectory(d.dir, 'isvc-name')).selected.map((v) => v.version), [1, 3]);
});

test('a Triton-style repository (<dir>/<model>/<v>/model.onnx) is recognised as one', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  writeClassifier(d.dir, 'digits', { seed: 1 });
  mkdirSync(join(d.dir, 'lost+found'));
  assert.deepEqual(openModelDirectory(d.dir, 'ignored'), { layout: 'repository' });
});

test('symbolic links are followed (KServe modelcar links /mnt/models into another container)', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  mkdirSync(join(d.dir, 'real'));
  onnxAt(join(d.dir, 'real', 'model.onnx'));
  symlinkSync(join(d.dir, 'real'), join(d.dir, 'models'));
  const found = openModelDirectory(join(d.dir, 'models'), 'm');
  assert.equal(found.layout, 'file');
});

test('ambiguous, empty, missing directories and bad names are refused with their codes', (t) => {
  const d = tempDir();
  t.after(d.cleanup);
  const both = join(d.dir, 'both');
  mkdirSync(join(both, '1'), { recursive: true });
  onnxAt(join(both, 'model.onnx'));
  onnxAt(join(both, '1', 'model.onnx'));
  assert.throws(() => openModelDirectory(both, 'm'), (e) => code(e) === 'CONFIG_INVALID');

  const two = join(d.dir, 'two');
  mkdirSync(two);
  onnxAt(join(two, 'a.onnx'));
  onnxAt(join(two, 'b.onnx'));
  assert.throws(() => openModelDirectory(two, 'm'), (e) => code(e) === 'CONFIG_INVALID');

  const empty = join(d.dir, 'empty');
  mkdirSync(join(empty, 'lost+found'), { recursive: true });
  writeFileSync(join(empty, 'config.json'), '{}');
  assert.throws(() => openModelDirectory(empty, 'm'), (e) => code(e) === 'MODEL_LOAD_FAILED');
  assert.throws(() => openModelDirectory(join(d.dir, 'absent'), 'm'), (e) => code(e) === 'MODEL_LOAD_FAILED');
  assert.throws(() => openModelDirectory(join(both, 'model.onnx'), 'm'), (e) => code(e) === 'MODEL_LOAD_FAILED');

  const ok = join(d.dir, 'ok');
  mkdirSync(ok);
  onnxAt(join(ok, 'model.onnx'));
  assert.throws(() => openModelDirectory(ok, '../etc'), (e) => code(e) === 'CONFIG_INVALID');
  assert.throws(() => openModelDirectory(ok, ''), (e) => code(e) === 'CONFIG_INVALID');
  writeFileSync(join(ok, 'config.json'), '{not json');
  assert.throws(() => openModelDirectory(ok, 'm'), (e) => code(e) === 'CONFIG_INVALID');
});

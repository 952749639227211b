import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `skiff-serve/client` as a package user meets it: the name resolves through package.json's
 * `exports` to the compiled ESM entry with its types; everything it loads is the project's own
 * code or the FlatBuffers runtime (no Node built-in, no Buffer, no process), so the same module
 * runs in a browser; and the browser bundle the server serves imports nothing.
 */
const ENTRY = fileURLToPath(import.meta.resolve('skiff-serve/client'));

test('skiff-serve/client resolves to the ESM build, with its types beside it', async () => {
  assert.match(ENTRY, /dist\/src\/client\/index\.js$/);
  assert.ok(existsSync(ENTRY.replace(/\.js$/, '.d.ts')), 'index.d.ts is emitted');
  const m = (await import('skiff-serve/client')) as unknown as Record<string, unknown>;
  for (const name of ['SkiffClient', 'fp32', 'int64', 'values', 'argmax']) assert.equal(typeof m[name], 'function', name);
  const types = readFileSync(ENTRY.replace(/\.js$/, '.d.ts'), 'utf8');
  assert.match(types, /export \{ SkiffClient \}/);
});

test('the client loads no Node-only module or global', () => {
  const seen = new Set<string>();
  const external = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const js = readFileSync(file, 'utf8');
    // Runtime imports only: `import type` is erased by tsc.
    for (const m of js.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|^\s*import\s+['"]([^'"]+)['"]/gm)) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else external.add(spec);
    }
    const code = js.replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, '');
    assert.doesNotMatch(code, /\bBuffer\b|\bprocess\.|\brequire\(/, `${file} uses a Node-only global`);
  };
  visit(ENTRY);
  assert.deepEqual([...external].sort(), ['flatbuffers'], 'the FlatBuffers runtime is the one dependency');
  assert.ok([...seen].some((f) => f.endsWith('protocol/generated/skiff_generated.js')), 'the generated code is inside');
});

test('the browser bundle is one self-contained ES module', () => {
  const bundle = fileURLToPath(new URL('../../client/skiff.js', import.meta.url));
  assert.ok(existsSync(bundle), 'npm run build writes dist/client/skiff.js');
  const js = readFileSync(bundle, 'utf8');
  assert.doesNotMatch(js, /\bimport\s*[{*]|\bimport\s+\w|\bimport\(|require\(|node:/, 'no imports left in the bundle');
  assert.match(js, /export\s*\{[^}]*\bSkiffClient\b/);
});

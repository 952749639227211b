/**
 * What `skiff serve` loads: the benchmark code (bench/), the conformance checker
 * (src/conformance/), the demo client (src/demo.ts) and the dev-only packages (package.json's
 * devDependencies) are for other commands and must not be loaded by a server. The CLI is run as
 * `npm start` runs it, with a preloaded module that records every ES module the loader loads (a
 * loader hook) and, at exit, every CommonJS module in the require cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tempDir } from '../integration/helpers.js';

/** dist/ (this file is dist/test/unit/...). */
const DIST = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(readFileSync(join(DIST, '..', 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };

const HOOKS = `import { appendFileSync } from 'node:fs';
export async function load(url, context, nextLoad) {
  appendFileSync(process.env.SKIFF_LOAD_TRACE, url + '\\n');
  return nextLoad(url, context);
}
`;
const PRELOAD = `import { register, createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
register(new URL('./hooks.mjs', import.meta.url));
const require = createRequire(import.meta.url);
process.on('exit', () => {
  appendFileSync(process.env.SKIFF_LOAD_TRACE, Object.keys(require.cache).map((p) => 'cjs:' + p).join('\\n') + '\\n');
});
`;

test('serve loads no bench, conformance or demo-client module and no dev-only package', async (t) => {
  const d = tempDir('skiff-serve-modules-');
  t.after(() => d.cleanup());
  writeFileSync(join(d.dir, 'hooks.mjs'), HOOKS);
  writeFileSync(join(d.dir, 'preload.mjs'), PRELOAD);
  const trace = join(d.dir, 'loaded.txt');
  writeFileSync(trace, '');
  const child = spawn(process.execPath, ['--import', pathToFileURL(join(d.dir, 'preload.mjs')).href, join(DIST, 'src', 'cli.js'), 'serve', '--port', '0', '--admin-port', '0', '--no-admin-token'], {
    env: { ...process.env, SKIFF_LOAD_TRACE: trace },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve not ready after 60 s: ${out} ${err}`)), 60_000);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      if (/^ready$/m.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`serve exited (${code}) before ready: ${err}`)));
  });
  child.kill('SIGTERM');
  await exited;

  const loaded = readFileSync(trace, 'utf8').split('\n').filter(Boolean)
    .map((l) => (l.startsWith('cjs:') ? l.slice(4) : l.startsWith('file:') ? fileURLToPath(l) : l));
  assert.ok(loaded.some((p) => p === join(DIST, 'src', 'server.js')), 'the trace saw the server itself');
  const forbidden = loaded.filter((p) => p.startsWith(join(DIST, 'bench') + '/')
    || p.startsWith(join(DIST, 'src', 'conformance') + '/')
    || p === join(DIST, 'src', 'demo.js'));
  assert.deepEqual(forbidden, [], 'serve loaded modules of other commands');
  const dev = Object.keys(PKG.devDependencies);
  const devLoaded = loaded.filter((p) => dev.some((name) => p.includes(`/node_modules/${name}/`)));
  assert.deepEqual(devLoaded, [], 'serve loaded dev-only packages');
  // Without --state, one instance never loads the shared store or its Redis client.
  const redis = loaded.filter((p) => p.includes('/node_modules/ioredis/') || p === join(DIST, 'src', 'store', 'redis-store.js'));
  assert.deepEqual(redis, [], 'serve without --state loaded the Redis store');
});

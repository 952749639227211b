import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { writeIdentity } from '../../src/modelgen/fixtures.js';
import { spawnServer } from './process-helpers.js';
import { tempDir } from './helpers.js';

/**
 * What a newcomer meets, run as they run it: the bin through npx, --version, the start-up
 * banner and what it points at, start-up errors that name the option and the file, a model that
 * failed to load (inference and readiness say why; the log says it at error level), `skiff
 * sample` piped to the server, `skiff demo` against the running server, log formats.
 */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli.js');
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const run = promisify(execFile);

/** `skiff <args>`; resolves with the exit code and output whatever the code. */
function cli(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d));
    child.stderr.on('data', (d: Buffer) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('first run', () => {
  const tmp = tempDir();
  after(() => tmp.cleanup());

  it('the bin is executable and runs through npx as a user runs it; --version names the build', { timeout: 120_000 }, async () => {
    assert.ok((statSync(CLI).mode & 0o111) !== 0, 'dist/src/cli.js has its execute bit after the build');
    const r = await run('npx', ['--no-install', 'skiff', '--version'], { cwd: ROOT, encoding: 'utf8' });
    assert.match(r.stdout, new RegExp(`^${PKG.name} ${PKG.version.replaceAll('.', '\\.')} \\(Node v\\d+\\.\\d+\\.\\d+, uWebSockets\\.js @`), 'npx skiff --version');
    const help = await run('npx', ['--no-install', 'skiff-serve', '--help'], { cwd: ROOT, encoding: 'utf8' });
    for (const cmd of ['serve', 'demo', 'sample', 'conformance', 'bench']) assert.match(help.stdout, new RegExp(`\\b${cmd}\\b`));
  });

  it('start-up errors name the option and the file', { timeout: 60_000 }, async () => {
    const missing = await cli(['serve', '--model-repository', join(tmp.dir, 'nope')]);
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr.trim(), `--model-repository ${join(tmp.dir, 'nope')}: no such directory`);

    const repo = join(tmp.dir, 'repo');
    writeIdentity(repo, 'id');
    const bad = join(tmp.dir, 'apps.json');
    writeFileSync(bad, '{"apps": [');
    const badApps = await cli(['serve', '--model-repository', repo, '--apps', bad, '--port', '0', '--admin-port', '-1']);
    assert.equal(badApps.code, 1);
    assert.match(badApps.stderr, new RegExp(`^--apps ${bad.replaceAll('.', '\\.')}: not valid JSON`, 'm'));
    assert.doesNotMatch(badApps.stderr, /body/);

    const noApps = await cli(['serve', '--model-repository', repo, '--apps', join(tmp.dir, 'none.json')]);
    assert.match(noApps.stderr, /^--apps .*none\.json: no such file$/m);

    const level = await cli(['serve', '--log-level', 'verbose']);
    assert.equal(level.code, 1);
    assert.match(level.stderr, /--log-level.*'verbose' is invalid\. Allowed choices are trace, debug, info, warn, error, fatal, silent/);

    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    const port = (taken.address() as { port: number }).port;
    const busy = await cli(['serve', '--model-repository', repo, '--port', String(port), '--admin-port', '-1']);
    taken.close();
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, new RegExp(`port ${port} is already in use on 127\\.0\\.0\\.1.*--port`));
  });

  it('the banner points at a demo page, the dashboard, the token file and a curl line that works', { timeout: 90_000 }, async () => {
    const dir = join(tmp.dir, 'runtime');
    mkdirSync(dir, { recursive: true });
    const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--admin-port', '0'], { env: { ...process.env, SKIFF_RUNTIME_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let out = '';
      await new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d;
          if (/^ready$/m.test(out)) resolve();
        });
        child.once('exit', (c) => reject(new Error(`exited ${c}: ${out}`)));
      });
      const field = (k: string) => new RegExp(`^  ${k} +(\\S+)`, 'm').exec(out)?.[1];
      const page = field('demo page')!;
      const r = await fetch(page);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type') ?? '', /text\/html/);
      assert.match(await r.text(), /Draw a digit/);
      const tokenFile = field('admin token')!;
      assert.ok(existsSync(tokenFile), `token file ${tokenFile}`);
      const token = readFileSync(tokenFile, 'utf8').trim();
      const dash = field('dashboard')!;
      assert.match(dash, /\/dashboard\?token=<token>$/, 'no token in a captured log');
      const dashboard = await fetch(dash.replace('<token>', encodeURIComponent(token)));
      assert.equal(dashboard.status, 200);
      const admin = field('admin API')!.replace('/admin/<call>', '');
      assert.equal((await fetch(`${admin}/admin/ping`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
      // The "try" line, run as a shell runs it.
      const tryLine = /^  try +(.*)$/m.exec(out)![1]!;
      const { stdout } = await run('sh', ['-c', tryLine], { cwd: ROOT, encoding: 'utf8' });
      const answer = JSON.parse(stdout) as { outputs: { name: string; data: number[] }[] };
      const label = answer.outputs.find((o) => o.name === 'label')!.data[0];
      const sample = await cli(['sample']);
      assert.match(sample.stderr, new RegExp(`held-out digit #0: a ${label}`), 'the model reads the sample as its true label');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('a model that failed to load: inference and readiness say which and why; the log says it at error level', { timeout: 60_000 }, async () => {
    const repo = join(tmp.dir, 'broken');
    writeIdentity(repo, 'good');
    mkdirSync(join(repo, 'bad', '1'), { recursive: true });
    writeFileSync(join(repo, 'bad', '1', 'model.onnx'), 'not an onnx file');
    const s = await spawnServer(['--model-repository', repo, '--log-format', 'json']);
    try {
      const infer = await fetch(`${s.url}/v2/models/bad/infer`, { method: 'POST', body: JSON.stringify({ inputs: [{ name: 'x', shape: [1], datatype: 'FP32', data: [1] }] }) });
      const body = await infer.json() as { code: string; error: string };
      assert.equal(infer.status, 503);
      assert.equal(body.code, 'MODEL_UNAVAILABLE');
      assert.match(body.error, /model 'bad' has no ready version \(version 1 is failed: .+\)/);
      const ready = await fetch(`${s.url}/v2/health/ready`);
      assert.equal(ready.status, 503);
      const rb = await ready.json() as { ready: boolean; not_ready: { model: string; versions: { version: number; state: string; reason?: string }[] }[] };
      assert.equal(rb.ready, false);
      assert.deepEqual(rb.not_ready.map((m) => m.model), ['bad']);
      assert.equal(rb.not_ready[0]!.versions[0]!.state, 'failed');
      assert.ok(rb.not_ready[0]!.versions[0]!.reason);
      const logs = s.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; model?: string; msg: string });
      assert.ok(logs.some((l) => l.level >= 50 && l.model === 'bad' && /failed/.test(l.msg)), `an error-level record: ${s.stderr()}`);
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
  });

  it('skiff demo streams to the running server, learning included; with no server it says what to do', { timeout: 180_000 }, async () => {
    const s = await spawnServer([]); // the demo repository and apps
    try {
      const demo = await cli(['demo', '--url', s.wsUrl, '--count', '60', '--window', '8'], { timeoutMs: 170_000 });
      assert.equal(demo.code, 0, demo.stderr);
      assert.match(demo.stdout, /streaming 60 held-out MNIST digits \(of 1996, none seen in training\)/);
      for (const m of ['mnist_logreg', 'mnist_mlp', 'mnist_weak']) assert.match(demo.stdout, new RegExp(`^${m} +\\d+\\.\\d+%`, 'm'));
      assert.match(demo.stdout, /exp3 \(app 'digits'\)/);
      assert.match(demo.stdout, /exp4 \(app 'digits_ensemble'\).*\n  ensemble accuracy/);
    } finally {
      s.child.kill('SIGTERM');
      await s.exited;
    }
    const nobody = await cli(['demo', '--url', 'ws://127.0.0.1:1/ws']);
    assert.equal(nobody.code, 1);
    assert.match(nobody.stderr, /no Skiff server answers at ws:\/\/127\.0\.0\.1:1\/ws .*npm start.*--url.*--standalone/);
  });

  it('logs: JSON lines by default off a terminal, one readable line per record with --log-format pretty', { timeout: 60_000 }, async () => {
    const repo = join(tmp.dir, 'logs');
    writeIdentity(repo, 'id');
    const s1 = await spawnServer(['--model-repository', repo, '--log-level', 'info']);
    const s2 = await spawnServer(['--model-repository', repo, '--log-level', 'info', '--log-format', 'pretty']);
    try {
      const jsonLines = s1.stderr().split('\n').filter(Boolean);
      assert.ok(jsonLines.length > 0 && jsonLines.every((l) => typeof JSON.parse(l) === 'object'));
      const prettyLines = s2.stderr().split('\n').filter(Boolean);
      assert.ok(prettyLines.length > 0);
      assert.ok(prettyLines.every((l) => /^\[\d\d:\d\d:\d\d\.\d{3}\] (INFO|WARN|ERROR)/.test(l)), prettyLines.join('\n'));
    } finally {
      for (const s of [s1, s2]) {
        s.child.kill('SIGTERM');
        await s.exited;
      }
    }
  });
});

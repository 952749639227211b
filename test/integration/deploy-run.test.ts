/**
 * The deployment files run: the commands, arguments and environment they give Skiff are taken
 * from the files themselves and started as real processes (ports and mount paths moved to free
 * loopback ports and temporary directories), so a flag renamed in the CLI or a file the image
 * lacks fails here.
 *  - The Dockerfile's runtime stage: its file tree rebuilt from its COPY lines (node_modules with
 *    the production packages of package-lock.json only, as `npm ci --omit=dev` installs them),
 *    its ENTRYPOINT + CMD started there with this machine's Node, its HEALTHCHECK command passing
 *    while it serves and failing once it stopped.
 *  - The Kubernetes Deployment's args and env: the probe and scrape paths answer.
 *  - The KServe ServingRuntime's args with {{.Name}} filled in, over the layouts KServe's storage
 *    initializer leaves in /mnt/models; an empty mount fails the start.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { writeClassifier, type ModelFixture } from '../../src/modelgen/fixtures.js';
import { assertClose, classifierReference, postJson, tempDir } from './helpers.js';
import { freePort, startRedis, startSkiff, type RedisServer, type SkiffProcess } from './cluster.js';
import { argValue, DEPLOY, imageCommand, loadManifests, readDockerfile, ROOT, stageEnv } from '../unit/deploy-files.js';

/** What Prometheus sends when it scrapes. */
const PROMETHEUS_ACCEPT = 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1';

/** Replace the value after `flag` (which must be there). */
function setArg(args: string[], flag: string, value: string): string[] {
  const i = args.indexOf(flag);
  assert.ok(i >= 0, `${flag} in ${args.join(' ')}`);
  const out = [...args];
  out[i + 1] = value;
  return out;
}

async function status(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(url, { headers });
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

/** Run an exec-form health check command; resolves with its exit code. */
function runCheck(exec: string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  assert.equal(exec[0], 'node');
  const p = spawn(process.execPath, exec.slice(1), { env, stdio: 'ignore' });
  return new Promise((resolve) => p.once('exit', (code) => resolve(code)));
}

/** node_modules holding only the production packages of package-lock.json (links to the installed ones). */
function productionModules(dest: string): number {
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  let n = 0;
  for (const [key, meta] of Object.entries(lock.packages)) {
    if (!/^node_modules\/(@[^/]+\/)?[^/]+$/.test(key) || meta.dev) continue;
    const from = join(ROOT, key);
    if (!statSync(from, { throwIfNoEntry: false })) continue; // an optional package for another platform
    const to = join(dest, key.slice('node_modules/'.length));
    mkdirSync(dirname(to), { recursive: true });
    symlinkSync(from, to);
    n++;
  }
  return n;
}

describe('the Dockerfile\'s runtime stage', () => {
  const tmp = tempDir('skiff-image-');
  after(tmp.cleanup);
  const df = readDockerfile(readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8'));
  const final = df.stages.at(-1)!;
  const env = stageEnv(final);

  it('runs its command in its own file tree and passes its health check; the check fails once it stopped', async () => {
    const app = join(tmp.dir, 'app');
    const workdir = final.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)!.args[0]!;
    const workdirOf = (stage: string): string => df.stages.find((s) => s.name === stage)!.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)!.args[0]!;
    let modules = 0;
    for (const c of final.instructions.filter((i) => i.keyword === 'COPY')) {
      const dest = posix.relative(workdir, posix.normalize(posix.join(workdir, c.args.at(-1)!)));
      for (const src of c.args.slice(0, -1)) {
        const target = join(app, c.args.length > 2 || dest === '' ? posix.join(dest, posix.basename(src)) : dest);
        if (c.flags.from && src.endsWith('/node_modules')) {
          modules = productionModules(target);
          continue;
        }
        // From a stage: its WORKDIR is the repository (the build stage copies the context there).
        const rel = c.flags.from ? posix.relative(workdirOf(c.flags.from), src) : src;
        cpSync(join(ROOT, rel), target, { recursive: true });
      }
    }
    assert.ok(modules > 50, `${modules} production packages`);

    const cmd = imageCommand(final);
    assert.deepEqual(cmd.slice(0, 2), ['node', 'dist/src/cli.js']);
    const port = await freePort();
    // Loopback and free ports here; the admin listener's default port may be taken on this machine.
    const args = [...setArg(setArg(cmd.slice(2), '--host', '127.0.0.1'), '--port', String(port)), '--admin-port', '0'];
    const runEnv = { PATH: process.env.PATH, ...env, SKIFF_RUNTIME_DIR: join(tmp.dir, 'run') };
    const s = await startSkiff(args, { cwd: app, cli: join(app, cmd[1]!), env: runEnv });
    let stopped = false;
    try {
      // The demo repository the image ships, served.
      const x = Array.from({ length: 784 }, (_, i) => (i % 7) / 7);
      const r = await postJson(`${s.url}/v2/models/mnist_mlp/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 784], data: x }] });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.outputs.length > 0, true);
      assert.equal((await status(`${s.url}/v2/health/ready`)).status, 200);
      // Static files the image must carry: the demo page and the bundled browser client.
      for (const path of ['/', '/client/skiff.js']) assert.equal((await status(`${s.url}${path}`)).status, 200, path);

      const check = final.instructions.find((i) => i.keyword === 'HEALTHCHECK')!.exec!;
      const url = new URL(env.SKIFF_HEALTH_URL!);
      url.port = String(port);
      const checkEnv = { ...runEnv, SKIFF_HEALTH_URL: url.href };
      assert.equal(await runCheck(check, checkEnv), 0, 'healthy while serving');
      assert.equal(await s.stop('SIGTERM'), 0, 'SIGTERM drains and exits 0');
      stopped = true;
      assert.equal(await runCheck(check, checkEnv), 1, 'unhealthy once stopped');
    } finally {
      if (!stopped) await s.stop('SIGKILL');
    }
  });
});

describe('the Kubernetes Deployment', () => {
  const tmp = tempDir('skiff-k8s-');
  let s: SkiffProcess | undefined;
  let redis: RedisServer | undefined;
  after(async () => {
    await s?.stop('SIGKILL');
    await redis?.stop();
    tmp.cleanup();
  });

  it('starts Skiff with its args and env; probes and the scrape path answer', async () => {
    const d = loadManifests(join(DEPLOY, 'k8s')).find((m) => m.obj.kind === 'Deployment' && m.obj.metadata.name === 'skiff')!.obj;
    const pod = d.spec.template;
    const c = pod.spec.containers[0];
    const repo = join(tmp.dir, 'models');
    writeClassifier(repo, 'clf', { seed: 3 });
    const port = await freePort();
    let args: string[] = c.args;
    args = setArg(args, '--host', '127.0.0.1');
    args = setArg(args, '--port', String(port));
    args = setArg(args, '--model-repository', repo);
    args = setArg(args, '--upload-dir', join(tmp.dir, 'uploads'));
    args.push('--admin-port', '0');
    const env: Record<string, string> = { PATH: process.env.PATH! };
    for (const e of c.env) if (e.value !== undefined) env[e.name] = e.value; // the Secret is optional and absent here
    env.SKIFF_RUNTIME_DIR = join(tmp.dir, 'run');
    // The shared state is the manifests' Redis Service; here a real redis-server stands in for it.
    const redisService = loadManifests(join(DEPLOY, 'k8s')).find((m) => m.obj.kind === 'Service' && m.obj.metadata.name === 'skiff-redis')!.obj;
    assert.equal(env.SKIFF_STATE, `redis://skiff-redis:${redisService.spec.ports[0].port}/0`);
    redis = await startRedis(join(tmp.dir, 'redis'));
    env.SKIFF_STATE = redis.url;
    s = await startSkiff(args, { env });

    const named = (p: any): number => (typeof p === 'number' ? p : c.ports.find((x: any) => x.name === p).containerPort);
    for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
      assert.equal(named(probe.httpGet.port), Number(argValue(c.args, '--port')));
      assert.equal((await status(`http://127.0.0.1:${port}${probe.httpGet.path}`)).status, 200, probe.httpGet.path);
    }
    const scrape = await status(`http://127.0.0.1:${port}${pod.metadata.annotations['prometheus.io/path']}`, { accept: PROMETHEUS_ACCEPT });
    assert.equal(scrape.status, 200);
    assert.match(scrape.type, /^(text\/plain|application\/openmetrics-text)/);
    assert.match(scrape.body, /^# (HELP|TYPE) /m);
    // No Secret: the admin token was generated into the runtime directory, for the operator only.
    const tokenFile = /admin token +(\S+)/.exec(s.output())![1]!;
    assert.equal(dirname(tokenFile), env.SKIFF_RUNTIME_DIR);
    assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
    // Its applications live in that Redis: one created here is there.
    const made = await postJson(`http://127.0.0.1:${/admin API +https?:\/\/127\.0\.0\.1:(\d+)/.exec(s.output())![1]}/admin/add_app`,
      { name: 'k8s', input_type: 'floats', default_output: -1, latency_slo_micros: 100000, candidate_model_names: ['clf'] },
      { authorization: `Bearer ${readFileSync(tokenFile, 'utf8').trim()}` });
    assert.equal(made.status, 200, JSON.stringify(made.json));
    const { Redis } = await import('ioredis');
    const r = new Redis(redis.url);
    try {
      assert.deepEqual(await r.hkeys('skiff:apps'), ['k8s']);
    } finally {
      r.disconnect();
    }
  });
});

describe('the KServe ServingRuntime', () => {
  const tmp = tempDir('skiff-kserve-');
  after(tmp.cleanup);
  const rt = loadManifests(join(DEPLOY, 'kserve')).find((m) => m.obj.kind === 'ServingRuntime')!.obj;
  const c = rt.spec.containers[0];
  const NAME = 'mnist-mlp';

  /** The runtime's args as KServe hands them over: {{.Name}} filled in; mount and port moved here. */
  async function runtimeArgs(mount: string): Promise<{ args: string[]; port: number }> {
    const port = await freePort();
    let args = (c.args as string[]).map((a) => a.replaceAll('{{.Name}}', NAME));
    assert.equal(argValue(args, '--model-dir'), '/mnt/models');
    args = setArg(args, '--model-dir', mount);
    args = setArg(args, '--port', String(port));
    args = setArg(args, '--host', '127.0.0.1');
    return { args, port };
  }

  async function serveMount(mount: string): Promise<SkiffProcess & { port: number }> {
    const { args } = await runtimeArgs(mount);
    return startSkiff(args, { env: { PATH: process.env.PATH, ...Object.fromEntries(c.env.map((e: any) => [e.name, e.value])) } });
  }

  async function assertServes(s: SkiffProcess, model: string, fixture: ModelFixture, version: string): Promise<void> {
    assert.equal((await status(`${s.url}${c.readinessProbe.httpGet.path}`)).status, 200);
    assert.equal((await status(`${s.url}${c.livenessProbe.httpGet.path}`)).status, 200);
    const ref = await classifierReference(fixture.file, 2, { seed: 9, range: 1 });
    const r = await postJson(`${s.url}/v2/models/${model}/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [2, 64], data: Array.from(ref.x) }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.model_name, model);
    assert.equal(r.json.model_version, version);
    assertClose(r.json.outputs.find((o: { name: string }) => o.name === 'probabilities').data, ref.probs, 1e-5, model);
    const scrape = await status(`${s.url}${rt.spec.annotations['prometheus.kserve.io/path']}`, { accept: PROMETHEUS_ACCEPT });
    assert.equal(scrape.status, 200);
    assert.match(scrape.body, new RegExp(`model="${model}"`));
  }

  it('serves a single object (/mnt/models/<file>.onnx) under the InferenceService\'s name', async () => {
    const mount = join(tmp.dir, 'single');
    const f = writeClassifier(join(tmp.dir, 'src1'), 'x', { seed: 21 });
    mkdirSync(mount);
    renameSync(f.file, join(mount, 'mnist.onnx'));
    const s = await serveMount(mount);
    try {
      await assertServes(s, NAME, { ...f, file: join(mount, 'mnist.onnx') }, '1');
      assert.equal((await status(`${s.url}/v2/models/x`)).status, 404);
    } finally {
      await s.stop();
    }
  });

  it('serves version directories with config.json (the newest version)', async () => {
    const mount = join(tmp.dir, 'versions');
    mkdirSync(mount);
    writeClassifier(join(tmp.dir, 'src2'), 'x', { seed: 1, version: 1 });
    const v2 = writeClassifier(join(tmp.dir, 'src2'), 'x', { seed: 2, version: 2 });
    cpSync(join(tmp.dir, 'src2', 'x'), mount, { recursive: true });
    writeFileSync(join(mount, 'config.json'), JSON.stringify({ max_batch_size: 8 }));
    const s = await serveMount(mount);
    try {
      await assertServes(s, NAME, { ...v2, file: join(mount, '2', 'model.onnx') }, '2');
    } finally {
      await s.stop();
    }
  });

  it('serves a Triton-style repository as Triton would, each model under its own name', async () => {
    const mount = join(tmp.dir, 'repository');
    const f = writeClassifier(mount, 'digits', { seed: 5 });
    const s = await serveMount(mount);
    try {
      await assertServes(s, 'digits', f, '1');
    } finally {
      await s.stop();
    }
  });

  it('refuses to start when /mnt/models holds no model', async () => {
    const mount = join(tmp.dir, 'empty');
    mkdirSync(join(mount, 'lost+found'), { recursive: true });
    await assert.rejects(serveMount(mount), /exited before it was ready/);
  });

  it('refuses --model-dir beside --model-repository, and --model-name without --model-dir', async () => {
    const mount = join(tmp.dir, 'single');
    const { args } = await runtimeArgs(mount);
    await assert.rejects(startSkiff([...args, '--model-repository', mount]), /exited before it was ready/);
    const alone = args.filter((_, i) => args[i] !== '--model-dir' && args[i - 1] !== '--model-dir');
    await assert.rejects(startSkiff(alone), /exited before it was ready/);
  });
});

/**
 * deploy/Dockerfile, linted without a Docker engine (none runs on this machine): dockerfile-utils'
 * validator finds no problem, and the parsed stages say what the image must be — multi-stage, dev
 * dependencies only where the TypeScript is compiled, `npm ci --omit=dev` for what ships, a
 * numeric non-root user, a health check on /v2/health/live, the served port exposed and nothing
 * that manages the server or runs code, no secrets, and every file the compiled server reads at
 * run time copied in. test/integration/deploy-run.test.ts runs the image's command and health
 * check in a copy of the runtime stage's file tree.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { validate } from 'dockerfile-utils';
import { argValue, DEPLOY, imageCommand, PACKAGE, readDockerfile, ROOT, stageEnv, stageImage, type DockerStage } from './deploy-files.js';

const TEXT = readFileSync(join(DEPLOY, 'Dockerfile'), 'utf8');
const df = readDockerfile(TEXT);
const final = df.stages.at(-1)!;

function runs(stage: DockerStage): string[] {
  return stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args.join(' '));
}

/** `npm ci` invocations of a RUN line (split at &&). */
function npmCi(stage: DockerStage): string[][] {
  return runs(stage).flatMap((r) => r.split('&&').map((c) => c.trim().split(/\s+/))).filter((c) => c[0] === 'npm' && c[1] === 'ci');
}

test('dockerfile-utils finds no problem', () => {
  assert.deepEqual(validate(TEXT).map((d) => `${d.range.start.line + 1}: ${d.message}`), []);
});

/** glibc of the Debian releases the official Node images come in. */
const GLIBC: Record<string, number> = { bookworm: 2.36, trixie: 2.41 };

test('stages: one pinned Node base whose Node and glibc load a uWebSockets.js build; dev deps only where tsc runs', () => {
  assert.ok(df.stages.length >= 2, 'multi-stage');
  const images = new Set(df.stages.map((s) => stageImage(df, s)));
  assert.equal(images.size, 1, 'every stage on the same base image');
  const image = [...images][0]!;
  const m = /^node:(\d+)\.(\d+)\.(\d+)-(bookworm|trixie)-slim$/.exec(image);
  assert.ok(m, `${image}: node:<x.y.z>-<debian>-slim (a pinned version)`);
  const major = Number(m[1]);
  const majors = [...PACKAGE.engines.node.matchAll(/\^(\d+)/g)].map((x) => Number(x[1]));
  assert.ok(majors.includes(major), `Node ${major} is one of package.json engines (${PACKAGE.engines.node})`);
  // src/http/uws.ts: the trufflesuite build serves Node 20 on glibc >= 2.27, the btc-vision build
  // Node 20/22/24/25 on glibc >= 2.38.
  const needs = major === 20 ? 2.27 : 2.38;
  assert.ok(GLIBC[m[4]!]! >= needs, `Node ${major} needs glibc >= ${needs}; ${m[4]} has ${GLIBC[m[4]!]}`);

  const build = df.stages.find((s) => runs(s).some((r) => /\btsc\b/.test(r)));
  assert.ok(build, 'a stage compiles the TypeScript');
  // The same steps as `npm run build` (tsc, then the browser client's bundle).
  const buildScript = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { build: string } }).scripts.build;
  const steps = runs(build).join(' && ').split('&&').map((c) => c.trim());
  for (const step of buildScript.split('&&').map((c) => c.trim())) assert.ok(steps.some((s) => s === step || s === `npx ${step}`), `build step ${step}`);
  assert.ok(npmCi(build).some((c) => !c.includes('--omit=dev')), 'the compiling stage installs dev dependencies');
  assert.notEqual(build, final, 'the compiler and dev dependencies stay out of the final image');

  // What ships is `npm ci --omit=dev`: run in the final stage, or in a stage the final one copies node_modules from.
  const prodStages = df.stages.filter((s) => npmCi(s).some((c) => c.includes('--omit=dev')));
  assert.ok(prodStages.length > 0, 'npm ci --omit=dev');
  const modules = final.instructions.filter((i) => i.keyword === 'COPY' && i.args.some((a) => /node_modules\/?$/.test(a)));
  if (modules.length === 0) assert.ok(prodStages.includes(final));
  for (const c of modules) assert.ok(prodStages.some((s) => s.name === c.flags.from), `node_modules copied from a --omit=dev stage, not ${c.flags.from}`);
  assert.ok(!npmCi(final).some((c) => !c.includes('--omit=dev')), 'no dev install in the final stage');

  // The package's own `prepare` compiles: installs run without scripts, and the packages whose
  // install scripts the project allows (package.json allowScripts) are rebuilt explicitly.
  for (const s of df.stages) for (const c of npmCi(s)) assert.ok(c.includes('--ignore-scripts'), `${s.name}: ${c.join(' ')}`);
  const allowed = Object.entries((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { allowScripts: Record<string, boolean> }).allowScripts).filter(([, v]) => v).map(([k]) => k);
  for (const s of prodStages) {
    const rebuilt = runs(s).join(' && ').split('&&').map((c) => c.trim().split(/\s+/)).filter((c) => c[0] === 'npm' && c[1] === 'rebuild').flatMap((c) => c.slice(2));
    assert.deepEqual(rebuilt.sort(), allowed.sort(), `${s.name}: rebuilds exactly the packages allowed to run install scripts`);
  }
  for (const s of df.stages) assert.equal(stageEnv(s).ONNXRUNTIME_NODE_INSTALL ?? (npmCi(s).length ? 'unset' : 'skip'), 'skip', `${s.name}: no CUDA download`);
});

test('the final stage runs as a numeric non-root user, checks /v2/health/live, exposes only the query port', () => {
  const users = final.instructions.filter((i) => i.keyword === 'USER');
  assert.equal(users.length, 1);
  const [uid, gid] = users[0]!.args[0]!.split(':');
  assert.match(uid!, /^\d+$/, 'numeric uid (Kubernetes runAsNonRoot can verify it)');
  assert.ok(Number(uid) > 0 && Number(gid ?? uid) > 0);
  const after = final.instructions.slice(final.instructions.indexOf(users[0]!));
  assert.ok(!after.some((i) => i.keyword === 'RUN'), 'nothing runs as root after USER');

  const cmd = imageCommand(final);
  assert.deepEqual(cmd.slice(0, 3), ['node', 'dist/src/cli.js', 'serve']);
  assert.equal(argValue(cmd, '--host'), '0.0.0.0');
  const port = Number(argValue(cmd, '--port') ?? 8000);
  // The admin API stays on loopback with its token; the container RPC port is never opened.
  for (const flag of ['--admin-host', '--no-admin-token', '--admin-token', '--rpc-port', '--rpc-host', '--allow-code-upload']) assert.equal(cmd.includes(flag), false, flag);

  const exposed = final.instructions.filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.map((a) => Number(a.split('/')[0])));
  assert.deepEqual(exposed, [port]);

  const hc = final.instructions.filter((i) => i.keyword === 'HEALTHCHECK');
  assert.equal(hc.length, 1);
  assert.ok(hc[0]!.exec && hc[0]!.exec[0] === 'node', 'exec form, with the image\'s own node (no curl in a slim image)');
  for (const f of ['interval', 'timeout', 'start-period', 'retries']) assert.ok(hc[0]!.flags[f], `--${f}`);
  const url = new URL(stageEnv(final).SKIFF_HEALTH_URL!);
  assert.equal(url.pathname, '/v2/health/live');
  assert.equal(Number(url.port), port);
  assert.equal(url.hostname, '127.0.0.1');
});

test('no secrets: none in ENV or ARG, none copied in, and the build context leaves local state out', () => {
  for (const s of df.stages) {
    for (const [k, v] of Object.entries(stageEnv(s))) assert.ok(!/TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_KEY/i.test(k), `${s.name}: ENV ${k}=${v}`);
    for (const i of s.instructions.filter((x) => x.keyword === 'ARG')) assert.ok(!/TOKEN|SECRET|PASSWORD|KEY/i.test(i.args.join(' ')), i.args.join(' '));
    for (const i of s.instructions.filter((x) => x.keyword === 'COPY' || x.keyword === 'ADD')) {
      assert.notEqual(i.keyword, 'ADD', 'COPY, not ADD (no remote fetches, no auto-extraction)');
      assert.ok(!i.args.some((a) => /\.env|\.token|\.pem|\.key|id_rsa|\.npmrc/.test(a)), i.args.join(' '));
    }
  }
  for (const k of Object.keys(df.args)) assert.ok(!/TOKEN|SECRET|PASSWORD/i.test(k), k);
  const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const p of ['.git', 'node_modules', 'dist', '*.token', '.env', '*.db']) assert.ok(ignore.includes(p), `.dockerignore: ${p}`);
});

/** Repository-relative paths the compiled server reads through `new URL('...', import.meta.url)`. */
function runtimeAssets(): string[] {
  const out = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const compiled = posix.join('dist', relative(ROOT, p).replace(/\.ts$/, '.js'));
        for (const m of readFileSync(p, 'utf8').matchAll(/new URL\('([^']+)', import\.meta\.url\)/g)) {
          // The package root itself ('../../' from dist/src) names no file to ship.
          const target = posix.normalize(posix.join(posix.dirname(compiled), m[1]!)).replace(/\/$/, '');
          if (target !== '.' && !target.startsWith('..')) out.add(target);
        }
      }
    }
  };
  walk(join(ROOT, 'src'));
  walk(join(ROOT, 'workers'));
  return [...out].sort();
}

test('every file the compiled server reads at run time is copied into the final stage', () => {
  const workdir = final.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)!.args[0]!;
  const dests = final.instructions.filter((i) => i.keyword === 'COPY').map((i) => posix.normalize(posix.join(workdir, i.args.at(-1)!)));
  const copied = final.instructions.filter((i) => i.keyword === 'COPY').map((i) => {
    const dest = posix.relative(workdir, posix.normalize(posix.join(workdir, i.args.at(-1)!)));
    // `COPY a b c ./`: several sources into a directory keep their names.
    return i.args.length > 2 || dest === '' ? i.args.slice(0, -1).map((a) => posix.join(dest, posix.basename(a))) : [dest];
  }).flat();
  const assets = runtimeAssets();
  assert.ok(assets.includes('dist/workers/runner.js') && assets.includes('schemas/model-config.schema.json'), `found ${assets.join(', ')}`);
  for (const a of assets) assert.ok(copied.some((c) => a === c || a.startsWith(`${c}/`)), `${a} is not in the image (copied: ${copied.join(', ')})`);
  assert.ok(dests.every((d) => d.startsWith(workdir)), 'everything under the WORKDIR');
});

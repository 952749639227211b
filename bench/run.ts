/**
 * `npm run bench`: the scenario runner. Generates the benchmark models into a temporary
 * repository, starts Skiff (and, on demand, the baselines) in child processes, runs targets
 * T1..T9 and prints each as a ratio against its baseline measured in the same run,
 * with PASS/FAIL. The full run also sweeps latency against throughput on the compute MLP and
 * writes bench/results/<timestamp>/ (results.json, results.md, latency-throughput.svg).
 *
 *   npm run bench -- --quick            all targets, short runs (under 2 minutes)
 *   npm run bench -- --only T1,T3       selected targets
 *   npm run bench -- --only ws-stream   the streaming benchmark of issue 2
 *   npm run bench -- --profile --only T4   the server under --cpu-prof: top functions and flame graphs per target
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { BenchContext, cpuShares, machineCpuBusy, waitQuiet, type TargetResult } from './lib/context.js';
import { LoadGenerator } from './lib/loadgen.js';
import { writeBenchModel, type BenchModel } from './lib/models.js';
import { seriesOf, timestampName, writeResults } from './lib/report.js';
import { mainThreadProfile, writeProfileReport, type ProfileDigest, type ProfileSpan } from './lib/profile-report.js';
import type { BenchEnv, ModelDecl, Target } from './targets/types.js';
import { t1 } from './targets/t1-compute.js';
import { t2 } from './targets/t2-naive.js';
import { t3 } from './targets/t3-rtt.js';
import { t4 } from './targets/t4-frames.js';
import { t5 } from './targets/t5-aimd.js';
import { t6 } from './targets/t6-wait.js';
import { t7 } from './targets/t7-idle.js';
import { t8 } from './targets/t8-loop.js';
import { t9 } from './targets/t9-containers.js';
import { sweepCurves } from './targets/curves.js';
import { wsStream } from './ws-stream.js';

const TARGETS: Target[] = [t1, t2, t3, t4, t5, t6, t7, t8, t9];
const EXTRA: Target[] = [wsStream, sweepCurves];
const RESULTS_ROOT = fileURLToPath(new URL('../../bench/results/', import.meta.url));

interface Options {
  quick: boolean;
  waitQuiet?: number;
  only?: string;
  out?: string;
  threads: number;
  profile: boolean;
}

function select(o: Options): Target[] {
  if (!o.only) return o.quick ? TARGETS : [...TARGETS, sweepCurves];
  const all = [...TARGETS, ...EXTRA];
  return o.only.split(',').map((id) => {
    const t = all.find((x) => x.id.toLowerCase() === id.trim().toLowerCase());
    if (!t) throw new Error(`unknown target '${id}' (known: ${all.map((x) => x.id).join(', ')})`);
    return t;
  });
}

/** Write every model the selected targets declare (a name declared twice must agree). */
function writeModels(repo: string, targets: Target[], quick: boolean): Record<string, BenchModel> {
  const decls = new Map<string, ModelDecl>();
  for (const t of targets) {
    for (const d of t.models(quick)) {
      const seen = decls.get(d.name);
      if (seen && JSON.stringify(seen) !== JSON.stringify(d)) throw new Error(`model '${d.name}' is declared differently by two targets`);
      decls.set(d.name, d);
    }
  }
  const models: Record<string, BenchModel> = {};
  for (const d of decls.values()) models[d.name] = writeBenchModel(repo, d.name, d.kind, d.config, d.delay);
  return models;
}

function verdict(r: TargetResult): string {
  return r.pass === null ? 'REPORT' : r.pass ? 'PASS' : 'FAIL';
}

async function main(o: Options): Promise<number> {
  const targets = select(o);
  const busy = o.waitQuiet
    ? await waitQuiet(0.15, o.waitQuiet * 60_000, (b) => console.log(`waiting for a quiet machine: ${(b * 100).toFixed(0)}% busy`))
    : await machineCpuBusy(1000);
  console.log(`skiff bench (${o.quick ? 'quick' : 'full'}): ${targets.map((t) => t.id).join(', ')}`);
  console.log(`machine: ${(await import('node:os')).cpus().length} CPUs; CPU busy before the run (other processes): ${Number.isNaN(busy) ? 'unknown' : `${(busy * 100).toFixed(0)}%`}`);
  const t0 = performance.now();
  const repo = mkdtempSync(join(tmpdir(), 'skiff-bench-'));
  const gen = await LoadGenerator.start(o.threads);
  const ctx = new BenchContext(o.quick, gen);
  const results: TargetResult[] = [];
  const dir = o.out ?? join(RESULTS_ROOT, timestampName());
  const writeFolder = !o.quick || o.out !== undefined || o.profile;
  const profileDir = join(dir, 'profile');
  const spans: ProfileSpan[] = [];
  let profile: { files: string[]; digests: ProfileDigest[] } | { error: string } | null = null;
  try {
    const models = writeModels(repo, targets, o.quick);
    const hiccups = await ctx.child(new URL('./lib/hiccups.js', import.meta.url));
    // SKIFF_BENCH_SERVER_NODE_ARGS: extra node flags for the server under test (e.g. --cpu-prof).
    const serverArgs = process.env.SKIFF_BENCH_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    if (o.profile) {
      mkdirSync(profileDir, { recursive: true });
      serverArgs.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`, '--cpu-prof-interval=200');
    }
    // SKIFF_BENCH_STATS=1: the server measures allocation and GC pauses per window for the probes.
    const skiff = await ctx.child(new URL('./servers/skiff-host.js', import.meta.url), [repo], undefined, serverArgs, { ...process.env, SKIFF_BENCH_STATS: '1' });
    const failed = skiff.ready.failed as { model: string; error: { message: string } }[];
    if (failed.length > 0) throw new Error(`models failed to load: ${failed.map((f) => `${f.model}: ${f.error.message}`).join('; ')}`);
    const echo: { url?: Promise<string> } = {};
    const naive = new Map<string, Promise<string>>();
    const python = new Map<string, Promise<string>>();
    const env: BenchEnv = {
      repo, skiff, models,
      wsUrl: `ws://127.0.0.1:${skiff.ready.port}/ws`,
      httpUrl: `http://127.0.0.1:${skiff.ready.port}`,
      echoUrl: () => (echo.url ??= ctx.child(new URL('./baselines/uws-echo.js', import.meta.url)).then((c) => `ws://127.0.0.1:${c.ready.port}/ws`)),
      naiveUrl: (m) => {
        let u = naive.get(m.name);
        if (!u) {
          u = ctx.child(new URL('./baselines/naive-http.js', import.meta.url), [m.file, m.name, String(m.config.threads ?? 1)]).then((c) => `http://127.0.0.1:${c.ready.port}`);
          naive.set(m.name, u);
        }
        return u;
      },
      pythonUrl: (m) => {
        let u = python.get(m.name);
        if (!u) {
          u = ctx.child(new URL('./baselines/fastapi-host.js', import.meta.url), [m.file, m.name, String(m.config.threads ?? 1), '2']).then((c) => `http://127.0.0.1:${c.ready.port}`);
          python.set(m.name, u);
        }
        return u;
      },
    };
    for (const t of targets) {
      ctx.current = t.id;
      ctx.log(`\n== ${t.id}: ${t.title}`);
      let r: TargetResult;
      const cpu0 = ctx.cpu();
      await hiccups.call('reset');
      const started = performance.now();
      const span0 = o.profile ? await skiff.call<number>('monoClock') : 0;
      try {
        r = await t.run(ctx, env);
      } catch (err) {
        r = { id: t.id, title: t.title, value: NaN, measured: 'error', target: '', pass: false, lines: [`error: ${err instanceof Error ? err.stack ?? err.message : String(err)}`], data: {} };
      }
      if (o.profile) spans.push({ id: t.id, startUs: span0, endUs: await skiff.call<number>('monoClock') });
      const share = cpuShares(cpu0, ctx.cpu());
      const noise = await hiccups.call<{ p99: number; p999: number; max: number }>('read');
      r.lines.push(`machine during ${t.id}: CPU ${(share.busy * 100).toFixed(0)}% busy, ${(share.others * 100).toFixed(0)}% of it by other processes (not this benchmark); an idle process's 1 ms timer ran late by p99 ${noise.p99.toFixed(2)} ms, p99.9 ${noise.p999.toFixed(2)} ms, max ${noise.max.toFixed(1)} ms`);
      r.data.cpu = share;
      r.data.hiccups = noise;
      results.push(r);
      for (const l of r.lines) ctx.log(`  ${l}`);
      ctx.log(`  => ${t.id} ${r.measured} (target ${r.target}): ${verdict(r)}  [${((performance.now() - started) / 1000).toFixed(0)} s]`);
    }
    if (o.profile) {
      // The server writes its profile when it exits.
      await ctx.stopChild(skiff);
      // Each probed load's measured window as a span of its own, after its target's.
      for (const run of ctx.runs) {
        const w = run.result.server?.heap?.monoUs;
        if (w) spans.push({ id: `${run.target} ${run.result.label ?? run.result.model}`.replace(/[^A-Za-z0-9_.-]+/g, '-'), startUs: w[0], endUs: w[1] });
      }
      const file = mainThreadProfile(profileDir, skiff.pid);
      profile = file ? writeProfileReport(dir, file, spans) : { error: `no main-thread profile of process ${skiff.pid} in ${profileDir}` };
    }
  } finally {
    await ctx.close();
    await gen.close();
    rmSync(repo, { recursive: true, force: true });
  }

  const elapsed = (performance.now() - t0) / 1000;
  const table = ['| target | measured | target | verdict |', '|---|---|---|---|', ...results.map((r) => `| ${r.id} ${r.title} | ${r.measured} | ${r.target} | ${verdict(r)} |`)].join('\n');
  console.log(`\n== summary (${elapsed.toFixed(0)} s)`);
  for (const r of results) console.log(`${r.id.padEnd(9)} ${verdict(r).padEnd(6)} ${r.measured.padEnd(44)} target ${r.target}`);
  if (profile && 'error' in profile) console.log(`profile: ${profile.error}`);
  else if (profile) {
    for (const d of profile.digests) {
      const busy = d.ms - d.categoriesMs.idle;
      const share = Object.entries(d.categoriesMs).filter(([c]) => c !== 'idle').map(([c, v]) => `${c} ${busy > 0 ? ((100 * v) / busy).toFixed(0) : 0}%`).join(', ');
      console.log(`profile ${d.id}: ${d.ms.toFixed(0)} ms, ${d.samples} samples, busy ${busy.toFixed(0)} ms: ${share}`);
    }
  }
  if (writeFolder) {
    const series = seriesOf(ctx.runs);
    const folder = writeResults(dir, {
      title: `Skiff benchmark (${o.quick ? 'quick' : 'full'} run)`,
      markdown: `Machine: CPU busy before the run (other processes) ${(busy * 100).toFixed(0)}%; ${o.threads} generator threads; ${elapsed.toFixed(0)} s.\n\n## Targets\n\n${table}\n\n${results.map((r) => `### ${r.id}: ${r.title}\n\n${r.lines.map((l) => `- ${l}`).join('\n')}\n`).join('\n')}`,
      json: { quick: o.quick, busyBefore: busy, threads: o.threads, seconds: elapsed, targets: results, runs: ctx.runs, ...(profile ? { profile } : {}) },
      runs: ctx.runs.map((r) => r.result),
      series,
    });
    console.log(`results: ${[...folder.files, ...(profile && 'files' in profile ? profile.files : [])].join(', ')}`);
  }
  return results.every((r) => r.pass !== false) ? 0 : 1;
}

const program = new Command()
  .name('npm run bench --')
  .description('Skiff benchmark targets T1..T8 against baselines measured in the same run')
  .option('--quick', 'short runs (the whole set in under 2 minutes)', false)
  .option('--wait-quiet <minutes>', 'first wait (up to this long) until other processes leave the CPUs idle', (v) => Number(v))
  .option('--only <ids>', 'comma-separated targets: T1..T8, ws-stream, curves')
  .option('--out <dir>', 'results folder (default bench/results/<timestamp> for full runs)')
  .option('--threads <n>', 'load generator threads', (v) => Number(v), 2)
  .option('--profile', 'run the server under --cpu-prof; write per-target top functions (profile.md) and flame graphs (flame-<target>.svg) into the results folder', false);
program.parse(process.argv);
main(program.opts<Options>()).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err instanceof Error ? err.stack ?? err.message : err);
    process.exit(2);
  },
);

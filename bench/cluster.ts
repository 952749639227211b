/**
 * Throughput of 1, 2 and 3 Skiff instances behind a load balancer on this one machine (HAProxy,
 * started by test/integration/cluster.ts), over WebSocket and OIP REST, beside one instance
 * queried directly (what the balancer costs). On a 2-core machine shared by the generator, the
 * servers and the balancer this measures overhead, not scaling: more instances compete for the
 * same cores. A closed loop per run, the same model (the demo MNIST MLP) and load everywhere.
 *
 *   node dist/bench/cluster.js [--quick] [--instances 1,2,3] [--duration 10] [--out DIR]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import { LoadGenerator } from './lib/loadgen.js';
import { writeBenchModel } from './lib/models.js';
import { markdownTable, seriesOf, summaryLine, timestampName, writeResults } from './lib/report.js';
import type { LoadResult, LoadSpec, Protocol } from './lib/spec.js';
import { startCluster, type Cluster } from '../test/integration/cluster.js';

const RESULTS_ROOT = fileURLToPath(new URL('../../bench/results/', import.meta.url));

interface Options {
  quick: boolean;
  instances: number[];
  duration?: number;
  out?: string;
  save: boolean;
}

function counts(v: string): number[] {
  const list = v.split(',').map((x) => Number(x.trim()));
  if (list.some((n) => !Number.isInteger(n) || n < 1 || n > 8)) throw new InvalidArgumentError('instances: a comma-separated list of integers in [1, 8]');
  return list;
}

export async function runClusterBench(argv: string[]): Promise<LoadResult[]> {
  const o = new Command()
    .name('bench/cluster')
    .option('--quick', 'short windows (a smoke run)', false)
    .option('--instances <list>', 'instance counts to measure', counts, [1, 2, 3])
    .option('--duration <s>', 'measured seconds per run (default 10, quick 1)', (v) => Number(v))
    .option('--out <dir>', 'results folder (default bench/results/cluster-<timestamp>)')
    .option('--no-save', 'do not write a results folder')
    .parse(argv, { from: 'user' })
    .opts<Options>();
  const seconds = o.duration ?? (o.quick ? 1 : 10);
  const repo = mkdtempSync(join(tmpdir(), 'skiff-bench-cluster-'));
  const model = writeBenchModel(repo, 'tiny', 'tiny');
  // Six connections and 64 units in flight: an even share for 1, 2 and 3 instances.
  const spec = (protocol: Protocol, url: string, label: string): LoadSpec & { label: string } => ({
    label,
    target: { protocol, url, model: model.name, timeoutUs: 0 },
    input: model.input,
    payload: { source: 'random', poolSize: 1024 },
    mode: { kind: 'closed', concurrency: 64 },
    requestsPerFrame: 1,
    connections: protocol === 'http' ? 64 : 6,
    warmupMs: o.quick ? 300 : 2000,
    durationMs: seconds * 1000,
    drainMs: 2000,
    seed: 1,
  });
  const gen = await LoadGenerator.start(o.quick ? 1 : 2);
  const runs: { series: string; result: LoadResult }[] = [];
  try {
    for (const n of o.instances) {
      let cluster: Cluster | undefined;
      try {
        // Shared state in Redis, as several instances run in production (`--state redis://...`).
        cluster = await startCluster({ instances: n, repository: repo, args: (_i, { redisUrl }) => ['--state', redisUrl!] });
        const targets: [Protocol, string, string][] = [
          ['ws', cluster.balancer.wsUrl, `${n} behind HAProxy`],
          ['http', cluster.balancer.url, `${n} behind HAProxy`],
        ];
        if (n === 1) targets.unshift(['ws', cluster.instances[0]!.wsUrl, '1 direct'], ['http', cluster.instances[0]!.url, '1 direct']);
        for (const [protocol, url, where] of targets) {
          const { label, ...s } = spec(protocol, url, `${protocol} ${where}`);
          const r = await gen.run(s, { label });
          console.log(summaryLine(r));
          runs.push({ series: `${protocol} ${where.includes('direct') ? 'direct' : 'balanced'}`, result: r });
        }
      } finally {
        await cluster?.stop();
      }
    }
  } finally {
    await gen.close();
    rmSync(repo, { recursive: true, force: true });
  }
  const results = runs.map((r) => r.result);
  if (o.save) {
    const dir = o.out ?? join(RESULTS_ROOT, `cluster-${timestampName()}`);
    writeResults(dir, {
      title: 'Skiff instances behind HAProxy on one machine',
      markdown: `Command: \`node dist/bench/cluster.js ${argv.join(' ')}\`. One machine: this shows the balancer's overhead and the instances competing for the same cores, not scaling.\n\n${markdownTable(results)}`,
      json: { argv, results },
      runs: results,
      series: seriesOf(runs),
    });
    console.log(`results: ${dir}`);
  }
  return results;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runClusterBench(process.argv.slice(2)).then(
    (r) => { process.exitCode = r.some((x) => x.errors > 0) ? 1 : 0; },
    (err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}

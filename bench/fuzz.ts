/**
 * Standalone fuzz runner: every parser campaign of test/fuzz (FlatBuffers frames, OIP JSON and
 * binary, Clipper REST bodies, admin API bodies) with one total input count, spread over worker
 * threads so every core fuzzes. Prints each campaign's summary line, one line per parser and the
 * wall time; exits 1 if any campaign found a crash, a hang, an over-allocation or a memory leak.
 *
 *   node dist/bench/fuzz.js                       1,000,000 inputs on every core
 *   node dist/bench/fuzz.js --runs 5000000 --seed 42 --threads 2 --only wire,oip
 *
 * Campaign shares and the per-input checks are those of the test suite (test/fuzz/harness.ts);
 * RSS is the whole process's (all workers); the retained-heap check is per worker heap.
 */
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { Command } from 'commander';
import {
  CAMPAIGN_SHARES, DEFAULT_TOTAL_RUNS, checkCampaign, fuzzSeed, parserSummary, runsFor,
  type CampaignName, type CampaignStats, type Tally,
} from '../test/fuzz/harness.js';
import { wireMutated, wireRandom, wireStructured } from '../test/fuzz/wire-campaigns.js';
import { oipHeaderLength, oipJsonRandom, oipMutated, oipStructured } from '../test/fuzz/oip-campaigns.js';
import { clipperMutated, clipperStructured } from '../test/fuzz/clipper-campaigns.js';
import { adminMutated, adminStructured } from '../test/fuzz/admin-campaigns.js';

type Campaign = (runs: number, seed: number) => Tally | Promise<Tally>;

const CAMPAIGNS: Readonly<Record<CampaignName, Campaign>> = {
  'wire.random': wireRandom,
  'wire.structured': wireStructured,
  'wire.mutated': wireMutated,
  'oip.json-random': oipJsonRandom,
  'oip.structured': oipStructured,
  'oip.mutated': oipMutated,
  'oip.header-length': oipHeaderLength,
  'clipper.structured': clipperStructured,
  'clipper.mutated': clipperMutated,
  'admin.structured': adminStructured,
  'admin.mutated': adminMutated,
};

/** Campaigns where acceptance is not expected (random input almost never forms a valid request). */
const REFUSE_ALL: ReadonlySet<CampaignName> = new Set(['wire.random', 'oip.json-random']);

interface Job {
  name: CampaignName;
  runs: number;
  seed: number;
}

interface Result {
  name: CampaignName;
  stats?: CampaignStats;
  error?: string;
}

async function runJob(job: Job): Promise<Result> {
  try {
    const t = await CAMPAIGNS[job.name](job.runs, job.seed);
    checkCampaign(t, job.runs, { mustAccept: !REFUSE_ALL.has(job.name) });
    const { name, inputs, accepted, rejected, maxMs, peakRss, elapsedMs } = t;
    return { name: job.name, stats: { name, inputs, accepted, rejected, maxMs, peakRss, elapsedMs } };
  } catch (e) {
    return { name: job.name, error: e instanceof Error ? e.message : String(e) };
  }
}

/** A worker: runs the jobs it is sent, one at a time, until told to stop (null). */
function serveJobs(): void {
  parentPort!.on('message', (job: Job | null) => {
    if (job === null) {
      parentPort!.close();
      return;
    }
    void runJob(job).then((r) => parentPort!.postMessage(r));
  });
}

async function main(): Promise<void> {
  const opts = new Command()
    .description('Fuzz every Skiff parser with fast-check campaigns')
    .option('--runs <n>', 'total inputs over all campaigns', String(DEFAULT_TOTAL_RUNS))
    .option('--seed <n>', 'fast-check seed (default: random, printed)')
    .option('--threads <n>', 'worker threads', String(availableParallelism()))
    .option('--only <prefixes>', 'comma-separated campaign prefixes, e.g. wire,oip.mutated')
    .parse()
    .opts<{ runs: string; seed?: string; threads: string; only?: string }>();
  const total = Number(opts.runs);
  const threads = Math.max(1, Number(opts.threads));
  if (!Number.isSafeInteger(total) || total < 0) throw new RangeError(`--runs must be a non-negative integer, got ${opts.runs}`);
  const seed = opts.seed !== undefined ? Number(opts.seed) | 0 : fuzzSeed();
  const prefixes = opts.only?.split(',').map((p) => p.trim()).filter(Boolean);
  const names = (Object.keys(CAMPAIGN_SHARES) as CampaignName[]).filter((n) => !prefixes || prefixes.some((p) => n.startsWith(p)));
  // Biggest first, so the last job to finish is a short one.
  const queue: Job[] = names.map((name) => ({ name, runs: runsFor(name, total), seed })).sort((a, b) => b.runs - a.runs);
  const planned = queue.reduce((a, j) => a + j.runs, 0);
  console.log(`fuzz: ${planned} inputs over ${queue.length} campaigns on ${threads} threads, seed ${seed}`);

  const t0 = performance.now();
  const results: Result[] = [];
  await Promise.all(Array.from({ length: Math.min(threads, queue.length) }, () => new Promise<void>((resolve, reject) => {
    const w = new Worker(new URL(import.meta.url));
    const next = (): void => {
      const job = queue.shift();
      w.postMessage(job ?? null);
      if (job === undefined) resolve();
    };
    w.on('message', (r: Result) => {
      results.push(r);
      if (r.error) console.log(`FAIL ${r.name}: ${r.error}`);
      next();
    });
    w.on('error', reject);
    next();
  })));
  const seconds = (performance.now() - t0) / 1000;

  const ok = results.filter((r) => r.stats !== undefined).map((r) => r.stats!);
  for (const parser of ['wire', 'oip', 'clipper', 'admin']) {
    const mine = ok.filter((s) => s.name.startsWith(`${parser}.`));
    if (mine.length > 0) console.log(parserSummary(parser, mine));
  }
  const inputs = ok.reduce((a, s) => a + s.inputs, 0);
  const failed = results.filter((r) => r.error !== undefined);
  console.log(`fuzz: ${inputs} inputs in ${seconds.toFixed(1)} s wall (${(inputs / seconds).toFixed(0)} inputs/s), `
    + `${failed.length === 0 ? 'no crash, no hang, no over-allocation' : `${failed.length} campaign(s) FAILED`}; seed ${seed}`);
  if (failed.length > 0) process.exitCode = 1;
}

if (isMainThread) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
} else {
  serveJobs();
}

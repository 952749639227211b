/**
 * `skiff bench`: the load generator against any running server that speaks Skiff's WebSocket
 * protocol or OIP REST JSON (or a WebSocket echo server, as a transport baseline). One run, or
 * an open-loop rate sweep with `--rates`; prints a summary per run and writes the results
 * folder (JSON, Markdown table, latency-vs-throughput SVG).
 *
 *   skiff bench --url ws://127.0.0.1:8000/ws --model mnist_mlp --concurrency 64
 *   skiff bench --url http://127.0.0.1:8000 --model mnist_mlp --rate 2000 --duration 20
 *   skiff bench --url ws://127.0.0.1:8000/ws --model mnist_mlp --rates 1000,5000,20000 --rpf 8
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError, Option } from 'commander';
import { LoadGenerator } from './lib/loadgen.js';
import { ProgressBar } from './lib/progress.js';
import { seriesOf, summaryLine, timestampName, writeResults } from './lib/report.js';
import type { InputSpec, LoadMode, LoadResult, LoadSpec, PayloadSpec, Protocol } from './lib/spec.js';

const RESULTS_ROOT = fileURLToPath(new URL('../../bench/results/', import.meta.url));

interface CliOptions {
  url: string;
  model: string;
  protocol?: Protocol;
  rate?: number;
  rates?: number[];
  concurrency?: number;
  duration: number;
  warmup: number;
  drain: number;
  threads: number;
  connections?: number;
  rpf: number;
  payload: PayloadSpec['source'];
  cacheHit?: number;
  pool: number;
  timeoutUs: number;
  spinUs: number;
  input?: string;
  shape?: number[];
  seed: number;
  out?: string;
  save: boolean;
}

function num(name: string, min: number, integer = false) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) throw new InvalidArgumentError(`${name} must be ${integer ? 'an integer' : 'a number'} >= ${min}`);
    return n;
  };
}

function list(name: string) {
  return (v: string): number[] => v.split(',').map((x) => num(name, 1e-9)(x.trim()));
}

/** Input name and per-row shape from the model's OIP metadata (GET /v2/models/{model}). */
async function fetchInput(url: string, model: string): Promise<InputSpec> {
  const u = new URL(url);
  const base = `http://${u.host}`;
  const r = await fetch(`${base}/v2/models/${encodeURIComponent(model)}`);
  if (!r.ok) throw new Error(`cannot read the metadata of '${model}' from ${base} (HTTP ${r.status}); pass --input and --shape`);
  const meta = (await r.json()) as { inputs?: { name: string; datatype: string; shape: number[] }[] };
  const inp = meta.inputs?.[0];
  if (!inp || meta.inputs!.length !== 1) throw new Error(`'${model}' must have exactly one input for the load generator`);
  if (inp.datatype !== 'FP32') throw new Error(`'${model}' input '${inp.name}' is ${inp.datatype}; the load generator sends FP32`);
  const rowShape = inp.shape.slice(1);
  if (rowShape.some((d) => d < 1)) throw new Error(`'${model}' input '${inp.name}' has variable non-batch dims ${JSON.stringify(inp.shape)}; pass --shape`);
  return { name: inp.name, rowShape };
}

function protocolOf(o: CliOptions): Protocol {
  if (o.protocol) return o.protocol;
  return o.url.startsWith('http') ? 'http' : 'ws';
}

export async function runBenchCli(argv: string[]): Promise<number> {
  const program = new Command()
    .name('skiff bench')
    .description('load generator for Skiff WebSocket and OIP REST JSON (open or closed loop, HDR latency with coordinated-omission correction)')
    .requiredOption('--url <url>', 'ws://host:port/ws (Skiff WebSocket), http://host:port (OIP REST JSON)')
    .option('--model <name>', 'model to query', '')
    .addOption(new Option('--protocol <p>', 'override what the URL implies').choices(['ws', 'http', 'ws-echo']))
    .option('--rate <n>', 'open loop: requests/s, Poisson arrivals', num('rate', 1e-9))
    .option('--rates <list>', 'open loop sweep: comma-separated requests/s', list('rates'))
    .option('--concurrency <n>', 'closed loop: units (frames or HTTP requests) in flight', num('concurrency', 1, true))
    .option('--duration <s>', 'measured seconds', num('duration', 0.1), 10)
    .option('--warmup <s>', 'warm-up seconds (not measured)', num('warmup', 0), 2)
    .option('--drain <s>', 'seconds to wait for outstanding answers at the end', num('drain', 0), 5)
    .option('--threads <n>', 'generator threads', num('threads', 1, true), 2)
    .option('--connections <n>', 'connections across threads (default: WebSocket 4, HTTP open loop 64; HTTP closed loop: = concurrency)', num('connections', 1, true))
    .option('--rpf <n>', 'WebSocket: requests per frame', num('rpf', 1, true), 1)
    .addOption(new Option('--payload <source>', 'input rows').choices(['fixed', 'dataset', 'random']).default('dataset'))
    .option('--cache-hit <h>', 'repeat a pool input with probability h, else send a unique input', num('cache-hit', 0))
    .option('--pool <n>', 'pool size for --cache-hit and for random rows', num('pool', 1, true), 1024)
    .option('--timeout-us <n>', 'timeout sent with every query (µs; 0 = server default)', num('timeout-us', 0, true), 0)
    .option('--spin-us <n>', 'open loop: poll this long before each send for sub-ms precision (burns CPU)', num('spin-us', 0), 0)
    .option('--input <name>', 'input name (default: from the model metadata)')
    .option('--shape <dims>', 'per-row input shape, e.g. 784 or 3,32,32 (default: from the model metadata)', (v) => v.split(',').map((d) => num('shape', 1, true)(d)))
    .option('--seed <n>', 'random seed', num('seed', 0, true), 1)
    .option('--out <dir>', 'results folder (default bench/results/<timestamp>)')
    .option('--no-save', 'do not write a results folder')
    .exitOverride();
  try {
    program.parse(argv, { from: 'user' });
  } catch (err) {
    const code = (err as { exitCode?: number }).exitCode;
    return code ?? 2;
  }
  const o = program.opts<CliOptions>();
  const modes = [o.rate !== undefined, o.rates !== undefined, o.concurrency !== undefined].filter(Boolean).length;
  if (modes !== 1) {
    console.error('skiff bench: give exactly one of --rate, --rates, --concurrency');
    return 2;
  }
  const protocol = protocolOf(o);
  if (o.payload === 'dataset' && o.shape && o.shape.reduce((a, b) => a * b, 1) !== 784) o.payload = 'random';
  const input: InputSpec = o.shape ? { name: o.input ?? 'input', rowShape: o.shape } : await fetchInput(o.url, o.model);
  if (o.payload === 'dataset' && input.rowShape.reduce((a, b) => a * b, 1) !== 784) o.payload = 'random';
  const payload: PayloadSpec = { source: o.payload, poolSize: o.pool };
  if (o.cacheHit !== undefined) payload.cacheHitRate = o.cacheHit;
  const base = (mode: LoadMode): LoadSpec => ({
    target: { protocol, url: o.url, model: o.model, timeoutUs: o.timeoutUs },
    input, payload, mode,
    requestsPerFrame: protocol === 'http' ? 1 : o.rpf,
    connections: o.connections ?? (protocol === 'http' ? 64 : 4),
    warmupMs: o.warmup * 1000, durationMs: o.duration * 1000, drainMs: o.drain * 1000,
    seed: o.seed, spinUs: o.spinUs,
  });
  const modesToRun: LoadMode[] = o.concurrency !== undefined
    ? [{ kind: 'closed', concurrency: o.concurrency }]
    : (o.rates ?? [o.rate!]).map((rate) => ({ kind: 'open', rate }));

  const gen = await LoadGenerator.start(o.threads);
  const bar = new ProgressBar();
  const results: LoadResult[] = [];
  try {
    for (const mode of modesToRun) {
      const label = `${o.model || protocol} ${mode.kind === 'open' ? `@${mode.rate}/s` : `x${mode.concurrency}`}`;
      const r = await gen.run(base(mode), { label, onProgress: (p) => bar.update(label, p) });
      bar.clear();
      console.log(summaryLine(r));
      results.push(r);
    }
  } finally {
    await gen.close();
  }
  if (o.save) {
    const dir = o.out ?? join(RESULTS_ROOT, timestampName());
    const folder = writeResults(dir, {
      title: `skiff bench: ${o.model || protocol} at ${o.url}`,
      markdown: `Command: \`skiff bench ${argv.join(' ')}\`\n`,
      json: { argv, results },
      runs: results,
      series: seriesOf(results.map((r) => ({ series: `${protocol} ${o.model}`, result: r }))),
    });
    console.log(`results: ${folder.dir}`);
  }
  return results.some((r) => r.errors > 0) ? 1 : 0;
}

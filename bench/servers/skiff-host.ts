/**
 * The server under test: Skiff on a model repository, in its own process (forked by
 * lib/child.ts), so it never shares the load generator's event loop or threads. Besides serving,
 * it answers the runner's requests for what only the server can see: executor state (AIMD cap,
 * counters, latency histograms), the uWS thread's event-loop delay, and memory.
 *
 * argv: <model-repository>
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startServer } from '../../src/server.js';
import { silentLogger } from '../../src/log.js';
import { serveParent } from '../lib/child.js';

const repo = process.argv[2];
if (!repo) throw new Error('usage: skiff-host <model-repository>');

const loopDelay = monitorEventLoopDelay({ resolution: 1 });
loopDelay.enable();
const server = await startServer({ modelRepository: repo, port: 0, host: '127.0.0.1', logger: silentLogger });

function executor(args: Record<string, unknown>) {
  return server.registry.resolve(String(args.model)).executor!;
}

const ms = (ns: number): number => Math.round(ns / 1000) / 1000;

serveParent({
  models: () => server.loadReport,
  stats: (a) => {
    const e = executor(a);
    return { batchCap: e.batchCap, queueDepth: e.queueDepth, counters: { ...e.counters }, latency: e.latency.snapshot() };
  },
  reset: (a) => {
    if (a.model !== undefined) executor(a).latency.reset();
    loopDelay.reset();
    return true;
  },
  /** Event-loop delay of the uWS thread since the last reset (ms). */
  loopLag: () => ({ p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max), count: loopDelay.count }),
  memory: () => process.memoryUsage(),
  /** Sample the AIMD cap every `periodMs` for `durationMs`; resolves with the samples. */
  capTrace: (a) => new Promise((resolve) => {
    const e = executor(a);
    const t0 = performance.now();
    const samples: { ms: number; cap: number }[] = [];
    const timer = setInterval(() => {
      const t = performance.now() - t0;
      samples.push({ ms: Math.round(t), cap: e.batchCap });
      if (t >= Number(a.durationMs)) {
        clearInterval(timer);
        resolve(samples);
      }
    }, Number(a.periodMs));
  }),
}, () => {
  void server.close().then(() => process.exit(0));
});

process.send!({ type: 'ready', port: server.port, loaded: server.loadReport.loaded, failed: server.loadReport.failed });

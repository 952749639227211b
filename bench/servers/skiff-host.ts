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

/** The delay monitor's timer period: each sample is this plus the lag. */
const RESOLUTION_MS = 1;
const loopDelay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
loopDelay.enable();
const server = await startServer({ modelRepository: repo, port: 0, host: '127.0.0.1', logger: silentLogger });

function executor(args: Record<string, unknown>) {
  return server.registry.resolve(String(args.model)).executor!;
}

/** Lag in ms: a sample (ns) minus the timer period. */
const lagMs = (ns: number): number => Math.max(0, Math.round(ns / 1000) / 1000 - RESOLUTION_MS);

serveParent({
  models: () => server.loadReport,
  stats: (a) => {
    const e = executor(a);
    return { batchCap: e.batchCap, queueDepth: e.queueDepth, replicas: e.replicas, counters: { ...e.counters }, latency: e.latency.snapshot() };
  },
  reset: (a) => {
    if (a.model !== undefined) executor(a).latency.reset();
    loopDelay.reset();
    return true;
  },
  /** Event-loop lag of the uWS thread since the last reset (ms beyond the 1 ms sampling period). */
  loopLag: () => ({ p50: lagMs(loopDelay.percentile(50)), p99: lagMs(loopDelay.percentile(99)), max: lagMs(loopDelay.max), count: loopDelay.count }),
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

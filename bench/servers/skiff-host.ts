/**
 * The server under test: Skiff on a model repository, in its own process (forked by
 * lib/child.ts), so it never shares the load generator's event loop or threads. Besides serving,
 * it answers the runner's requests for what only the server can see: executor state (AIMD cap,
 * counters, latency histograms), the uWS thread's event-loop delay, and memory.
 *
 * With SKIFF_BENCH_STATS=1 it also measures, between the runner's `statsStart` and `statsStop`,
 * the bytes allocated on this (the main) thread's JS heap and every GC pause (v8.GCProfiler):
 * a bench-only hook over the IPC channel, never a route of the server.
 *
 * argv: <model-repository>
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import v8 from 'node:v8';
import { summarizeHeap, type GcRecord, type HeapWindow } from '../lib/server-stats.js';
import { startServer } from '../../src/server.js';
import { silentLogger } from '../../src/log.js';
import { serveParent } from '../lib/child.js';
import { LoopGaps } from '../lib/loop-gaps.js';

const repo = process.argv[2];
if (!repo) throw new Error('usage: skiff-host <model-repository>');

/** The delay monitor's timer period: each sample is this plus the lag. */
const RESOLUTION_MS = 1;
const loopDelay = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
loopDelay.enable();
// No admin listener: the bench never uses it, and a second host (T7 starts fresh ones beside the
// runner's) must not contend for the admin API's default port.
const server = await startServer({ modelRepository: repo, port: 0, host: '127.0.0.1', adminPort: -1, logger: silentLogger });

function executor(args: Record<string, unknown>) {
  return server.registry.resolve(String(args.model)).executor!;
}

/** Lag in ms: a sample (ns) minus the timer period. */
const lagMs = (ns: number): number => Math.max(0, Math.round(ns / 1000) / 1000 - RESOLUTION_MS);

const STATS = process.env.SKIFF_BENCH_STATS === '1';
const gaps = new LoopGaps();
let window: { profiler: v8.GCProfiler; used: number; mono: number } | null = null;
const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);

serveParent({
  models: () => server.loadReport,
  /** Start a measured window (SKIFF_BENCH_STATS=1): heap used now, and a GC profiler. */
  statsStart: () => {
    if (!STATS) return false;
    window?.profiler.stop();
    const profiler = new v8.GCProfiler();
    window = { profiler, used: v8.getHeapStatistics().used_heap_size, mono: monoUs() };
    profiler.start();
    return true;
  },
  /** End the window: bytes allocated and the GC pauses by kind (null when not enabled or not started). */
  statsStop: (): HeapWindow | null => {
    if (!window) return null;
    const w = window;
    window = null;
    const end = monoUs();
    const used = v8.getHeapStatistics().used_heap_size;
    const records = (w.profiler.stop()?.statistics ?? []) as unknown as GcRecord[];
    return summarizeHeap(records, w.used, used, [w.mono, end]);
  },
  /** Start recording the main thread's 1 ms ticks (bench/lib/loop-gaps.ts); false without /proc. */
  gapsStart: () => gaps.start(),
  /** Stop: where the late ticks' time went (null when not started). */
  gapsStop: () => gaps.stop(),
  /** process.hrtime in µs: maps a .cpuprofile's timestamps onto the runner's windows. */
  monoClock: () => monoUs(),
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

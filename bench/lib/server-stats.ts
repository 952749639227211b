/**
 * What the server under test costs per query on its main thread (the uWS thread every query
 * crosses), over a load's measured window:
 * - main-thread CPU, read by the bench process itself from /proc/<pid>/task/<pid>/schedstat
 *   (run time in ns; the stat file's utime + stime in clock ticks where schedstat is missing);
 *   the main thread's tid is the process id;
 * - bytes allocated on the main thread's JS heap and the GC pauses, measured inside the server
 *   with v8.GCProfiler when it runs with SKIFF_BENCH_STATS=1 (bench/servers/skiff-host.ts answers
 *   `statsStart` / `statsStop` over the bench's IPC channel; no route of the server is involved).
 *
 * The pure parts (summaries from GC records, per-query figures) are exported for the tests.
 */
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on Linux everywhere in practice). */
const USER_HZ = 100;

/** CPU time the thread `tid` of process `pid` has run (ns), or NaN when /proc cannot tell. */
export function threadCpuNs(pid: number, tid = pid): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ')[0]);
  } catch {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(f[11]) + Number(f[12])) * (1e9 / USER_HZ);
    } catch {
      return NaN;
    }
  }
}

/** One GC as v8.GCProfiler records it (the fields used here). */
export interface GcRecord {
  gcType: string;
  /** Pause, µs. */
  cost: number;
  beforeGC: { heapStatistics: { usedHeapSize: number } };
  afterGC: { heapStatistics: { usedHeapSize: number } };
}

export interface PauseSummary {
  count: number;
  totalMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** GC kinds as reported: V8's names folded into the two that pause the thread most, and the rest. */
export type GcKind = 'scavenge' | 'mark-compact' | 'incremental' | 'other';

export function gcKind(gcType: string): GcKind {
  if (gcType === 'Scavenge' || gcType === 'MinorMarkSweep' || gcType === 'MinorMarkCompact') return 'scavenge';
  if (gcType === 'MarkSweepCompact') return 'mark-compact';
  if (gcType === 'IncrementalMarking') return 'incremental';
  return 'other';
}

/** Nearest-rank percentile of sorted values. */
function rank(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export function pauseSummary(costsUs: readonly number[]): PauseSummary {
  const s = [...costsUs].sort((a, b) => a - b);
  const ms = (us: number): number => Math.round(us) / 1000;
  return { count: s.length, totalMs: ms(s.reduce((a, b) => a + b, 0)), p50Ms: ms(rank(s, 50)), p99Ms: ms(rank(s, 99)), maxMs: ms(s[s.length - 1] ?? 0) };
}

/** What the server reports for a window (SKIFF_BENCH_STATS=1). */
export interface HeapWindow {
  /** Bytes allocated on the main thread's JS heap: growth of the used heap plus what every GC freed. */
  allocatedBytes: number;
  gc: Record<GcKind, PauseSummary>;
  /** Every pause together (all kinds). */
  gcAll: PauseSummary;
  /** process.hrtime at the window's edges (µs, CLOCK_MONOTONIC: the clock of a .cpuprofile). */
  monoUs: [number, number];
}

export function summarizeHeap(records: readonly GcRecord[], usedStart: number, usedEnd: number, monoUs: [number, number]): HeapWindow {
  let freed = 0;
  const by: Record<GcKind, number[]> = { scavenge: [], 'mark-compact': [], incremental: [], other: [] };
  for (const r of records) {
    freed += Math.max(0, r.beforeGC.heapStatistics.usedHeapSize - r.afterGC.heapStatistics.usedHeapSize);
    by[gcKind(r.gcType)].push(r.cost);
  }
  return {
    allocatedBytes: Math.max(0, usedEnd - usedStart + freed),
    gc: { scavenge: pauseSummary(by.scavenge), 'mark-compact': pauseSummary(by['mark-compact']), incremental: pauseSummary(by.incremental), other: pauseSummary(by.other) },
    gcAll: pauseSummary(records.map((r) => r.cost)),
    monoUs,
  };
}

/** The server's main-thread cost over one load's measured window. */
export interface ServerWindow {
  /** Queries answered in the window (ok + defaults). */
  queries: number;
  seconds: number;
  /** Main-thread CPU over the window (ms) and per query (µs); NaN without /proc. */
  cpuMs: number;
  cpuUsPerQuery: number;
  /** Main-thread CPU as a share of the window's wall time (1 = the thread never rested). */
  cpuShare: number;
  /** Present when the server runs with SKIFF_BENCH_STATS=1. */
  heap?: HeapWindow;
  bytesPerQuery?: number;
}

export function perQuery(cpuNs: number, wallMs: number, queries: number, heap?: HeapWindow): ServerWindow {
  const w: ServerWindow = {
    queries,
    seconds: wallMs / 1000,
    cpuMs: cpuNs / 1e6,
    cpuUsPerQuery: queries > 0 ? cpuNs / 1000 / queries : NaN,
    cpuShare: wallMs > 0 ? cpuNs / 1e6 / wallMs : NaN,
  };
  if (heap) {
    w.heap = heap;
    w.bytesPerQuery = queries > 0 ? heap.allocatedBytes / queries : NaN;
  }
  return w;
}

/** One line: "main thread 3.9 µs/query (41% busy), 1,234 B/query; GC scavenge 12 (p50 0.4, p99 2.1, max 2.3 ms), ..." */
export function describeServerWindow(w: ServerWindow): string {
  const fmt = (n: number, d = 1): string => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');
  let s = `main thread ${fmt(w.cpuUsPerQuery, 2)} µs/query (${fmt(w.cpuShare * 100, 0)}% busy)`;
  if (w.heap) {
    s += `, ${fmt(w.bytesPerQuery!, 0)} B/query allocated; GC`;
    const parts: string[] = [];
    for (const k of ['scavenge', 'mark-compact', 'incremental'] as const) {
      const g = w.heap.gc[k];
      if (g.count > 0) parts.push(` ${k} ${g.count} (p50 ${fmt(g.p50Ms, 2)}, p99 ${fmt(g.p99Ms, 2)}, max ${fmt(g.maxMs, 2)} ms)`);
    }
    s += parts.length > 0 ? parts.join(',') : ' none';
  }
  return s;
}

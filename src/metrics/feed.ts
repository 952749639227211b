import { IntervalReader } from './hdr.js';
import type { LagWindow } from './loop-lag.js';
import type { ServerStats } from './stats.js';

/**
 * The live dashboard's data: once started, every `intervalMs` one frame of rates and
 * percentiles over the last interval (deltas of the cumulative counters, interval percentiles
 * of the HDR histograms), plus the instantaneous gauges (AIMD cap, queue depth, weights,
 * worker health). The last `historyLength` frames are kept so a page opened later starts with
 * the recent past. A frame costs one stats snapshot and a walk of the recorded part of a few
 * HDR histograms (well under a millisecond). Frames are plain JSON-able objects. Main thread only.
 */
export interface ModelPoint {
  /** "model:version". */
  id: string;
  qps: number;
  errorsPerS: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /** Time in the queue before a batch took the query, and the model's own run time, ms. */
  queueP50Ms: number;
  queueP99Ms: number;
  computeP50Ms: number;
  computeP99Ms: number;
  objectiveMs: number;
  cap: number;
  maxBatch: number;
  /** Mean rows per batch over the interval (0 when no batch ran). */
  meanBatch: number;
  /** Batches run over the interval by size: counts per BATCH_EDGES bucket. */
  batchSizes: number[];
  queue: number;
  /** Batches in flight on the replicas. */
  inflight: number;
  replicas: number;
  /** Error answers per second by code (refusals before the executor included). */
  codesPerS: Record<string, number>;
  /** Share of cache lookups served without running the model (hits + coalesced); null = no lookups. */
  cacheHitRate: number | null;
}

export interface AppPoint {
  name: string;
  sloMs: number;
  qps: number;
  p50Ms: number;
  p99Ms: number;
  /** Share of answers that were the default output; null = no answers. */
  defaultRate: number | null;
  weights: Record<string, number>;
}

export interface VersionHealth {
  id: string;
  state: string;
  current: boolean;
  reason?: string;
  replicas: number;
  restarts: number;
  queries: number;
  errors: number;
}

export interface ProcessPoint {
  /** Resident set size and V8 heap in use, MiB. */
  rssMb: number;
  heapMb: number;
  /** CPU time of the whole process (all threads: main, model workers) over the interval, in % of one core. */
  cpuPct: number;
}

/** Batch-size buckets of ModelPoint.batchSizes: [1], [2,3], [4,7], ..., [256, inf). */
export const BATCH_EDGES: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256];

export interface FeedFrame {
  /** Wall-clock ms at the end of the interval. */
  t: number;
  /** Seconds covered by the frame. */
  dt: number;
  process: ProcessPoint;
  /** Server-wide, per second: queries refused (OVERLOADED, SERVER_BUSY, SHUTTING_DOWN) and deadline misses. */
  refusedPerS: number;
  deadlineMissesPerS: number;
  models: ModelPoint[];
  apps: AppPoint[];
  health: VersionHealth[];
  lag: LagWindow;
  connections: number;
}

export interface FeedOptions {
  intervalMs: number;
  historyLength: number;
}

interface Prev {
  queries: number;
  errors: number;
  served: number;
  lookups: number;
  defaults: number;
  latency: IntervalReader;
  rows: IntervalReader;
  queueWait: IntervalReader;
  compute: IntervalReader;
  codes: Record<string, number>;
}

const PCTS = [50, 99] as const;
const PCTS3 = [50, 95, 99] as const;
const REFUSALS = ['OVERLOADED', 'SERVER_BUSY', 'SHUTTING_DOWN'];

function errorsOf(codes: Record<string, number>): number {
  let n = 0;
  for (const [code, c] of Object.entries(codes)) if (code !== 'OK') n += c;
  return n;
}

export class DashboardFeed {
  private readonly prev = new Map<string, Prev>();
  private readonly frames: FeedFrame[] = [];
  private readonly listeners = new Set<(f: FeedFrame) => void>();
  private timer: NodeJS.Timeout | null = null;
  private lastAt = 0;
  private lastCpu = process.cpuUsage();

  /** `onError` receives what a timer-driven frame threw (the feed keeps running). */
  constructor(
    private readonly read: () => ServerStats,
    readonly opts: FeedOptions,
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** Frames kept so far, oldest first. */
  history(): readonly FeedFrame[] {
    return this.frames;
  }

  /** Take the baseline and produce a frame every interval (unref'd timer) until `close`. */
  start(): void {
    if (this.timer) return;
    this.tick(performance.now());
    this.timer = setInterval(() => this.emit(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** Receive every new frame. Returns the unsubscribe. */
  subscribe(fn: (f: FeedFrame) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(): void {
    try {
      const f = this.tick(performance.now());
      this.frames.push(f);
      if (this.frames.length > this.opts.historyLength) this.frames.splice(0, this.frames.length - this.opts.historyLength);
      for (const fn of this.listeners) fn(f);
    } catch (err) {
      this.onError(err);
    }
  }

  private state(key: string): Prev {
    let p = this.prev.get(key);
    if (!p) {
      p = { queries: 0, errors: 0, served: 0, lookups: 0, defaults: 0, latency: new IntervalReader(), rows: new IntervalReader(), queueWait: new IntervalReader(), compute: new IntervalReader(), codes: {} };
      this.prev.set(key, p);
    }
    return p;
  }

  /** One frame covering the time since the previous tick. */
  tick(now: number): FeedFrame {
    const s = this.read();
    const dt = this.lastAt > 0 ? (now - this.lastAt) / 1000 : 0;
    this.lastAt = now;
    const per = (n: number): number => (dt > 0 ? n / dt : 0);
    // A counter that went backwards belongs to a reloaded version: count from zero.
    const delta = (cur: number, before: number): number => (cur >= before ? cur - before : cur);
    const seen = new Set<string>();
    let refused = 0;
    let missed = 0;
    const models: ModelPoint[] = [];
    const health: VersionHealth[] = [];
    for (const v of s.versions) {
      const id = `${v.model}:${v.version}`;
      const l = v.live;
      const h: VersionHealth = { id, state: v.state, current: v.current, replicas: l?.replicas ?? 0, restarts: l?.workerRestarts ?? 0, queries: l?.queries ?? 0, errors: l ? errorsOf(l.codes) : 0 };
      if (v.reason !== undefined) h.reason = v.reason;
      health.push(h);
      if (!l) continue;
      const key = `m|${id}`;
      seen.add(key);
      const p = this.state(key);
      const lat = p.latency.read(l.latency.endToEndUs, PCTS3);
      const rows = p.rows.read(l.latency.batchRows, [], BATCH_EDGES);
      const wait = p.queueWait.read(l.latency.queueWaitUs, PCTS);
      const compute = p.compute.read(l.latency.computeUs, PCTS);
      const codesPerS: Record<string, number> = {};
      for (const [code, n] of Object.entries(l.codes)) {
        if (code === 'OK') continue;
        const d = delta(n, p.codes[code] ?? 0);
        if (d > 0) codesPerS[code] = per(d);
        if (REFUSALS.includes(code)) refused += d;
        else if (code === 'DEADLINE_EXCEEDED') missed += d;
      }
      p.codes = { ...l.codes };
      const errors = errorsOf(l.codes);
      const served = l.cache ? l.cache.hits + l.cache.coalesced : 0;
      const lookups = l.cache ? served + l.cache.misses : 0;
      const dLookups = delta(lookups, p.lookups);
      models.push({
        id,
        qps: per(delta(l.queries, p.queries)),
        errorsPerS: per(delta(errors, p.errors)),
        p50Ms: lat.percentiles[0]! / 1000,
        p95Ms: lat.percentiles[1]! / 1000,
        p99Ms: lat.percentiles[2]! / 1000,
        queueP50Ms: wait.percentiles[0]! / 1000,
        queueP99Ms: wait.percentiles[1]! / 1000,
        computeP50Ms: compute.percentiles[0]! / 1000,
        computeP99Ms: compute.percentiles[1]! / 1000,
        objectiveMs: v.objectiveUs / 1000,
        cap: l.batchCap,
        maxBatch: v.maxBatch,
        meanBatch: rows.mean,
        batchSizes: rows.buckets!,
        queue: l.queueDepth,
        inflight: l.inflight,
        replicas: l.replicas,
        codesPerS,
        cacheHitRate: l.cache && dLookups > 0 ? delta(served, p.served) / dLookups : null,
      });
      Object.assign(p, { queries: l.queries, errors, served, lookups });
    }
    const apps: AppPoint[] = s.apps.map((a) => {
      const key = `a|${a.name}`;
      seen.add(key);
      const p = this.state(key);
      const lat = p.latency.read(a.latencyUs, PCTS);
      const dq = delta(a.queries, p.queries);
      const point: AppPoint = {
        name: a.name,
        sloMs: a.sloUs / 1000,
        qps: per(dq),
        p50Ms: lat.percentiles[0]! / 1000,
        p99Ms: lat.percentiles[1]! / 1000,
        defaultRate: dq > 0 ? delta(a.defaults, p.defaults) / dq : null,
        weights: a.weights,
      };
      p.queries = a.queries;
      p.defaults = a.defaults;
      return point;
    });
    for (const key of this.prev.keys()) if (!seen.has(key)) this.prev.delete(key);
    const cpu = process.cpuUsage(this.lastCpu);
    this.lastCpu = process.cpuUsage();
    const mem = process.memoryUsage();
    const proc: ProcessPoint = {
      rssMb: mem.rss / 2 ** 20,
      heapMb: mem.heapUsed / 2 ** 20,
      cpuPct: dt > 0 ? ((cpu.user + cpu.system) / 1e6 / dt) * 100 : 0,
    };
    return { t: s.at, dt, process: proc, refusedPerS: per(refused), deadlineMissesPerS: per(missed), models, apps, health, lag: s.loopLag, connections: s.connections };
  }

  /** Stop the timer and drop the listeners (shutdown). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.listeners.clear();
  }
}

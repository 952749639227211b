import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { Histogram } from 'hdr-histogram-js';
import { hdrBuckets } from './hdr.js';
import type { ServerStats, VersionStats } from './stats.js';

/**
 * Prometheus exposition (text format 0.0.4) through prom-client, on a dedicated Registry (never
 * the global one, so two servers in a process do not share metrics). Every value is read at
 * scrape time from one ServerStats snapshot; nothing is recorded per query.
 *
 * Latency and batch-size distributions are exposed as Prometheus HISTOGRAMS with fixed buckets,
 * filled on each scrape from the HDR histograms (cumulative since the version started, so the
 * bucket counters only grow): unlike summaries they aggregate across instances and support
 * `histogram_quantile(rate(..[5m]))` over any window. The HDR histograms remain the source of the
 * exact percentiles (dashboard, Clipper JSON, OIP stats).
 */
export const LATENCY_BUCKETS_S: readonly number[] = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
export const BATCH_BUCKETS_ROWS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

type Labels = Record<string, string>;
type Sample = { labels: Labels; value: number; metricName?: string };

/**
 * A histogram family whose samples come from HDR histograms. prom-client's registry reads a
 * metric through `name`, `type` and `get()`; this object provides exactly that.
 */
class HdrHistogramFamily {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly boundsInUnit: readonly number[];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly bounds: readonly number[],
    /** Multiply by this to turn HDR values into the exposed unit (e.g. 1e-6 for µs -> s). */
    private readonly scale: number,
    private readonly series: () => { labels: Labels; h: Histogram }[],
  ) {
    this.boundsInUnit = bounds.map((b) => b / scale);
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const { labels, h } of this.series()) {
      const b = hdrBuckets(h, this.boundsInUnit);
      this.bounds.forEach((le, i) => values.push({ labels: { ...labels, le: String(le) }, value: b.cumulative[i]!, metricName: `${this.name}_bucket` }));
      values.push({ labels: { ...labels, le: '+Inf' }, value: b.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: b.sum * this.scale, metricName: `${this.name}_sum` });
      values.push({ labels, value: b.count, metricName: `${this.name}_count` });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  /** Part of the registry's contract (resetMetrics); values live in the HDR histograms. */
  reset(): void {}
}

export interface PrometheusExporter {
  readonly registry: Registry;
  readonly contentType: string;
  /** Read a fresh snapshot and render every metric. */
  scrape(): Promise<string>;
}

export function createPrometheusExporter(read: () => ServerStats): PrometheusExporter {
  const registry = new Registry();
  let snap: ServerStats = read();
  const live = (): (VersionStats & { live: NonNullable<VersionStats['live']> })[] =>
    snap.versions.filter((v): v is VersionStats & { live: NonNullable<VersionStats['live']> } => v.live !== undefined);
  const mv = (v: VersionStats): Labels => ({ model: v.model, version: String(v.version) });
  const registers = [registry];

  const gauge = (name: string, help: string, labelNames: string[], fill: (set: (labels: Labels, v: number) => void) => void): void => {
    new Gauge({
      name, help, labelNames, registers,
      collect() {
        this.reset();
        fill((labels, v) => this.set(labels, v));
      },
    });
  };
  const counter = (name: string, help: string, labelNames: string[], fill: (set: (labels: Labels, v: number) => void) => void): void => {
    new Counter({
      name, help, labelNames, registers,
      collect() {
        this.reset();
        fill((labels, v) => this.inc(labels, v));
      },
    });
  };
  const histogram = (name: string, help: string, bounds: readonly number[], scale: number, series: () => { labels: Labels; h: Histogram }[]): void => {
    // prom-client's registry only needs name/type/get (see HdrHistogramFamily).
    registry.registerMetric(new HdrHistogramFamily(name, help, bounds, scale, series) as unknown as Metric);
  };

  // Model versions.
  counter('skiff_model_queries_total', 'Queries per model version by outcome code (OK or the error code), including refusals before the queue.', ['model', 'version', 'code'], (set) => {
    for (const v of live()) for (const [code, n] of Object.entries(v.live.codes)) set({ ...mv(v), code }, n);
  });
  counter('skiff_model_admission_refusals_total', 'Queries refused at admission (queue full / cannot meet the deadline) with OVERLOADED.', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.live.counters.refused);
  });
  counter('skiff_model_batches_total', 'Batches dispatched to the worker pool.', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.live.counters.batches);
  });
  const cacheCounter = (name: string, help: string, pick: (c: NonNullable<NonNullable<VersionStats['live']>['cache']>) => number): void =>
    counter(name, help, ['model', 'version'], (set) => {
      for (const v of live()) if (v.live.cache) set(mv(v), pick(v.live.cache));
    });
  cacheCounter('skiff_model_cache_hits_total', 'Prediction cache lookups answered from the cache.', (c) => c.hits);
  cacheCounter('skiff_model_cache_misses_total', 'Prediction cache lookups that ran the model.', (c) => c.misses);
  cacheCounter('skiff_model_cache_coalesced_total', 'Queries that joined an identical query already running.', (c) => c.coalesced);
  cacheCounter('skiff_model_cache_evictions_total', 'Prediction cache evictions.', (c) => c.evictions);
  gauge('skiff_model_cache_entries', 'Prediction cache entries.', ['model', 'version'], (set) => {
    for (const v of live()) if (v.live.cache) set(mv(v), v.live.cache.entries);
  });
  gauge('skiff_model_cache_bytes', 'Prediction cache size (bytes charged against the budget).', ['model', 'version'], (set) => {
    for (const v of live()) if (v.live.cache) set(mv(v), v.live.cache.bytes);
  });
  gauge('skiff_model_queue_depth_rows', 'Rows waiting in the version\'s deadline queue.', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.live.queueDepth);
  });
  gauge('skiff_model_inflight_batches', 'Batches running in the workers.', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.live.inflight);
  });
  gauge('skiff_model_batch_cap_rows', 'Current AIMD batch cap (rows).', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.live.batchCap);
  });
  gauge('skiff_model_max_batch_rows', 'Configured max_batch_size (the AIMD ceiling).', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.maxBatch);
  });
  gauge('skiff_model_latency_objective_seconds', 'Configured batch latency objective that AIMD steers to.', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.objectiveUs / 1e6);
  });
  gauge('skiff_model_replicas', 'Worker threads serving the version.', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.live.replicas);
  });
  counter('skiff_model_worker_restarts_total', 'Worker threads that died and were replaced.', ['model', 'version'], (set) => {
    for (const v of live()) set(mv(v), v.live.workerRestarts);
  });
  gauge('skiff_model_version_state', 'Lifecycle state of each known model version (1 for its current state).', ['model', 'version', 'state'], (set) => {
    for (const v of snap.versions) set({ ...mv(v), state: v.state }, 1);
  });
  gauge('skiff_model_version_current', '1 for the version that serves queries naming only the model.', ['model', 'version'], (set) => {
    for (const v of snap.versions) set(mv(v), v.current ? 1 : 0);
  });
  const hist = (pick: (l: NonNullable<VersionStats['live']>) => Histogram) => () => live().map((v) => ({ labels: mv(v), h: pick(v.live) }));
  histogram('skiff_model_queue_wait_seconds', 'Time from enqueue to dispatch in a batch.', LATENCY_BUCKETS_S, 1e-6, hist((l) => l.latency.queueWaitUs));
  histogram('skiff_model_batch_run_seconds', 'Batch service time: from the head of its replica until its answer is read (run + thread hand-offs).', LATENCY_BUCKETS_S, 1e-6, hist((l) => l.latency.batchRunUs));
  histogram('skiff_model_compute_seconds', 'Model run time per batch, measured in the worker.', LATENCY_BUCKETS_S, 1e-6, hist((l) => l.latency.computeUs));
  histogram('skiff_model_latency_seconds', 'End-to-end query latency inside the model layer (arrival to answer, cache hits included).', LATENCY_BUCKETS_S, 1e-6, hist((l) => l.latency.endToEndUs));
  histogram('skiff_model_batch_size_rows', 'Rows per dispatched batch.', BATCH_BUCKETS_ROWS, 1, hist((l) => l.latency.batchRows));

  // Applications.
  counter('skiff_app_queries_total', 'Application queries by outcome code (OK includes default answers).', ['app', 'code'], (set) => {
    for (const a of snap.apps) for (const [code, n] of Object.entries(a.codes)) set({ app: a.name, code }, n);
  });
  counter('skiff_app_defaults_total', 'Application answers that fell back to the default output.', ['app'], (set) => {
    for (const a of snap.apps) set({ app: a.name }, a.defaults);
  });
  counter('skiff_app_partial_total', 'Application answers combined from a partial ensemble (some models missing).', ['app'], (set) => {
    for (const a of snap.apps) set({ app: a.name }, a.partial);
  });
  counter('skiff_app_feedback_total', 'Feedback (labels) received.', ['app'], (set) => {
    for (const a of snap.apps) set({ app: a.name }, a.feedback);
  });
  gauge('skiff_app_slo_seconds', 'The application\'s latency SLO.', ['app'], (set) => {
    for (const a of snap.apps) set({ app: a.name }, a.sloUs / 1e6);
  });
  gauge('skiff_app_selection_weight', 'Selection weight of each linked model (shared context: queries without a user id).', ['app', 'arm'], (set) => {
    for (const a of snap.apps) for (const [arm, w] of Object.entries(a.weights)) set({ app: a.name, arm }, w);
  });
  histogram('skiff_app_latency_seconds', 'Application answer latency (arrival to reply, defaults included).', LATENCY_BUCKETS_S, 1e-6,
    () => snap.apps.map((a) => ({ labels: { app: a.name }, h: a.latencyUs })));

  // Server.
  counter('skiff_queries_unresolved_total', 'Model queries naming no loaded model or version, or refused at shutdown, by code.', ['code'], (set) => {
    for (const [code, n] of Object.entries(snap.unresolved)) set({ code }, n);
  });
  gauge('skiff_event_loop_lag_p50_seconds', 'Main-thread event-loop delay, median over the last 1 s window (monitorEventLoopDelay).', [], (set) => set({}, snap.loopLag.p50Ms / 1000));
  gauge('skiff_event_loop_lag_p99_seconds', 'Main-thread event-loop delay, p99 over the last 1 s window.', [], (set) => set({}, snap.loopLag.p99Ms / 1000));
  gauge('skiff_event_loop_lag_max_seconds', 'Main-thread event-loop delay, max over the last 1 s window.', [], (set) => set({}, snap.loopLag.maxMs / 1000));
  gauge('skiff_deadline_slack_seconds', 'How early application deadline timers are armed (recent p99 timer lateness).', [], (set) => set({}, snap.deadlineSlackMs / 1000));
  gauge('skiff_ws_connections', 'Open WebSocket connections on the main port.', [], (set) => set({}, snap.connections));
  gauge('skiff_process_resident_memory_bytes', 'Resident set size of the process.', [], (set) => set({}, process.memoryUsage.rss()));
  gauge('skiff_process_heap_used_bytes', 'V8 heap in use on the main thread.', [], (set) => set({}, process.memoryUsage().heapUsed));

  return {
    registry,
    contentType: registry.contentType,
    scrape: () => {
      snap = read();
      return registry.metrics();
    },
  };
}

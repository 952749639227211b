import type { Histogram } from 'hdr-histogram-js';
import type { CodeCounts } from './code-counts.js';
import type { ModelLatency } from './latency.js';
import type { LagWindow } from './loop-lag.js';
import { scrubMessage } from '../errors.js';

/**
 * One consistent read of everything Skiff measures, taken from the live objects on demand (a
 * scrape, a stats call, a dashboard tick): nothing here runs per query.
 *
 * The sources are described structurally (the model registry, the application registry and
 * processors satisfy these shapes), so this leaf module knows no layer above it. Histograms in a
 * snapshot are the live HDR histograms: read them synchronously, never record into them.
 */
export interface ExecutorCounters {
  queries: number;
  answered: number;
  errors: number;
  expired: number;
  refused: number;
  cancelled: number;
  batches: number;
  cacheHits: number;
}

export interface CacheCounts {
  hits: number;
  misses: number;
  coalesced: number;
  evictions: number;
  entries: number;
  bytes: number;
}

export interface ExecutorSource {
  readonly counters: Readonly<ExecutorCounters>;
  /**
   * Answers by error code, the summed end-to-end time of successful and failed answers (µs) and
   * when the last answer left (on the executor's monotonic clock, ms; 0 = never).
   */
  readonly outcomes: { readonly byCode: Readonly<Record<string, number>>; readonly okUs: number; readonly failUs: number; readonly lastAt: number };
  readonly latency: ModelLatency;
  readonly batchCap: number;
  readonly queueDepth: number;
  readonly inflight: number;
  readonly replicas: number;
  readonly workerRestarts: number;
  readonly cache: { readonly stats: Readonly<CacheCounts> } | null;
}

export interface VersionSource {
  readonly model: string;
  readonly version: number;
  readonly state: string;
  readonly reason?: string;
  readonly config: { readonly max_batch_size: number; readonly latency_objective_us: number };
  readonly executor?: ExecutorSource;
}

export interface ModelsSource {
  list(): readonly { name: string; current?: number; versions: readonly VersionSource[] }[];
}

export interface AppDefinitionSource {
  readonly name: string;
  readonly latency_slo_micros: number;
  readonly policy: string;
  readonly models: readonly string[];
  readonly policy_params: unknown;
}

export interface AppsSource {
  list(): readonly AppDefinitionSource[];
  get(name: string): { readonly policy: { weights(state: any): Record<string, number>; init(arms: readonly string[], params: any): unknown } } | undefined;
  readonly store: { get(app: string, context: string): unknown };
}

export interface AppStatsSource {
  statsOf(app: string): {
    readonly latencyUs: Histogram;
    readonly queries: number;
    readonly defaults: number;
    readonly partial: number;
    readonly errors: number;
    readonly feedback: number;
    readonly errorsByCode: Readonly<Record<string, number>>;
  };
  readonly deadlineSlackMs: number;
}

export interface StatsSources {
  models: ModelsSource;
  apps: AppsSource;
  appStats: AppStatsSource;
  /** Queries the query processor refused before they reached an executor, by "model:version" ("" = unresolved). */
  rejected: CodeCounts;
  /** Open WebSocket connections on the main port. */
  connections(): number;
  /** Convert a time on the executors' monotonic clock (ms) to wall-clock ms since the epoch. */
  toWallMs(monotonicMs: number): number;
}

export interface VersionStats {
  model: string;
  version: number;
  state: string;
  reason?: string;
  current: boolean;
  maxBatch: number;
  objectiveUs: number;
  /** Present while the version has an executor (ready or draining). */
  live?: LiveVersionStats;
}

export interface LiveVersionStats {
  /** Every query addressed to the version, including those refused before its executor. */
  queries: number;
  /** Answers by code: "OK" and error codes (refusals before the executor included). */
  codes: Record<string, number>;
  counters: Readonly<ExecutorCounters>;
  okUs: number;
  failUs: number;
  /** Wall-clock ms of the last answer (0 = none yet). */
  lastAnswerWallMs: number;
  latency: ModelLatency;
  batchCap: number;
  queueDepth: number;
  inflight: number;
  replicas: number;
  workerRestarts: number;
  cache: Readonly<CacheCounts> | null;
}

export interface AppStats {
  name: string;
  sloUs: number;
  policy: string;
  arms: readonly string[];
  queries: number;
  /** Answers by code: "OK" (defaults included) and error codes. */
  codes: Record<string, number>;
  defaults: number;
  partial: number;
  feedback: number;
  latencyUs: Histogram;
  /** Selection weights of the shared context (queries without a user id). */
  weights: Record<string, number>;
}

export interface ServerStats {
  /** Wall-clock time of the read (ms since the epoch). */
  at: number;
  versions: VersionStats[];
  apps: AppStats[];
  /** Queries naming no loaded model/version (or refused at shutdown), by code. */
  unresolved: Readonly<Record<string, number>>;
  loopLag: LagWindow;
  deadlineSlackMs: number;
  connections: number;
}

function sum(r: Readonly<Record<string, number>>): number {
  let n = 0;
  for (const v of Object.values(r)) n += v;
  return n;
}

export function versionStats(v: VersionSource, current: boolean, rejected: CodeCounts, toWallMs: (t: number) => number): VersionStats {
  const out: VersionStats = {
    model: v.model, version: v.version, state: v.state, current,
    maxBatch: v.config.max_batch_size, objectiveUs: v.config.latency_objective_us,
  };
  // Shown on the dashboard: a failed load's reason without the paths it may quote.
  if (v.reason !== undefined) out.reason = scrubMessage(v.reason, true);
  const ex = v.executor;
  if (!ex) return out;
  const refused = rejected.of(`${v.model}:${v.version}`);
  const codes: Record<string, number> = { OK: ex.counters.answered };
  for (const [code, n] of Object.entries(ex.outcomes.byCode)) codes[code] = n;
  for (const [code, n] of Object.entries(refused)) codes[code] = (codes[code] ?? 0) + n;
  out.live = {
    queries: ex.counters.queries + sum(refused),
    codes,
    counters: ex.counters,
    okUs: ex.outcomes.okUs,
    failUs: ex.outcomes.failUs,
    lastAnswerWallMs: ex.outcomes.lastAt > 0 ? toWallMs(ex.outcomes.lastAt) : 0,
    latency: ex.latency,
    batchCap: ex.batchCap,
    queueDepth: ex.queueDepth,
    inflight: ex.inflight,
    replicas: ex.replicas,
    workerRestarts: ex.workerRestarts,
    cache: ex.cache ? ex.cache.stats : null,
  };
  return out;
}

/** The selection weights of an app's shared context, without creating that state. */
export function sharedWeights(apps: AppsSource, def: AppDefinitionSource): Record<string, number> {
  const rt = apps.get(def.name);
  if (!rt) return {};
  const state = apps.store.get(def.name, '') ?? rt.policy.init(def.models, def.policy_params);
  return rt.policy.weights(state);
}

export function collectStats(src: StatsSources, loopLag: LagWindow): ServerStats {
  const versions: VersionStats[] = [];
  for (const m of src.models.list()) {
    for (const v of m.versions) versions.push(versionStats(v, m.current === v.version, src.rejected, src.toWallMs));
  }
  const apps = src.apps.list().map((def): AppStats => {
    const st = src.appStats.statsOf(def.name);
    const codes: Record<string, number> = { OK: st.queries - st.errors, ...st.errorsByCode };
    return {
      name: def.name, sloUs: def.latency_slo_micros, policy: def.policy, arms: def.models,
      queries: st.queries, codes, defaults: st.defaults, partial: st.partial, feedback: st.feedback,
      latencyUs: st.latencyUs, weights: sharedWeights(src.apps, def),
    };
  });
  return {
    at: Date.now(), versions, apps, unresolved: src.rejected.of(''), loopLag,
    deadlineSlackMs: src.appStats.deadlineSlackMs, connections: src.connections(),
  };
}

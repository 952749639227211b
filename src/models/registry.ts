import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import type { ModelConfig } from '../config/model-config.js';
import { Executor, type ModelSpec } from '../engine/executor.js';
import { ModelPool } from '../engine/pool.js';
import { scanRepository, type VersionFile } from './repository.js';

/**
 * The lifecycle registry of model versions. Each version is an explicit state machine:
 *
 *   loading ──ok──▶ ready ──retire──▶ draining ──▶ unloaded
 *      └──error──▶ failed
 *
 * A version is loaded completely (workers started, session created, metadata read) before it
 * can become current; the current version is the newest ready one unless pinned. The registry
 * creates executors; executors never know the registry.
 */
export type VersionState = 'loading' | 'ready' | 'draining' | 'unloaded' | 'failed';

export interface ModelVersion {
  readonly model: string;
  readonly version: number;
  readonly file: VersionFile;
  readonly config: ModelConfig;
  state: VersionState;
  executor?: Executor;
  spec?: ModelSpec;
  reason?: string;
}

interface ModelRecord {
  name: string;
  config: ModelConfig;
  versions: Map<number, ModelVersion>;
  /** Explicitly pinned version (roll back / forward); undefined = newest ready. */
  pinned?: number;
}

export interface LoadReport {
  loaded: string[];
  failed: { model: string; version?: number; error: ErrorInfo }[];
}

const TRANSITIONS: Record<VersionState, readonly VersionState[]> = {
  loading: ['ready', 'failed'],
  ready: ['draining'],
  draining: ['unloaded'],
  unloaded: [],
  failed: [],
};

export class ModelRegistry {
  private readonly models = new Map<string, ModelRecord>();

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  private transition(v: ModelVersion, to: VersionState, reason?: string): void {
    if (!TRANSITIONS[v.state].includes(to)) throw new Error(`illegal transition ${v.state} -> ${to} for ${v.model}:${v.version}`);
    v.state = to;
    if (reason !== undefined) v.reason = reason;
    this.log.info({ model: v.model, version: v.version, state: to, reason }, 'model version state');
  }

  /** Load every model of a repository (each selected version); bad models are reported, not fatal. */
  async loadRepository(dir: string): Promise<LoadReport> {
    const scan = scanRepository(dir);
    const report: LoadReport = { loaded: [], failed: scan.errors.map((e) => ({ model: e.model, error: e.error })) };
    for (const e of scan.errors) this.log.error({ model: e.model, code: e.error.code }, e.error.message);
    for (const m of scan.models) {
      for (const vf of m.selected) {
        const v = await this.loadVersion(m.name, vf, m.config);
        if (v.state === 'ready') report.loaded.push(`${m.name}:${vf.version}`);
        else report.failed.push({ model: m.name, version: vf.version, error: { code: 'MODEL_LOAD_FAILED', message: v.reason ?? 'load failed' } });
      }
    }
    return report;
  }

  /** Load one version fully; resolves with the version in state ready or failed (never throws). */
  async loadVersion(name: string, file: VersionFile, config: ModelConfig): Promise<ModelVersion> {
    let rec = this.models.get(name);
    if (!rec) {
      rec = { name, config, versions: new Map() };
      this.models.set(name, rec);
    }
    const existing = rec.versions.get(file.version);
    if (existing && (existing.state === 'ready' || existing.state === 'loading')) {
      throw new SkiffError('BAD_REQUEST', `model '${name}' version ${file.version} is already ${existing.state}`);
    }
    const v: ModelVersion = { model: name, version: file.version, file, config, state: 'loading' };
    rec.versions.set(file.version, v);
    this.log.info({ model: name, version: file.version, path: file.path }, 'loading model version');
    try {
      const pool = await ModelPool.start({
        kind: file.kind,
        modelPath: file.path,
        replicas: config.replicas,
        threads: config.threads,
        requestRingBytes: config.ring_bytes,
        responseRingBytes: config.ring_bytes,
        onError: (err) => this.log.error({ model: name, version: file.version, err: toErrorInfo(err) }, 'model worker error'),
      });
      const executor = new Executor(
        {
          id: `${name}:${file.version}`,
          maxBatchSize: config.max_batch_size,
          batchWaitMs: config.batch_wait_timeout_us / 1000,
          latencyObjectiveMs: config.latency_objective_us / 1000,
          cacheBytes: config.cache_bytes,
          maxQueueRows: config.max_queue_rows,
        },
        pool,
        this.clock,
      );
      v.executor = executor;
      v.spec = executor.spec;
      this.transition(v, 'ready');
    } catch (err) {
      this.transition(v, 'failed', toErrorInfo(err).message);
    }
    return v;
  }

  /** The version a query should use: the named one, or the current one. Throws coded errors. */
  resolve(name: string, version?: number): ModelVersion {
    const rec = this.models.get(name);
    if (!rec) throw new SkiffError('MODEL_NOT_FOUND', `model '${name}' is not loaded`);
    if (version !== undefined && version > 0) {
      const v = rec.versions.get(version);
      if (!v || v.state === 'unloaded') throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
      if (v.state !== 'ready') throw new SkiffError('MODEL_UNAVAILABLE', `model '${name}' version ${version} is ${v.state}${v.reason ? `: ${v.reason}` : ''}`);
      return v;
    }
    const cur = this.current(rec);
    if (!cur) throw new SkiffError('MODEL_UNAVAILABLE', `model '${name}' has no ready version`);
    return cur;
  }

  private current(rec: ModelRecord): ModelVersion | undefined {
    if (rec.pinned !== undefined) {
      const p = rec.versions.get(rec.pinned);
      if (p?.state === 'ready') return p;
    }
    let best: ModelVersion | undefined;
    for (const v of rec.versions.values()) if (v.state === 'ready' && (!best || v.version > best.version)) best = v;
    return best;
  }

  /** Every model with its versions (all states). */
  list(): { name: string; current?: number; versions: ModelVersion[] }[] {
    return [...this.models.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((rec) => ({ name: rec.name, current: this.current(rec)?.version, versions: [...rec.versions.values()].sort((a, b) => a.version - b.version) }));
  }

  has(name: string): boolean {
    return this.models.has(name);
  }

  /** Ready when every model has a ready current version. */
  isReady(): boolean {
    for (const rec of this.models.values()) if (!this.current(rec)) return false;
    return true;
  }

  /** Retire a version: stop routing to it, let queued and running queries finish, stop its workers. */
  async unloadVersion(name: string, version: number): Promise<void> {
    const v = this.models.get(name)?.versions.get(version);
    if (!v) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
    if (v.state !== 'ready') return;
    this.transition(v, 'draining');
    await v.executor!.drain();
    await v.executor!.close();
    this.transition(v, 'unloaded');
  }

  /** Unload everything (graceful shutdown). */
  async close(): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const rec of this.models.values()) {
      for (const v of rec.versions.values()) if (v.state === 'ready') jobs.push(this.unloadVersion(rec.name, v.version));
    }
    await Promise.all(jobs);
  }
}

import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import { parseModelConfig, type ModelConfig } from '../config/model-config.js';
import { Executor, type ModelSpec } from '../engine/executor.js';
import { WorkerRunner } from '../engine/worker-runner.js';
import type { Runner } from '../engine/runner.js';
import { ContainerRunner } from '../engine/container/container-runner.js';
import type { ContainerServices } from '../engine/container/services.js';
import { readModel, scanRepository, type VersionFile } from './repository.js';
import type { StoredRemoval } from '../store/types.js';

export type VersionState = 'loading' | 'ready' | 'draining' | 'unloaded' | 'failed';

export interface ModelVersion {
  readonly model: string;
  readonly version: number;
  file: VersionFile;
  config: ModelConfig;
  state: VersionState;
  executor?: Executor;
  spec?: ModelSpec;
  reason?: string;
}

interface ModelRecord {
  name: string;
  config: ModelConfig;
  versions: Map<number, ModelVersion>;
  /** Explicitly chosen current version; undefined = newest ready. */
  pinned?: number;
  /** Replicas override (set_num_replicas); undefined = config.replicas. */
  replicas?: number;
}

export interface LoadReport {
  loaded: string[];
  failed: { model: string; version?: number; error: ErrorInfo }[];
}

const TRANSITIONS: Record<VersionState, readonly VersionState[]> = {
  loading: ['ready', 'failed'],
  ready: ['draining', 'failed'],
  draining: ['unloaded'],
  unloaded: ['loading'],
  failed: ['loading'],
};

export class ModelRegistry {
  private readonly models = new Map<string, ModelRecord>();
  /** The tail of each model's chain of lifecycle operations (see serial). */
  private readonly locks = new Map<string, Promise<unknown>>();
  private closing = false;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly containers?: ContainerServices,
  ) {}

  private transition(v: ModelVersion, to: VersionState, reason?: string): void {
    if (!TRANSITIONS[v.state].includes(to)) throw new Error(`illegal transition ${v.state} -> ${to} for ${v.model}:${v.version}`);
    v.state = to;
    if (to === 'ready' || to === 'loading') delete v.reason;
    if (reason !== undefined) v.reason = reason;
    if (to === 'failed') this.log.error({ model: v.model, version: v.version, state: to, reason }, `model ${v.model} version ${v.version} failed: ${reason ?? 'no reason given'}`);
    else this.log.info({ model: v.model, version: v.version, state: to, reason }, 'model version state');
  }

  private record(name: string, config: ModelConfig): ModelRecord {
    let rec = this.models.get(name);
    if (!rec) {
      rec = { name, config, versions: new Map() };
      this.models.set(name, rec);
    }
    return rec;
  }

  /**
   * Load every model of a repository (each selected version); bad models are reported, not fatal.
   * `removed`: what the operator took out earlier (acknowledged, so it stays out): a model unloaded
   * as a whole is listed but not loaded; a deleted version is left out.
   */
  async loadRepository(dir: string, removed: readonly StoredRemoval[] = []): Promise<LoadReport> {
    const scan = scanRepository(dir);
    const report: LoadReport = { loaded: [], failed: scan.errors.map((e) => ({ model: e.model, error: e.error })) };
    for (const e of scan.errors) this.log.error({ model: e.model, code: e.error.code }, e.error.message);
    for (const m of scan.models) {
      const deleted = new Set(removed.filter((r) => r.model === m.name && r.version > 0).map((r) => r.version));
      const model = { ...m, available: m.available.filter((v) => !deleted.has(v.version)), selected: m.selected.filter((v) => !deleted.has(v.version)) };
      if (removed.some((r) => r.model === m.name && r.version === 0)) model.selected = [];
      await this.loadModelFromRepository(dir, m.name, report, model);
    }
    return report;
  }

  /** (Re)load one model directory of the repository: its selected versions (OIP repository load). */
  async loadModelFromRepository(dir: string, name: string, report: LoadReport = { loaded: [], failed: [] }, known?: ReturnType<typeof readModel>): Promise<LoadReport> {
    return this.serial(name, () => this.loadModelNow(dir, name, report, known));
  }

  /**
   * OIP repository load: unload what the model serves, then load its selected versions from the
   * repository again — one lifecycle operation.
   */
  async reloadFromRepository(dir: string, name: string, override?: Record<string, unknown>): Promise<LoadReport> {
    return this.serial(name, async () => {
      let known: ReturnType<typeof readModel> | undefined;
      if (override) {
        // A config override (Triton's load_model(config=...)) replaces the config.json fields it names.
        const m = readModel(dir, name);
        known = { ...m, config: parseModelConfig(name, { ...m.config, ...override }) };
      }
      for (const v of this.models.get(name)?.versions.values() ?? []) if (v.state === 'ready') await this.retire(v);
      return this.loadModelNow(dir, name, { loaded: [], failed: [] }, known);
    });
  }

  private async loadModelNow(dir: string, name: string, report: LoadReport, known?: ReturnType<typeof readModel>): Promise<LoadReport> {
    let m = known;
    try {
      m ??= readModel(dir, name);
    } catch (err) {
      report.failed.push({ model: name, error: toErrorInfo(err, 'MODEL_LOAD_FAILED') });
      return report;
    }
    const rec = this.record(name, m.config);
    rec.config = m.config;
    for (const vf of m.available) {
      if (!rec.versions.has(vf.version)) rec.versions.set(vf.version, { model: name, version: vf.version, file: vf, config: m.config, state: 'unloaded' });
    }
    for (const vf of m.selected) {
      const v = await this.loadVersionNow(name, vf, m.config);
      if (v.state === 'ready') report.loaded.push(`${name}:${vf.version}`);
      else report.failed.push({ model: name, version: vf.version, error: { code: 'MODEL_LOAD_FAILED', message: v.reason ?? 'load failed' } });
    }
    return report;
  }

  private async startRunner(name: string, version: number, file: VersionFile, config: ModelConfig, replicas: number): Promise<Runner> {
    if (file.kind === 'container') {
      const spec = file.container;
      if (!spec) throw new SkiffError('MODEL_LOAD_FAILED', `model '${name}' version ${version} has no container description`);
      if (!this.containers) throw new SkiffError('MODEL_LOAD_FAILED', `model '${name}' version ${version} is served by containers: start the server with --rpc-port`);
      const hub = await this.containers.hub(spec.launch !== undefined);
      const processes = spec.launch ? await this.containers.launch(name, version, spec.launch, dirname(file.path), replicas) : undefined;
      return new ContainerRunner({ model: name, version, inputType: spec.input_type, hub, processes, replicas, depth: config.pipeline_depth });
    }
    return WorkerRunner.start({
      kind: file.kind,
      modelPath: file.path,
      replicas,
      threads: config.threads,
      depth: config.pipeline_depth,
      maxOldGenerationSizeMb: config.max_worker_memory_mb || undefined,
      requestRingBytes: config.ring_bytes,
      responseRingBytes: config.ring_bytes,
      onError: (err) => this.log.error({ model: name, version, err: toErrorInfo(err) }, 'model worker error'),
    });
  }

  private async startExecutor(name: string, version: number, file: VersionFile, config: ModelConfig, replicas: number): Promise<Executor> {
    const runner = await this.startRunner(name, version, file, config, replicas);
    return new Executor(
      {
        id: `${name}:${version}`,
        maxBatchSize: config.max_batch_size,
        batchWaitMs: config.batch_wait_timeout_us / 1000,
        latencyObjectiveMs: config.latency_objective_us / 1000,
        cacheBytes: config.cache_bytes,
        maxQueueRows: config.max_queue_rows,
        batchTimeoutMs: config.batch_timeout_ms,
        maxConsecutiveFailures: config.max_consecutive_failures,
        parkIdleMs: config.park_idle_ms,
        onFailed: (reason) => this.fail(name, version, reason),
      },
      runner,
      this.clock,
    );
  }

  /**
   * Load one version fully; resolves with the version in state ready or failed (a failure is
   * reported in `reason`, never thrown). Loading a version that is already ready or loading is
   * refused with BAD_REQUEST.
   */
  async loadVersion(name: string, file: VersionFile, config: ModelConfig): Promise<ModelVersion> {
    return this.serial(name, () => this.loadVersionNow(name, file, config));
  }

  private async loadVersionNow(name: string, file: VersionFile, config: ModelConfig): Promise<ModelVersion> {
    const rec = this.record(name, config);
    let v = rec.versions.get(file.version);
    if (v && (v.state === 'ready' || v.state === 'loading' || v.state === 'draining')) {
      throw new SkiffError('BAD_REQUEST', `model '${name}' version ${file.version} is ${v.state}`);
    }
    if (!v || v.file.path !== file.path) {
      v = { model: name, version: file.version, file, config, state: 'loading' };
      rec.versions.set(file.version, v);
      this.log.info({ model: name, version: file.version, state: 'loading' }, 'model version state');
    } else {
      v.config = config;
      this.transition(v, 'loading');
    }
    try {
      const executor = await this.startExecutor(name, file.version, file, config, rec.replicas ?? file.container?.launch?.replicas ?? config.replicas);
      v.executor = executor;
      v.spec = executor.spec;
      this.transition(v, 'ready');
    } catch (err) {
      this.transition(v, 'failed', toErrorInfo(err).message);
    }
    return v;
  }

  /**
   * Deploy a version and make it current once it is fully loaded; the previous current version
   * is then retired (drained, stopped). A failed load changes nothing and is thrown as
   * MODEL_LOAD_FAILED with the reason.
   */
  async deploy(name: string, file: VersionFile, config: ModelConfig): Promise<ModelVersion> {
    return this.serial(name, () => this.deployNow(name, file, config));
  }

  private async deployNow(name: string, file: VersionFile, config: ModelConfig): Promise<ModelVersion> {
    const v = await this.loadVersionNow(name, file, config);
    if (v.state !== 'ready') throw new SkiffError('MODEL_LOAD_FAILED', `model '${name}' version ${file.version} failed to load: ${v.reason}`);
    await this.setCurrentNow(name, file.version);
    return v;
  }

  /** Record what add_model said about a version that is already loaded (Clipper's labels, container name...). */
  annotate(name: string, version: number, meta: Readonly<Record<string, unknown>>): void {
    const v = this.models.get(name)?.versions.get(version);
    if (v) v.file = { ...v.file, meta };
  }

  /**
   * Roll forward or back: make `version` current (loading it first if it is known but not
   * loaded), then retire the version that was current before.
   */
  async setCurrent(name: string, version: number): Promise<void> {
    return this.serial(name, () => this.setCurrentNow(name, version));
  }

  private async setCurrentNow(name: string, version: number): Promise<void> {
    const rec = this.models.get(name);
    if (!rec) throw new SkiffError('MODEL_NOT_FOUND', `model '${name}' does not exist`);
    const v = rec.versions.get(version);
    if (!v) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
    const previous = this.current(rec);
    if (v.state === 'unloaded' || v.state === 'failed') {
      await this.loadVersionNow(name, v.file, v.config);
      if ((v.state as VersionState) !== 'ready') throw new SkiffError('MODEL_LOAD_FAILED', `model '${name}' version ${version} failed to load: ${v.reason}`);
    } else if (v.state !== 'ready') {
      throw new SkiffError('MODEL_UNAVAILABLE', `model '${name}' version ${version} is ${v.state}`);
    }
    rec.pinned = version;
    if (previous && previous !== v) await this.retire(previous);
  }

  /**
   * A ready version whose workers keep failing: stop routing to it, fail what it still holds,
   * stop its workers. The reason stays visible (get_model, repository index) until it is reloaded.
   */
  private fail(name: string, version: number, reason: string): void {
    const v = this.models.get(name)?.versions.get(version);
    if (!v || v.state !== 'ready') return;
    this.transition(v, 'failed', reason);
    const ex = v.executor;
    delete v.executor;
    void ex?.close().catch((err: unknown) => this.log.error({ model: name, version, err: toErrorInfo(err) }, 'error while stopping a failed version'));
  }

  /**
   * Stop routing to a version, let its queued and running queries finish (for at most `graceMs`:
   * then what it still holds is answered SHUTTING_DOWN and its replicas are stopped), stop its
   * workers.
   */
  private async retire(v: ModelVersion, graceMs = Infinity): Promise<void> {
    if (v.state !== 'ready') return;
    this.transition(v, 'draining');
    const ex = v.executor!;
    let timer: NodeJS.Timeout | undefined;
    const drained = graceMs === Infinity ? await ex.drain().then(() => true)
      : await Promise.race([ex.drain().then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), graceMs); })]);
    if (timer) clearTimeout(timer);
    if (drained) await ex.close();
    else await ex.terminate({ code: 'SHUTTING_DOWN', message: `${v.model}:${v.version} was stopped by the shutdown before it answered` });
    delete v.executor;
    this.transition(v, 'unloaded');
  }

  /** Unload one version (OIP unload / delete). The current version can only be unloaded with its model. */
  async unloadVersion(name: string, version: number): Promise<void> {
    return this.serial(name, () => this.unloadVersionNow(name, version));
  }

  private async unloadVersionNow(name: string, version: number): Promise<void> {
    const v = this.models.get(name)?.versions.get(version);
    if (!v) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
    await this.retire(v);
  }

  /** Unload every version of a model (OIP repository unload); the model stays known. */
  async unloadModel(name: string): Promise<void> {
    return this.serial(name, () => this.unloadModelNow(name));
  }

  private async unloadModelNow(name: string): Promise<void> {
    const rec = this.models.get(name);
    if (!rec) throw new SkiffError('MODEL_NOT_FOUND', `model '${name}' does not exist`);
    await Promise.all([...rec.versions.values()].map((v) => this.retire(v)));
  }

  /** Forget a version (delete_versioned_model). Refused for the current version of a model with others. */
  async deleteVersion(name: string, version: number): Promise<void> {
    return this.serial(name, () => this.deleteVersionNow(name, version));
  }

  private async deleteVersionNow(name: string, version: number): Promise<void> {
    const rec = this.models.get(name);
    const v = rec?.versions.get(version);
    if (!rec || !v) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
    if (this.current(rec) === v && [...rec.versions.values()].some((o) => o !== v && o.state === 'ready')) {
      throw new SkiffError('BAD_REQUEST', `model '${name}' version ${version} is current; set another version first`);
    }
    await this.retire(v);
    rec.versions.delete(version);
    if (rec.pinned === version) delete rec.pinned;
    if (rec.versions.size === 0) this.models.delete(name);
  }

  /**
   * Resize the worker pool of every ready version of a model, live: a pool with the new size is
   * started and swapped in, then the old one drains and stops. No query is dropped.
   */
  async setReplicas(name: string, replicas: number): Promise<void> {
    return this.serial(name, () => this.setReplicasNow(name, replicas));
  }

  private async setReplicasNow(name: string, replicas: number): Promise<void> {
    const rec = this.models.get(name);
    if (!rec) throw new SkiffError('MODEL_NOT_FOUND', `model '${name}' does not exist`);
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 64) throw new SkiffError('BAD_REQUEST', 'num_replicas must be an integer in [1, 64]');
    rec.replicas = replicas;
    for (const v of rec.versions.values()) {
      if (v.state !== 'ready' || !v.executor || v.executor.wantedReplicas === replicas) continue;
      if (v.executor.resize(replicas)) {
        this.log.info({ model: name, version: v.version, replicas }, 'model replicas changed');
        continue;
      }
      const next = await this.startExecutor(name, v.version, v.file, v.config, replicas);
      next.adopt(v.executor);
      const old = v.executor;
      v.executor = next;
      await old.drain();
      await old.close();
      this.log.info({ model: name, version: v.version, replicas }, 'model replicas changed');
    }
  }

  /**
   * Serve a ready version with another config (e.g. Clipper's add_model batch_size for a version
   * already loaded from the repository): a pool with the new config is started and swapped in,
   * then the old one drains and stops, as a resize does — no query is dropped. A version that is
   * not running just takes the config for its next load.
   */
  async reconfigure(name: string, version: number, config: ModelConfig): Promise<void> {
    return this.serial(name, async () => {
      const v = this.models.get(name)?.versions.get(version);
      if (!v) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
      const old = v.executor;
      if (v.state !== 'ready' || !old) {
        v.config = config;
        return;
      }
      const next = await this.startExecutor(name, version, v.file, config, old.wantedReplicas);
      // The cache, histograms and learned cap carry over unless the cache's budget changed.
      if (config.cache_bytes === v.config.cache_bytes) next.adopt(old);
      v.executor = next;
      v.config = config;
      await old.drain();
      await old.close();
      this.log.info({ model: name, version, config }, 'model version reconfigured');
    });
  }

  replicasOf(name: string): number | undefined {
    const rec = this.models.get(name);
    return rec ? rec.replicas ?? rec.config.replicas : undefined;
  }

  pinnedVersion(name: string): number | undefined {
    return this.models.get(name)?.pinned;
  }

  /** The version a query should use: the named one, or the current one. Throws coded errors. */
  resolve(name: string, version?: number): ModelVersion {
    const rec = this.models.get(name);
    if (!rec) throw new SkiffError('MODEL_NOT_FOUND', `model '${name}' is not loaded`);
    if (version !== undefined && version > 0) {
      const v = rec.versions.get(version);
      if (!v) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
      if (v.state !== 'ready') throw new SkiffError('MODEL_UNAVAILABLE', `model '${name}' version ${version} is ${v.state}${v.reason ? `: ${v.reason}` : ''}`);
      return v;
    }
    const cur = this.current(rec);
    if (!cur) {
      const why = [...rec.versions.values()].map((v) => `version ${v.version} is ${v.state}${v.reason ? `: ${v.reason}` : ''}`).join('; ');
      throw new SkiffError('MODEL_UNAVAILABLE', `model '${name}' has no ready version${why ? ` (${why})` : ''}`);
    }
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
  list(): { name: string; current?: number; replicas: number; versions: ModelVersion[] }[] {
    return [...this.models.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((rec) => ({
        name: rec.name,
        current: this.current(rec)?.version,
        replicas: rec.replicas ?? rec.config.replicas,
        versions: [...rec.versions.values()].sort((a, b) => a.version - b.version),
      }));
  }

  has(name: string): boolean {
    return this.models.has(name);
  }

  configOf(name: string): ModelConfig | undefined {
    return this.models.get(name)?.config;
  }

  /** Ready when every model has a ready current version (unloaded models are not counted). */
  isReady(): boolean {
    return this.notReady().length === 0;
  }

  /** The models that keep the server from being ready: wanted, with no ready version, and why. */
  notReady(): { model: string; versions: { version: number; state: VersionState; reason?: string }[] }[] {
    const out: { model: string; versions: { version: number; state: VersionState; reason?: string }[] }[] = [];
    for (const rec of this.models.values()) {
      const wanted = [...rec.versions.values()].filter((v) => v.state !== 'unloaded');
      if (wanted.length && !this.current(rec)) {
        out.push({ model: rec.name, versions: wanted.map((v) => ({ version: v.version, state: v.state, ...(v.reason ? { reason: v.reason } : {}) })) });
      }
    }
    return out;
  }

  /** Wait until every ready version's queue is empty and nothing runs (graceful shutdown). */
  async drainAll(): Promise<void> {
    const jobs: Promise<void>[] = [];
    for (const rec of this.models.values()) for (const v of rec.versions.values()) if (v.executor) jobs.push(v.executor.drain());
    await Promise.all(jobs);
  }

  /**
   * Unload everything; versions still busy after `graceMs` are stopped with their queries
   * answered. Waits for a lifecycle operation in progress on a model (its own time is bounded by
   * the same grace), and refuses any that comes later.
   */
  async close(graceMs = Infinity): Promise<void> {
    this.closing = true;
    await Promise.all([...this.models.keys()].map((name) => {
      const retireAll = async (): Promise<void> => {
        const rec = this.models.get(name);
        if (rec) await Promise.all([...rec.versions.values()].map((v) => this.retire(v, graceMs)));
      };
      const pending = this.locks.get(name);
      if (!pending || graceMs === Infinity) return this.serial(name, retireAll, true);
      // An operation still running (a model loading, say) gets the grace, then is overtaken.
      let timer: NodeJS.Timeout | undefined;
      return Promise.race([pending.catch(() => undefined), new Promise((r) => { timer = setTimeout(r, graceMs); })]).then(() => {
        clearTimeout(timer);
        return retireAll();
      });
    }));
  }

  /**
   * Lifecycle operations on one model run one at a time, in arrival order (load, unload, deploy,
   * set_model_version, set_num_replicas, delete): each sees the state the previous one left.
   * Operations on different models run in parallel.
   */
  private serial<T>(name: string, op: () => Promise<T>, evenWhenClosing = false): Promise<T> {
    if (this.closing && !evenWhenClosing) return Promise.reject(new SkiffError('SHUTTING_DOWN', 'the server is shutting down'));
    const prev = this.locks.get(name) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(op);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    void tail.then(() => {
      if (this.locks.get(name) === tail) this.locks.delete(name);
    });
    return run;
  }
}

/** The config a version added through the admin API gets: the model's, or the defaults. */
export function configFor(registry: ModelRegistry, name: string, raw?: unknown): ModelConfig {
  if (raw !== undefined) return parseModelConfig(name, raw);
  return registry.configOf(name) ?? parseModelConfig(name, {});
}

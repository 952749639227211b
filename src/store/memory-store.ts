import {
  byAppName, byModelVersion, byRemoval, checkApp, checkAppName, checkCurrentVersion, checkModelRef, checkModelVersion, checkRemoval, checkReplicas, sortedRecord,
} from './contract.js';
import { DEFAULT_MAX_USER_STATES, StateCache } from './state-cache.js';
import { StoreError, type ControlStore, type RemovedState, type StoredApp, type StoredModelVersion, type StoredRemoval } from './types.js';

/**
 * The ControlStore used when no state database is configured: the same contract as the SQLite
 * store (checks, JSON copies, list order, closed state), nothing durable. Values are kept as
 * JSON text so reads return fresh copies exactly as the SQLite store does.
 */
export class MemoryControlStore implements ControlStore {
  private readonly states: StateCache;
  private readonly apps = new Map<string, string>();
  /** key: model + '\0' + version */
  private readonly versions = new Map<string, { model: string; version: number; path: string; kind: StoredModelVersion['kind']; config: string; meta?: string }>();
  private readonly current = new Map<string, number>();
  private readonly replicaCounts = new Map<string, number>();
  private readonly removals = new Map<string, StoredRemoval>();
  private closed = false;

  /** At most `maxUserStates` per-user selection states are kept (least recently used are forgotten). */
  constructor(maxUserStates = DEFAULT_MAX_USER_STATES) {
    this.states = new StateCache({ maxUserStates });
  }

  private ensureOpen(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the in-memory store is closed');
  }

  get(app: string, context: string): unknown {
    this.ensureOpen();
    return this.states.get(app, context);
  }

  set(app: string, context: string, state: unknown): void {
    this.ensureOpen();
    this.states.set(app, context, state);
  }

  update(app: string, context: string, change: (current: unknown) => unknown, done: (err: unknown) => void): void {
    try {
      this.ensureOpen();
    } catch (err) {
      done(err);
      return;
    }
    this.states.update(app, context, change, done);
  }

  entries(app: string): [string, unknown][] {
    this.ensureOpen();
    return this.states.entries(app);
  }

  putApp(app: StoredApp): void {
    this.ensureOpen();
    checkApp(app);
    this.apps.set(app.name, JSON.stringify(app));
  }

  deleteApp(name: string): void {
    this.ensureOpen();
    checkAppName(name);
    this.apps.delete(name);
    this.states.deleteApp(name);
  }

  listApps(): StoredApp[] {
    this.ensureOpen();
    return [...this.apps.values()].map((d) => JSON.parse(d) as StoredApp).sort(byAppName);
  }

  putModelVersion(v: StoredModelVersion): void {
    this.ensureOpen();
    checkModelVersion(v);
    this.versions.set(`${v.model}\0${v.version}`, { model: v.model, version: v.version, path: v.path, kind: v.kind, config: JSON.stringify(v.config), ...(v.meta !== undefined ? { meta: JSON.stringify(v.meta) } : {}) });
  }

  deleteModelVersion(model: string, version: number): void {
    this.ensureOpen();
    checkModelRef(model, version);
    this.versions.delete(`${model}\0${version}`);
  }

  listModelVersions(): StoredModelVersion[] {
    this.ensureOpen();
    return [...this.versions.values()]
      .map((r) => ({ model: r.model, version: r.version, path: r.path, kind: r.kind, config: JSON.parse(r.config) as Record<string, unknown>, ...(r.meta !== undefined ? { meta: JSON.parse(r.meta) as Record<string, unknown> } : {}) }))
      .sort(byModelVersion);
  }

  setCurrentVersion(model: string, version: number | null): void {
    this.ensureOpen();
    checkCurrentVersion(model, version);
    if (version === null) this.current.delete(model);
    else this.current.set(model, version);
  }

  currentVersions(): Record<string, number> {
    this.ensureOpen();
    return sortedRecord(this.current);
  }

  setReplicas(model: string, replicas: number): void {
    this.ensureOpen();
    checkReplicas(model, replicas);
    this.replicaCounts.set(model, replicas);
  }

  setRemoved(model: string, version: number, state: RemovedState | null): void {
    this.ensureOpen();
    checkRemoval(model, version, state);
    const k = `${model}\0${version}`;
    if (state === null) this.removals.delete(k);
    else this.removals.set(k, { model, version, state });
  }

  removed(): StoredRemoval[] {
    this.ensureOpen();
    return [...this.removals.values()].map((r) => ({ ...r })).sort(byRemoval);
  }

  replicas(): Record<string, number> {
    this.ensureOpen();
    return sortedRecord(this.replicaCounts);
  }

  /** Nothing to write; marks the states clean like the durable store does. */
  flush(): void {
    this.ensureOpen();
    this.states.markClean();
  }

  get available(): boolean {
    return !this.closed;
  }

  /** Writes are durable on return: nothing to wait for. */
  sync(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    this.closed = true;
  }
}

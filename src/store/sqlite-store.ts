import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import {
  byAppName, byModelVersion, byRemoval, checkApp, checkAppName, checkCurrentVersion, checkModelRef, checkModelVersion, checkRemoval, checkReplicas, sortedRecord,
} from './contract.js';
import { migrate } from './migrations.js';
import { DEFAULT_MAX_USER_STATES, StateCache } from './state-cache.js';
import { StoreError, type ControlStore, type RemovedState, type StoredApp, type StoredModelVersion, type StoredRemoval } from './types.js';

/**
 * The embedded ControlStore: one SQLite file (plus its -wal and -shm files) opened with
 * better-sqlite3.
 *
 * Durability: WAL journal with `synchronous = FULL`, so every control-plane call is one
 * transaction whose commit fsyncs the WAL before the call returns; a kill -9 or a power loss
 * after the return cannot lose it. Selection states live in a StateCache: the application-wide
 * ones are loaded at open, a user's state when it is first read (at most `maxUserStates` in
 * memory, least recently used out first); changed ones reach the file only through `flush()`
 * (timer, explicit call, close) — a changed state pushed out of memory is written at the next
 * flush and read back from the pending writes until then.
 *
 * One server process owns a database: another connection may read it, but two servers writing
 * selection states to the same file would overwrite each other's states.
 */
export interface SqliteStoreOptions {
  /** How often changed selection states are written, in milliseconds (default 1000). */
  flushIntervalMs?: number;
  /**
   * Receives the error of a failed timer flush; the states stay dirty and the next flush
   * retries them. Default: `process.emitWarning`.
   */
  onFlushError?: (err: unknown) => void;
  /** Per-user selection states kept in memory (LRU); the others stay in the file until read. */
  maxUserStates?: number;
}

const BUSY_TIMEOUT_MS = 5000;

type VersionRow = { model: string; version: number; path: string; kind: StoredModelVersion['kind']; config: string; meta: string | null };

class SqliteControlStore implements ControlStore {
  private readonly states: StateCache;
  /** Changed per-user states pushed out of memory, written at the next flush (and read from here until then). */
  private readonly evicted = new Map<string, [string, string, unknown]>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  private readonly sql: {
    putApp: Database.Statement<[string, string]>;
    deleteApp: Database.Statement<[string]>;
    deleteAppStates: Database.Statement<[string]>;
    listApps: Database.Statement<[], string>;
    putVersion: Database.Statement<[string, number, string, string, string, string | null]>;
    deleteVersion: Database.Statement<[string, number]>;
    listVersions: Database.Statement<[], VersionRow>;
    setCurrent: Database.Statement<[string, number | null]>;
    setReplicas: Database.Statement<[string, number]>;
    pruneSettings: Database.Statement<[string]>;
    currents: Database.Statement<[], [string, number]>;
    replicas: Database.Statement<[], [string, number]>;
    putState: Database.Statement<[string, string, string, number]>;
    loadStates: Database.Statement<[], { app: string; context: string; state: string }>;
    getState: Database.Statement<[string, string], string>;
    putRemoval: Database.Statement<[string, number, string]>;
    deleteRemoval: Database.Statement<[string, number]>;
    listRemovals: Database.Statement<[], StoredRemoval>;
    appStates: Database.Statement<[string], { context: string; state: string }>;
  };
  private readonly deleteAppTx: (name: string) => void;
  private readonly setCurrentTx: (model: string, version: number | null) => void;
  private readonly writeStatesTx: (rows: [string, string, string, number][]) => void;

  constructor(
    private readonly db: Database.Database,
    flushIntervalMs: number,
    onFlushError: (err: unknown) => void,
    maxUserStates: number,
  ) {
    this.states = new StateCache({
      maxUserStates,
      load: (app, context) => {
        const pending = this.evicted.get(`${app}\u0000${context}`);
        if (pending) return pending[2];
        const row = this.sql.getState.get(app, context);
        return row === undefined ? undefined : JSON.parse(row);
      },
      evict: (app, context, state) => this.evicted.set(`${app}\u0000${context}`, [app, context, state]),
    });
    this.sql = {
      putApp: db.prepare('INSERT INTO apps (name, definition) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET definition = excluded.definition'),
      deleteApp: db.prepare('DELETE FROM apps WHERE name = ?'),
      deleteAppStates: db.prepare('DELETE FROM selection_state WHERE app = ?'),
      listApps: db.prepare<[], string>('SELECT definition FROM apps').pluck(),
      putVersion: db.prepare(
        `INSERT INTO model_versions (model, version, path, kind, config, meta) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (model, version) DO UPDATE SET path = excluded.path, kind = excluded.kind, config = excluded.config, meta = excluded.meta`,
      ),
      deleteVersion: db.prepare('DELETE FROM model_versions WHERE model = ? AND version = ?'),
      listVersions: db.prepare('SELECT model, version, path, kind, config, meta FROM model_versions'),
      setCurrent: db.prepare('INSERT INTO model_settings (model, current_version) VALUES (?, ?) ON CONFLICT (model) DO UPDATE SET current_version = excluded.current_version'),
      setReplicas: db.prepare('INSERT INTO model_settings (model, replicas) VALUES (?, ?) ON CONFLICT (model) DO UPDATE SET replicas = excluded.replicas'),
      pruneSettings: db.prepare('DELETE FROM model_settings WHERE model = ? AND current_version IS NULL AND replicas IS NULL'),
      currents: db.prepare<[], [string, number]>('SELECT model, current_version FROM model_settings WHERE current_version IS NOT NULL').raw(),
      replicas: db.prepare<[], [string, number]>('SELECT model, replicas FROM model_settings WHERE replicas IS NOT NULL').raw(),
      putState: db.prepare(
        `INSERT INTO selection_state (app, context, state, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (app, context) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`,
      ),
      // At open only the application-wide states; a user's state is read when first needed.
      loadStates: db.prepare("SELECT app, context, state FROM selection_state WHERE context = ''"),
      getState: db.prepare<[string, string], string>('SELECT state FROM selection_state WHERE app = ? AND context = ?').pluck(),
      appStates: db.prepare('SELECT context, state FROM selection_state WHERE app = ?'),
      putRemoval: db.prepare('INSERT INTO repository_removals (model, version, state) VALUES (?, ?, ?) ON CONFLICT (model, version) DO UPDATE SET state = excluded.state'),
      deleteRemoval: db.prepare('DELETE FROM repository_removals WHERE model = ? AND version = ?'),
      listRemovals: db.prepare('SELECT model, version, state FROM repository_removals'),
    };
    this.deleteAppTx = db.transaction((name: string) => {
      this.sql.deleteApp.run(name);
      this.sql.deleteAppStates.run(name);
    });
    this.setCurrentTx = db.transaction((model: string, version: number | null) => {
      this.sql.setCurrent.run(model, version);
      if (version === null) this.sql.pruneSettings.run(model);
    });
    this.writeStatesTx = db.transaction((rows: [string, string, string, number][]) => {
      for (const r of rows) this.sql.putState.run(...r);
    });
    for (const row of this.sql.loadStates.iterate()) this.states.load(row.app, row.context, JSON.parse(row.state));
    this.timer = setInterval(() => {
      try {
        this.flush();
      } catch (err) {
        onFlushError(err);
      }
    }, flushIntervalMs);
    this.timer.unref();
  }

  private ensureOpen(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', `state database ${this.db.name} is closed`);
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

  /** Every state of `app`: the file's, overlaid with pending writes and what memory holds (rare: snapshots, tests). */
  entries(app: string): [string, unknown][] {
    this.ensureOpen();
    const all = new Map<string, unknown>();
    for (const row of this.sql.appStates.iterate(app)) all.set(row.context, JSON.parse(row.state));
    for (const [a, ctx, state] of this.evicted.values()) if (a === app) all.set(ctx, state);
    for (const [ctx, state] of this.states.entries(app)) all.set(ctx, state);
    return [...all.entries()];
  }

  putApp(app: StoredApp): void {
    this.ensureOpen();
    checkApp(app);
    this.sql.putApp.run(app.name, JSON.stringify(app));
  }

  deleteApp(name: string): void {
    this.ensureOpen();
    checkAppName(name);
    this.deleteAppTx(name);
    this.states.deleteApp(name);
    for (const [k, e] of this.evicted) if (e[0] === name) this.evicted.delete(k);
  }

  listApps(): StoredApp[] {
    this.ensureOpen();
    return this.sql.listApps.all().map((d) => JSON.parse(d) as StoredApp).sort(byAppName);
  }

  putModelVersion(v: StoredModelVersion): void {
    this.ensureOpen();
    checkModelVersion(v);
    this.sql.putVersion.run(v.model, v.version, v.path, v.kind, JSON.stringify(v.config), v.meta === undefined ? null : JSON.stringify(v.meta));
  }

  deleteModelVersion(model: string, version: number): void {
    this.ensureOpen();
    checkModelRef(model, version);
    this.sql.deleteVersion.run(model, version);
  }

  listModelVersions(): StoredModelVersion[] {
    this.ensureOpen();
    return this.sql.listVersions
      .all()
      .map((r) => versionOf(r))
      .sort(byModelVersion);
  }

  setCurrentVersion(model: string, version: number | null): void {
    this.ensureOpen();
    checkCurrentVersion(model, version);
    this.setCurrentTx(model, version);
  }

  currentVersions(): Record<string, number> {
    this.ensureOpen();
    return sortedRecord(this.sql.currents.all());
  }

  setReplicas(model: string, replicas: number): void {
    this.ensureOpen();
    checkReplicas(model, replicas);
    this.sql.setReplicas.run(model, replicas);
  }

  setRemoved(model: string, version: number, state: RemovedState | null): void {
    this.ensureOpen();
    checkRemoval(model, version, state);
    if (state === null) this.sql.deleteRemoval.run(model, version);
    else this.sql.putRemoval.run(model, version, state);
  }

  removed(): StoredRemoval[] {
    this.ensureOpen();
    return this.sql.listRemovals.all().sort(byRemoval);
  }

  replicas(): Record<string, number> {
    this.ensureOpen();
    return sortedRecord(this.sql.replicas.all());
  }

  flush(): void {
    this.ensureOpen();
    if (this.states.dirtyCount === 0 && this.evicted.size === 0) return;
    const now = Date.now();
    const rows: [string, string, string, number][] = [];
    for (const [app, ctx, state] of this.evicted.values()) rows.push([app, ctx, JSON.stringify(state), now]);
    for (const [app, ctx, state] of this.states.changed()) rows.push([app, ctx, JSON.stringify(state), now]);
    this.writeStatesTx(rows);
    this.evicted.clear();
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
    if (this.closed) return;
    clearInterval(this.timer);
    try {
      this.flush();
    } finally {
      this.closed = true;
      this.db.close();
    }
  }
}

/**
 * Open (creating it and its directory if needed) and migrate the state database at `path`.
 * Throws StoreError('SCHEMA_TOO_NEW') for a database written by a newer server, RangeError for
 * a bad interval; SQLite errors (unreadable file, not a database) pass through.
 */
export function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): ControlStore {
  const interval = opts.flushIntervalMs ?? 1000;
  if (!Number.isFinite(interval) || interval <= 0) throw new RangeError(`flushIntervalMs must be a positive number, got ${interval}`);
  const onFlushError = opts.onFlushError ?? ((err: unknown) => process.emitWarning(err instanceof Error ? err : String(err), 'SkiffStoreWarning'));
  mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    migrate(db);
    return new SqliteControlStore(db, interval, onFlushError, opts.maxUserStates ?? DEFAULT_MAX_USER_STATES);
  } catch (err) {
    db.close();
    throw err;
  }
}

function versionOf(r: VersionRow): StoredModelVersion {
  const v: StoredModelVersion = { model: r.model, version: r.version, path: r.path, kind: r.kind, config: JSON.parse(r.config) as Record<string, unknown> };
  if (r.meta !== null) v.meta = JSON.parse(r.meta) as Record<string, unknown>;
  return v;
}

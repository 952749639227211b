import { randomBytes } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { SkiffError } from '../errors.js';
import { checkState } from './contract.js';
import { MemoryControlStore } from './memory-store.js';
import { DEFAULT_MAX_USER_STATES, StateCache } from './state-cache.js';
import { StoreError, type ControlStore, type RemovedState, type StoredApp, type StoredModelVersion, type StoredRemoval } from './types.js';

/**
 * The ControlStore shared by several Skiff instances: Redis holds the control plane and the
 * selection states; each instance keeps a mirror in memory for its synchronous reads.
 *
 * Control plane (apps, links, model versions, current versions, replicas, removals): a write is
 * checked and applied to the mirror at once, then sent to Redis in order on one connection, in a
 * MULTI with a revision bump and a PUBLISH on the events channel. `sync()` resolves when every
 * write made so far is acknowledged by Redis; the admin layer answers only then, so an
 * acknowledged change is in Redis (durable as far as Redis is: run it with appendfsync always).
 * Another instance hears the PUBLISH, reads the whole control plane back (`snapshot()`) and
 * calls the listener given to `onControlChange`, which applies the difference to its registry and
 * applications. While Redis cannot be reached, writes throw STORE_UNAVAILABLE (503) and nothing
 * changes; reads keep answering from the mirror; on reconnection the mirror is read back whole,
 * so the instance catches up with whatever changed meanwhile.
 *
 * Selection states: `update` is an optimistic compare-and-set in a Lua script (one key per
 * (app, context) holding a version and the JSON state): the new state is computed from the
 * version this instance knows, and the script stores it only if that is still the version in
 * Redis; otherwise it answers the newer state and `change` runs again on it. No update is lost,
 * whichever instance it lands on. The script also publishes the new state, so every instance's
 * copy follows within one pub/sub hop, and keeps per-user states bounded: a sorted set per
 * application by last update time, trimmed to `maxUserStates` (the oldest users' states are
 * deleted). Reads are local: application-wide states are all held, per-user states in an LRU of
 * the same bound, filled from Redis in the background on a miss (that query sees the initial
 * state). Redis Cluster is not supported (the script builds key names).
 */

export interface RedisStoreOptions {
  /** Per-user states kept, in Redis per application and in this instance's memory (LRU). */
  maxUserStates?: number;
  /** Key and channel prefix (several deployments may share one Redis). Default 'skiff:'. */
  prefix?: string;
  /** How long open() waits for Redis before it fails. Default 10 s. */
  connectTimeoutMs?: number;
  /** Told when the connection to Redis is lost or back. */
  onStatus?: (available: boolean, err?: unknown) => void;
}

/** The control plane as stored: what an instance applies when another one changed it. */
export interface ControlSnapshot {
  apps: StoredApp[];
  versions: StoredModelVersion[];
  current: Record<string, number>;
  replicas: Record<string, number>;
  removed: StoredRemoval[];
}

interface Versioned {
  v: number;
  s: unknown;
}

/**
 * KEYS[1] state key, KEYS[2] the app's user set (unused for the app-wide state), KEYS[3] channel.
 * ARGV: expected version, new state JSON, context, max user states, state key base (for the
 * keys of evicted users), app name.
 * Answers {1, new version} or {0, current version, current JSON or false}.
 */
const CAS = `
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if v ~= tonumber(ARGV[1]) then
  return {0, v, redis.call('HGET', KEYS[1], 's')}
end
v = v + 1
redis.call('HSET', KEYS[1], 'v', v, 's', ARGV[2])
if ARGV[3] ~= '' then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[2], tonumber(t[1]) * 1000000 + tonumber(t[2]), ARGV[3])
  local over = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[4])
  if over > 0 then
    local old = redis.call('ZPOPMIN', KEYS[2], over)
    for i = 1, #old, 2 do redis.call('DEL', ARGV[5] .. old[i]) end
  end
end
redis.call('PUBLISH', KEYS[3], cjson.encode({t = 's', a = ARGV[6], c = ARGV[3], v = v, s = ARGV[2]}))
return {1, v}
`;

/** KEYS[1] the app's user set; ARGV[1] state key base. Deletes every state of the app. */
const DROP_STATES = `
local users = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #users do redis.call('DEL', ARGV[1] .. users[i]) end
redis.call('DEL', KEYS[1], ARGV[1])
return #users
`;

/** How often the control plane's revision is compared with the one last read (missed events). */
const POLL_MS = 1000;

const vkey = (model: string, version: number): string => `${model}\u0000${version}`;

export class RedisControlStore implements ControlStore {
  /** A name for this instance in published events (its own are not applied twice). */
  readonly instanceId = randomBytes(8).toString('hex');
  private mirror = new MemoryControlStore();
  private states: StateCache;
  private readonly fetching = new Set<string>();
  private pending: Promise<unknown>[] = [];
  private listener: ((prev: ControlSnapshot, next: ControlSnapshot) => void) | undefined;
  private closed = false;
  private wasReady = true;
  private readonly k: { apps: string; versions: string; current: string; replicas: string; removed: string; rev: string; events: string };

  private constructor(
    private readonly redis: Redis,
    private readonly sub: Redis,
    private readonly prefix: string,
    private readonly maxUserStates: number,
    private readonly opts: RedisStoreOptions,
  ) {
    this.states = new StateCache({ maxUserStates });
    const p = prefix;
    this.k = { apps: `${p}apps`, versions: `${p}versions`, current: `${p}current`, replicas: `${p}replicas`, removed: `${p}removed`, rev: `${p}rev`, events: `${p}events` };
    redis.defineCommand('skiffCas', { numberOfKeys: 3, lua: CAS });
    redis.defineCommand('skiffDropStates', { numberOfKeys: 1, lua: DROP_STATES });
  }

  /** Connect, read the control plane and the application-wide states, and listen for changes. */
  static async open(url: string, opts: RedisStoreOptions = {}): Promise<RedisControlStore> {
    const base: RedisOptions = {
      lazyConnect: true,
      // Fail fast while disconnected (a write answers 503 at once), reconnect in the background.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      retryStrategy: (n) => Math.min(50 * 2 ** Math.min(n, 5), 1000),
      connectTimeout: opts.connectTimeoutMs ?? 10_000,
    };
    const redis = new Redis(url, base);
    const sub = new Redis(url, { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null });
    // ioredis reports errors as events too; the status listener says what matters.
    redis.on('error', () => undefined);
    sub.on('error', () => undefined);
    try {
      await Promise.all([redis.connect(), sub.connect()]);
    } catch (err) {
      redis.disconnect();
      sub.disconnect();
      throw new Error(`--state ${redactUrl(url)}: cannot reach Redis (${(err as Error).message})`);
    }
    const store = new RedisControlStore(redis, sub, opts.prefix ?? 'skiff:', opts.maxUserStates ?? DEFAULT_MAX_USER_STATES, opts);
    try {
      await store.reload();
      await sub.subscribe(store.k.events);
    } catch (err) {
      redis.disconnect();
      sub.disconnect();
      throw err;
    }
    sub.on('message', (_ch: string, msg: string) => store.onEvent(msg));
    redis.on('close', () => store.setReady(false));
    redis.on('ready', () => store.setReady(true));
    // Subscribed again after a reconnection: what was published meanwhile was missed.
    sub.on('ready', () => store.scheduleReload());
    // The safety net: a published change missed anyway is picked up within POLL_MS.
    store.poll = setInterval(() => store.checkRevision(), POLL_MS);
    store.poll.unref();
    return store;
  }

  /**
   * Called when the control plane read back (after another instance changed it, or after a
   * reconnection) differs from what this instance held: `prev` is what it held (its own writes
   * included), `next` what Redis holds now.
   */
  onControlChange(listener: (prev: ControlSnapshot, next: ControlSnapshot) => void): void {
    this.listener = listener;
  }

  /** Whether Redis answers now (writes are refused with STORE_UNAVAILABLE when not). */
  get available(): boolean {
    return this.redis.status === 'ready' && !this.closed;
  }

  /**
   * Resolves when every write made so far is acknowledged by Redis; rejects with
   * STORE_UNAVAILABLE when one of them was not (the mirror is then read back at reconnection).
   */
  async sync(): Promise<void> {
    const mine = this.pending;
    this.pending = [];
    const results = await Promise.all(mine);
    const failed = results.find((r) => r instanceof Error);
    if (failed) throw unavailable(failed);
  }

  /** The control plane as Redis holds it now, in a store of its own (the next mirror). */
  private async readControl(): Promise<MemoryControlStore> {
    const r = await this.redis.multi().hgetall(this.k.apps).hgetall(this.k.versions).hgetall(this.k.current).hgetall(this.k.replicas).hgetall(this.k.removed).get(this.k.rev).exec();
    if (!r) throw unavailable(new Error('transaction aborted'));
    const [apps, versions, current, replicas, removed, rev] = r.map(([err, v]) => {
      if (err) throw unavailable(err);
      return v;
    }) as [Record<string, string>, Record<string, string>, Record<string, string>, Record<string, string>, Record<string, string>, string | null];
    this.seenRev = rev ?? '0';
    const m = new MemoryControlStore(this.maxUserStates);
    for (const json of Object.values(apps!)) m.putApp(JSON.parse(json) as StoredApp);
    for (const json of Object.values(versions!)) m.putModelVersion(JSON.parse(json) as StoredModelVersion);
    for (const [model, v] of Object.entries(current!)) m.setCurrentVersion(model, Number(v));
    for (const [model, n] of Object.entries(replicas!)) m.setReplicas(model, Number(n));
    for (const json of Object.values(removed!)) {
      const x = JSON.parse(json) as StoredRemoval;
      m.setRemoved(x.model, x.version, x.state);
    }
    return m;
  }

  // --- selection states -------------------------------------------------------------------

  get(app: string, context: string): unknown {
    this.ensureOpen();
    const e = this.states.get(app, context) as Versioned | undefined;
    if (e === undefined && context !== '') this.fetch(app, context);
    return e?.s;
  }

  /** Local only: the application-wide initial state a predict computes (the first update stores it). */
  set(app: string, context: string, state: unknown): void {
    this.ensureOpen();
    checkState(app, context, state);
    const e = this.states.get(app, context) as Versioned | undefined;
    this.states.load(app, context, { v: e?.v ?? 0, s: state });
  }

  entries(app: string): [string, unknown][] {
    this.ensureOpen();
    return this.states.entries(app).map(([c, e]) => [c, (e as Versioned).s]);
  }

  update(app: string, context: string, change: (current: unknown) => unknown, done: (err: unknown) => void): void {
    if (this.closed) return done(new StoreError('STORE_CLOSED', 'the Redis store is closed'));
    const attempt = (known: Versioned | undefined, tries: number): void => {
      if (!this.available) return done(unavailable());
      let next: unknown;
      let json: string;
      try {
        next = change(known?.s);
        checkState(app, context, next);
        json = JSON.stringify(next);
      } catch (err) {
        return done(err);
      }
      const cas = (this.redis as unknown as { skiffCas(...a: (string | number)[]): Promise<[number, number, string | null]> }).skiffCas;
      cas.call(this.redis, this.stateKey(app, context), this.usersKey(app), this.k.events, known?.v ?? 0, json, context, this.maxUserStates, this.stateBase(app), app).then(
        ([ok, v, cur]) => {
          if (ok === 1) {
            this.keep(app, context, v, JSON.parse(json) as unknown);
            return done(null);
          }
          const now: Versioned | undefined = v === 0 || cur === null ? undefined : { v, s: JSON.parse(cur) as unknown };
          if (now) this.keep(app, context, now.v, now.s);
          if (tries >= 100) return done(new SkiffError('INTERNAL', `selection state of '${app}' kept changing under 100 updates in a row`));
          attempt(now, tries + 1);
        },
        (err: unknown) => done(unavailable(err)),
      );
    };
    const e = this.states.get(app, context) as Versioned | undefined;
    if (e || context === '') return attempt(e, 0);
    // A user this instance has not seen: start from what Redis has.
    this.readState(app, context).then((r) => attempt(r, 0), (err: unknown) => done(unavailable(err)));
  }

  // --- control plane ----------------------------------------------------------------------

  putApp(app: StoredApp): void {
    this.write(() => this.mirror.putApp(app), (m) => m.hset(this.k.apps, app.name, JSON.stringify(app)));
  }

  deleteApp(name: string): void {
    this.write(() => {
      this.mirror.deleteApp(name);
      this.states.deleteApp(name);
    }, (m) => {
      m.hdel(this.k.apps, name);
      (m as unknown as { skiffDropStates(k: string, b: string): unknown }).skiffDropStates(this.usersKey(name), this.stateBase(name));
    });
  }

  listApps(): StoredApp[] {
    this.ensureOpen();
    return this.mirror.listApps();
  }

  putModelVersion(v: StoredModelVersion): void {
    this.write(() => this.mirror.putModelVersion(v), (m) => m.hset(this.k.versions, vkey(v.model, v.version), JSON.stringify(v)));
  }

  deleteModelVersion(model: string, version: number): void {
    this.write(() => this.mirror.deleteModelVersion(model, version), (m) => m.hdel(this.k.versions, vkey(model, version)));
  }

  listModelVersions(): StoredModelVersion[] {
    this.ensureOpen();
    return this.mirror.listModelVersions();
  }

  setCurrentVersion(model: string, version: number | null): void {
    this.write(() => this.mirror.setCurrentVersion(model, version), (m) => (version === null ? m.hdel(this.k.current, model) : m.hset(this.k.current, model, String(version))));
  }

  currentVersions(): Record<string, number> {
    this.ensureOpen();
    return this.mirror.currentVersions();
  }

  setReplicas(model: string, replicas: number): void {
    this.write(() => this.mirror.setReplicas(model, replicas), (m) => m.hset(this.k.replicas, model, String(replicas)));
  }

  replicas(): Record<string, number> {
    this.ensureOpen();
    return this.mirror.replicas();
  }

  setRemoved(model: string, version: number, state: RemovedState | null): void {
    this.write(() => this.mirror.setRemoved(model, version, state), (m) => (state === null ? m.hdel(this.k.removed, vkey(model, version)) : m.hset(this.k.removed, vkey(model, version), JSON.stringify({ model, version, state }))));
  }

  removed(): StoredRemoval[] {
    this.ensureOpen();
    return this.mirror.removed();
  }

  /** Selection states are written by `update` as they change: nothing is held back. */
  flush(): void {
    this.ensureOpen();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.poll);
    this.mirror.close();
    // Writes already sent are delivered before the connection closes.
    this.redis.quit().catch(() => this.redis.disconnect());
    this.sub.disconnect();
  }

  // --- internals --------------------------------------------------------------------------

  private ensureOpen(): void {
    if (this.closed) throw new StoreError('STORE_CLOSED', 'the Redis store is closed');
  }

  /** Check and apply to the mirror (throws before anything is sent), then send in order. */
  private write(apply: () => void, send: (m: ReturnType<Redis['multi']>) => void): void {
    this.ensureOpen();
    if (!this.available) throw unavailable();
    apply();
    this.writes++;
    const m = this.redis.multi();
    send(m);
    m.incr(this.k.rev).publish(this.k.events, JSON.stringify({ t: 'c', o: this.instanceId }));
    // A write Redis did not take leaves the mirror ahead of Redis: read Redis back (now if it
    // answers, else at reconnection) so the mirror holds only what every instance sees.
    const failed = (err: Error): Error => {
      this.scheduleReload();
      return err;
    };
    this.pending.push(m.exec().then((r) => {
      const err = r?.find(([e]) => e)?.[0];
      return err ? failed(err) : undefined;
    }, (err: unknown) => failed(err instanceof Error ? err : new Error(String(err)))));
  }

  private stateBase(app: string): string {
    return `${this.prefix}s:${app.length}:${app}:`;
  }

  private stateKey(app: string, context: string): string {
    return this.stateBase(app) + context;
  }

  private usersKey(app: string): string {
    return `${this.prefix}u:${app}`;
  }

  private keep(app: string, context: string, v: number, s: unknown): void {
    const e = this.states.get(app, context) as Versioned | undefined;
    if (!e || e.v <= v) this.states.load(app, context, { v, s });
  }

  private async readState(app: string, context: string): Promise<Versioned | undefined> {
    const [v, s] = await this.redis.hmget(this.stateKey(app, context), 'v', 's');
    return v && s ? { v: Number(v), s: JSON.parse(s) as unknown } : undefined;
  }

  /** A per-user state this instance does not hold: read it in the background for the next query. */
  private fetch(app: string, context: string): void {
    const key = `${app}\u0000${context}`;
    if (this.fetching.has(key) || !this.available || this.fetching.size >= 1024) return;
    this.fetching.add(key);
    this.readState(app, context).then(
      (r) => {
        this.fetching.delete(key);
        if (r && !this.closed) this.keep(app, context, r.v, r.s);
      },
      () => this.fetching.delete(key),
    );
  }

  private onEvent(msg: string): void {
    if (this.closed) return;
    let e: { t?: string; o?: string; a?: string; c?: string; v?: number; s?: string };
    try {
      e = JSON.parse(msg) as typeof e;
    } catch {
      return;
    }
    if (e.t === 's' && typeof e.a === 'string' && typeof e.c === 'string' && typeof e.v === 'number' && typeof e.s === 'string') {
      // Application-wide states are all kept; a user's only if this instance holds it.
      if (e.c === '' || this.states.has(e.a, e.c)) this.keep(e.a, e.c, e.v, JSON.parse(e.s) as unknown);
    } else if (e.t === 'c' && e.o !== this.instanceId) this.scheduleReload();
  }

  private writes = 0;
  /** The control plane's revision as last read back (a poll compares it: events can be missed across reconnections). */
  private seenRev = '0';
  private poll: ReturnType<typeof setInterval> | undefined;
  private reloading: Promise<void> | undefined;
  private reloadAgain = false;

  /** Read the control plane back and hand it to the listener; coalesces bursts of changes. */
  private checkRevision(): void {
    if (!this.available || this.reloading) return;
    this.redis.get(this.k.rev).then((rev) => {
      if ((rev ?? '0') !== this.seenRev) this.scheduleReload();
    }, () => undefined);
  }

  scheduleReload(): void {
    if (this.closed) return;
    if (this.reloading) {
      this.reloadAgain = true;
      return;
    }
    this.reloading = this.reload()
      .catch(() => undefined)
      .finally(() => {
        this.reloading = undefined;
        if (this.reloadAgain) {
          this.reloadAgain = false;
          this.scheduleReload();
        }
      });
  }

  private async reload(): Promise<void> {
    const writes = this.writes;
    const m = await this.readControl();
    const snap = snapshotOf(m);
    // The application-wide states of every application (per-user ones are read on use).
    const names = snap.apps.map((a) => a.name);
    const read = await Promise.all(names.map((n) => this.readState(n, '')));
    if (this.closed) return;
    // A write of this instance sent while these reads were on their way may be missing from them.
    if (this.writes !== writes) return this.reload();
    const known = new Set(names);
    for (const a of this.mirror.listApps()) if (!known.has(a.name)) this.states.deleteApp(a.name);
    const prev = snapshotOf(this.mirror);
    this.mirror = m;
    names.forEach((n, i) => {
      const r = read[i];
      if (r) this.keep(n, '', r.v, r.s);
    });
    if (JSON.stringify(prev) !== JSON.stringify(snap)) this.listener?.(prev, snap);
  }

  private setReady(ready: boolean): void {
    if (this.closed || ready === this.wasReady) return;
    this.wasReady = ready;
    this.opts.onStatus?.(ready);
    if (ready) {
      // Catch up: the control plane and the application-wide states are read back (queries go on
      // with the last ones meanwhile); per-user states may have moved on elsewhere, so they are
      // read again on use.
      const fresh = new StateCache({ maxUserStates: this.maxUserStates });
      for (const a of this.mirror.listApps()) {
        const e = this.states.get(a.name, '');
        if (e !== undefined) fresh.load(a.name, '', e);
      }
      this.states = fresh;
      this.scheduleReload();
    }
  }
}

/** The control plane a store holds, as lists in the store's order. */
export function snapshotOf(s: ControlStore): ControlSnapshot {
  return { apps: s.listApps(), versions: s.listModelVersions(), current: s.currentVersions(), replicas: s.replicas(), removed: s.removed() };
}

function unavailable(cause?: unknown): SkiffError {
  if (cause instanceof SkiffError) return cause;
  const why = cause instanceof Error ? `: ${cause.message}` : '';
  return new SkiffError('STORE_UNAVAILABLE', `the shared state store (Redis) cannot be reached${why}; retry when it is back`);
}

/** A Redis URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis://...';
  }
}

export function openRedisStore(url: string, opts: RedisStoreOptions = {}): Promise<RedisControlStore> {
  return RedisControlStore.open(url, opts);
}

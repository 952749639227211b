import type { SelectionStore } from '../selection/state-store.js';
import { checkState } from './contract.js';

/**
 * Selection states in memory: every application-wide state (context ''), and at most
 * `maxUserStates` per-user states in LRU order, with the set of states changed since the last
 * flush. States are held by reference (policies never mutate a state; they return a new one), so
 * the value written at flush time is the latest one set.
 *
 * A per-user state that is not in memory is asked of `load` (the database), so a store need not
 * hold every user's state in memory, nor read them all at start. A changed state pushed out of
 * the LRU is handed to `evict` first (the database writes it), so nothing acknowledged is lost
 * to eviction; without `evict` (the in-memory store) it is simply forgotten — the price of a
 * bounded memory, documented. Main thread only.
 */
export interface StateCacheOptions {
  /** Per-user states kept in memory (the LRU bound). */
  maxUserStates: number;
  /** A state that is not in memory, from where it is kept (undefined: none). */
  load?: (app: string, context: string) => unknown;
  /** A changed state about to be dropped from memory: write it now. */
  evict?: (app: string, context: string, state: unknown) => void;
}

interface Entry {
  app: string;
  context: string;
  state: unknown;
  dirty: boolean;
}

export const DEFAULT_MAX_USER_STATES = 100_000;

const key = (app: string, context: string): string => `${app}\u0000${context}`;

export class StateCache implements SelectionStore {
  /** Application-wide states: never evicted. */
  private readonly appWide = new Map<string, Entry>();
  /** Per-user states, least recently used first. */
  private readonly users = new Map<string, Entry>();
  private dirtyEntries = new Set<Entry>();

  constructor(private readonly opts: StateCacheOptions = { maxUserStates: DEFAULT_MAX_USER_STATES }) {}

  get(app: string, context: string): unknown {
    if (context === '') return this.appWide.get(app)?.state;
    const k = key(app, context);
    const e = this.users.get(k);
    if (e) {
      // Most recently used now.
      this.users.delete(k);
      this.users.set(k, e);
      return e.state;
    }
    const loaded = this.opts.load?.(app, context);
    if (loaded === undefined) return undefined;
    this.putUser(k, { app, context, state: loaded, dirty: false });
    return loaded;
  }

  set(app: string, context: string, state: unknown): void {
    checkState(app, context, state);
    const e: Entry = { app, context, state, dirty: true };
    if (context === '') {
      const old = this.appWide.get(app);
      if (old) this.dirtyEntries.delete(old);
      this.appWide.set(app, e);
    } else {
      const k = key(app, context);
      const old = this.users.get(k);
      if (old) {
        this.dirtyEntries.delete(old);
        this.users.delete(k);
      }
      this.putUser(k, e);
    }
    this.dirtyEntries.add(e);
  }

  update(app: string, context: string, change: (current: unknown) => unknown, done: (err: unknown) => void): void {
    let failed: unknown = null;
    try {
      this.set(app, context, change(this.get(app, context)));
    } catch (err) {
      failed = err;
    }
    done(failed);
  }

  /** Whether (app, context) is in memory (no load, no change of the LRU order). */
  has(app: string, context: string): boolean {
    return context === '' ? this.appWide.has(app) : this.users.has(key(app, context));
  }

  /** Insert a state read from disk: present in memory, not dirty. */
  load(app: string, context: string, state: unknown): void {
    if (context === '') this.appWide.set(app, { app, context, state, dirty: false });
    else this.putUser(key(app, context), { app, context, state, dirty: false });
  }

  /** The states of an application that are in memory (the rest are reconciled when read). */
  entries(app: string): [string, unknown][] {
    const out: [string, unknown][] = [];
    const w = this.appWide.get(app);
    if (w) out.push(['', w.state]);
    for (const e of this.users.values()) if (e.app === app) out.push([e.context, e.state]);
    return out;
  }

  /** Drop every state of `app` from memory, including unflushed changes. */
  deleteApp(app: string): void {
    const w = this.appWide.get(app);
    if (w) this.dirtyEntries.delete(w);
    this.appWide.delete(app);
    for (const [k, e] of this.users) {
      if (e.app !== app) continue;
      this.users.delete(k);
      this.dirtyEntries.delete(e);
    }
  }

  /** Per-user states in memory now. */
  get userStates(): number {
    return this.users.size;
  }

  /** The changed states, [app, context, state]. Stays dirty until `markClean()`. */
  *changed(): Generator<[string, string, unknown]> {
    for (const e of this.dirtyEntries) yield [e.app, e.context, e.state];
  }

  get dirtyCount(): number {
    return this.dirtyEntries.size;
  }

  markClean(): void {
    for (const e of this.dirtyEntries) e.dirty = false;
    this.dirtyEntries = new Set();
  }

  private putUser(k: string, e: Entry): void {
    this.users.set(k, e);
    while (this.users.size > this.opts.maxUserStates) {
      const [oldest, victim] = this.users.entries().next().value as [string, Entry];
      if (victim.dirty) {
        this.opts.evict?.(victim.app, victim.context, victim.state);
        this.dirtyEntries.delete(victim);
      }
      this.users.delete(oldest);
    }
  }
}

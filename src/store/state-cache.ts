import type { SelectionStore } from '../selection/state-store.js';
import { checkState } from './contract.js';

/**
 * Selection states in memory, with the set of (app, context) pairs changed since the last
 * flush. States are held by reference (policies never mutate a state; they return a new one),
 * so the value written at flush time is the latest one set.
 */
export class StateCache implements SelectionStore {
  private readonly states = new Map<string, Map<string, unknown>>();
  private readonly dirty = new Map<string, Set<string>>();

  get(app: string, context: string): unknown {
    return this.states.get(app)?.get(context);
  }

  set(app: string, context: string, state: unknown): void {
    checkState(app, context, state);
    this.put(app, context, state);
    let d = this.dirty.get(app);
    if (!d) {
      d = new Set();
      this.dirty.set(app, d);
    }
    d.add(context);
  }

  /** Insert a state read from disk: present in memory, not dirty. */
  load(app: string, context: string, state: unknown): void {
    this.put(app, context, state);
  }

  entries(app: string): [string, unknown][] {
    const m = this.states.get(app);
    return m ? [...m.entries()] : [];
  }

  /** Drop every state of `app` from memory, including unflushed changes. */
  deleteApp(app: string): void {
    this.states.delete(app);
    this.dirty.delete(app);
  }

  /** The changed states, [app, context, state]. Stays dirty until `markClean()`. */
  *changed(): Generator<[string, string, unknown]> {
    for (const [app, contexts] of this.dirty) {
      const m = this.states.get(app)!;
      for (const ctx of contexts) yield [app, ctx, m.get(ctx)];
    }
  }

  get dirtyCount(): number {
    let n = 0;
    for (const s of this.dirty.values()) n += s.size;
    return n;
  }

  markClean(): void {
    this.dirty.clear();
  }

  private put(app: string, context: string, state: unknown): void {
    let m = this.states.get(app);
    if (!m) {
      m = new Map();
      this.states.set(app, m);
    }
    m.set(context, state);
  }
}

import { SkiffError } from '../errors.js';
import { createRng, systemRng, type Rng } from '../rng.js';
import { parseApp, type AppDefinition } from './app.js';
import { policyByName, type AnySelectionPolicy } from './policies/index.js';
import type { SelectionStore } from './state-store.js';

/**
 * The applications known to the server, with their policy, RNG and selection states. A stored
 * state follows the app's links when it is read (a new model joins through the policy's addArm,
 * an unlinked one leaves through removeArm), so a link change touches no state: with per-user
 * states that may number millions, most of them on disk. Main thread only.
 */
export interface AppRuntime {
  readonly def: AppDefinition;
  readonly policy: AnySelectionPolicy;
  readonly rng: Rng;
}

export class AppRegistry {
  private readonly apps = new Map<string, AppRuntime>();

  constructor(readonly store: SelectionStore) {}

  private runtime(def: AppDefinition, rng?: Rng): AppRuntime {
    return { def, policy: policyByName(def.policy), rng: rng ?? (def.seed !== undefined ? createRng(def.seed) : systemRng) };
  }

  /** Add an application; throws BAD_REQUEST when the name is taken or the definition is invalid. */
  add(raw: unknown): AppDefinition {
    const def = parseApp(raw);
    if (this.apps.has(def.name)) throw new SkiffError('BAD_REQUEST', `application '${def.name}' already exists`);
    this.apps.set(def.name, this.runtime(def));
    return def;
  }

  /** Replace an application's definition (used when links change), keeping its RNG. */
  private replace(name: string, change: (def: AppDefinition) => Record<string, unknown>): AppDefinition {
    const rt = this.require(name);
    const def = parseApp(change(rt.def));
    this.apps.set(name, this.runtime(def, rt.rng));
    return def;
  }

  delete(name: string): void {
    this.require(name);
    this.apps.delete(name);
    this.store.deleteApp(name);
  }

  get(name: string): AppRuntime | undefined {
    return this.apps.get(name);
  }

  require(name: string): AppRuntime {
    const rt = this.apps.get(name);
    if (!rt) throw new SkiffError('APP_NOT_FOUND', `application '${name}' does not exist`);
    return rt;
  }

  list(): AppDefinition[] {
    return [...this.apps.values()].map((r) => r.def).sort((a, b) => a.name.localeCompare(b.name));
  }

  addLinks(name: string, arms: readonly string[]): AppDefinition {
    // Stored states follow the new links when they are next read (reconcile): no state is rewritten here.
    return this.replace(name, (d) => ({ ...d, models: [...d.models, ...arms.filter((a) => !d.models.includes(a))] }));
  }

  deleteLinks(name: string, arms: readonly string[]): AppDefinition {
    const cur = this.require(name).def;
    const missing = arms.filter((a) => !cur.models.includes(a));
    if (missing.length) throw new SkiffError('BAD_REQUEST', `application '${name}' is not linked to ${missing.join(', ')}`);
    return this.replace(name, (d) => ({ ...d, models: d.models.filter((m) => !arms.includes(m)) }));
  }

  /**
   * The selection state of (app, context) for a query: the stored one, brought up to the app's
   * current links, or the initial state over its links — NOT stored: a predict with a new user
   * creates nothing; the first feedback does (store.set), so made-up user ids cost nothing.
   */
  state(rt: AppRuntime, context: string): unknown {
    const s = this.store.get(rt.def.name, context);
    if (s === undefined) {
      if (context === '') {
        // The application-wide state is one per app: created once, kept.
        const init = rt.policy.init(rt.def.models, rt.def.policy_params);
        this.store.set(rt.def.name, '', init);
        return init;
      }
      return rt.policy.init(rt.def.models, rt.def.policy_params);
    }
    return this.reconcile(rt, s);
  }

  /**
   * The policy's weights for (app, context), as a read: a context with no state yet shows the
   * initial weights without storing a state for it.
   */
  weights(rt: AppRuntime, context: string): Record<string, number> {
    const stored = this.store.get(rt.def.name, context);
    const state = stored === undefined ? rt.policy.init(rt.def.models, rt.def.policy_params) : this.reconcile(rt, stored);
    return rt.policy.weights(state);
  }

  /**
   * Learn from feedback: `step` maps the state of (app, context) — the stored one brought up to
   * the app's links, or the initial one — to the next; the store applies it atomically (see
   * SelectionStore.update). `done(null)` once stored.
   */
  learn(name: string, context: string, step: (rt: AppRuntime, state: unknown) => unknown, done: (err: unknown) => void): void {
    this.store.update(name, context, (cur) => {
      const rt = this.require(name);
      return step(rt, cur === undefined ? rt.policy.init(rt.def.models, rt.def.policy_params) : this.reconcile(rt, cur));
    }, done);
  }

  /**
   * Insert or replace an application from a definition another instance stored (shared state):
   * a replaced one keeps its RNG. Touches no store.
   */
  put(raw: unknown): AppDefinition {
    const def = parseApp(raw);
    const old = this.apps.get(def.name);
    this.apps.set(def.name, this.runtime(def, old?.rng));
    return def;
  }

  /** Forget an application another instance deleted (its states are the store's business). */
  forget(name: string): void {
    this.apps.delete(name);
  }

  /** A stored state brought up to the app's current links (they may have changed since it was written). */
  reconcile(rt: AppRuntime, s: unknown): unknown {
    const arms = (s as { arms?: readonly string[] }).arms;
    if (!Array.isArray(arms)) return s;
    const want = rt.def.models;
    if (arms.length === want.length && arms.every((a, i) => a === want[i])) return s;
    let next = s;
    for (const a of arms) if (!want.includes(a)) next = rt.policy.removeArm(next, a);
    for (const a of want) if (!arms.includes(a)) next = rt.policy.addArm(next, a);
    return next;
  }
}

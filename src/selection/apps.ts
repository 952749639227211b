import { SkiffError } from '../errors.js';
import { createRng, systemRng, type Rng } from '../rng.js';
import { parseApp, type AppDefinition } from './app.js';
import { policyByName, type AnySelectionPolicy } from './policies/index.js';
import type { SelectionStore } from './state-store.js';

/**
 * The applications known to the server, with their policy, RNG and selection states.
 * Link changes are applied to every stored state (a new model joins each context's state
 * through the policy's addArm). Main thread only.
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
    const def = this.replace(name, (d) => ({ ...d, models: [...d.models, ...arms.filter((a) => !d.models.includes(a))] }));
    const rt = this.require(name);
    for (const [ctx, state] of this.store.entries(name)) {
      let s = state;
      for (const arm of arms) s = rt.policy.addArm(s, arm);
      this.store.set(name, ctx, s);
    }
    return def;
  }

  deleteLinks(name: string, arms: readonly string[]): AppDefinition {
    const cur = this.require(name).def;
    const missing = arms.filter((a) => !cur.models.includes(a));
    if (missing.length) throw new SkiffError('BAD_REQUEST', `application '${name}' is not linked to ${missing.join(', ')}`);
    const def = this.replace(name, (d) => ({ ...d, models: d.models.filter((m) => !arms.includes(m)) }));
    const rt = this.require(name);
    for (const [ctx, state] of this.store.entries(name)) {
      let s = state;
      for (const arm of arms) s = rt.policy.removeArm(s, arm);
      this.store.set(name, ctx, s);
    }
    return def;
  }

  /** The selection state of (app, context), created from the app's links on first use. */
  state(rt: AppRuntime, context: string): unknown {
    let s = this.store.get(rt.def.name, context);
    if (s === undefined) {
      s = rt.policy.init(rt.def.models, rt.def.policy_params);
      this.store.set(rt.def.name, context, s);
    }
    return s;
  }
}

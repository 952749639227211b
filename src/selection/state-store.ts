/**
 * Where selection state lives: one opaque, JSON-serialisable policy state per (application,
 * context). The context is a user/context id, or '' for the application-wide state. The
 * control-plane stores (src/store/: in memory, SQLite, Redis) implement it. States are created
 * by feedback, never by a predict; the application registry brings a state read back up to the
 * app's current links (AppRegistry.reconcile), so a store never rewrites states on link changes.
 */
export interface SelectionStore {
  /** The state of (app, context), or undefined; a store may read it from disk on first use. */
  get(app: string, context: string): unknown;
  /**
   * Store a changed state (the first feedback of a user creates its state). A store keeps a
   * bounded number of per-user states in memory and persists changed ones lazily (in batches).
   */
  set(app: string, context: string, state: unknown): void;
  /** Every context of an application with its state (snapshots and tests: may read the whole app from disk). */
  entries(app: string): [context: string, state: unknown][];
  deleteApp(app: string): void;
  /**
   * Learn: replace the state of (app, context) by `change(current)` atomically, so concurrent
   * feedback (on this instance or, with a shared store, on others) never loses an update. A store
   * shared between instances may call `change` more than once (on a conflict, with the newer
   * state); it must be a pure function. `done` is called once, with null when the new state is
   * stored (as durable as `set`), or with the error.
   */
  update(app: string, context: string, change: (current: unknown) => unknown, done: (err: unknown) => void): void;
}

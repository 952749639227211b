/**
 * Where selection state lives: one opaque, JSON-serialisable policy state per (application,
 * context). The context is a user/context id, or '' for the application-wide state. The
 * control-plane stores (src/store/: in memory or SQLite) implement it.
 */
export interface SelectionStore {
  get(app: string, context: string): unknown;
  set(app: string, context: string, state: unknown): void;
  /** Every context of an application with its state (for link changes and snapshots). */
  entries(app: string): [context: string, state: unknown][];
  deleteApp(app: string): void;
}

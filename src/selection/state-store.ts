/**
 * Where selection state lives: one opaque, JSON-serialisable policy state per (application,
 * context). The context is a user/context id, or '' for the application-wide state. The
 * in-memory store is the default; the persistence layer implements the same interface.
 */
export interface SelectionStore {
  get(app: string, context: string): unknown;
  set(app: string, context: string, state: unknown): void;
  /** Every context of an application with its state (for link changes and snapshots). */
  entries(app: string): [context: string, state: unknown][];
  deleteApp(app: string): void;
}

export class MemoryStore implements SelectionStore {
  private readonly apps = new Map<string, Map<string, unknown>>();

  get(app: string, context: string): unknown {
    return this.apps.get(app)?.get(context);
  }

  set(app: string, context: string, state: unknown): void {
    let m = this.apps.get(app);
    if (!m) {
      m = new Map();
      this.apps.set(app, m);
    }
    m.set(context, state);
  }

  entries(app: string): [string, unknown][] {
    return [...(this.apps.get(app) ?? new Map<string, unknown>()).entries()];
  }

  deleteApp(app: string): void {
    this.apps.delete(app);
  }
}

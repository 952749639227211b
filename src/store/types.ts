import type { SelectionStore } from '../selection/state-store.js';

/**
 * The control-plane store: everything the server must get back after a restart. Two durability
 * classes live behind one interface:
 *
 * - Control-plane writes (apps with their links and policy parameters, model versions, the
 *   pinned current version, replicas) are durable when the call returns, so the server may
 *   acknowledge an admin change right after the call.
 * - Selection states (the SelectionStore part) are kept in memory and written in batches by
 *   `flush()`, which the store also runs on its own timer and on `close()`. A crash loses at
 *   most the updates since the last flush.
 *
 * Values go in and come out as JSON: what is read back is a copy equal to
 * `JSON.parse(JSON.stringify(value))` (undefined fields dropped, non-finite numbers become
 * null). Lists are returned in a fixed order (see each method). Main thread only; every method
 * is synchronous. After `close()` every method throws StoreError('STORE_CLOSED').
 */

/** An application definition as plain JSON (AppDefinition, including links and policy params). */
export type StoredApp = Record<string, unknown> & { name: string };

/** One version of a model: where its file is and the model's config.json content. */
export interface StoredModelVersion {
  model: string;
  /** A positive integer. */
  version: number;
  /** The model file ('' for a version served by external containers). */
  path: string;
  kind: 'onnx' | 'js' | 'container';
  config: Record<string, unknown>;
  /**
   * Whatever else the version was added with, as JSON: a container version's description
   * (input_type, command, ...) and Clipper's add_model metadata (labels, container_name,
   * input_type, batch_size). Absent when there is none.
   */
  meta?: Record<string, unknown>;
}

export type RemovedState = 'unloaded' | 'deleted';

export interface StoredRemoval {
  model: string;
  /** 0: the whole model. */
  version: number;
  state: RemovedState;
}

export interface ControlStore extends SelectionStore {
  /** Insert or replace the application named `app.name`. Durable on return. */
  putApp(app: StoredApp): void;
  /**
   * Delete the application and every selection state it has (this is also the SelectionStore
   * `deleteApp`). Deleting an unknown application is a no-op. Durable on return.
   */
  deleteApp(name: string): void;
  /** Every application, ordered by name. */
  listApps(): StoredApp[];

  /** Insert or replace (model, version). Durable on return. */
  putModelVersion(v: StoredModelVersion): void;
  /** Delete (model, version); a no-op when absent. Settings of the model are kept. Durable on return. */
  deleteModelVersion(model: string, version: number): void;
  /** Every stored version, ordered by model name, then version. */
  listModelVersions(): StoredModelVersion[];

  /** Pin the current version (roll forward / back); null removes the pin (newest serves). Durable on return. */
  setCurrentVersion(model: string, version: number | null): void;
  /** The pinned version of every model that has one. */
  currentVersions(): Record<string, number>;
  /** Set a model's replica count (a positive integer). Durable on return. */
  setReplicas(model: string, replicas: number): void;
  /** The replica count of every model that has one set. */
  replicas(): Record<string, number>;

  /**
   * Remember that a repository version was taken out by the operator — `version` 0: the whole
   * model (OIP unload: 'unloaded'), or one version (delete_versioned_model: 'deleted') — so it does
   * not come back from the repository at the next start; null forgets it (OIP load, add_model).
   * Durable on return.
   */
  setRemoved(model: string, version: number, state: RemovedState | null): void;
  /** Every removal, ordered by model name, then version. */
  removed(): StoredRemoval[];

  /** Whether the store takes changes now (a shared store: whether Redis answers). */
  readonly available: boolean;
  /**
   * Resolves when every change made so far is durable (at once for the embedded stores, whose
   * writes are durable on return; a shared store when Redis acknowledged them). Rejects with
   * STORE_UNAVAILABLE when one was not.
   */
  sync(): Promise<void>;

  /** Write every selection state changed since the last flush, in one transaction. */
  flush(): void;
  /** Stop the flush timer, flush, and release the database. Idempotent. */
  close(): void;
}

export type StoreErrorCode = 'STORE_CLOSED' | 'SCHEMA_TOO_NEW';

/** A failure of the store itself (SQLite errors pass through unchanged). */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  constructor(code: StoreErrorCode, message: string) {
    super(message);
    this.name = 'StoreError';
    this.code = code;
  }
}

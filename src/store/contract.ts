import type { StoredApp, StoredModelVersion, StoredRemoval } from './types.js';

/**
 * The rules both ControlStore implementations share, so they cannot drift apart: argument
 * checks (thrown as TypeError / RangeError before anything is written) and the order of lists.
 */

function checkName(what: string, name: unknown): asserts name is string {
  if (typeof name !== 'string' || name.length === 0) throw new TypeError(`${what} must be a non-empty string`);
}

function checkPositiveInt(what: string, n: unknown): asserts n is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) throw new RangeError(`${what} must be a positive integer, got ${String(n)}`);
}

function checkObject(what: string, x: unknown): void {
  if (x === null || typeof x !== 'object' || Array.isArray(x)) throw new TypeError(`${what} must be a JSON object`);
}

export function checkApp(app: StoredApp): void {
  checkObject('an application', app);
  checkName('application name', app.name);
}

export function checkAppName(name: string): void {
  checkName('application name', name);
}

export function checkModelVersion(v: StoredModelVersion): void {
  checkObject('a model version', v);
  checkName('model name', v.model);
  checkPositiveInt('model version', v.version);
  if (v.kind !== 'onnx' && v.kind !== 'js' && v.kind !== 'container') throw new TypeError(`model kind must be 'onnx', 'js' or 'container', got ${String(v.kind)}`);
  if (v.kind === 'container') {
    if (typeof v.path !== 'string') throw new TypeError('model path must be a string');
  } else checkName('model path', v.path);
  checkObject('model config', v.config);
  if (v.meta !== undefined) checkObject('model meta', v.meta);
}

export function checkModelRef(model: string, version: number): void {
  checkName('model name', model);
  checkPositiveInt('model version', version);
}

export function checkCurrentVersion(model: string, version: number | null): void {
  checkName('model name', model);
  if (version !== null) checkPositiveInt('current version', version);
}

export function checkReplicas(model: string, replicas: number): void {
  checkName('model name', model);
  checkPositiveInt('replicas', replicas);
}

/** Selection states must survive JSON; undefined would silently vanish on the way to disk. */
export function checkState(app: string, context: string, state: unknown): void {
  checkName('application name', app);
  if (typeof context !== 'string') throw new TypeError('context must be a string');
  if (state === undefined || typeof state === 'function' || typeof state === 'symbol') {
    throw new TypeError(`selection state of '${app}'/'${context}' must be JSON data`);
  }
}

/** Code-unit order of strings (the same in every implementation, unlike SQL collations). */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function byAppName(a: StoredApp, b: StoredApp): number {
  return compareNames(a.name, b.name);
}

export function byModelVersion(a: StoredModelVersion, b: StoredModelVersion): number {
  return compareNames(a.model, b.model) || a.version - b.version;
}

/** A record with its keys in name order (so equal maps compare equal however they were built). */
export function sortedRecord(entries: Iterable<[string, number]>): Record<string, number> {
  return Object.fromEntries([...entries].sort((a, b) => compareNames(a[0], b[0])));
}

export function checkRemoval(model: string, version: number, state: unknown): void {
  checkName('model name', model);
  if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 0) throw new RangeError(`version must be 0 (the whole model) or a positive integer, got ${String(version)}`);
  if (state !== null && state !== 'unloaded' && state !== 'deleted') throw new TypeError(`removal state must be 'unloaded', 'deleted' or null, got ${String(state)}`);
}

export function byRemoval(a: StoredRemoval, b: StoredRemoval): number {
  return compareNames(a.model, b.model) || a.version - b.version;
}

import { dirname } from 'node:path';
import { parseModelConfig } from '../config/model-config.js';
import { parseInputType } from '../engine/container/rpc-codec.js';
import { toErrorInfo } from '../errors.js';
import type { Logger } from 'pino';
import { containerVersionFile, versionFileIn, type VersionFile } from '../models/repository.js';
import type { ModelRegistry } from '../models/registry.js';
import type { AppRegistry } from '../selection/apps.js';
import type { ControlSnapshot } from '../store/redis-store.js';
import type { StoredModelVersion } from '../store/types.js';

/**
 * Follow a control plane shared with other instances (`--state redis://...`): when another
 * instance changed it, apply the difference between what this instance applied last and what is
 * stored now to this instance's registry and applications, as the admin calls would have: apps
 * and links, model versions added or deleted, OIP unload and load, replica counts, the current
 * version. One change set at a time, in order; a failure is logged and the rest still applied
 * (a model that cannot load here shows as failed in this instance's readiness).
 */
export function followControl(
  registry: ModelRegistry,
  apps: AppRegistry,
  opts: { repository?: string; log: Logger },
): (prev: ControlSnapshot, next: ControlSnapshot) => Promise<void> {
  let chain = Promise.resolve();
  return (prev, next) => {
    chain = chain.then(() => applyDifference(prev, next, registry, apps, opts));
    return chain;
  };
}

async function applyDifference(prev: ControlSnapshot, next: ControlSnapshot, registry: ModelRegistry, apps: AppRegistry, opts: { repository?: string; log: Logger }): Promise<void> {
  const { log } = opts;
  const step = async (what: Record<string, unknown>, f: () => unknown): Promise<void> => {
    try {
      await f();
    } catch (err) {
      log.error({ ...what, err: toErrorInfo(err) }, 'cannot apply a change made on another instance');
    }
  };
  const key = (m: string, v: number): string => `${m}\u0000${v}`;

  // Removals first (an OIP unload, a deleted repository version), then what came back or was added.
  const wasRemoved = new Map(prev.removed.map((r) => [key(r.model, r.version), r.state]));
  const isRemoved = new Map(next.removed.map((r) => [key(r.model, r.version), r.state]));
  for (const r of next.removed) {
    if (wasRemoved.get(key(r.model, r.version)) === r.state) continue;
    if (r.version === 0) await step({ model: r.model }, () => registry.has(r.model) && registry.unloadModel(r.model));
    else await step({ model: r.model, version: r.version }, () => hasVersion(registry, r.model, r.version) && registry.deleteVersion(r.model, r.version));
  }
  for (const r of prev.removed) {
    if (r.version !== 0 || isRemoved.has(key(r.model, 0)) || !opts.repository) continue;
    // An OIP load on another instance: the model comes back as the repository has it.
    const repo = opts.repository;
    await step({ model: r.model }, () => registry.reloadFromRepository(repo, r.model));
  }

  const before = new Map(prev.versions.map((v) => [key(v.model, v.version), JSON.stringify(v)]));
  const after = new Set(next.versions.map((v) => key(v.model, v.version)));
  for (const sv of next.versions) {
    if (before.get(key(sv.model, sv.version)) === JSON.stringify(sv)) continue;
    await step({ model: sv.model, version: sv.version }, () => applyVersion(registry, sv));
  }
  for (const v of prev.versions) {
    if (after.has(key(v.model, v.version)) || isRemoved.has(key(v.model, v.version))) continue;
    await step({ model: v.model, version: v.version }, () => hasVersion(registry, v.model, v.version) && registry.deleteVersion(v.model, v.version));
  }

  for (const [model, n] of Object.entries(next.replicas)) {
    if (prev.replicas[model] !== n && registry.has(model)) await step({ model, replicas: n }, () => registry.setReplicas(model, n));
  }
  for (const [model, v] of Object.entries(next.current)) {
    if (prev.current[model] !== v && registry.has(model)) await step({ model, version: v }, () => registry.setCurrent(model, v));
  }

  // Applications last: a new link may name a model added above.
  const was = new Map(prev.apps.map((a) => [a.name, JSON.stringify(a)]));
  const now = new Set(next.apps.map((a) => a.name));
  for (const a of next.apps) {
    if (was.get(a.name) !== JSON.stringify(a)) await step({ app: a.name }, () => apps.put(a));
  }
  for (const name of was.keys()) if (!now.has(name)) apps.forget(name);
}

function hasVersion(registry: ModelRegistry, model: string, version: number): boolean {
  return registry.list().some((m) => m.name === model && m.versions.some((v) => v.version === version && v.state !== 'unloaded'));
}

/**
 * Serve a stored version: one already loaded from that very file takes the stored metadata (and
 * Clipper's batch_size); any other is loaded and made current, as add_model does.
 */
export async function applyVersion(registry: ModelRegistry, sv: StoredModelVersion): Promise<void> {
  const known = registry.list().find((m) => m.name === sv.model)?.versions.find((v) => v.version === sv.version);
  if (known && known.file.path === sv.path && known.state !== 'unloaded') {
    if (sv.meta) registry.annotate(sv.model, sv.version, sv.meta);
    if (JSON.stringify(known.config) !== JSON.stringify(sv.config)) await registry.reconfigure(sv.model, sv.version, parseModelConfig(sv.model, sv.config));
    return;
  }
  await registry.deploy(sv.model, storedVersionFile(sv), parseModelConfig(sv.model, sv.config));
}

/** A stored version as the registry loads it (container versions: their description or input type). */
export function storedVersionFile(sv: StoredModelVersion): VersionFile {
  const meta = sv.meta ? { meta: sv.meta } : {};
  if (sv.kind !== 'container') return { version: sv.version, path: sv.path, kind: sv.kind, ...meta };
  if (sv.path) {
    const f = versionFileIn(sv.model, dirname(sv.path), sv.version);
    if (f) return { ...f, ...meta };
  }
  const inputType = parseInputType(String(sv.meta?.input_type ?? 'doubles')) ?? 'doubles';
  const name = typeof sv.meta?.container_name === 'string' ? sv.meta.container_name : undefined;
  return { ...containerVersionFile(sv.version, { input_type: inputType, ...(name ? { container_name: name } : {}) }), ...meta };
}

import { existsSync, mkdirSync, realpathSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { basename, join, sep } from 'node:path';
import { scrubMessage, SkiffError } from '../errors.js';
import { assertCodeUploadAllowed } from '../code-upload.js';
import { expectArray, expectBoolean, expectInteger, expectObject, expectString, optional, parseJsonBody, type JsonObject } from '../protocol/safe-json.js';
import { checkTritonTensors, fromTritonConfig } from '../config/triton-config.js';
import { MODEL_CONFIG_FIELDS } from '../config/model-config.js';
import { containerVersionFile, isValidModelName, versionFileIn, type VersionFile } from '../models/repository.js';
import { parseInputType, type InputType } from '../engine/container/rpc-codec.js';
import { configFor, type ModelRegistry, type ModelVersion } from '../models/registry.js';
import type { ControlStore } from '../store/types.js';
import type { AdminHandler, AdminRoute } from './server.js';

/**
 * Clipper's model management calls, set_num_replicas, and the OIP model repository extension.
 * Each change is applied to the registry first (a failed load changes nothing), then written
 * to the store; the call is acknowledged only after the store has made it durable.
 *
 * Model files must live inside the model repository or the upload directory: any path that
 * resolves (symlinks included) outside them is refused with PATH_NOT_ALLOWED.
 */
export interface ModelAdminOptions {
  repository?: string;
  uploadDir: string;
  /** Accept executable model code (JS modules) through the network (--allow-code-upload). */
  allowCodeUpload: boolean;
}

/** Whether the real path `real` lies inside `root` (after following the root's symlinks). */
function isInside(real: string, root: string): boolean {
  if (!existsSync(root)) return false;
  const r = realpathSync(root);
  return real === r || real.startsWith(r + sep);
}

/** Resolve `candidate` and check it lies inside one of `roots` (after following symlinks). */
export function confinedPath(candidate: string, roots: readonly string[]): string {
  let real: string;
  try {
    real = realpathSync(candidate);
  } catch {
    throw new SkiffError('BAD_REQUEST', `model_data_path '${candidate}' does not exist`);
  }
  for (const root of roots) if (isInside(real, root)) return real;
  throw new SkiffError('PATH_NOT_ALLOWED', `model_data_path '${candidate}' is outside the model repository and the upload directory`);
}

function versionFileFrom(model: string, path: string, version: number): VersionFile {
  if (statSync(path).isDirectory()) {
    const f = versionFileIn(model, path, version);
    if (!f) throw new SkiffError('BAD_REQUEST', `'${path}' holds no model.onnx, model.mjs or container.json`);
    return f;
  }
  const name = basename(path);
  if (name.endsWith('.onnx')) return { version, path, kind: 'onnx' };
  if (name.endsWith('.mjs') || name.endsWith('.js')) return { version, path, kind: 'js' };
  throw new SkiffError('BAD_REQUEST', `'${path}' is not an .onnx or .mjs model file`);
}

/** The name Clipper's management frontend stores and answers for an input type ("integers", not "ints"). */
export function clipperTypeName(t: InputType): string {
  return t === 'ints' ? 'integers' : t;
}

/** Clipper's name for the input type of a version: recorded at add_model, or from its first input. */
function clipperInputType(v: ModelVersion): string {
  const recorded = v.file.meta?.input_type ?? v.file.container?.input_type;
  if (typeof recorded === 'string') {
    const t = parseInputType(recorded);
    return t ? clipperTypeName(t) : recorded;
  }
  const dt = v.spec?.inputs[0]?.datatype;
  return dt === 'FP32' ? 'floats' : dt === 'FP64' ? 'doubles' : dt === 'INT32' ? 'integers' : dt === 'UINT8' ? 'bytes' : dt === 'BYTES' ? 'strings' : (dt ?? '').toLowerCase();
}

/**
 * A version in Clipper's get_model shape (model_name, model_version as a string, input_type,
 * labels, container_name, model_data_path, is_current_version), plus what Skiff knows (state,
 * kind, replicas, inputs, outputs, batch cap, a failed load's reason).
 */
export function describeVersion(v: ModelVersion, current: number | undefined, replicas: number): Record<string, unknown> {
  const meta = v.file.meta ?? {};
  const d: Record<string, unknown> = {
    model_name: v.model,
    model_version: String(v.version),
    is_current_version: v.version === current,
    input_type: clipperInputType(v),
    labels: meta.labels ?? [],
    // Clipper names the image containers run; a model Skiff runs in its own threads has none.
    container_name: meta.container_name ?? v.file.container?.container_name ?? (v.file.kind === 'container' ? '' : 'NO_CONTAINER'),
    model_data_path: v.file.kind === 'container' && !v.file.path ? 'DEPRECATED' : scrubMessage(v.file.path),
    state: v.state,
    kind: v.file.kind,
    replicas,
  };
  if (meta.batch_size !== undefined) d.batch_size = meta.batch_size;
  if (v.reason) d.reason = scrubMessage(v.reason, true);
  if (v.spec) {
    d.inputs = v.spec.inputs;
    d.outputs = v.spec.outputs;
  }
  if (v.executor) d.batch_cap = v.executor.batchCap;
  return d;
}

export function modelCalls(registry: ModelRegistry, store: ControlStore, opts: ModelAdminOptions): Record<string, AdminHandler> {
  const roots = [opts.repository, opts.uploadDir].filter((x): x is string => !!x);
  const name = (body: JsonObject): string => {
    const n = expectString(body.model_name, 'model_name');
    if (!isValidModelName(n)) throw new SkiffError('BAD_REQUEST', `'${n}' is not a valid model name`);
    return n;
  };
  /** Clipper sends versions as strings: numeric ones are accepted; Skiff's versions are positive integers. */
  const version = (body: JsonObject): number => {
    const raw = body.model_version;
    if (typeof raw === 'string' && /^[1-9][0-9]{0,8}$/.test(raw)) return Number(raw);
    if (typeof raw === 'number' && Number.isInteger(raw) && raw >= 1 && raw <= 999_999_999) return raw;
    throw new SkiffError('BAD_REQUEST', `model_version must be a positive integer (Skiff numbers versions; "1" is accepted as 1), got ${JSON.stringify(raw)?.slice(0, 40)}`);
  };

  /** Write uploaded bytes atomically into the upload directory. */
  const writeUpload = (model: string, v: number, kind: 'onnx' | 'js', bytes: Buffer): string => {
    const dir = join(opts.uploadDir, model, String(v));
    mkdirSync(dir, { recursive: true });
    const file = join(dir, kind === 'onnx' ? 'model.onnx' : 'model.mjs');
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, bytes);
    renameSync(tmp, file);
    return file;
  };

  return {
    add_model: async (body) => {
      const model = name(body);
      const v = version(body);
      const kind = (optional(body.model_kind, expectString, 'model_kind') ?? 'onnx') as 'onnx' | 'js';
      if (kind !== 'onnx' && kind !== 'js') throw new SkiffError('BAD_REQUEST', "model_kind must be 'onnx' or 'js'");
      let file: VersionFile | undefined;
      const givenPath = optional(body.model_data_path, expectString, 'model_data_path');
      if (typeof body.model_data_base64 === 'string') {
        if (kind === 'js') assertCodeUploadAllowed(opts, 'an uploaded JS model');
        const bytes = Buffer.from(body.model_data_base64, 'base64');
        if (bytes.length === 0) throw new SkiffError('BAD_REQUEST', 'model_data_base64 is empty');
        file = { version: v, kind, path: writeUpload(model, v, kind, bytes) };
      } else if (givenPath !== undefined && givenPath !== 'DEPRECATED') {
        file = versionFileFrom(model, confinedPath(givenPath, roots), v);
        // The upload directory holds what came through the network: code there (a JS module an
        // earlier, opted-in server accepted) is still code from the network.
        if (file.kind !== 'onnx' && isInside(file.path, opts.uploadDir)) assertCodeUploadAllowed(opts, `the ${file.kind} model in the upload directory`);
      } else {
        // Clipper's register_model: the version in the repository if it is there, else a version
        // served by whatever containers connect for (name, version).
        const dir = opts.repository ? join(opts.repository, model, String(v)) : undefined;
        if (dir && existsSync(dir)) file = versionFileIn(model, dir, v);
      }
      // What Clipper's register_model sends about the version, validated as Clipper's management
      // frontend does, recorded (durably, in the stored version's meta) for get_model.
      const meta: Record<string, unknown> = {};
      if (body.container_name !== undefined) meta.container_name = expectString(body.container_name, 'container_name');
      let inputType: InputType | undefined;
      if (body.input_type !== undefined) {
        inputType = parseInputType(expectString(body.input_type, 'input_type'));
        if (!inputType) throw new SkiffError('BAD_REQUEST', 'input_type must be one of integers (ints), floats, doubles, bytes, strings');
        meta.input_type = clipperTypeName(inputType);
      }
      if (body.labels !== undefined) meta.labels = expectArray(body.labels, 'labels').map((x, i) => expectString(x, `labels[${i}]`));
      const raw = body.config !== undefined ? body.config : undefined;
      let config = configFor(registry, model, raw);
      // Clipper's batch_size: a positive cap on the batch, or -1 for adaptive batching.
      const batch = optional(body.batch_size, (x, w) => expectInteger(x, w, -1, 65536), 'batch_size');
      if (batch === 0) throw new SkiffError('BAD_REQUEST', 'batch_size must be positive, or -1 for adaptive batching');
      if (batch !== undefined) meta.batch_size = batch;
      if (batch !== undefined && batch > 0) config = configFor(registry, model, { ...(config as object), max_batch_size: batch });
      if (!file) {
        inputType ??= 'doubles';
        meta.input_type = clipperTypeName(inputType);
        const f = { ...containerVersionFile(v, { input_type: inputType, container_name: meta.container_name as string | undefined }), meta };
        await registry.deploy(model, f, config);
        store.putModelVersion({ model, version: v, path: '', kind: 'container', config: { ...config }, meta });
        store.setCurrentVersion(model, v);
        store.setRemoved(model, v, null);
        store.setRemoved(model, 0, null);
        return { success: true, model_name: model, model_version: v };
      }
      if (Object.keys(meta).length) file = { ...file, meta };
      const known = registry.list().find((m) => m.name === model)?.versions.find((x) => x.version === v);
      if (known?.state === 'ready' && known.file.path === file.path) {
        // Already serving that very file (loaded from the repository at start): make it current and
        // record what add_model says about it (Clipper's register_model of a repository version),
        // running it with the config add_model asks for (Clipper's batch_size) when that differs.
        if (JSON.stringify(known.config) !== JSON.stringify(config)) await registry.reconfigure(model, v, config);
        registry.annotate(model, v, file.meta ?? {});
        await registry.setCurrent(model, v);
      } else await registry.deploy(model, file, config);
      store.putModelVersion({ model, version: v, path: file.path, kind: file.kind, config: { ...config }, ...(Object.keys(meta).length ? { meta } : {}) });
      store.setCurrentVersion(model, v);
      store.setRemoved(model, v, null);
      store.setRemoved(model, 0, null);
      return { success: true, model_name: model, model_version: v };
    },
    set_model_version: async (body) => {
      const model = name(body);
      const v = version(body);
      await registry.setCurrent(model, v);
      store.setCurrentVersion(model, v);
      return { success: true, model_name: model, model_version: v };
    },
    delete_versioned_model: async (body) => {
      const model = name(body);
      const v = version(body);
      const wasPinned = registry.pinnedVersion(model) === v;
      await registry.deleteVersion(model, v);
      store.deleteModelVersion(model, v);
      store.setRemoved(model, v, 'deleted');
      if (wasPinned) store.setCurrentVersion(model, null);
      return { success: true };
    },
    get_all_models: (body) => {
      const verbose = optional(body.verbose, expectBoolean, 'verbose') ?? false;
      const out: unknown[] = [];
      for (const m of registry.list()) {
        for (const v of m.versions) out.push(verbose ? describeVersion(v, m.current, m.replicas) : `${m.name}:${v.version}`);
      }
      return out;
    },
    // Clipper answers {} for a model or version it does not know (its client then returns None).
    // Without a version: the current one, or else the newest (e.g. the only one, which failed).
    get_model: (body) => {
      const model = name(body);
      const m = registry.list().find((x) => x.name === model);
      if (!m) return {};
      const v = body.model_version === undefined
        ? m.versions.find((x) => x.version === m.current) ?? m.versions[m.versions.length - 1]
        : m.versions.find((x) => x.version === version(body));
      return v ? describeVersion(v, m.current, m.replicas) : {};
    },
    // Clipper's get_all_model_replicas: every replica that can take batches now (connected
    // containers, worker threads), as "name:version:replica" or Clipper's container records.
    get_all_containers: (body) => {
      const verbose = optional(body.verbose, expectBoolean, 'verbose') ?? false;
      return replicaRecords(registry).map((r) => (verbose ? r : `${r.model_name}:${r.model_version}:${r.model_replica_id}`));
    },
    get_container: (body) => {
      const model = name(body);
      const v = String(version(body));
      const id = expectInteger(body.replica_id, 'replica_id', 0, 2 ** 31 - 1);
      return replicaRecords(registry).find((r) => r.model_name === model && r.model_version === v && r.model_replica_id === id) ?? {};
    },
    set_num_replicas: async (body) => {
      const model = name(body);
      const n = expectInteger(body.num_replicas, 'num_replicas', 1, 64);
      await registry.setReplicas(model, n);
      store.setReplicas(model, n);
      return { success: true, model_name: model, num_replicas: n };
    },
  };
}

/** One record per replica in Clipper's container shape, plus what Skiff knows of it. */
export function replicaRecords(registry: ModelRegistry): { model_id: string; model_name: string; model_version: string; model_replica_id: number; input_type: string; kind: string; batches: number; rows: number; max_batch: number; inflight: number }[] {
  const out = [];
  for (const m of registry.list()) {
    for (const v of m.versions) {
      if (!v.executor) continue;
      const inputType = v.file.container?.input_type ?? v.spec?.inputs[0]?.datatype ?? '';
      for (const r of v.executor.replicaStats()) {
        out.push({
          model_id: `${m.name}:${v.version}`, model_name: m.name, model_version: String(v.version), model_replica_id: Number(r.id),
          input_type: inputType, kind: v.file.kind, batches: r.batches, rows: r.rows, max_batch: r.maxRows, inflight: r.inflight,
        });
      }
    }
  }
  return out;
}

/** The OIP model repository extension (on the admin listener). */
export function repositoryRoutes(registry: ModelRegistry, store: Pick<ControlStore, 'setRemoved' | 'removed'>, opts: ModelAdminOptions): AdminRoute[] {
  return [
    {
      pattern: '/v2/repository/index',
      params: 0,
      handler: (body) => {
        const readyOnly = optional(body.ready, expectBoolean, 'ready') ?? false;
        const out: unknown[] = [];
        for (const m of registry.list()) {
          for (const v of m.versions) {
            if (readyOnly && v.state !== 'ready') continue;
            const e: Record<string, unknown> = { name: m.name, version: String(v.version), state: v.state.toUpperCase() };
            if (v.reason) e.reason = scrubMessage(v.reason, true);
            out.push(e);
          }
        }
        return out;
      },
    },
    {
      pattern: '/v2/repository/models/:model/load',
      params: 1,
      handler: async (body, [model]) => {
        if (!opts.repository) throw new SkiffError('BAD_REQUEST', 'the server has no model repository');
        const params = optional(body.parameters, expectObject, 'parameters');
        if (params && Object.keys(params).some((k) => k.startsWith('file:'))) {
          throw new SkiffError('NOT_SUPPORTED', 'model files in a load request are not supported: put the model in the repository');
        }
        let override: Record<string, unknown> | undefined;
        if (params?.config !== undefined) {
          // tritonclient sends the config as a JSON string; an object is accepted too.
          const raw = typeof params.config === 'string' ? parseJsonText(params.config, 'parameters.config') : params.config;
          override = fromTritonConfig(model!, raw, MODEL_CONFIG_FIELDS);
          // Tensors the config lists must be the ones the model serves (known once any version loaded).
          const served = registry.list().find((m) => m.name === model)?.versions.findLast((x) => x.spec)?.spec;
          if (served) checkTritonTensors(model!, raw as Record<string, unknown>, served);
        }
        if (!isValidModelName(model!)) throw new SkiffError('BAD_REQUEST', `'${model}' is not a valid model name`);
        if (!existsSync(join(opts.repository, model!))) throw new SkiffError('MODEL_NOT_FOUND', `model '${model}' is not in the repository`);
        // An explicit load brings the model back as the repository has it: earlier removals are forgotten.
        for (const r of store.removed()) if (r.model === model) store.setRemoved(model!, r.version, null);
        const report = await registry.reloadFromRepository(opts.repository, model!, override);
        if (report.failed.length) throw new SkiffError('MODEL_LOAD_FAILED', report.failed.map((f) => f.error.message).join('; '));
        return { success: true, loaded: report.loaded };
      },
    },
    {
      pattern: '/v2/repository/models/:model/unload',
      params: 1,
      handler: async (_body, [model]) => {
        await registry.unloadModel(model!);
        // Durable before the answer: the model must not come back from the repository at the next start.
        store.setRemoved(model!, 0, 'unloaded');
        return { success: true };
      },
    },
  ];
}


function parseJsonText(text: string, what: string): unknown {
  try {
    return parseJsonBody(new TextEncoder().encode(text));
  } catch {
    throw new SkiffError('CONFIG_INVALID', `${what} is not valid JSON`);
  }
}

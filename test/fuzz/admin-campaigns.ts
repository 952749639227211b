/**
 * Fuzz campaigns for the admin API's body handling: `parseAdminBody` followed by the handler's
 * own field validation, exactly as the admin listener runs them, for every application call
 * (`applicationCalls`: add_app -> parseApp, links, selection state ...), every model call
 * (`modelCalls`: names, versions, paths, configs, replicas) and the repository index.
 *
 * The application calls run against a real AppRegistry over an in-memory ControlStore; the model
 * calls against `FakeModels`, an in-memory stand-in with the registry's coded errors (no workers).
 * Model file paths point into a temporary repository (or escape it). State carries over between
 * inputs, as on a server that receives them one after another; app names come mostly from a
 * small set so adds, links and deletes meet existing apps.
 *  - `adminStructured`: each call's own fields, each valid or typed junk and sometimes left out,
 *    now and then with junk or prototype-polluting keys;
 *  - `adminMutated`: byte and JSON-level mutations of valid bodies for each call.
 * Refusals must carry a code the admin API documents for a bad body or a missing target.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { SkiffError, type ErrorCode } from '../../src/errors.js';
import { applicationCalls, parseAdminBody, type AdminHandler } from '../../src/admin/server.js';
import { modelCalls, repositoryRoutes } from '../../src/admin/models.js';
import type { ModelConfig } from '../../src/config/model-config.js';
import type { ModelRegistry, ModelVersion } from '../../src/models/registry.js';
import type { VersionFile } from '../../src/models/repository.js';
import { AppRegistry } from '../../src/selection/apps.js';
import { MemoryControlStore } from '../../src/store/memory-store.js';
import { DEFAULT_BOUNDS, Tally, fcOptions } from './harness.js';
import { applyByteOps, applyJsonOps, byteMutations, edgeValue, HOSTILE_KEYS, jsonMutations } from './mutate.js';

const ADMIN_CODES: readonly ErrorCode[] = [
  'BAD_REQUEST', 'APP_NOT_FOUND', 'MODEL_NOT_FOUND', 'VERSION_NOT_FOUND', 'PATH_NOT_ALLOWED', 'CONFIG_INVALID', 'CODE_UPLOAD_FORBIDDEN',
];
/** Admin replies may list everything known: bound them by the state, not by the request size. */
const ADMIN_BOUNDS = { ...DEFAULT_BOUNDS, outputSlack: 1 << 20 };
const utf8 = new TextEncoder();

type RegistryUse = Pick<ModelRegistry, 'deploy' | 'setCurrent' | 'pinnedVersion' | 'deleteVersion' | 'list' | 'setReplicas' | 'configOf' | 'annotate' | 'reconfigure'>;

/** The model registry calls the admin handlers make, in memory, with the real registry's error codes. */
class FakeModels implements RegistryUse {
  private readonly models = new Map<string, { config: ModelConfig; versions: Map<number, ModelVersion>; pinned?: number; replicas: number }>();

  async deploy(name: string, file: VersionFile, config: ModelConfig): Promise<ModelVersion> {
    let rec = this.models.get(name);
    if (!rec) {
      rec = { config, versions: new Map(), replicas: 1 };
      this.models.set(name, rec);
    }
    const v: ModelVersion = { model: name, version: file.version, file, config, state: 'ready' };
    rec.versions.set(file.version, v);
    rec.pinned = file.version;
    return v;
  }

  annotate(name: string, version: number, meta: Readonly<Record<string, unknown>>): void {
    const v = this.models.get(name)?.versions.get(version);
    if (v) v.file = { ...v.file, meta };
  }

  async setCurrent(name: string, version: number): Promise<void> {
    const rec = this.models.get(name);
    if (!rec) throw new SkiffError('MODEL_NOT_FOUND', `model '${name}' does not exist`);
    if (!rec.versions.has(version)) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
    rec.pinned = version;
  }

  pinnedVersion(name: string): number | undefined {
    return this.models.get(name)?.pinned;
  }

  async deleteVersion(name: string, version: number): Promise<void> {
    const rec = this.models.get(name);
    if (!rec || !rec.versions.has(version)) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
    rec.versions.delete(version);
    if (rec.pinned === version) delete rec.pinned;
    if (rec.versions.size === 0) this.models.delete(name);
  }

  list(): ReturnType<ModelRegistry['list']> {
    return [...this.models.entries()].map(([name, rec]) => ({
      name, current: rec.pinned, replicas: rec.replicas, versions: [...rec.versions.values()],
    }));
  }

  async setReplicas(name: string, replicas: number): Promise<void> {
    const rec = this.models.get(name);
    if (!rec) throw new SkiffError('MODEL_NOT_FOUND', `model '${name}' does not exist`);
    rec.replicas = replicas;
  }

  configOf(name: string): ModelConfig | undefined {
    return this.models.get(name)?.config;
  }

  async reconfigure(name: string, version: number, config: ModelConfig): Promise<void> {
    const v = this.models.get(name)?.versions.get(version);
    if (!v) throw new SkiffError('VERSION_NOT_FOUND', `model '${name}' has no version ${version}`);
    v.config = config;
  }
}

/** A fresh admin surface over a temporary repository holding model `m1` version 1. */
function adminSurface(): { calls: Record<string, AdminHandler>; repo: string; cleanup(): void } {
  const repo = mkdtempSync(join(tmpdir(), 'skiff-fuzz-admin-'));
  mkdirSync(join(repo, 'm1', '1'), { recursive: true });
  writeFileSync(join(repo, 'm1', '1', 'model.onnx'), 'not really onnx: the fake registry never loads it');
  const store = new MemoryControlStore();
  const apps = new AppRegistry(store);
  const models = new FakeModels() as unknown as ModelRegistry;
  const opts = { repository: repo, uploadDir: join(repo, '.uploads'), allowCodeUpload: false };
  const index = repositoryRoutes(models, store, opts).find((r) => r.pattern === '/v2/repository/index')!;
  const calls = { ...applicationCalls(apps, store), ...modelCalls(models, store, opts), repository_index: index.handler };
  return { calls, repo, cleanup: () => rmSync(repo, { recursive: true, force: true }) };
}

const CALLS = [
  'add_app', 'delete_app', 'add_model_links', 'delete_model_links', 'get_all_applications', 'get_application',
  'get_linked_models', 'get_selection_state', 'add_model', 'set_model_version', 'delete_versioned_model',
  'get_all_models', 'get_model', 'set_num_replicas', 'repository_index',
] as const;

function runCall(t: Tally, calls: Record<string, AdminHandler>, call: string, body: Uint8Array): Promise<unknown> {
  return t.checkAsync(body, () => calls[call]!(parseAdminBody(body), []), (r) => ({ outputBytes: (JSON.stringify(r) ?? '').length }));
}

// ---------------------------------------------------------------------------------------------
// bodies

const appName = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('a1', 'a2', 'a3', 'app.x-1') }, { weight: 1, arbitrary: fc.constantFrom('', 'bad name', '-a', 'é') }, { weight: 1, arbitrary: edgeValue });
const modelName = fc.oneof({ weight: 6, arbitrary: fc.constantFrom('m1', 'm2', 'm1:1', 'm2:3') }, { weight: 1, arbitrary: fc.constantFrom('', 'm1:0', 'bad model', '../m1') }, { weight: 1, arbitrary: edgeValue });
const orJunk = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.oneof({ weight: 8, arbitrary: a }, { weight: 1, arbitrary: edgeValue });

/** Every body field any call reads, each valid (mostly) or typed junk. */
function fieldsArb(repo: string): fc.Arbitrary<Record<string, unknown>> {
  return fc.record({
    name: appName, app_name: appName,
    model_names: orJunk(fc.array(modelName, { maxLength: 3 })),
    candidate_model_names: orJunk(fc.array(modelName, { maxLength: 3 })),
    models: orJunk(fc.array(modelName, { maxLength: 3 })),
    latency_slo_micros: orJunk(fc.integer({ min: 50, max: 700_000_000 })),
    default_output: orJunk(fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.string({ maxLength: 4 }))),
    policy: orJunk(fc.constantFrom('single', 'exp3', 'exp4', 'epsilon_greedy', 'ucb1', 'best')),
    policy_params: orJunk(fc.oneof(
      fc.constantFrom({}, { eta: 0.2 }, { epsilon: 0.05 }, { gamma: 0.1, eta: 0.5 }, { maxLogRatio: 6 }),
      fc.dictionary(fc.constantFrom('eta', 'epsilon', 'gamma', 'maxLogRatio', 'x'), fc.oneof(fc.double(), fc.integer({ min: -1, max: 2 })), { maxKeys: 2 }),
    )),
    input_type: orJunk(fc.constantFrom('ints', 'floats', 'doubles', 'bytes', 'strings')),
    input_shape: orJunk(fc.array(fc.integer({ min: 1, max: 800 }), { maxLength: 3 })),
    confidence_threshold: orJunk(fc.double({ min: 0, max: 1, noNaN: true })),
    straggler_mitigation: orJunk(fc.boolean()),
    seed: orJunk(fc.integer()),
    verbose: orJunk(fc.boolean()),
    uid: orJunk(fc.oneof(fc.string({ maxLength: 4 }), fc.nat({ max: 3 }))),
    model_name: modelName,
    model_version: orJunk(fc.oneof(fc.integer({ min: 0, max: 3 }), fc.constantFrom('1', '2', '01', '1e3', '999999999', '1000000000'))),
    model_kind: orJunk(fc.constantFrom('onnx', 'js', 'tf')),
    model_data_path: orJunk(fc.constantFrom(join(repo, 'm1', '1'), join(repo, 'm1', '1', 'model.onnx'), join(repo, 'm1'), join(repo, '..'), '/etc/passwd', `${repo}/m1/../../`, 'relative/x', '', 'a\u0000b')),
    model_data_base64: orJunk(fc.constantFrom('', 'AAEC', '!!!')),
    config: orJunk(fc.record({ max_batch_size: orJunk(fc.integer({ min: -1, max: 5000 })), replicas: orJunk(fc.integer({ min: 0, max: 70 })), ring_bytes: orJunk(fc.constantFrom(1024, 1000, 65536)) }, { requiredKeys: [] })),
    batch_size: orJunk(fc.integer({ min: -2, max: 70000 })),
    num_replicas: orJunk(fc.integer({ min: 0, max: 70 })),
    ready: orJunk(fc.boolean()),
  });
}

/** The fields each call reads (add_app: the application schema's). */
const CALL_FIELDS: Readonly<Record<(typeof CALLS)[number], readonly string[]>> = {
  add_app: ['name', 'input_type', 'input_shape', 'latency_slo_micros', 'default_output', 'policy', 'policy_params', 'candidate_model_names', 'models', 'confidence_threshold', 'straggler_mitigation', 'seed'],
  delete_app: ['name'],
  add_model_links: ['app_name', 'model_names'],
  delete_model_links: ['app_name', 'model_names'],
  get_all_applications: ['verbose'],
  get_application: ['name'],
  get_linked_models: ['app_name'],
  get_selection_state: ['app_name', 'uid'],
  add_model: ['model_name', 'model_version', 'model_kind', 'model_data_path', 'model_data_base64', 'config', 'batch_size'],
  set_model_version: ['model_name', 'model_version'],
  delete_versioned_model: ['model_name', 'model_version'],
  get_all_models: ['verbose'],
  get_model: ['model_name', 'model_version'],
  set_num_replicas: ['model_name', 'num_replicas'],
  repository_index: ['ready'],
};

export async function adminStructured(runs: number, seed: number): Promise<Tally> {
  const t = new Tally('admin.structured', seed, ADMIN_CODES, ADMIN_BOUNDS);
  const s = adminSurface();
  try {
    // Keys no call reads (other calls' fields included), or prototype-polluting ones.
    const junk = fc.dictionary(fc.oneof(fc.constantFrom(...HOSTILE_KEYS, 'model_name', 'uid', 'verbose'), fc.string({ maxLength: 6 })), edgeValue, { minKeys: 1, maxKeys: 2 });
    const arb = fc.record({
      // add_app four times as often as the rest, so the other calls meet existing apps.
      call: fc.constantFrom(...CALLS, 'add_app', 'add_app', 'add_app'),
      fields: fieldsArb(s.repo),
      // Field i of the call is left out when keep[i] is 0 (an eighth of the time; unbiased, as
      // fast-check otherwise favours the extremes and would drop all or none).
      keep: fc.noBias(fc.array(fc.nat({ max: 7 }), { minLength: 12, maxLength: 12 })),
      extra: fc.oneof({ weight: 6, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: junk }),
    });
    await fc.assert(fc.asyncProperty(arb, async ({ call, fields, keep, extra }) => {
      const doc: Record<string, unknown> = {};
      CALL_FIELDS[call].forEach((f, i) => {
        if (keep[i] !== 0) doc[f] = fields[f];
      });
      for (const [k, v] of Object.entries(extra ?? {})) Object.defineProperty(doc, k, { value: v, enumerable: true, writable: true, configurable: true });
      await runCall(t, s.calls, call, utf8.encode(JSON.stringify(doc)));
    }), fcOptions(runs, seed));
  } finally {
    s.cleanup();
  }
  return t.finish();
}

const VALID_BODIES: Readonly<Record<(typeof CALLS)[number], unknown>> = {
  add_app: { name: 'a1', input_type: 'floats', latency_slo_micros: 100000, default_output: -1, candidate_model_names: ['m1'], policy: 'exp3' },
  delete_app: { name: 'a1' },
  add_model_links: { app_name: 'a1', model_names: ['m2', 'm1:1'] },
  delete_model_links: { app_name: 'a1', model_names: ['m1'] },
  get_all_applications: { verbose: true },
  get_application: { name: 'a2' },
  get_linked_models: { app_name: 'a1' },
  get_selection_state: { app_name: 'a1', uid: 'u1' },
  add_model: { model_name: 'm1', model_version: 1, model_data_path: 'REPO/m1/1', batch_size: 8, config: { replicas: 1 } },
  set_model_version: { model_name: 'm1', model_version: '1' },
  delete_versioned_model: { model_name: 'm2', model_version: 2 },
  get_all_models: { verbose: false },
  get_model: { model_name: 'm1' },
  set_num_replicas: { model_name: 'm1', num_replicas: 2 },
  repository_index: { ready: true },
};

export async function adminMutated(runs: number, seed: number): Promise<Tally> {
  const t = new Tally('admin.mutated', seed, ADMIN_CODES, ADMIN_BOUNDS);
  const s = adminSurface();
  try {
    const docs = CALLS.map((c) => JSON.parse(JSON.stringify(VALID_BODIES[c]).replace('REPO', s.repo)) as unknown);
    const texts = docs.map((d) => utf8.encode(JSON.stringify(d)));
    const arb = fc.oneof(
      fc.record({ kind: fc.constant('bytes' as const), ops: byteMutations(4) }),
      fc.record({ kind: fc.constant('json' as const), ops: jsonMutations(3) }),
      fc.record({ kind: fc.constant('none' as const) }),
    );
    await fc.assert(fc.asyncProperty(fc.nat({ max: CALLS.length - 1 }), arb, async (i, c) => {
      const body = c.kind === 'bytes' ? applyByteOps(texts[i]!, c.ops, texts) : c.kind === 'json' ? utf8.encode(applyJsonOps(docs[i], c.ops)) : texts[i]!;
      await runCall(t, s.calls, CALLS[i]!, body);
    }), fcOptions(runs, seed));
  } finally {
    s.cleanup();
  }
  return t.finish();
}

import { SkiffError } from '../errors.js';
import type { TensorSpec } from '../tensor/tensor.js';
import type { ModelConfig } from './model-config.js';

/**
 * Triton's model configuration in its JSON form (the model_configuration extension, and the
 * config override of a repository load), both ways:
 *  - `toTritonConfig`: a served version as Triton describes a model — name, platform/backend,
 *    max_batch_size (0 when the model does not batch), input/output with data_type TYPE_* and dims
 *    WITHOUT the batch dim when it batches, dynamic_batching, instance_group, version_policy;
 *  - `fromTritonConfig`: the fields of a Triton (or Skiff) config JSON that Skiff can apply, as
 *    Skiff model-config fields; anything else is refused (CONFIG_INVALID), never ignored.
 * Pure.
 */
export interface ServedModel {
  name: string;
  /** onnx | js | container */
  kind: string;
  inputs: readonly TensorSpec[];
  outputs: readonly TensorSpec[];
  batchable: boolean;
  config: ModelConfig;
  /** Replicas running (instance_group count). */
  replicas: number;
}

const PLATFORM: Record<string, { platform: string; backend: string }> = {
  onnx: { platform: 'onnxruntime_onnx', backend: 'onnxruntime' },
  js: { platform: 'skiff_js', backend: 'skiff_js' },
  container: { platform: 'clipper_container', backend: 'clipper_container' },
};

/** Triton's TYPE_* name of an OIP datatype (BYTES is TYPE_STRING). */
export function tritonType(dt: string): string {
  return dt === 'BYTES' ? 'TYPE_STRING' : `TYPE_${dt}`;
}

export function toTritonConfig(m: ServedModel): Record<string, unknown> {
  const p = PLATFORM[m.kind] ?? { platform: m.kind, backend: m.kind };
  const io = (t: TensorSpec) => ({ name: t.name, data_type: tritonType(t.datatype), dims: m.batchable ? t.shape.slice(1) : t.shape });
  const policy = m.config.version_policy;
  return {
    name: m.name,
    platform: p.platform,
    backend: p.backend,
    version_policy: 'all' in policy ? { all: {} } : 'latest' in policy ? { latest: { num_versions: policy.latest } } : { specific: { versions: policy.specific } },
    max_batch_size: m.batchable ? m.config.max_batch_size : 0,
    input: m.inputs.map(io),
    output: m.outputs.map(io),
    ...(m.batchable ? { dynamic_batching: { max_queue_delay_microseconds: m.config.batch_wait_timeout_us } } : {}),
    instance_group: [{ name: m.name, kind: 'KIND_CPU', count: m.replicas }],
    parameters: {
      latency_objective_us: { string_value: String(m.config.latency_objective_us) },
      pipeline_depth: { string_value: String(m.config.pipeline_depth) },
    },
  };
}

/**
 * What a Triton config may hold that asks for nothing: fields that only describe the model file
 * or Triton's own bookkeeping, at the values Triton's get_model_config shows for a plain CPU model
 * (so a config copied from a Triton server, or from Skiff's own config route, loads unchanged).
 * A value other than these is a request Skiff cannot honour, and is refused.
 */
const INERT: Readonly<Record<string, unknown>> = {
  runtime: '',
  cc_model_filenames: {},
  metric_tags: {},
  model_warmup: [],
  batch_input: [],
  batch_output: [],
  optimization: {
    priority: 'PRIORITY_DEFAULT',
    input_pinned_memory: { enable: true },
    output_pinned_memory: { enable: true },
    gather_kernel_buffer_threshold: 0,
    eager_batching: false,
  },
  model_transaction_policy: { decoupled: false },
};
/** Per-tensor fields of input/output at their inert values (beyond name, data_type, dims). */
const INERT_TENSOR: Readonly<Record<string, unknown>> = {
  format: 'FORMAT_NONE', is_shape_tensor: false, allow_ragged_batch: false, optional: false, label_filename: '',
};
/** Per-group fields of instance_group at their inert values (beyond name, kind, count). */
const INERT_GROUP: Readonly<Record<string, unknown>> = {
  gpus: [], secondary_devices: [], profile: [], passive: false, host_policy: '',
};
/** dynamic_batching fields at their inert values (beyond max_queue_delay_microseconds). */
const INERT_DYNAMIC: Readonly<Record<string, unknown>> = {
  preferred_batch_size: [], preserve_ordering: false, priority_levels: 0, default_priority_level: 0,
  priority_queue_policy: {}, default_queue_policy: {},
};

/** Whether `v` asks for nothing beyond `inert`: equal to it, or a sub-object of it. */
function isInert(v: unknown, inert: unknown): boolean {
  if (inert !== null && typeof inert === 'object' && !Array.isArray(inert)) {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return false;
    return Object.entries(v as Record<string, unknown>).every(([k, x]) => Object.hasOwn(inert, k) && isInert(x, (inert as Record<string, unknown>)[k]));
  }
  if (Array.isArray(inert)) return Array.isArray(v) && v.length === 0 && inert.length === 0;
  // Triton's JSON writes 64-bit integers as decimal strings.
  return v === inert || (typeof inert === 'number' && v === String(inert));
}

function refuse(model: string, what: string): never {
  throw new SkiffError('CONFIG_INVALID', `model '${model}': ${what}`);
}

/** Triton's JSON writes 64-bit integers as numbers or decimal strings; either is accepted. */
function integerOf(model: string, v: unknown, what: string, min = 0): number {
  const n = typeof v === 'string' && /^-?[0-9]{1,15}$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min) refuse(model, `${what} must be an integer >= ${min}`);
  return n;
}

function checkInertFields(model: string, obj: Record<string, unknown>, known: ReadonlySet<string>, inert: Readonly<Record<string, unknown>>, where: string): void {
  for (const [k, v] of Object.entries(obj)) {
    if (known.has(k)) continue;
    if (!Object.hasOwn(inert, k)) refuse(model, `${where}${k.slice(0, 64)} is not supported by Skiff`);
    if (!isInert(v, inert[k])) refuse(model, `${where}${k.slice(0, 64)} ${JSON.stringify(v).slice(0, 60)} is not supported by Skiff (only its default is)`);
  }
}

/**
 * The Skiff config fields a config override sets. `raw` is a Triton model config (JSON object,
 * as tritonclient's load_model(config=...) sends it, or as GET .../config answers) or Skiff's own
 * config.json fields. Triton's fields are mapped — max_batch_size, dynamic_batching
 * .max_queue_delay_microseconds, instance_group[0].count (KIND_CPU/KIND_AUTO), version_policy,
 * parameters.<Skiff config field>.string_value — Skiff's pass as they are (the schema validates
 * them at load). Fields that only describe the model are accepted: `name` must be the model's,
 * input/output are checked against the served tensors by checkTritonTensors, the rest must hold
 * Triton's defaults. Anything else is refused with CONFIG_INVALID, never silently ignored.
 */
export function fromTritonConfig(model: string, raw: unknown, skiffFields: ReadonlySet<string>): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) refuse(model, 'the config override must be a JSON object');
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    // Triton's names first: max_batch_size and version_policy are Skiff config fields too, with
    // another meaning of 0 and another shape.
    switch (k) {
      case 'max_batch_size':
        // 0: Triton's "does not batch"; Skiff then runs one row per batch.
        out.max_batch_size = Math.max(1, integerOf(model, v, 'max_batch_size'));
        break;
      case 'dynamic_batching': {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) refuse(model, 'dynamic_batching must be an object');
        const d = v as Record<string, unknown>;
        checkInertFields(model, d, new Set(['max_queue_delay_microseconds']), INERT_DYNAMIC, 'dynamic_batching.');
        if (d.max_queue_delay_microseconds !== undefined) out.batch_wait_timeout_us = integerOf(model, d.max_queue_delay_microseconds, 'dynamic_batching.max_queue_delay_microseconds');
        break;
      }
      case 'instance_group': {
        if (!Array.isArray(v) || v.length !== 1 || v[0] === null || typeof v[0] !== 'object') refuse(model, 'instance_group must hold one group (Skiff runs one pool per version)');
        const g = v[0] as Record<string, unknown>;
        checkInertFields(model, g, new Set(['name', 'kind', 'count']), INERT_GROUP, 'instance_group[0].');
        if (g.kind !== undefined && g.kind !== 'KIND_CPU' && g.kind !== 'KIND_AUTO') refuse(model, `instance_group kind ${String(g.kind).slice(0, 32)} is not supported (CPU only)`);
        if (g.count !== undefined) out.replicas = integerOf(model, g.count, 'instance_group[0].count', 1);
        break;
      }
      case 'version_policy': {
        const p = v as { all?: unknown; latest?: { num_versions?: unknown }; specific?: { versions?: unknown } } | null;
        const tritonForm = (x: unknown): boolean => x !== null && typeof x === 'object' && !Array.isArray(x);
        if (!(tritonForm(p?.all) || tritonForm(p?.latest) || tritonForm(p?.specific))) {
          out.version_policy = v; // Skiff's form ({"latest": 2}, {"all": true}, ...): the schema checks it
          break;
        }
        if (p?.all !== undefined) out.version_policy = { all: true };
        else if (p?.latest !== undefined) out.version_policy = { latest: integerOf(model, p.latest?.num_versions ?? 1, 'version_policy.latest.num_versions', 1) };
        else if (p?.specific !== undefined) {
          const list = p.specific?.versions;
          if (!Array.isArray(list)) refuse(model, 'version_policy.specific.versions must be a list');
          out.version_policy = { specific: list.map((x, i) => integerOf(model, x, `version_policy.specific.versions[${i}]`, 1)) };
        } else refuse(model, 'version_policy must be all, latest or specific');
        break;
      }
      case 'parameters': {
        // Skiff's own config fields, as its config route shows them: {"<field>": {"string_value": "<n>"}}.
        if (v === null || typeof v !== 'object' || Array.isArray(v)) refuse(model, 'parameters must be an object');
        for (const [name, pv] of Object.entries(v as Record<string, unknown>)) {
          if (!skiffFields.has(name)) refuse(model, `parameter '${name.slice(0, 64)}' is not a Skiff config field`);
          const sv = (pv as { string_value?: unknown } | null)?.string_value;
          if (typeof sv !== 'string') refuse(model, `parameter '${name.slice(0, 64)}' needs a string_value`);
          out[name] = integerOf(model, sv, `parameters.${name}`);
        }
        break;
      }
      case 'name':
        if (v !== model) refuse(model, 'the config override names another model');
        break;
      case 'default_model_filename':
        if (v !== '' && v !== 'model.onnx' && v !== 'model.mjs') refuse(model, 'default_model_filename: Skiff loads model.onnx or model.mjs from the version directory');
        break;
      case 'platform':
      case 'backend':
        // The model file decides how it runs; a config asking for another runtime is not Skiff's.
        if (typeof v !== 'string' || !KNOWN_RUNTIMES.has(v)) refuse(model, `${k} '${String(v).slice(0, 32)}' is not one Skiff runs (${[...KNOWN_RUNTIMES].join(', ')})`);
        break;
      case 'input':
      case 'output':
        if (!Array.isArray(v)) refuse(model, `${k} must be a list`);
        for (const [i, t] of v.entries()) {
          if (t === null || typeof t !== 'object') refuse(model, `${k}[${i}] must be an object`);
          checkInertFields(model, t as Record<string, unknown>, new Set(['name', 'data_type', 'dims']), INERT_TENSOR, `${k}[${i}].`);
        }
        break;
      default:
        if (skiffFields.has(k)) {
          out[k] = v;
          break;
        }
        if (!Object.hasOwn(INERT, k)) refuse(model, `config field '${k.slice(0, 64)}' is not supported by Skiff`);
        if (!isInert(v, INERT[k])) refuse(model, `config field '${k.slice(0, 64)}' is not supported by Skiff (only its default is)`);
    }
  }
  return out;
}

const KNOWN_RUNTIMES = new Set(Object.values(PLATFORM).flatMap((p) => [p.platform, p.backend]));

/**
 * A config override's input/output entries against the tensors the model serves (its file
 * decides them; Skiff cannot reshape or retype). Each entry listed must name a served tensor
 * with the same TYPE_* and dims — without the batch dim when the model batches and the override
 * keeps max_batch_size above 0. Throws CONFIG_INVALID naming the first difference. Pure.
 */
export function checkTritonTensors(model: string, raw: Record<string, unknown>, served: { inputs: readonly TensorSpec[]; outputs: readonly TensorSpec[]; batchable: boolean }): void {
  const batched = served.batchable && raw.max_batch_size !== 0 && raw.max_batch_size !== '0';
  for (const [k, list] of [['input', served.inputs], ['output', served.outputs]] as const) {
    const given = raw[k];
    if (!Array.isArray(given)) continue;
    for (const t of given as { name?: unknown; data_type?: unknown; dims?: unknown }[]) {
      const s = list.find((x) => x.name === t.name);
      if (!s) refuse(model, `${k} '${String(t.name).slice(0, 64)}' is not a tensor of the model (${list.map((x) => x.name).join(', ')})`);
      if (t.data_type !== undefined && t.data_type !== tritonType(s.datatype)) refuse(model, `${k} '${s.name}' is ${tritonType(s.datatype)}, not ${String(t.data_type).slice(0, 32)}`);
      const dims = batched ? s.shape.slice(1) : s.shape;
      if (t.dims !== undefined && (!Array.isArray(t.dims) || t.dims.length !== dims.length || t.dims.some((d, i) => Number(d) !== dims[i]))) {
        refuse(model, `${k} '${s.name}' has dims [${dims.join(', ')}], not ${JSON.stringify(t.dims).slice(0, 60)} (Skiff serves the tensors the model file declares)`);
      }
    }
  }
}

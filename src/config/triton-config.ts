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

/** Triton fields that describe the model file itself (platform, tensors): accepted, nothing to apply. */
const DESCRIPTIVE = new Set(['name', 'platform', 'backend', 'input', 'output', 'parameters']);

/**
 * The Skiff config fields a config override sets. `raw` is a Triton model config (JSON object) or
 * Skiff's own config.json fields; Triton's are mapped (max_batch_size, dynamic_batching
 * .max_queue_delay_microseconds, instance_group[].count, version_policy), Skiff's pass as they are
 * (the schema validates them later). A field Skiff cannot honour is refused with CONFIG_INVALID.
 */
export function fromTritonConfig(model: string, raw: unknown, skiffFields: ReadonlySet<string>): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new SkiffError('CONFIG_INVALID', `model '${model}': the config override must be a JSON object`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    if (skiffFields.has(k)) {
      out[k] = v;
      continue;
    }
    switch (k) {
      case 'max_batch_size':
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new SkiffError('CONFIG_INVALID', `model '${model}': max_batch_size must be a non-negative integer`);
        out.max_batch_size = Math.max(1, v);
        break;
      case 'dynamic_batching': {
        const d = v as { max_queue_delay_microseconds?: unknown } | null;
        if (!d || typeof d !== 'object') throw new SkiffError('CONFIG_INVALID', `model '${model}': dynamic_batching must be an object`);
        for (const f of Object.keys(d)) if (f !== 'max_queue_delay_microseconds' && f !== 'preferred_batch_size') throw new SkiffError('CONFIG_INVALID', `model '${model}': dynamic_batching.${f} is not supported`);
        if (d.max_queue_delay_microseconds !== undefined) out.batch_wait_timeout_us = Number(d.max_queue_delay_microseconds);
        break;
      }
      case 'instance_group': {
        if (!Array.isArray(v) || v.length !== 1) throw new SkiffError('CONFIG_INVALID', `model '${model}': instance_group must hold one group (Skiff runs one pool per version)`);
        const g = v[0] as { count?: unknown; kind?: unknown };
        if (g.kind !== undefined && g.kind !== 'KIND_CPU' && g.kind !== 'KIND_AUTO') throw new SkiffError('CONFIG_INVALID', `model '${model}': instance_group kind ${String(g.kind)} is not supported (CPU only)`);
        if (g.count !== undefined) out.replicas = Number(g.count);
        break;
      }
      case 'version_policy': {
        const p = v as { all?: unknown; latest?: { num_versions?: unknown }; specific?: { versions?: unknown } };
        if (p?.all !== undefined) out.version_policy = { all: true };
        else if (p?.latest !== undefined) out.version_policy = { latest: Number(p.latest.num_versions ?? 1) };
        else if (p?.specific !== undefined) out.version_policy = { specific: (p.specific.versions as unknown[] ?? []).map(Number) };
        else throw new SkiffError('CONFIG_INVALID', `model '${model}': version_policy must be all, latest or specific`);
        break;
      }
      case 'name':
        if (v !== model) throw new SkiffError('CONFIG_INVALID', `model '${model}': the config override names another model`);
        break;
      default:
        if (!DESCRIPTIVE.has(k)) throw new SkiffError('CONFIG_INVALID', `model '${model}': config field '${k.slice(0, 64)}' is not supported by Skiff`);
    }
  }
  return out;
}

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import AjvModule, { type ErrorObject } from 'ajv';
import { SkiffError } from '../errors.js';

/**
 * Per-model configuration: validated once against schemas/model-config.schema.json, defaults
 * filled in, then frozen. Every error names the model and the offending field.
 */
export interface ModelConfig {
  readonly max_batch_size: number;
  readonly batch_wait_timeout_us: number;
  readonly latency_objective_us: number;
  readonly replicas: number;
  readonly threads: number;
  readonly cache_bytes: number;
  readonly max_queue_rows: number;
  readonly default_timeout_us: number;
  readonly ring_bytes: number;
  readonly batch_timeout_ms: number;
  readonly max_consecutive_failures: number;
  readonly pipeline_depth: number;
  readonly park_idle_ms: number;
  readonly max_worker_memory_mb: number;
  readonly version_policy: { latest: number } | { all: true } | { specific: number[] };
}

const SCHEMA_PATH = fileURLToPath(new URL('../../../schemas/model-config.schema.json', import.meta.url));
const Ajv = AjvModule.default ?? AjvModule;
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const SCHEMA = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as { properties: Record<string, unknown> };
const validate = ajv.compile(SCHEMA as object);

/** The fields a config.json may hold. */
export const MODEL_CONFIG_FIELDS: ReadonlySet<string> = new Set(Object.keys(SCHEMA.properties));

function describe(e: ErrorObject): string {
  const field = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '';
  if (e.keyword === 'additionalProperties') {
    const extra = (e.params as { additionalProperty: string }).additionalProperty;
    return `field '${field ? `${field}.` : ''}${extra}' is not allowed`;
  }
  return `field '${field || '(root)'}' ${e.message ?? 'is invalid'}`;
}

/** Validate a parsed config.json (or {} when absent); throws CONFIG_INVALID naming model and field. */
export function parseModelConfig(model: string, raw: unknown, overrides: Partial<ModelConfig> = {}): ModelConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SkiffError('CONFIG_INVALID', `model '${model}': config.json must be a JSON object`);
  }
  const cfg = { ...overrides, ...(structuredClone(raw) as Record<string, unknown>) };
  if (!validate(cfg)) {
    const msgs = (validate.errors ?? []).filter((e) => e.keyword !== 'oneOf' || !validate.errors?.some((o) => o !== e && o.instancePath.startsWith(e.instancePath)));
    throw new SkiffError('CONFIG_INVALID', `model '${model}': config.json ${msgs.map(describe).join('; ')}`);
  }
  if ((cfg.ring_bytes as number) & ((cfg.ring_bytes as number) - 1)) {
    throw new SkiffError('CONFIG_INVALID', `model '${model}': config.json field 'ring_bytes' must be a power of two`);
  }
  return Object.freeze(cfg) as unknown as ModelConfig;
}

export function defaultModelConfig(model: string): ModelConfig {
  return parseModelConfig(model, {});
}

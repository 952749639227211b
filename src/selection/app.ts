import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import AjvModule, { type ErrorObject } from 'ajv';
import { SkiffError } from '../errors.js';
import type { DataType } from '../tensor/datatype.js';
import { policyByName, type PolicyName, type PolicyParams } from './policies/index.js';
import { parseInputType } from '../engine/container/rpc-codec.js';

/**
 * An application: the unit of the model selection layer. Validated once against
 * schemas/app.schema.json, defaults filled, policy parameters checked by the policy, frozen.
 */
export interface AppDefinition {
  readonly name: string;
  readonly input_type: 'ints' | 'floats' | 'doubles' | 'bytes' | 'strings';
  readonly input_shape?: readonly number[];
  readonly latency_slo_micros: number;
  readonly default_output: number | string;
  readonly policy: PolicyName;
  readonly policy_params: PolicyParams;
  readonly models: readonly string[];
  readonly confidence_threshold: number;
  readonly straggler_mitigation: boolean;
  readonly seed?: number;
}

export const INPUT_TYPES: Readonly<Record<AppDefinition['input_type'], DataType>> = Object.freeze({
  ints: 'INT32', floats: 'FP32', doubles: 'FP64', bytes: 'UINT8', strings: 'BYTES',
});

const SCHEMA_PATH = fileURLToPath(new URL('../../../schemas/app.schema.json', import.meta.url));
const Ajv = AjvModule.default ?? AjvModule;
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as object);

function describe(e: ErrorObject): string {
  const field = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '';
  if (e.keyword === 'additionalProperties') return `field '${(e.params as { additionalProperty: string }).additionalProperty}' is not allowed`;
  if (e.keyword === 'required') return `field '${(e.params as { missingProperty: string }).missingProperty}' is required`;
  return `field '${field || '(root)'}' ${e.message ?? 'is invalid'}`;
}

/** Validate an app definition (from a config file or add_app); throws BAD_REQUEST naming the field. */
export function parseApp(raw: unknown): AppDefinition {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new SkiffError('BAD_REQUEST', 'an application must be a JSON object');
  const app = structuredClone(raw) as Record<string, unknown>;
  const appName = app.name;
  // Clipper's names and aliases for input types ("integers", "int", "double", ...), as its
  // register_application sends them, stand for Skiff's five.
  if (typeof app.input_type === 'string') app.input_type = parseInputType(app.input_type) ?? app.input_type;
  if (!validate(app)) {
    const name = typeof appName === 'string' ? `application '${appName}': ` : '';
    throw new SkiffError('BAD_REQUEST', `${name}${(validate.errors ?? []).map(describe).join('; ')}`);
  }
  const policy = policyByName(app.policy as string);
  app.policy_params = policy.validateParams(app.policy_params);
  if (policy.name === 'single' && (app.models as string[]).length > 1) {
    throw new SkiffError('BAD_REQUEST', `application '${String(app.name)}': policy 'single' links at most one model; use exp3, exp4, epsilon_greedy or ucb1`);
  }
  return Object.freeze(app) as unknown as AppDefinition;
}

/** Split "name" / "name:version" into its parts (version undefined = follow the current version). */
export function parseArm(arm: string): { model: string; version?: number } {
  const i = arm.lastIndexOf(':');
  if (i < 0) return { model: arm };
  return { model: arm.slice(0, i), version: Number(arm.slice(i + 1)) };
}

import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isAbsolute, resolve } from 'node:path';
import AjvModule, { type ErrorObject } from 'ajv';
import { SkiffError } from '../errors.js';
import type { InputType } from '../engine/container/rpc-codec.js';

/**
 * A container description (`<repository>/<model>/<version>/container.json`): the processes Skiff
 * launches to serve a version. Validated once against schemas/container.schema.json, defaults
 * filled, paths resolved, frozen. Every error names the model and the offending field.
 */
export interface ContainerDescription {
  readonly command: readonly string[];
  readonly input_type: InputType;
  readonly env: Readonly<Record<string, string>>;
  /** Absolute working directory. */
  readonly cwd: string;
  readonly replicas: number;
  readonly probe?: readonly string[];
}

const SCHEMA_PATH = fileURLToPath(new URL('../../../schemas/container.schema.json', import.meta.url));
const Ajv = AjvModule.default ?? AjvModule;
const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
const validate = ajv.compile(JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as object);

function describe(e: ErrorObject): string {
  const field = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '';
  if (e.keyword === 'additionalProperties') return `field '${field ? `${field}.` : ''}${(e.params as { additionalProperty: string }).additionalProperty}' is not allowed`;
  return `field '${field || '(root)'}' ${e.message ?? 'is invalid'}`;
}

/** Validate a parsed container.json of `model` whose version directory is `versionDir`. */
export function parseContainerDescription(model: string, versionDir: string, raw: unknown): ContainerDescription {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new SkiffError('CONFIG_INVALID', `model '${model}': container.json must be a JSON object`);
  const d = structuredClone(raw) as Record<string, unknown>;
  if (!validate(d)) throw new SkiffError('CONFIG_INVALID', `model '${model}': container.json ${(validate.errors ?? []).map(describe).join('; ')}`);
  const cwd = resolve(versionDir, d.cwd as string);
  return Object.freeze({ ...(d as unknown as ContainerDescription), cwd, command: Object.freeze([...(d.command as string[])]) });
}

/** Read and validate `<versionDir>/container.json`. */
export function readContainerDescription(model: string, versionDir: string): ContainerDescription {
  const file = resolve(versionDir, 'container.json');
  if (!existsSync(file)) throw new SkiffError('MODEL_LOAD_FAILED', `model '${model}': ${file} does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new SkiffError('CONFIG_INVALID', `model '${model}': container.json is not valid JSON (${(err as Error).message})`);
  }
  return parseContainerDescription(model, versionDir, raw);
}

/** The program of a command: absolute, or found relative to cwd when it has a slash. */
export function commandPath(d: ContainerDescription, argv: readonly string[] = d.command): string {
  const p = argv[0]!;
  return isAbsolute(p) || !p.includes('/') ? p : resolve(d.cwd, p);
}

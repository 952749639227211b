import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import { parseModelConfig, type ModelConfig } from '../config/model-config.js';
import type { InputType } from '../engine/container/rpc-codec.js';
import { readContainerDescription, type ContainerDescription } from '../config/container-config.js';

/**
 * The model repository on disk, in the de-facto standard layout:
 *   <repo>/<model>/config.json            optional, validated against the schema
 *   <repo>/<model>/<version>/model.onnx   ONNX Runtime model, or
 *   <repo>/<model>/<version>/model.mjs    JS-function model (exports metadata + predict), or
 *   <repo>/<model>/<version>/container.json  model containers Skiff launches (schemas/container.schema.json)
 * Versions are positive integers; which ones load is the config's version_policy (newest by default).
 * Pure I/O on the filesystem, no model loading here.
 */
export interface VersionFile {
  version: number;
  /** The model file; for a container version, its description file ('' for an external container). */
  path: string;
  kind: 'onnx' | 'js' | 'container';
  /** A container version: its input type, and how to launch it (absent: containers connect on their own). */
  container?: ContainerSpec;
  /** What add_model recorded (Clipper's labels, container_name, input_type, batch_size), for get_model. */
  meta?: Readonly<Record<string, unknown>>;
}

/** A container-backed version: what the containers take, and the processes Skiff launches (if any). */
export interface ContainerSpec {
  input_type: InputType;
  /** How to launch it (container.json); absent: containers connect on their own. */
  launch?: ContainerDescription;
  /** Clipper's add_model metadata, kept for get_model_info. */
  container_name?: string;
}

export interface RepositoryModel {
  name: string;
  dir: string;
  config: ModelConfig;
  /** Every version found on disk, ascending. */
  available: VersionFile[];
  /** The versions the policy selects for loading, ascending. */
  selected: VersionFile[];
}

export interface RepositoryScan {
  models: RepositoryModel[];
  errors: { model: string; error: ErrorInfo }[];
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const VERSION = /^[1-9][0-9]{0,8}$/;

export function isValidModelName(name: string): boolean {
  return NAME.test(name);
}

export function modelFileIn(dir: string): { path: string; kind: 'onnx' | 'js' | 'container' } | undefined {
  for (const [file, kind] of [['model.onnx', 'onnx'], ['model.mjs', 'js'], ['model.js', 'js'], ['container.json', 'container']] as const) {
    const p = join(dir, file);
    if (existsSync(p) && statSync(p).isFile()) return { path: p, kind };
  }
  return undefined;
}

/** A version served by containers that connect on their own (nothing to load from disk). */
export function containerVersionFile(version: number, spec: ContainerSpec): VersionFile {
  return { version, path: '', kind: 'container', container: spec };
}

/** The version file of a version directory, with its container description read when it is one. */
export function versionFileIn(model: string, dir: string, version: number): VersionFile | undefined {
  const f = modelFileIn(dir);
  if (!f) return undefined;
  if (f.kind !== 'container') return { version, ...f };
  const launch = readContainerDescription(model, dir);
  return { version, ...f, container: { input_type: launch.input_type, launch } };
}

export function readModel(repo: string, name: string): RepositoryModel {
  const dir = resolve(repo, name);
  const cfgPath = join(dir, 'config.json');
  let raw: unknown = {};
  if (existsSync(cfgPath)) {
    try {
      raw = JSON.parse(readFileSync(cfgPath, 'utf8'));
    } catch (err) {
      throw new SkiffError('CONFIG_INVALID', `model '${name}': config.json is not valid JSON (${(err as Error).message})`);
    }
  }
  const config = parseModelConfig(name, raw);
  const available: VersionFile[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !VERSION.test(entry.name)) continue;
    const file = versionFileIn(name, join(dir, entry.name), Number(entry.name));
    if (file) available.push(file);
  }
  available.sort((a, b) => a.version - b.version);
  if (available.length === 0) {
    throw new SkiffError('MODEL_LOAD_FAILED', `model '${name}': no version directory with a model.onnx, model.mjs or container.json`);
  }
  return { name, dir, config, available, selected: selectVersions(name, available, config) };
}

function selectVersions(name: string, available: VersionFile[], config: ModelConfig): VersionFile[] {
  const p = config.version_policy;
  if ('all' in p) return available;
  if ('latest' in p) return available.slice(-p.latest);
  const wanted = new Set(p.specific);
  const sel = available.filter((v) => wanted.has(v.version));
  if (sel.length !== wanted.size) {
    const missing = p.specific.filter((v) => !available.some((a) => a.version === v));
    throw new SkiffError('CONFIG_INVALID', `model '${name}': config.json field 'version_policy.specific' names missing versions ${missing.join(', ')}`);
  }
  return sel;
}

/** Scan every model directory; a bad model is reported and skipped, the others still load. */
export function scanRepository(repo: string): RepositoryScan {
  const scan: RepositoryScan = { models: [], errors: [] };
  for (const entry of readdirSync(repo, { withFileTypes: true })) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    if (!isValidModelName(entry.name)) {
      scan.errors.push({ model: entry.name, error: { code: 'CONFIG_INVALID', message: `model directory name '${entry.name}' is not a valid model name` } });
      continue;
    }
    try {
      scan.models.push(readModel(repo, entry.name));
    } catch (err) {
      scan.errors.push({ model: entry.name, error: toErrorInfo(err, 'MODEL_LOAD_FAILED') });
    }
  }
  scan.models.sort((a, b) => a.name.localeCompare(b.name));
  return scan;
}

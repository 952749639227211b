import { existsSync, readdirSync, readFileSync, statSync, type Dirent } from 'node:fs';
import { basename, join, resolve } from 'node:path';
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
  return readModelAt(resolve(repo, name), name);
}

/** The model config at `<dir>/config.json` (defaults when absent), validated. */
function readConfig(dir: string, name: string): ModelConfig {
  const cfgPath = join(dir, 'config.json');
  let raw: unknown = {};
  if (existsSync(cfgPath)) {
    try {
      raw = JSON.parse(readFileSync(cfgPath, 'utf8'));
    } catch (err) {
      throw new SkiffError('CONFIG_INVALID', `model '${name}': config.json is not valid JSON (${(err as Error).message})`);
    }
  }
  return parseModelConfig(name, raw);
}

/** The version directories of a model directory that hold a model file, ascending. */
function versionsIn(dir: string, name: string): VersionFile[] {
  const available: VersionFile[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory() || !VERSION.test(entry.name)) continue;
    const file = versionFileIn(name, join(dir, entry.name), Number(entry.name));
    if (file) available.push(file);
  }
  return available.sort((a, b) => a.version - b.version);
}

/** A model directory (`<dir>/config.json`, `<dir>/<version>/model.*`) served under `name`. */
function readModelAt(dir: string, name: string): RepositoryModel {
  const config = readConfig(dir, name);
  const available = versionsIn(dir, name);
  if (available.length === 0) {
    throw new SkiffError('MODEL_LOAD_FAILED', `model '${name}': no version directory with a model.onnx, model.mjs or container.json`);
  }
  return { name, dir, config, available, selected: selectVersions(name, available, config) };
}

/**
 * What a directory that a platform filled with ONE model holds. KServe's storage initializer
 * copies an InferenceService's storageUri to /mnt/models: a single object lands as
 * /mnt/models/<its file name>, a prefix as its tree, an archive unpacked. So the layouts are:
 *   - 'file':       <dir>/model.onnx (model.mjs, container.json) or exactly one <dir>/<any>.onnx,
 *                   served as version 1;
 *   - 'versions':   <dir>/<version>/model.onnx ... (a model directory: OVMS's layout);
 *   - 'repository': <dir>/<model>/<version>/model.onnx ... (Triton's layout, what a storageUri
 *                   made for KServe's Triton runtime holds): served as a repository, every model
 *                   under its own directory name, as Triton would.
 * In the first two, `<dir>/config.json` is the model's config and `name` its name. A directory
 * that fits two layouts is refused rather than guessed at.
 */
function isFileAt(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isFile() === true;
}

function isDirAt(p: string): boolean {
  return statSync(p, { throwIfNoEntry: false })?.isDirectory() === true;
}

export type ModelDirectory =
  | { layout: 'file' | 'versions'; model: RepositoryModel }
  | { layout: 'repository' };

export function openModelDirectory(dir: string, name: string): ModelDirectory {
  if (!isValidModelName(name)) throw new SkiffError('CONFIG_INVALID', `'${name}' is not a valid model name (letters, digits, '_', '.', '-'; at most 128)`);
  if (!isDirAt(dir)) throw new SkiffError('MODEL_LOAD_FAILED', `model directory ${dir} does not exist or is not a directory`);
  const entries = readdirSync(dir, { withFileTypes: true }).filter((e) => !e.name.startsWith('.'));
  let top: VersionFile | undefined = versionFileIn(name, dir, 1);
  if (!top) {
    const onnx = entries.filter((e) => e.name.toLowerCase().endsWith('.onnx') && isFileAt(join(dir, e.name)));
    if (onnx.length > 1) {
      throw new SkiffError('CONFIG_INVALID', `model directory ${dir} holds ${onnx.length} .onnx files (${onnx.map((e) => e.name).join(', ')}): name the one to serve model.onnx, or put each in a version directory`);
    }
    if (onnx.length === 1) top = { version: 1, path: join(dir, onnx[0]!.name), kind: 'onnx' };
  }
  const versions = versionsIn(dir, name);
  if (top && versions.length > 0) {
    throw new SkiffError('CONFIG_INVALID', `model directory ${dir} holds both a model file (${basename(top.path)}) and version directories (${versions.map((v) => v.version).join(', ')}): keep one layout`);
  }
  if (top) {
    const config = readConfig(dir, name);
    return { layout: 'file', model: { name, dir, config, available: [top], selected: selectVersions(name, [top], config) } };
  }
  if (versions.length > 0) return { layout: 'versions', model: readModelAt(dir, name) };
  // Symbolic links are followed throughout: KServe's modelcar links /mnt/models into another container.
  const isModelDir = (e: Dirent): boolean => isValidModelName(e.name) && isDirAt(join(dir, e.name)) && versionsIn(join(dir, e.name), e.name).length > 0;
  if (entries.some(isModelDir)) return { layout: 'repository' };
  throw new SkiffError('MODEL_LOAD_FAILED', `model directory ${dir} holds no model: expected <dir>/model.onnx (or one .onnx file), <dir>/<version>/model.onnx, or <dir>/<model>/<version>/model.onnx`);
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

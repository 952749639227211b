/**
 * Reading and validating the deployment files under deploy/ (shared by the manifest, Dockerfile
 * and deployment-run tests). Nothing here needs a cluster or a Docker engine:
 *  - Kubernetes objects are checked against the Kubernetes OpenAPI schemas that kubernetes-models
 *    ships as validators (types, formats, required fields), and type-checked as object literals
 *    against its TypeScript interfaces, which refuses unknown fields the way the API server's
 *    strict field validation does (a misspelt `readinessProbe` is otherwise silently dropped);
 *  - KServe objects against Skiff's trimmed schemas of KServe's CRDs (test/unit/fixtures/kserve),
 *    their containers as Kubernetes containers;
 *  - YAML is parsed as YAML 1.1, as Kubernetes parses it (`yes`, `on` are booleans there).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { Ajv, type ValidateFunction } from 'ajv';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { Container, PersistentVolumeClaim, Service } from 'kubernetes-models/v1';
import { DockerfileParser, type From } from 'dockerfile-ast';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DEPLOY = join(ROOT, 'deploy');

export interface Manifest {
  file: string;
  /** Index of the document in its file. */
  index: number;
  obj: any;
}

/** Every YAML document of the .yaml files in `dir`; YAML errors and warnings throw. */
export function loadManifests(dir: string): Manifest[] {
  const out: Manifest[] = [];
  for (const name of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    out.push(...parseManifests(readFileSync(join(dir, name), 'utf8'), join(dir, name)));
  }
  return out;
}

export function parseManifests(text: string, file: string): Manifest[] {
  const docs = parseAllDocuments(text, { version: '1.1', strict: true, uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
  return docs.map((d, index) => {
    const problems = [...d.errors, ...d.warnings];
    if (problems.length) throw new Error(`${file}#${index}: ${problems.map((p) => p.message).join('; ')}`);
    return { file, index, obj: d.toJS() };
  });
}

interface KubeKind {
  /** kubernetes-models class: its validate() checks the object against the OpenAPI schema. */
  model: new (data: any) => { validate(): void };
  /** TypeScript module and interface of the kind, for the unknown-field check. */
  tsModule: string;
  tsType: string;
}

const KUBE: Record<string, KubeKind> = {
  'apps/v1 Deployment': { model: Deployment, tsModule: 'kubernetes-models/apps/v1/Deployment', tsType: 'IDeployment' },
  'v1 Service': { model: Service, tsModule: 'kubernetes-models/v1/Service', tsType: 'IService' },
  'v1 PersistentVolumeClaim': { model: PersistentVolumeClaim, tsModule: 'kubernetes-models/v1/PersistentVolumeClaim', tsType: 'IPersistentVolumeClaim' },
  'autoscaling/v2 HorizontalPodAutoscaler': { model: HorizontalPodAutoscaler, tsModule: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler', tsType: 'IHorizontalPodAutoscaler' },
  'policy/v1 PodDisruptionBudget': { model: PodDisruptionBudget, tsModule: 'kubernetes-models/policy/v1/PodDisruptionBudget', tsType: 'IPodDisruptionBudget' },
  'networking.k8s.io/v1 NetworkPolicy': { model: NetworkPolicy, tsModule: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy', tsType: 'INetworkPolicy' },
};

const ajv = new Ajv({ allErrors: true, strict: true });
function kserveSchema(name: string): ValidateFunction {
  return ajv.compile(JSON.parse(readFileSync(join(ROOT, 'test', 'unit', 'fixtures', 'kserve', `${name}.schema.json`), 'utf8')));
}
/** kustomize's Kustomization: only the fields these files use (kustomize refuses unknown ones too). */
const KUSTOMIZATION = ajv.compile({
  type: 'object',
  required: ['apiVersion', 'kind', 'resources'],
  additionalProperties: false,
  properties: {
    apiVersion: { const: 'kustomize.config.k8s.io/v1beta1' },
    kind: { const: 'Kustomization' },
    resources: { type: 'array', items: { type: 'string' } },
  },
});

const BY_SCHEMA: Record<string, ValidateFunction> = {
  'kustomize.config.k8s.io/v1beta1 Kustomization': KUSTOMIZATION,
  'serving.kserve.io/v1alpha1 ServingRuntime': kserveSchema('servingruntime'),
  'serving.kserve.io/v1alpha1 ClusterServingRuntime': kserveSchema('servingruntime'),
  'serving.kserve.io/v1beta1 InferenceService': kserveSchema('inferenceservice'),
};

export function kindOf(obj: any): string {
  return `${obj?.apiVersion} ${obj?.kind}`;
}

/** The predictor model's fields that KServe adds to a Kubernetes Container. */
const MODEL_FIELDS = ['modelFormat', 'runtime', 'runtimeVersion', 'protocolVersion', 'storageUri', 'storage'];

/**
 * The Kubernetes containers inside a KServe object (checked as Kubernetes Containers): a
 * runtime's containers; an InferenceService's predictor containers and its model, which is a
 * Container (named kserve-container by KServe) plus the model fields.
 */
function kserveContainers(obj: any): unknown[] {
  if (obj?.kind === 'InferenceService') {
    const p = obj.spec?.predictor ?? {};
    const out: unknown[] = Array.isArray(p.containers) ? [...p.containers] : [];
    if (p.model && typeof p.model === 'object') {
      const c: Record<string, unknown> = { name: 'kserve-container', ...p.model };
      for (const f of MODEL_FIELDS) delete c[f];
      out.push(c);
    }
    return out;
  }
  return Array.isArray(obj?.spec?.containers) ? obj.spec.containers : [];
}

/** Schema errors of one object (type, format, required, enum): [] when it is valid. */
export function schemaErrors(obj: any): string[] {
  const kind = kindOf(obj);
  const kube = KUBE[kind];
  if (kube) {
    try {
      new kube.model(obj).validate();
      return [];
    } catch (err) {
      return [`${kind}: ${(err as Error).message}`];
    }
  }
  const bySchema = BY_SCHEMA[kind];
  if (bySchema) {
    // KServe objects (and the Kustomization, which has no containers)
    const errors = bySchema(obj) ? [] : (bySchema.errors ?? []).map((e) => `${kind}${e.instancePath}: ${e.message} ${JSON.stringify(e.params)}`);
    kserveContainers(obj).forEach((c, i) => {
      try {
        new Container(c as any).validate();
      } catch (err) {
        errors.push(`${kind} container ${i}: ${(err as Error).message}`);
      }
    });
    return errors;
  }
  return [`${kind}: not a kind these manifests are checked for`];
}

/**
 * Unknown fields anywhere in the objects: each object type-checked as a fresh object literal
 * against kubernetes-models' interface of its kind (excess-property checks reach every nesting
 * level). KServe objects: their metadata and containers (the schema covers the rest). One
 * TypeScript program for all objects; the result lists the errors per object, in order.
 */
export function unknownFieldErrors(objs: readonly any[]): string[][] {
  const files = new Map<string, string>();
  const names: string[] = [];
  objs.forEach((obj, i) => {
    const name = join(ROOT, `__manifest_check_${i}__.ts`);
    names.push(name);
    const kube = KUBE[kindOf(obj)];
    const lit = (v: unknown): string => JSON.stringify(v ?? null, null, 1);
    let src: string;
    if (kube) {
      src = `import type { ${kube.tsType} } from '${kube.tsModule}';\nexport const m: ${kube.tsType} = ${lit(obj)};\n`;
    } else if (BY_SCHEMA[kindOf(obj)] && obj.kind !== 'Kustomization') {
      src = `import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment';\nimport type { IContainer } from 'kubernetes-models/v1/Container';\n`
        + `export const meta: NonNullable<IDeployment['metadata']> = ${lit(obj.metadata)};\nexport const containers: IContainer[] = ${lit(kserveContainers(obj))};\n`;
    } else {
      src = 'export {};\n';
    }
    files.set(name, src);
  });
  const options: ts.CompilerOptions = {
    strict: true, noEmit: true, skipLibCheck: true, types: [],
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022,
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (f, lang, ...rest) => (files.has(f) ? ts.createSourceFile(f, files.get(f)!, lang) : getSourceFile(f, lang, ...rest));
  host.fileExists = (f) => files.has(f) || fileExists(f);
  const program = ts.createProgram(names, options, host);
  return names.map((name) => ts.getPreEmitDiagnostics(program, program.getSourceFile(name)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' ')));
}

/** Schema and unknown-field errors of each object, in order ([] = valid). */
export function manifestErrors(objs: readonly any[]): string[][] {
  const unknown = unknownFieldErrors(objs);
  return objs.map((o, i) => [...schemaErrors(o), ...unknown[i]!]);
}

/** The value after `flag` in an argument list (`--flag v` or `--flag=v`). */
export function argValue(args: readonly string[], flag: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i]!.startsWith(`${flag}=`)) return args[i]!.slice(flag.length + 1);
  }
  return undefined;
}

export const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; engines: { node: string } };

// --- the Dockerfile ------------------------------------------------------------------------

export interface DockerInstruction {
  keyword: string;
  /** Arguments as written (variables unexpanded). */
  args: string[];
  /** Exec-form (JSON array) arguments of CMD, ENTRYPOINT and HEALTHCHECK ... CMD. */
  exec?: string[];
  /** --flag=value flags (COPY --from, HEALTHCHECK --interval, ...). */
  flags: Record<string, string>;
}

export interface DockerStage {
  name: string;
  image: string;
  instructions: DockerInstruction[];
}

export interface DockerfileModel {
  text: string;
  /** ARGs before the first FROM, with their defaults. */
  args: Record<string, string>;
  stages: DockerStage[];
}

/** Parse with dockerfile-ast into stages of plain instructions. */
export function readDockerfile(text: string): DockerfileModel {
  const df = DockerfileParser.parse(text);
  const args: Record<string, string> = {};
  for (const a of df.getInitialARGs()) for (const p of a.getProperties()) args[p.getName()] = p.getValue() ?? '';
  const stages: DockerStage[] = [];
  for (const ins of df.getInstructions()) {
    const keyword = ins.getKeyword();
    if (keyword === 'FROM') {
      const from = ins as From;
      stages.push({ name: from.getBuildStage() ?? String(stages.length), image: from.getImageName() ?? '', instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) continue;
    const flags: Record<string, string> = {};
    const withFlags = ins as unknown as { getFlags?: () => { getName(): string; getValue(): string | null }[] };
    for (const f of withFlags.getFlags?.() ?? []) flags[f.getName()] = f.getValue() ?? '';
    const raw = ins.getRawArgumentsContent() ?? '';
    let exec: string[] | undefined;
    const json = keyword === 'HEALTHCHECK' ? raw.replace(/^(--\S+\s+)*CMD\s+/, '') : raw;
    if (['CMD', 'ENTRYPOINT', 'HEALTHCHECK'].includes(keyword) && json.trim().startsWith('[')) exec = JSON.parse(json) as string[];
    stage.instructions.push({ keyword, args: ins.getArguments().map((a) => a.getValue()), exec, flags });
  }
  return { text, args, stages };
}

/** A stage's `${VAR}` image reference resolved from the initial ARGs. */
export function stageImage(df: DockerfileModel, stage: DockerStage): string {
  return stage.image.replace(/\$\{?(\w+)\}?/g, (_, v: string) => df.args[v] ?? '');
}

/** The final stage's ENV, later ENVs winning. */
export function stageEnv(stage: DockerStage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of stage.instructions.filter((x) => x.keyword === 'ENV')) {
    for (const a of i.args) {
      const eq = a.indexOf('=');
      if (eq > 0) env[a.slice(0, eq)] = a.slice(eq + 1);
    }
  }
  return env;
}

/** The image's command line: ENTRYPOINT then CMD (exec form). */
export function imageCommand(stage: DockerStage): string[] {
  const last = (k: string) => stage.instructions.filter((i) => i.keyword === k).at(-1)?.exec ?? [];
  return [...last('ENTRYPOINT'), ...last('CMD')];
}

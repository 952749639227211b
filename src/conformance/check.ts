/**
 * `skiff conformance URL`: checks any Open Inference Protocol (KServe v2) server against the
 * protocol — health, server and model metadata, model readiness, JSON and binary inference, the
 * error shapes of bad requests, and every extension the server claims in `GET /v2`: the ones with
 * a read-only call are checked through it (binary_tensor_data, statistics, model_configuration,
 * model_repository, trace, logging, system/CUDA shared memory), any other claim is listed as
 * skipped. Nothing on the server is changed (no load, unload or registration).
 * Each check is one row of a pass/fail table. Talks HTTP only (fetch); loaded by the CLI on demand.
 */
export interface ConformanceOptions {
  /** Base URL, e.g. http://127.0.0.1:8000 */
  url: string;
  /** Model to exercise; default: the first one the repository index lists. */
  model?: string;
  /** Extra headers (e.g. Authorization for the repository extension). */
  headers?: Record<string, string>;
  timeoutMs?: number;
}

export interface CheckResult {
  name: string;
  pass: boolean;
  detail: string;
  /** Not run: the server does not claim the extension, or an earlier check it needs failed. */
  skipped?: boolean;
}

interface TensorMeta {
  name: string;
  datatype: string;
  shape: number[];
}

const ELEMENT_BYTES: Record<string, number> = {
  BOOL: 1, UINT8: 1, INT8: 1, UINT16: 2, INT16: 2, FP16: 2, UINT32: 4, INT32: 4, FP32: 4, UINT64: 8, INT64: 8, FP64: 8,
};

class Failure extends Error {}

function expect(cond: unknown, why: string): asserts cond {
  if (!cond) throw new Failure(why);
}

export async function runConformance(opts: ConformanceOptions): Promise<CheckResult[]> {
  const base = opts.url.replace(/\/+$/, '');
  const timeout = opts.timeoutMs ?? 10_000;
  const results: CheckResult[] = [];
  const http = async (method: string, path: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; headers: Headers; bytes: Uint8Array; json: () => any }> => {
    const r = await fetch(`${base}${path}`, { method, body, headers: { ...opts.headers, ...headers }, signal: AbortSignal.timeout(timeout) });
    const bytes = new Uint8Array(await r.arrayBuffer());
    return { status: r.status, headers: r.headers, bytes, json: () => JSON.parse(Buffer.from(bytes).toString('utf8')) };
  };
  const check = async (name: string, fn: () => Promise<string>, skip?: string): Promise<boolean> => {
    if (skip) {
      results.push({ name, pass: true, skipped: true, detail: skip });
      return false;
    }
    try {
      results.push({ name, pass: true, detail: await fn() });
      return true;
    } catch (err) {
      results.push({ name, pass: false, detail: err instanceof Failure ? err.message : `request failed: ${(err as Error).message}` });
      return false;
    }
  };
  const errorShape = (r: { json: () => any }, want: number, status: number): string => {
    expect(status === want, `status ${status}, expected ${want}`);
    let j: any;
    try {
      j = r.json();
    } catch {
      throw new Failure('the error body is not JSON');
    }
    expect(typeof j.error === 'string' && j.error.length > 0, 'the error body has no "error" string');
    return `${status} {"error": "${String(j.error).slice(0, 60)}"}`;
  };

  await check('GET /v2/health/live answers 200', async () => {
    const r = await http('GET', '/v2/health/live');
    expect(r.status === 200, `status ${r.status}`);
    return '200';
  });
  await check('GET /v2/health/ready answers 200 (ready) or 503 (not ready)', async () => {
    const r = await http('GET', '/v2/health/ready');
    expect(r.status === 200 || r.status === 503 || r.status === 400, `status ${r.status}`);
    return String(r.status);
  });
  let extensions: string[] = [];
  await check('GET /v2: server metadata {name, version, extensions}', async () => {
    const r = await http('GET', '/v2');
    expect(r.status === 200, `status ${r.status}`);
    const j = r.json();
    expect(typeof j.name === 'string' && typeof j.version === 'string', 'name and version must be strings');
    expect(Array.isArray(j.extensions) && j.extensions.every((e: unknown) => typeof e === 'string'), 'extensions must be a list of strings');
    extensions = j.extensions;
    return `${j.name} ${j.version}; extensions: ${extensions.join(', ') || '(none)'}`;
  });
  const claims = (e: string): boolean => extensions.includes(e);

  let model = opts.model;
  if (!model) {
    await check('choose a model (POST /v2/repository/index)', async () => {
      const r = await http('POST', '/v2/repository/index', '{}', { 'content-type': 'application/json' });
      expect(r.status === 200, `status ${r.status}; pass --model NAME`);
      const list = r.json() as { name: string; state?: string }[];
      const ready = list.find((m) => !m.state || m.state === 'READY') ?? list[0];
      expect(ready, 'the repository index is empty; pass --model NAME');
      model = ready.name;
      return model;
    }, claims('model_repository') ? undefined : 'the server does not claim model_repository; pass --model NAME');
  }
  const noModel = model ? undefined : 'no model to exercise (pass --model NAME)';
  const m = encodeURIComponent(model ?? '');

  let inputs: TensorMeta[] = [];
  let outputs: TensorMeta[] = [];
  await check('GET /v2/models/{m}: model metadata {name, versions?, platform, inputs, outputs}', async () => {
    const r = await http('GET', `/v2/models/${m}`);
    expect(r.status === 200, `status ${r.status}`);
    const j = r.json();
    expect(j.name === model, `name ${JSON.stringify(j.name)}`);
    expect(typeof j.platform === 'string', 'platform must be a string');
    const tensors = (x: unknown, what: string): TensorMeta[] => {
      expect(Array.isArray(x), `${what} must be a list`);
      for (const t of x as TensorMeta[]) expect(typeof t.name === 'string' && typeof t.datatype === 'string' && Array.isArray(t.shape) && t.shape.every(Number.isInteger), `${what}: every tensor needs name, datatype, shape`);
      return x as TensorMeta[];
    };
    inputs = tensors(j.inputs, 'inputs');
    outputs = tensors(j.outputs, 'outputs');
    return `${inputs.length} input(s), ${outputs.length} output(s); platform ${j.platform}`;
  }, noModel);
  await check('GET /v2/models/{m}/ready answers 200', async () => {
    const r = await http('GET', `/v2/models/${m}/ready`);
    expect(r.status === 200, `status ${r.status}`);
    return '200';
  }, noModel);

  const concrete = (t: TensorMeta): number[] => t.shape.map((d) => (d < 0 ? 1 : d));
  const count = (shape: number[]): number => shape.reduce((a, b) => a * b, 1);
  const numeric = inputs.length > 0 && inputs.every((t) => ELEMENT_BYTES[t.datatype] !== undefined);
  const noInfer = noModel ?? (inputs.length === 0 ? 'no model metadata' : numeric ? undefined : 'the model takes BYTES inputs: not exercised');
  const checkOutputs = (outs: unknown): string => {
    expect(Array.isArray(outs) && outs.length > 0, 'no outputs');
    for (const o of outs as { name: string; datatype: string; shape: number[]; data?: unknown[] }[]) {
      expect(outputs.some((x) => x.name === o.name), `output ${o.name} is not in the model metadata`);
      expect(Array.isArray(o.shape) && typeof o.datatype === 'string', `output ${o.name} needs shape and datatype`);
      if (o.data !== undefined) expect(Array.isArray(o.data) && o.data.length === count(o.shape), `output ${o.name}: ${Array.isArray(o.data) ? o.data.length : 'no'} elements for shape [${o.shape}]`);
    }
    return (outs as { name: string; shape: number[] }[]).map((o) => `${o.name}[${o.shape}]`).join(', ');
  };
  await check('POST /v2/models/{m}/infer with JSON tensors', async () => {
    const body = { id: 'conformance-1', inputs: inputs.map((t) => ({ name: t.name, datatype: t.datatype, shape: concrete(t), data: new Array(count(concrete(t))).fill(t.datatype === 'BOOL' ? false : 0) })) };
    const r = await http('POST', `/v2/models/${m}/infer`, JSON.stringify(body), { 'content-type': 'application/json' });
    expect(r.status === 200, `status ${r.status}: ${Buffer.from(r.bytes).toString().slice(0, 120)}`);
    const j = r.json();
    expect(j.model_name === model, `model_name ${JSON.stringify(j.model_name)}`);
    expect(j.id === 'conformance-1', 'the response does not echo the request id');
    return checkOutputs(j.outputs);
  }, noInfer);
  await check('POST /v2/models/{m}/infer with binary tensors (Inference-Header-Content-Length)', async () => {
    const payloads = inputs.map((t) => new Uint8Array(count(concrete(t)) * ELEMENT_BYTES[t.datatype]!));
    const header = Buffer.from(JSON.stringify({
      inputs: inputs.map((t, i) => ({ name: t.name, datatype: t.datatype, shape: concrete(t), parameters: { binary_data_size: payloads[i]!.byteLength } })),
      parameters: { binary_data_output: true },
    }));
    const body = Buffer.concat([header, ...payloads]);
    const r = await http('POST', `/v2/models/${m}/infer`, body, { 'inference-header-content-length': String(header.byteLength), 'content-type': 'application/octet-stream' });
    expect(r.status === 200, `status ${r.status}`);
    const hl = Number(r.headers.get('inference-header-content-length'));
    expect(Number.isInteger(hl) && hl > 0 && hl <= r.bytes.byteLength, 'no valid Inference-Header-Content-Length on a binary answer');
    const j = JSON.parse(Buffer.from(r.bytes.subarray(0, hl)).toString());
    let total = hl;
    for (const o of j.outputs as { name: string; datatype: string; shape: number[]; parameters?: { binary_data_size?: number } }[]) {
      const n = o.parameters?.binary_data_size;
      expect(typeof n === 'number', `output ${o.name} is not binary`);
      const size = ELEMENT_BYTES[o.datatype];
      if (size) expect(n === size * count(o.shape), `output ${o.name}: ${n} bytes for [${o.shape}] ${o.datatype}`);
      total += n;
    }
    expect(total === r.bytes.byteLength, `binary sections add up to ${total} bytes, the body has ${r.bytes.byteLength}`);
    return `${j.outputs.length} binary output(s)`;
  }, noInfer ?? (claims('binary_tensor_data') ? undefined : 'the server does not claim binary_tensor_data'));

  await check('an unknown model answers 404 {"error": ...}', async () => {
    const r = await http('POST', '/v2/models/no-such-model-conformance/infer', '{"inputs":[]}', { 'content-type': 'application/json' });
    return errorShape(r, 404, r.status);
  });
  await check('a malformed body answers 400 {"error": ...}', async () => {
    const r = await http('POST', `/v2/models/${m}/infer`, '{"inputs": [', { 'content-type': 'application/json' });
    return errorShape(r, 400, r.status);
  }, noModel);
  await check('a tensor whose data does not match its shape answers 400 {"error": ...}', async () => {
    const t = inputs[0]!;
    const body = { inputs: inputs.map((x) => ({ name: x.name, datatype: x.datatype, shape: concrete(x), data: x === t ? [0] : new Array(count(concrete(x))).fill(0) })) };
    if (count(concrete(t)) === 1) body.inputs[0]!.data = [0, 0];
    const r = await http('POST', `/v2/models/${m}/infer`, JSON.stringify(body), { 'content-type': 'application/json' });
    return errorShape(r, 400, r.status);
  }, noInfer);

  await check('statistics: GET /v2/models/{m}/stats {model_stats: [...]}', async () => {
    const r = await http('GET', `/v2/models/${m}/stats`);
    expect(r.status === 200, `status ${r.status}`);
    const j = r.json();
    expect(Array.isArray(j.model_stats) && j.model_stats.length > 0, 'model_stats must be a non-empty list');
    expect(j.model_stats.every((s: { name?: unknown; inference_stats?: unknown }) => s.name === model && typeof s.inference_stats === 'object'), 'each entry needs name and inference_stats');
    return `${j.model_stats.length} version(s)`;
  }, noModel ?? (claims('statistics') ? undefined : 'not claimed'));
  await check('model_configuration: GET /v2/models/{m}/config {name, max_batch_size, input, output}', async () => {
    const r = await http('GET', `/v2/models/${m}/config`);
    expect(r.status === 200, `status ${r.status}`);
    const j = r.json();
    expect(j.name === model, `name ${JSON.stringify(j.name)}`);
    expect(Number.isInteger(j.max_batch_size), 'max_batch_size must be an integer');
    expect(Array.isArray(j.input) && j.input.every((t: { data_type?: unknown }) => typeof t.data_type === 'string' && /^TYPE_/.test(String(t.data_type))), 'input entries need data_type TYPE_*');
    return `max_batch_size ${j.max_batch_size}`;
  }, noModel ?? (claims('model_configuration') ? undefined : 'not claimed'));
  await check('model_repository: POST /v2/repository/index [{name, version?, state?}]', async () => {
    const r = await http('POST', '/v2/repository/index', '{}', { 'content-type': 'application/json' });
    expect(r.status === 200, `status ${r.status} (pass --header "Authorization: Bearer TOKEN" if the server needs one)`);
    const j = r.json();
    expect(Array.isArray(j) && j.every((e: { name?: unknown }) => typeof e.name === 'string'), 'a list of {name}');
    return `${j.length} entr${j.length === 1 ? 'y' : 'ies'}`;
  }, claims('model_repository') ? undefined : 'not claimed');
  // The other extensions a server may claim: the ones with a read-only call are checked through
  // it (nothing is changed on the server); any other claim is listed, so the table shows every one.
  const readOnly: Record<string, [string, 'object' | 'list']> = {
    trace: ['/v2/trace/setting', 'object'],
    logging: ['/v2/logging', 'object'],
    system_shared_memory: ['/v2/systemsharedmemory/status', 'list'],
    cuda_shared_memory: ['/v2/cudasharedmemory/status', 'list'],
  };
  for (const [ext, [path, shape]] of Object.entries(readOnly)) {
    await check(`${ext}: GET ${path} answers a JSON ${shape}`, async () => {
      const r = await http('GET', path);
      expect(r.status === 200, `status ${r.status}`);
      let j: unknown;
      try {
        j = r.json();
      } catch {
        throw new Failure('the body is not JSON');
      }
      expect(shape === 'list' ? Array.isArray(j) : j !== null && typeof j === 'object' && !Array.isArray(j), `not a JSON ${shape}`);
      return '200';
    }, claims(ext) ? undefined : 'not claimed');
  }
  const checked = new Set(['binary_tensor_data', 'statistics', 'model_configuration', 'model_repository', ...Object.keys(readOnly)]);
  for (const ext of extensions.filter((e) => !checked.has(e))) {
    await check(`${ext.slice(0, 40)}: claimed`, async () => '', 'claimed; skiff conformance has no check for it');
  }
  return results;
}

/** The results as a fixed-width table. */
export function formatTable(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length));
  const lines = results.map((r) => `${(r.skipped ? 'SKIP' : r.pass ? 'PASS' : 'FAIL').padEnd(5)} ${r.name.padEnd(width)}  ${r.detail}`);
  const failed = results.filter((r) => !r.pass).length;
  const passed = results.filter((r) => r.pass && !r.skipped).length;
  lines.push('', `${passed} passed, ${failed} failed, ${results.length - passed - failed} skipped`);
  return lines.join('\n');
}

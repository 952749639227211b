/**
 * Model containers end to end: real Python processes speaking Clipper's RPC (Skiff's container
 * library), a scikit-learn model trained in the container, launched and supervised by Skiff or
 * connecting on their own, served through OIP, Clipper REST and WebSocket, with kills, hangs,
 * resizes and a rogue peer. Needs Debian's python3-zmq, python3-numpy and python3-sklearn.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Dealer } from 'zeromq';
import { getJson, postJson, serve, tempDir } from './helpers.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = '/usr/bin/python3';
const PYTHONPATH = join(ROOT, 'python');
const DIGITS = join(ROOT, 'test', 'fixtures', 'containers', 'digits.py');
const T = { timeout: 120_000 };

type Served = Awaited<ReturnType<typeof serve>>;

interface Reference {
  x: number[][];
  pred: number[];
}

function writeContainerModel(repo: string, name: string, opts: { replicas?: number; inputType?: string; config?: Record<string, unknown>; script?: string } = {}): { dir: string; reference: string } {
  const dir = join(repo, name, '1');
  mkdirSync(dir, { recursive: true });
  const reference = join(repo, `${name}.reference.json`);
  // The script is copied into the version directory, so its processes are found by that path.
  copyFileSync(opts.script ?? DIGITS, join(dir, 'serve.py'));
  writeFileSync(join(dir, 'container.json'), JSON.stringify({
    command: [PYTHON, join(dir, 'serve.py')],
    input_type: opts.inputType ?? 'doubles',
    replicas: opts.replicas ?? 1,
    env: { PYTHONPATH, REFERENCE_OUT: reference },
  }));
  if (opts.config) writeFileSync(join(repo, name, 'config.json'), JSON.stringify(opts.config));
  return { dir, reference };
}

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined && v !== false) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface ReplicaRecord { model_name: string; model_version: string; model_replica_id: number; batches: number; max_batch: number; kind: string }

async function replicas(s: Served, model: string): Promise<ReplicaRecord[]> {
  const r = await postJson(`${s.adminUrl}/admin/get_all_containers`, { verbose: true });
  assert.equal(r.status, 200);
  return (r.json as ReplicaRecord[]).filter((x) => x.model_name === model);
}

/** Process ids of the containers launched from a version directory. */
function pidsOf(dir: string): number[] {
  try {
    return execFileSync('pgrep', ['-f', dir]).toString().trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function f64(rows: number[][]): Tensor {
  const a = new Float64Array(rows.flat());
  return { name: 'input', datatype: 'FP64', shape: [rows.length, rows[0]!.length], data: new Uint8Array(a.buffer) };
}

function strings(t: Tensor): string[] {
  const out: string[] = [];
  const v = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  for (let off = 0; off < t.data.byteLength;) {
    const n = v.getUint32(off, true);
    out.push(Buffer.from(t.data.subarray(off + 4, off + 4 + n)).toString('utf8'));
    off += 4 + n;
  }
  return out;
}

async function ready(s: Served, model: string, n: number, reference?: string): Promise<Reference | undefined> {
  await until(`${n} replicas of ${model}`, async () => (await replicas(s, model)).length === n || undefined);
  return reference ? await until('the reference predictions', () => (existsSync(reference) ? JSON.parse(readFileSync(reference, 'utf8')) as Reference : undefined)) : undefined;
}

describe('model containers: a Python scikit-learn model behind Clipper\'s RPC', () => {
  const tmp = tempDir('skiff-containers-');
  let s: Served;
  let ref: Reference;
  let model: { dir: string; reference: string };
  let client: SkiffClient;

  before(async () => {
    model = writeContainerModel(tmp.dir, 'digits', { replicas: 2, config: { max_batch_size: 64, batch_wait_timeout_us: 2000, batch_timeout_ms: 1500, default_timeout_us: 10_000_000, cache_bytes: 0 } });
    writeFileSync(join(tmp.dir, 'apps.json'), JSON.stringify([
      { name: 'digits_app', input_type: 'doubles', latency_slo_micros: 5_000_000, default_output: -1, policy: 'single', models: ['digits'] },
    ]));
    s = await serve(tmp.dir, { appsFile: join(tmp.dir, 'apps.json'), ...(process.env.SKIFF_TEST_LOG ? { logger: (await import('../../src/log.js')).createLogger('info') } : {}) });
    ref = (await ready(s, 'digits', 2, model.reference))!;
    client = await SkiffClient.connect(s.wsUrl);
  }, T);

  after(async () => {
    await client?.close();
    await s?.close();
    tmp.cleanup();
    assert.deepEqual(pidsOf(model.dir), [], 'no container process outlives the server');
  });

  it('answers through OIP, Clipper REST and WebSocket exactly as scikit-learn does', T, async () => {
    const rows = ref.x.slice(0, 40);
    const want = ref.pred.slice(0, 40).map(String);
    // OIP JSON
    const oip = await postJson(`${s.url}/v2/models/digits/infer`, { inputs: [{ name: 'input', datatype: 'FP64', shape: [rows.length, 64], data: rows.flat() }] });
    assert.equal(oip.status, 200, JSON.stringify(oip.json));
    assert.equal(oip.json.outputs[0].datatype, 'BYTES');
    assert.deepEqual(oip.json.outputs[0].shape, [rows.length]);
    assert.deepEqual(oip.json.outputs[0].data, want);
    // Clipper REST through an application
    for (let i = 0; i < 10; i++) {
      const r = await postJson(`${s.url}/digits_app/predict`, { input: rows[i] });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assert.equal(r.json.default, false);
      assert.equal(r.json.output, ref.pred[i]);
    }
    // WebSocket, one query per row, many in flight
    const answers = await Promise.all(rows.map((row) => client.infer({ model: 'digits', inputs: [f64([row])] })));
    assert.deepEqual(answers.map((a) => { assert.equal(a.error, undefined); return strings(a.outputs[0]!)[0]; }), want);
  });

  it('a query whose datatype does not fit the container\'s input type gets a coded 400', T, async () => {
    const r = await postJson(`${s.url}/v2/models/digits/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 64], data: ref.x[0] }] });
    assert.equal(r.status, 400);
    assert.equal(r.json.code, 'INVALID_INPUT');
  });

  it('two replicas both receive batches larger than 1', T, async () => {
    const rows = ref.x;
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(Array.from({ length: 400 }, (_, i) => client.infer({ model: 'digits', inputs: [f64([rows[i % rows.length]!])] })));
      answers.forEach((a, i) => assert.equal(strings(a.outputs[0]!)[0], String(ref.pred[i % rows.length])));
      const rs = await replicas(s, 'digits');
      if (rs.length === 2 && rs.every((r) => r.max_batch > 1)) return;
    }
    assert.fail(`replicas did not both run batches > 1: ${JSON.stringify(await replicas(s, 'digits'))}`);
  });

  it('kill -9 of one container during a burst: every query is answered exactly once, correctly', T, async () => {
    const before = pidsOf(model.dir);
    assert.equal(before.length, 2);
    const total = 3000;
    const answers = new Map<number, number>();
    let sent = 0;
    let killed = false;
    await new Promise<void>((resolve, reject) => {
      const next = (): void => {
        const i = sent++;
        if (i >= total) return;
        if (i === 1000 && !killed) {
          killed = true;
          process.kill(before[0]!, 'SIGKILL');
        }
        client.infer({ model: 'digits', timeoutUs: 8_000_000, inputs: [f64([ref.x[i % ref.x.length]!])] }).then((a) => {
          answers.set(i, (answers.get(i) ?? 0) + 1);
          if (a.error) return reject(new Error(`query ${i}: ${a.error.code} ${a.error.message}`));
          assert.equal(strings(a.outputs[0]!)[0], String(ref.pred[i % ref.x.length]));
          if (answers.size === total) resolve();
          else next();
        }, reject);
      };
      for (let k = 0; k < 64; k++) next();
    });
    assert.equal(answers.size, total);
    assert.ok([...answers.values()].every((n) => n === 1));
    // The launcher restarts the killed process; it connects as a replica again.
    await ready(s, 'digits', 2);
    const after = pidsOf(model.dir);
    assert.equal(after.length, 2);
    assert.ok(!after.includes(before[0]!));
  });

  it('a hung container trips the batch timeout: its query fails coded, the process is restarted, service goes on', T, async () => {
    const before = pidsOf(model.dir);
    const hang = [-1, ...ref.x[0]!.slice(1)];
    const a = await client.infer({ model: 'digits', timeoutUs: 9_000_000, inputs: [f64([hang])] });
    assert.equal(a.error?.code, 'MODEL_ERROR');
    await until('the hung process replaced', () => (pidsOf(model.dir).filter((p) => !before.includes(p)).length === 1 ? true : undefined));
    await ready(s, 'digits', 2);
    const ok = await client.infer({ model: 'digits', inputs: [f64([ref.x[3]!])] });
    assert.equal(strings(ok.outputs[0]!)[0], String(ref.pred[3]));
    // The process that hung is the one restarted: both replicas take batches again.
    const before2 = new Map((await replicas(s, 'digits')).map((r) => [r.model_replica_id, r.batches]));
    await until('both replicas serving', async () => {
      // Fresh inputs (the prediction cache would answer repeated ones without a batch).
      await Promise.all(Array.from({ length: 200 }, (_, i) => client.infer({ model: 'digits', inputs: [f64([ref.x[i]!.map((v, k) => (k === 0 ? v + Math.random() * 1e-6 : v))])] })));
      const now = await replicas(s, 'digits');
      return now.length === 2 && now.every((r) => r.batches > (before2.get(r.model_replica_id) ?? 0)) ? true : undefined;
    }, 20_000);
    assert.equal(pidsOf(model.dir).length, 2);
  });

  it('set_num_replicas starts and stops launched processes', T, async () => {
    let r = await postJson(`${s.adminUrl}/admin/set_num_replicas`, { model_name: 'digits', num_replicas: 3 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    await ready(s, 'digits', 3);
    await until('3 processes', () => (pidsOf(model.dir).length === 3 ? true : undefined));
    r = await postJson(`${s.adminUrl}/admin/set_num_replicas`, { model_name: 'digits', num_replicas: 1 });
    assert.equal(r.status, 200);
    await until('1 process', () => (pidsOf(model.dir).length === 1 ? true : undefined));
    await ready(s, 'digits', 1);
    const a = await client.infer({ model: 'digits', inputs: [f64([ref.x[5]!])] });
    assert.equal(strings(a.outputs[0]!)[0], String(ref.pred[5]));
    r = await postJson(`${s.adminUrl}/admin/set_num_replicas`, { model_name: 'digits', num_replicas: 2 });
    await ready(s, 'digits', 2);
  });

  it('a rogue peer sending garbage is counted and harms no one', T, async () => {
    const rpc = s.containers.rpc!;
    const rogue = new Dealer({ linger: 0 });
    rogue.connect(`tcp://127.0.0.1:${rpc.port}`);
    const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
    const u64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
    const e = Buffer.alloc(0);
    const garbage: Buffer[][] = [
      [u32(2)], // no delimiter
      [e, u32(0), Buffer.from('digits'), Buffer.from('1'), Buffer.from('3'), u32(2)], // wrong RPC version
      [e, u32(0), Buffer.from('nosuch'), Buffer.from('1'), Buffer.from('3'), u32(3)], // unknown model: refused
      [e, u32(1), u32(7)], // truncated header
      [e, u32(1), u32(7), u64(1n << 40n), u64(1n)], // sizes that claim a terabyte
      [e, u32(1), u32(12345), u64(16n), Buffer.concat([u64(1n), u64(1n)]), Buffer.from('x')], // unknown msg_id (unannounced peer)
      [e, u32(9)], // unknown type
    ];
    const countersBefore = { ...rpc.counters };
    // Good traffic runs alongside.
    const good = Promise.all(ref.x.slice(0, 100).map((row, i) => client.infer({ model: 'digits', inputs: [f64([row])] }).then((a) => assert.equal(strings(a.outputs[0]!)[0], String(ref.pred[i])))));
    for (const g of garbage) await rogue.send(g);
    await good;
    const c = await until('the rogue messages counted', () => {
      const now = rpc.counters;
      const d = (k: string): number => (now[k] ?? 0) - (countersBefore[k] ?? 0);
      return d('garbage_no_delimiter') >= 1 && d('garbage_wrong_rpc_version') >= 1 && d('refused_unknown_model') >= 1 &&
        d('garbage_truncated_header') >= 1 && d('garbage_header_mismatch') >= 1 && d('content_from_unknown_peer') >= 1 && d('garbage_bad_message_type') >= 1 ? now : undefined;
    }, 10_000);
    assert.ok(c);
    rogue.close();
    assert.equal((await replicas(s, 'digits')).length, 2);
  });
});

describe('model containers in an application: Exp4 over an ONNX model and a container', () => {
  const tmp = tempDir('skiff-containers-exp4-');
  let s: Served;
  let ref: Reference;

  before(async () => {
    writeClassifier(tmp.dir, 'onnx_clf', { seed: 7, inputDim: 64, classes: 10 });
    const m = writeContainerModel(tmp.dir, 'digits_f', { inputType: 'floats' });
    s = await serve(tmp.dir);
    ref = (await ready(s, 'digits_f', 1, m.reference))!;
    const r = await postJson(`${s.adminUrl}/admin/add_app`, {
      name: 'mix', input_type: 'floats', input_shape: [64], latency_slo_micros: 5_000_000, default_output: -1, policy: 'exp4', policy_params: { eta: 0.5 }, models: ['onnx_clf', 'digits_f'],
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }, T);

  after(async () => {
    await s?.close();
    tmp.cleanup();
  });

  it('combines both models and learns from feedback which one to trust', T, async () => {
    const p = await postJson(`${s.url}/mix/predict`, { input: ref.x[0] });
    assert.equal(p.status, 200, JSON.stringify(p.json));
    assert.equal(p.json.default, false);
    assert.deepEqual([...p.json.models_used].sort(), ['digits_f:1', 'onnx_clf:1']);
    const w0 = (await postJson(`${s.adminUrl}/admin/get_selection_state`, { app_name: 'mix' })).json.weights;
    for (let i = 0; i < 30; i++) {
      const f = await postJson(`${s.url}/mix/update`, { uid: 0, input: ref.x[i], label: ref.pred[i] });
      assert.equal(f.status, 200, JSON.stringify(f.json));
      assert.deepEqual([...f.json.models_updated].sort(), ['digits_f', 'onnx_clf']);
    }
    const w1 = (await postJson(`${s.adminUrl}/admin/get_selection_state`, { app_name: 'mix' })).json.weights;
    // The container agrees with the labels (they are its own predictions); the random ONNX model mostly does not.
    assert.ok(w1.digits_f > w0.digits_f, `${JSON.stringify(w0)} -> ${JSON.stringify(w1)}`);
    assert.ok(w1.digits_f > w1.onnx_clf);
  });
});

describe('model containers through Clipper\'s admin flow: external containers connect on their own', () => {
  const tmp = tempDir('skiff-containers-ext-');
  let s: Served;
  let child: ChildProcess | undefined;

  before(async () => {
    s = await serve(tmp.dir, { rpcPort: 0 });
  }, T);

  after(async () => {
    child?.kill('SIGKILL');
    await s?.close();
    tmp.cleanup();
  });

  it('answers the default with Clipper\'s explanation until a container connects, then serves it', T, async () => {
    const add = await postJson(`${s.adminUrl}/admin/add_app`, { name: 'ext_app', input_type: 'doubles', default_output: 'none', latency_slo_micros: 300_000, candidate_model_names: ['ext'] });
    assert.equal(add.status, 200, JSON.stringify(add.json));
    // The body ClipperConnection.register_model sends.
    const reg = await postJson(`${s.adminUrl}/admin/add_model`, {
      model_name: 'ext', model_version: '1', labels: ['digits'], input_type: 'doubles', container_name: 'example/digits:latest', model_data_path: 'DEPRECATED', batch_size: -1,
    });
    assert.equal(reg.status, 200, JSON.stringify(reg.json));
    const before = await postJson(`${s.url}/ext_app/predict`, { input: new Array(64).fill(0) });
    assert.equal(before.status, 200);
    assert.equal(before.json.default, true);
    assert.equal(before.json.output, 'none');
    assert.equal(before.json.default_explanation, 'No connected models found for query');
    const reference = join(tmp.dir, 'ref.json');
    child = spawn(PYTHON, [DIGITS], {
      env: { ...process.env, PYTHONPATH, REFERENCE_OUT: reference, CLIPPER_MODEL_NAME: 'ext', CLIPPER_MODEL_VERSION: '1', CLIPPER_PORT: String(s.containers.rpc!.port), CLIPPER_INPUT_TYPE: 'doubles' },
      stdio: 'ignore',
    });
    const ref = (await ready(s, 'ext', 1, reference))!;
    const listed = await postJson(`${s.adminUrl}/admin/get_all_containers`, { verbose: false });
    assert.deepEqual(listed.json, ['ext:1:0']);
    const after = await postJson(`${s.url}/ext_app/predict`, { input: ref.x[0] });
    assert.equal(after.json.default, false, JSON.stringify(after.json));
    assert.equal(after.json.output, ref.pred[0]);
    const m = await getJson(`${s.url}/v2/models/ext`);
    assert.equal(m.status, 200);
  });
});

/**
 * Clipper's own container library, unchanged: set SKIFF_CLIPPER_RPC_PY to the path of
 * `containers/python/rpc.py` from ucbrise/clipper (RPC_VERSION 3). Its imports need Debian's
 * python3-yaml and python3-prometheus-client; `clipper_admin.metrics` (unused with
 * collect_metrics=False) is stubbed here. Not run without the variable: Clipper's code is not
 * part of this repository.
 */
const CLIPPER_RPC = process.env.SKIFF_CLIPPER_RPC_PY;
describe('model containers: Clipper\'s own rpc.py connects and serves unchanged', { skip: CLIPPER_RPC ? false : 'set SKIFF_CLIPPER_RPC_PY to Clipper\'s containers/python/rpc.py' }, () => {
  const tmp = tempDir('skiff-clipper-rpc-');
  let s: Served;

  before(async () => {
    const lib = join(tmp.dir, 'lib');
    mkdirSync(join(lib, 'clipper_admin', 'metrics'), { recursive: true });
    writeFileSync(join(lib, 'clipper_admin', '__init__.py'), '');
    writeFileSync(join(lib, 'clipper_admin', 'metrics', '__init__.py'), 'def report_metric(*a, **k):\n    pass\n');
    copyFileSync(CLIPPER_RPC!, join(lib, 'rpc.py'));
    const dir = join(tmp.dir, 'repo', 'clipper_sum', '1');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'container.py'), [
      'import rpc',
      'class Sum(rpc.ModelContainerBase):',
      '    def predict_doubles(self, inputs):',
      '        return [str(float(x.sum())) for x in inputs]',
      'rpc.RPCService(collect_metrics=False).start(Sum())',
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'container.json'), JSON.stringify({ command: [PYTHON, join(dir, 'container.py')], input_type: 'doubles', replicas: 1, env: { PYTHONPATH: lib } }));
    s = await serve(join(tmp.dir, 'repo'));
    await ready(s, 'clipper_sum', 1);
  }, T);

  after(async () => {
    await s?.close();
    tmp.cleanup();
  });

  it('answers batches of doubles, one string per input', T, async () => {
    const rows = Array.from({ length: 16 }, (_, i) => [i, 0.5, 2]);
    const r = await postJson(`${s.url}/v2/models/clipper_sum/infer`, { inputs: [{ name: 'input', datatype: 'FP64', shape: [16, 3], data: rows.flat() }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json.outputs[0].data, rows.map((x) => String(x[0]! + 2.5)));
  });
});

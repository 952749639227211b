/**
 * Resources, concurrency and the selection layer's bounds (issue 14, items 5, 6, 9, 12, 13, plus
 * the confidence threshold and Triton's binary tensor extension end to end), on real servers.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { assertClose, bytesOf, classifierReference, f32, i64, postJson, serve, tempDir } from './helpers.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { decodeFrame } from '../../src/protocol/wire-decode.js';
import { encodeFrame } from '../../src/protocol/wire-encode.js';
import { writeClassifier, writeDelayModel, writeIdentity, writeModelConfig } from '../../src/modelgen/fixtures.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const T = { timeout: 120_000 };
const row4 = (x: number[]): Tensor => ({ name: 'input', datatype: 'FP32', shape: [1, 4], data: bytesOf(new Float32Array(x)) });

describe('client deadlines are bounded', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  let client: SkiffClient;
  const warnings: string[] = [];
  const onWarning = (w: Error): void => { warnings.push(w.name); };
  before(async () => {
    process.on('warning', onWarning);
    writeDelayModel(tmp.dir, 'slow', { delayMs: 1500, dim: 4 });
    writeModelConfig(tmp.dir, 'slow', { cache_bytes: 0, max_batch_size: 1, pipeline_depth: 1 });
    s = await serve(tmp.dir, { maxTimeoutMs: 300 });
    client = await SkiffClient.connect(s.wsUrl);
  });
  after(async () => {
    process.off('warning', onWarning);
    await client.close();
    await s.close();
    tmp.cleanup();
  });

  it('an absurd timeout or deadline is refused with a coded 400', T, async () => {
    const a = await client.infer({ model: 'slow', timeoutUs: 2 ** 52, inputs: [row4([1, 2, 3, 4])] });
    assert.equal(a.error?.code, 'INVALID_DEADLINE');
    const d = await client.infer({ model: 'slow', deadlineUnixUs: Date.now() * 1000 + 1e15, inputs: [row4([1, 2, 3, 4])] });
    assert.equal(d.error?.code, 'INVALID_DEADLINE');
    const oip = await postJson(`${s.url}/v2/models/slow/infer`, { parameters: { timeout: 1e300 }, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    assert.equal(oip.status, 400);
    assert.equal(oip.json.code, 'INVALID_DEADLINE');
    const neg = await postJson(`${s.url}/v2/models/slow/infer`, { parameters: { timeout: -5 }, inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: [1, 2, 3, 4] }] });
    assert.equal(neg.status, 400);
  });

  it('a huge timeout is clamped to --max-timeout-ms: the query still expires, no timer overflows', T, async () => {
    const busy = client.infer({ model: 'slow', timeoutUs: 250_000, inputs: [row4([1, 1, 1, 1])] });
    const t0 = performance.now();
    // An hour, asked for: the server's maximum is 300 ms, so it expires behind the busy replica.
    const long = await client.infer({ model: 'slow', timeoutUs: 3600 * 1e6, inputs: [row4([2, 2, 2, 2])] });
    const ms = performance.now() - t0;
    assert.equal(long.error?.code, 'DEADLINE_EXCEEDED');
    assert.ok(ms < 1400, `answered after ${ms.toFixed(0)} ms, before the busy batch ended`);
    await busy;
    assert.ok(!warnings.includes('TimeoutOverflowWarning'), `warnings: ${warnings}`);
  });
});

describe('per-user selection state is bounded', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeClassifier(tmp.dir, 'a', { seed: 1, inputDim: 4, classes: 3 });
    writeClassifier(tmp.dir, 'b', { seed: 2, inputDim: 4, classes: 3 });
    s = await serve(tmp.dir, { maxUserStates: 5 });
    const r = await postJson(`${s.adminUrl}/admin/add_app`, { name: 'bandit', input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, policy: 'exp3', models: ['a', 'b'] });
    assert.equal(r.status, 200);
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('a predict with a new user creates no state; feedback does; memory holds at most --max-user-states', T, async () => {
    for (let u = 1; u <= 200; u++) {
      const r = await postJson(`${s.url}/bandit/predict`, { uid: `user-${u}`, input: [u, 1, 2, 3] });
      assert.equal(r.status, 200);
    }
    assert.deepEqual(s.store.entries('bandit').filter(([ctx]) => ctx !== '').length, 0, 'predicts created no user state');
    for (let u = 1; u <= 12; u++) {
      const r = await postJson(`${s.url}/bandit/update`, { uid: `user-${u}`, input: [u, 1, 2, 3], label: 1 });
      assert.equal(r.status, 200, JSON.stringify(r.json));
    }
    const users = s.store.entries('bandit').filter(([ctx]) => ctx !== '').map(([ctx]) => ctx);
    assert.equal(users.length, 5, `kept: ${users}`);
    assert.deepEqual(users.sort(), ['user-10', 'user-11', 'user-12', 'user-8', 'user-9'], 'the most recently used users');
  });
});

describe('slow readers and bursts', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeIdentity(tmp.dir, 'big', { dim: 65536 });
    writeModelConfig(tmp.dir, 'big', { cache_bytes: 0, max_batch_size: 64 });
    s = await serve(tmp.dir, { wsMaxPendingBytes: 8 * 1024 * 1024 });
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('a reading client whose replies come as one burst over the limit is not closed', T, async () => {
    const ws = new WebSocket(s.wsUrl, { maxPayload: 1 << 30 });
    await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
    const x = new Uint8Array(65536 * 4);
    const n = 48; // 48 x 256 KiB = 12 MiB of replies from one frame, above the 8 MiB limit
    let got = 0;
    let closeCode = 0;
    ws.on('close', (code) => { closeCode = code; });
    const all = new Promise<void>((resolve, reject) => {
      ws.on('message', (d: Buffer) => {
        const f = decodeFrame(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
        for (const r of f.responses) {
          if (r.error) reject(new Error(`${r.error.code}: ${r.error.message}`));
          got++;
        }
        if (got === n) resolve();
      });
      ws.once('close', (code) => reject(new Error(`closed with ${code}`)));
    });
    ws.send(encodeFrame({ requests: Array.from({ length: n }, (_, i) => ({ id: BigInt(i + 1), model: 'big', inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 65536], data: x }] })) }));
    await all;
    assert.equal(closeCode, 0);
    assert.equal(s.wsStats().slowReaderCloses, 0);
    ws.close();
  });
});

describe('cancellation reaches application queries', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeDelayModel(tmp.dir, 'slow', { delayMs: 800, dim: 4 });
    writeModelConfig(tmp.dir, 'slow', { cache_bytes: 0, max_batch_size: 1, pipeline_depth: 1 });
    s = await serve(tmp.dir);
    const r = await postJson(`${s.adminUrl}/admin/add_app`, { name: 'slowapp', input_type: 'floats', input_shape: [4], default_output: -1, latency_slo_micros: 5_000_000, policy: 'single', models: ['slow'] });
    assert.equal(r.status, 200);
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  const counters = () => s.registry.resolve('slow').executor!.counters;

  it('a WebSocket cancel frame cancels an application query, answered CANCELLED once', T, async () => {
    const c = await SkiffClient.connect(s.wsUrl);
    const busy = c.infer({ model: 'slow', inputs: [row4([0, 0, 0, 0])] });
    const input: Tensor = { name: 'input', datatype: 'FP32', shape: [4], data: bytesOf(new Float32Array([1, 2, 3, 4])) };
    const before = counters().cancelled;
    const q = c.infer({ app: 'slowapp', inputs: [input] });
    await new Promise((r) => setTimeout(r, 50));
    c.cancel(q.id);
    const a = await q;
    assert.equal(a.error?.code, 'CANCELLED');
    assert.equal(counters().cancelled, before + 1, 'the model query left its queue');
    await busy;
    await c.close();
  });

  it('a Clipper REST client that hangs up cancels its query', T, async () => {
    const c = await SkiffClient.connect(s.wsUrl);
    const busy = c.infer({ model: 'slow', inputs: [row4([0, 0, 0, 0])] });
    const before = counters().cancelled;
    const ac = new AbortController();
    const p = fetch(`${s.url}/slowapp/predict`, { method: 'POST', body: JSON.stringify({ input: [5, 6, 7, 8] }), headers: { 'content-type': 'application/json' }, signal: ac.signal }).catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 100));
    ac.abort();
    await p;
    for (let i = 0; i < 50 && counters().cancelled === before; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(counters().cancelled, before + 1);
    await busy;
    await c.close();
  });
});

describe('lifecycle operations on one model are serialized', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  const threads = (): number => Number(/Threads:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);

  before(async () => {
    writeClassifier(tmp.dir, 'm', { seed: 1, inputDim: 4, classes: 3 });
    writeClassifier(tmp.dir, 'm', { seed: 2, inputDim: 4, classes: 3, version: 2 });
    writeModelConfig(tmp.dir, 'm', { version_policy: { all: true }, cache_bytes: 0 });
    s = await serve(tmp.dir);
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('load, unload, set_num_replicas, set_model_version and delete in random order under load: no error, no leaked thread, every query answered once', T, async () => {
    const idle = async (): Promise<number> => {
      assert.equal((await postJson(`${s.adminUrl}/v2/repository/models/m/unload`, {})).status, 200);
      for (let i = 0; i < 100; i++) {
        await new Promise((r) => setTimeout(r, 50));
        if (s.registry.list().every((m) => m.versions.every((v) => !v.executor))) break;
      }
      await new Promise((r) => setTimeout(r, 300));
      return threads();
    };
    const baseline = await idle();
    assert.equal((await postJson(`${s.adminUrl}/v2/repository/models/m/load`, {})).status, 200);

    const client = await SkiffClient.connect(s.wsUrl);
    let stop = false;
    let sent = 0;
    const answers = new Map<bigint, number>();
    const load = (async () => {
      while (!stop) {
        const calls = Array.from({ length: 8 }, () => client.infer({ model: 'm', inputs: [row4([Math.random(), 1, 2, 3])] }));
        sent += calls.length;
        for (const c of calls) {
          const a = await c;
          answers.set(c.id, (answers.get(c.id) ?? 0) + 1);
          if (a.error) assert.notEqual(a.error.code, 'INTERNAL', a.error.message);
        }
      }
    })();

    let seed = 7;
    const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const ops: (() => Promise<{ status: number; json: any }>)[] = [
      () => postJson(`${s.adminUrl}/v2/repository/models/m/load`, {}),
      () => postJson(`${s.adminUrl}/v2/repository/models/m/unload`, {}),
      () => postJson(`${s.adminUrl}/admin/set_num_replicas`, { model_name: 'm', num_replicas: 1 + rnd(3) }),
      () => postJson(`${s.adminUrl}/admin/set_model_version`, { model_name: 'm', model_version: 1 + rnd(2) }),
      () => postJson(`${s.adminUrl}/admin/delete_versioned_model`, { model_name: 'm', model_version: 1 + rnd(2) }),
    ];
    const results: { status: number; json: any }[] = [];
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 10; i++) {
        await new Promise((r) => setTimeout(r, rnd(30)));
        results.push(await ops[rnd(ops.length)]!());
      }
    }));
    stop = true;
    await load;
    for (const r of results) {
      // Refusals are coded (a version that is gone, a model unloaded); nothing fails inside.
      assert.ok(r.status === 200 || (r.status < 500 && typeof r.json.code === 'string') || r.json.code === 'MODEL_UNAVAILABLE' || r.json.code === 'MODEL_LOAD_FAILED', JSON.stringify(r));
      assert.notEqual(r.json.code, 'INTERNAL');
    }
    assert.equal(answers.size, sent);
    assert.ok([...answers.values()].every((n) => n === 1));
    await client.close();
    // Everything unloaded: the worker threads of every pool that ever ran are gone.
    const after = await idle();
    assert.ok(after <= baseline, `threads ${baseline} -> ${after}`);
  });
});

describe('the confidence threshold', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    writeClassifier(tmp.dir, 'x', { seed: 11, inputDim: 4, classes: 5 });
    writeClassifier(tmp.dir, 'y', { seed: 12, inputDim: 4, classes: 5 });
    writeClassifier(tmp.dir, 'z', { seed: 11, inputDim: 4, classes: 5 }); // the same weights as x
    s = await serve(tmp.dir);
    for (const [name, models] of [['split', ['x', 'y']], ['agree', ['x', 'z']]] as const) {
      const r = await postJson(`${s.adminUrl}/admin/add_app`, { name, input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, policy: 'exp4', confidence_threshold: 0.9, models });
      assert.equal(r.status, 200);
    }
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('answers the default with an explanation when the ensemble disagrees, the ensemble when it agrees', T, async () => {
    const label = async (m: string, input: number[]): Promise<number> => (await postJson(`${s.url}/v2/models/${m}/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, 4], data: input }] })).json.outputs.find((o: { name: string }) => o.name === 'label').data[0];
    let disagree: number[] | undefined;
    for (let i = 0; i < 200 && !disagree; i++) {
      const input = [Math.sin(i) * 3, Math.cos(i * 1.3) * 3, (i % 7) - 3, (i % 5) - 2];
      if ((await label('x', input)) !== (await label('y', input))) disagree = input;
    }
    assert.ok(disagree, 'found an input the two models disagree on');
    const split = await postJson(`${s.url}/split/predict`, { input: disagree });
    assert.equal(split.json.default, true);
    assert.equal(split.json.output, -1);
    assert.match(split.json.default_explanation, /confidence/i);
    assert.ok(split.json.confidence < 0.9);
    const agree = await postJson(`${s.url}/agree/predict`, { input: disagree });
    assert.equal(agree.json.default, false);
    assert.equal(agree.json.output, await label('x', disagree));
    assert.equal(agree.json.confidence, 1);
  });
});

describe('Triton\'s binary tensor extension over HTTP, end to end', () => {
  const tmp = tempDir();
  let s: Awaited<ReturnType<typeof serve>>;
  let file: string;
  before(async () => {
    file = writeClassifier(tmp.dir, 'clf', { seed: 5, inputDim: 8, classes: 4 }).file;
    s = await serve(tmp.dir);
  });
  after(async () => {
    await s.close();
    tmp.cleanup();
  });

  it('a binary request and binary outputs, as tritonclient sends and reads them, match ONNX Runtime', T, async () => {
    const ref = await classifierReference(file, 3, { seed: 9, range: 2, dim: 8 });
    const header = Buffer.from(JSON.stringify({
      inputs: [{ name: 'input', shape: [3, 8], datatype: 'FP32', parameters: { binary_data_size: ref.x.byteLength } }],
      outputs: [{ name: 'probabilities', parameters: { binary_data: true } }, { name: 'label', parameters: { binary_data: true } }],
    }));
    const body = Buffer.concat([header, Buffer.from(ref.x.buffer, ref.x.byteOffset, ref.x.byteLength)]);
    const r = await fetch(`${s.url}/v2/models/clf/infer`, { method: 'POST', body, headers: { 'Inference-Header-Content-Length': String(header.length), 'Content-Type': 'application/octet-stream' } });
    assert.equal(r.status, 200);
    const hlen = Number(r.headers.get('inference-header-content-length'));
    const bytes = new Uint8Array(await r.arrayBuffer());
    const json = JSON.parse(Buffer.from(bytes.subarray(0, hlen)).toString()) as { outputs: { name: string; datatype: string; shape: number[]; parameters: { binary_data_size: number } }[] };
    let off = hlen;
    const out: Record<string, Tensor> = {};
    for (const o of json.outputs) {
      const n = o.parameters.binary_data_size;
      out[o.name] = { name: o.name, datatype: o.datatype as Tensor['datatype'], shape: o.shape, data: bytes.slice(off, off + n) };
      off += n;
    }
    assert.equal(off, bytes.byteLength);
    assert.deepEqual(out.probabilities!.shape, [3, 4]);
    assertClose(f32(out.probabilities!), ref.probs, 1e-5, 'probabilities');
    assert.deepEqual(i64(out.label!), ref.labels);
  });
});

/**
 * Several instances sharing state through a real redis-server (`--state redis://...`), behind a
 * real HAProxy, all on loopback (test/integration/cluster.ts starts them):
 *  - a change made through one instance's admin API reaches the others (the bound is measured
 *    and printed), models and replicas included;
 *  - concurrent feedback on every instance loses no update (Exp4's state after it equals one
 *    instance's after the same feedback in sequence), and Exp3 learns from feedback spread
 *    round-robin by the balancer as it does on one instance;
 *  - kill -9 of an instance loses nothing it acknowledged and the balancer routes around it;
 *  - Redis killed and restarted mid-run (append-only file, fsync always): queries keep being
 *    answered, admin changes and feedback are refused with STORE_UNAVAILABLE while it is down,
 *    nothing acknowledged is lost, and the instances catch up when it is back.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import { policyByName } from '../../src/selection/policies/index.js';
import { postJson, serve, tempDir } from './helpers.js';
import { startCluster, type Cluster } from './cluster.js';

const DIM = 4;
const T = { timeout: 180_000 };

/** Clipper's add_app body as a definition for AppRegistry.add (models, not candidate_model_names). */
function direct(app: Record<string, unknown>): Record<string, unknown> {
  const { candidate_model_names: models, ...rest } = app;
  return { ...rest, models };
}

/** Deterministic inputs in [-2, 2). */
function inputs(n: number, seed: number): number[][] {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 4 - 2;
  };
  return Array.from({ length: n }, () => Array.from({ length: DIM }, next));
}

async function until<T>(what: string | (() => string), f: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<{ value: T; ms: number }> {
  const t0 = performance.now();
  for (;;) {
    const v = await f();
    if (v !== undefined) return { value: v, ms: performance.now() - t0 };
    if (performance.now() - t0 > timeoutMs) throw new Error(`${typeof what === 'string' ? what : what()}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('instances sharing state through Redis, behind HAProxy', () => {
  const repo = tempDir('skiff-shared-repo-');
  let c: Cluster;
  let labels: number[];
  const xs = inputs(400, 7);
  const admin = (i: number) => `http://127.0.0.1:${c.instances[i]!.adminPort}/admin`;
  const auth = () => ({ authorization: `Bearer ${c.adminToken}` });
  const call = (i: number, name: string, body: unknown) => postJson(`${admin(i)}/${name}`, body, auth());
  const weights = async (i: number, app: string): Promise<Record<string, number>> => {
    const r = await call(i, 'get_selection_state', { app_name: app });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    return r.json.weights as Record<string, number>;
  };

  /** Wait until every live instance answers for the application. */
  const everywhere = async (name: string, live = [0, 1, 2]): Promise<void> => {
    await Promise.all(live.map((i) => until(`${name} on instance ${i}`, async () => ((await call(i, 'get_application', { name })).json.name === name) || undefined)));
  };

  before(async () => {
    writeClassifier(repo.dir, 'good', { seed: 1, inputDim: DIM, classes: 3 });
    writeClassifier(repo.dir, 'bad', { seed: 2, inputDim: DIM, classes: 3 });
    writeClassifier(repo.dir, 'other', { seed: 3, inputDim: DIM, classes: 3 });
    c = await startCluster({ instances: 3, repository: repo.dir, redis: { aof: true }, args: (_i, { redisUrl }) => ['--state', redisUrl!] });
    // The truth is what 'good' answers: it is always right, the others mostly not.
    const r = await postJson(`${c.instances[0]!.url}/v2/models/good/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [xs.length, DIM], data: xs.flat() }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    labels = (r.json.outputs as { name: string; data: number[] }[]).find((o) => o.name === 'label')!.data;
  });
  after(async () => {
    await c?.stop();
    repo.cleanup();
  });

  it('an application created through one instance answers on all; the bound is measured', T, async () => {
    const spans: number[] = [];
    for (let k = 0; k < 5; k++) {
      const name = `app${k}`;
      const made = await call(k % 3, 'add_app', { name, input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, policy: 'exp3', candidate_model_names: ['good'] });
      assert.equal(made.status, 200, JSON.stringify(made.json));
      const t0 = performance.now();
      await Promise.all([0, 1, 2].filter((i) => i !== k % 3).map((i) => until(`${name} on instance ${i}`, async () => {
        const p = await postJson(`${c.instances[i]!.url}/${name}/predict`, { input: xs[0] });
        return p.status === 200 && p.json.default === false ? p : undefined;
      })));
      spans.push(performance.now() - t0);
    }
    spans.sort((a, b) => a - b);
    console.log(`control-plane propagation (acknowledged on one instance -> answering on the other two): median ${spans[2]!.toFixed(1)} ms, max ${spans[4]!.toFixed(1)} ms`);
    assert.ok(spans[4]! < 2000, `propagation ${spans}`);
    // Links, and a deletion, travel the same way.
    assert.equal((await call(1, 'add_model_links', { app_name: 'app0', model_names: ['bad'] })).status, 200);
    await until('link on instance 2', async () => ((await call(2, 'get_linked_models', { app_name: 'app0' })).json as string[]).includes('bad') || undefined);
    assert.equal((await call(2, 'delete_app', { name: 'app4' })).status, 200);
    await until('deletion on instance 0', async () => ((await call(0, 'get_application', { name: 'app4' })).json.name === undefined) || undefined);
  });

  it('model versions, the current version and replicas set on one instance are served by all', T, async () => {
    writeClassifier(repo.dir, 'other', { seed: 4, inputDim: DIM, classes: 3, version: 2 });
    const added = await call(0, 'add_model', { model_name: 'other', model_version: '2', model_data_path: 'DEPRECATED', input_type: 'floats', labels: ['v2'], container_name: 'onnx', batch_size: -1 });
    assert.equal(added.status, 200, JSON.stringify(added.json));
    for (const i of [1, 2]) {
      await until(`other:2 on instance ${i}`, async () => {
        const m = await call(i, 'get_model', { model_name: 'other' });
        return m.json.model_version === '2' && m.json.is_current_version === true ? m : undefined;
      }, 30_000);
      const meta = await fetch(`${c.instances[i]!.url}/v2/models/other/versions/2`);
      assert.equal(meta.status, 200);
    }
    assert.equal((await call(2, 'set_num_replicas', { model_name: 'good', num_replicas: 2 })).status, 200);
    await until('replicas on instance 0', async () => {
      const all = (await call(0, 'get_all_containers', { verbose: false })).json as string[];
      return all.filter((r) => r.startsWith('good:1:')).length === 2 || undefined;
    }, 30_000);
    assert.equal((await call(1, 'set_model_version', { model_name: 'other', model_version: '1' })).status, 200);
    await until('current version on instance 2', async () => ((await call(2, 'get_model', { model_name: 'other' })).json.model_version === '1') || undefined);
  });

  it('concurrent feedback on every instance loses no update: Exp4 ends where one instance ends', T, async () => {
    const app = { name: 'ens', input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, policy: 'exp4', policy_params: { eta: 0.05 }, candidate_model_names: ['good', 'bad'] };
    assert.equal((await call(0, 'add_app', app)).status, 200);
    await everywhere('ens');
    const N = 120;
    const events = Array.from({ length: N }, (_, k) => ({ uid: 0, input: xs[k % xs.length]!, label: labels[k % xs.length]! }));
    // 12 in flight at a time, each through the next instance: conflicts are certain.
    let next = 0;
    await Promise.all(Array.from({ length: 12 }, async () => {
      while (next < N) {
        const k = next++;
        const r = await postJson(`${c.instances[k % 3]!.url}/ens/update`, events[k]);
        assert.equal(r.status, 200, JSON.stringify(r.json));
      }
    }));
    // The same feedback on one instance, one after the other.
    const one = await serve(repo.dir);
    try {
      one.apps.add(direct(app));
      for (const e of events) assert.equal((await postJson(`${one.url}/ens/update`, e)).status, 200);
      const rt = one.apps.require('ens');
      const expect = policyByName('exp4').weights(one.apps.state(rt, ''));
      let last: Record<string, number> = {};
      for (const i of [0, 1, 2]) {
        const { value: w } = await until(() => `weights on instance ${i} (${JSON.stringify(last)} against ${JSON.stringify(expect)})`, async () => {
          const w = await weights(i, 'ens');
          last = w;
          return Object.keys(expect).every((m) => Math.abs(w[m]! - expect[m]!) < 1e-9) ? w : undefined;
        });
        console.log(`exp4 after ${N} concurrent updates on 3 instances, seen by instance ${i}: ${JSON.stringify(w)} (one instance: ${JSON.stringify(expect)})`);
      }
    } finally {
      await one.close();
    }
  });

  it('Exp3 learns from feedback spread round-robin by the balancer as fast as on one instance', T, async () => {
    const app = { name: 'pick', input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, policy: 'exp3', candidate_model_names: ['good', 'bad', 'other'] };
    assert.equal((await call(1, 'add_app', app)).status, 200);
    await everywhere('pick');
    const N = 300;
    const run = async (url: string): Promise<void> => {
      for (let k = 0; k < N; k++) {
        const x = xs[k % xs.length]!;
        const p = await postJson(`${url}/pick/predict`, { input: x });
        assert.equal(p.status, 200, JSON.stringify(p.json));
        const u = await postJson(`${url}/pick/update`, { uid: 0, input: x, label: labels[k % xs.length] });
        assert.equal(u.status, 200, JSON.stringify(u.json));
      }
    };
    await run(c.balancer.url);
    const one = await serve(repo.dir);
    let single: number;
    try {
      one.apps.add(direct(app));
      await run(one.url);
      const rt = one.apps.require('pick');
      single = policyByName('exp3').weights(one.apps.state(rt, '')).good!;
    } finally {
      await one.close();
    }
    const shared = await Promise.all([0, 1, 2].map(async (i) => (await weights(i, 'pick')).good!));
    console.log(`exp3 weight of the right model after ${N} events: balanced over 3 instances ${shared.map((w) => w.toFixed(3)).join(' / ')}, one instance ${single.toFixed(3)}`);
    for (const w of shared) assert.ok(w > 0.8, `shared ${shared}`);
    assert.ok(single > 0.8, `single ${single}`);
  });

  it('kill -9 of an instance loses nothing it acknowledged; the balancer routes around it', T, async () => {
    assert.equal((await call(2, 'add_app', { name: 'last', input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, policy: 'exp4', candidate_model_names: ['good', 'bad'] })).status, 200);
    const fb = await postJson(`${c.instances[2]!.url}/last/update`, { uid: 'u1', input: xs[1], label: labels[1] });
    assert.equal(fb.status, 200);
    const before2 = await weights(2, 'last');
    await c.kill(2);
    // Everything instance 2 acknowledged is on the others.
    await until('app and weights on instance 0', async () => {
      const w = await weights(0, 'last').catch(() => undefined);
      return w && Math.abs(w.good! - before2.good!) < 1e-12 ? w : undefined;
    });
    // A user's state is read from Redis on first use by an instance that has not seen it.
    await until('the user state on instance 1', async () => {
      const user = await call(1, 'get_selection_state', { app_name: 'last', uid: 'u1' });
      return user.json.weights.good > user.json.weights.bad ? user : undefined;
    });
    for (let k = 0; k < 30; k++) {
      const p = await postJson(`${c.balancer.url}/last/predict`, { input: xs[k] });
      assert.equal(p.status, 200, JSON.stringify(p.json));
      assert.equal(p.json.default, false);
    }
    await c.balancer.waitFor(['s2'], 'DOWN');
  });

  it('Redis killed and restarted: queries keep being answered, changes are refused while it is down, nothing acknowledged is lost', T, async () => {
    const w0 = await weights(0, 'ens');
    const apps0 = (await call(0, 'get_all_applications', {})).json as string[];
    await c.redis!.proc().stop('SIGKILL');
    // Down: queries answered from the last state; admin changes and feedback refused with a code.
    await until('instance 0 notices', async () => {
      const r = await call(0, 'add_app', { name: 'during', input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, candidate_model_names: ['good'] });
      return r.status === 503 ? r : undefined;
    });
    const refused = await call(1, 'add_app', { name: 'during', input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, candidate_model_names: ['good'] });
    assert.equal(refused.status, 503);
    assert.equal(refused.json.code, 'STORE_UNAVAILABLE');
    const fb = await postJson(`${c.instances[0]!.url}/ens/update`, { uid: 0, input: xs[0], label: labels[0] });
    assert.equal(fb.status, 503);
    for (let k = 0; k < 20; k++) {
      const p = await postJson(`${c.balancer.url}/ens/predict`, { input: xs[k] });
      assert.equal(p.status, 200, JSON.stringify(p.json));
      assert.equal(p.json.default, false);
    }
    // Back, from its append-only file: nothing acknowledged lost, changes accepted and shared again.
    await c.redis!.restart();
    await until('admin writes accepted again', async () => {
      const r = await call(0, 'add_app', { name: 'after', input_type: 'floats', default_output: -1, latency_slo_micros: 1_000_000, candidate_model_names: ['good'] });
      return r.status === 200 ? r : undefined;
    }, 20_000);
    assert.deepEqual(await weights(1, 'ens'), w0);
    // And Redis itself came back with every acknowledged update of the shared state (120 in the
    // concurrent-feedback test, none of the refused one).
    const r = new Redis(c.redis!.url);
    try {
      assert.equal(await r.hget('skiff:s:3:ens:', 'v'), '120');
    } finally {
      r.disconnect();
    }
    const apps1 = (await call(1, 'get_all_applications', {})).json as string[];
    for (const a of apps0) assert.ok(apps1.includes(a), `${a} kept`);
    assert.ok(!apps1.includes('during'), 'a refused change never happened');
    await until('the change after the restart on instance 1', async () => ((await call(1, 'get_all_applications', {})).json as string[]).includes('after') || undefined);
    const more = await postJson(`${c.instances[1]!.url}/ens/update`, { uid: 0, input: xs[2], label: labels[2] });
    assert.equal(more.status, 200, JSON.stringify(more.json));
  });
});

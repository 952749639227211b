/**
 * Several Skiff instances behind a real load balancer (HAProxy) with a real redis-server beside
 * them (test/integration/cluster.ts). Today the instances share only the model repository:
 *  - OIP REST and WebSocket queries through the balancer are answered correctly and spread over
 *    both instances (each instance's own statistics say how many it ran);
 *  - after kill -9 of one instance every later request through the balancer succeeds, and the
 *    balancer marks it down;
 *  - the harness leaves no process behind, also when a start fails half-way.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { SkiffClient } from '../../src/client/ws-client.js';
import { writeClassifier } from '../../src/modelgen/fixtures.js';
import { assertClose, bytesOf, classifierReference, f32, i64, postJson, tempDir } from './helpers.js';
import { startCluster, type Cluster } from './cluster.js';

const DIM = 64;
const ROWS = 16;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function answered(url: string): Promise<number> {
  const r = await fetch(`${url}/v2/models/clf/stats`);
  assert.equal(r.status, 200);
  // Answered queries (cache hits included: the same rows are sent more than once).
  const body = (await r.json()) as { model_stats: { inference_stats: { success: { count: number } } }[] };
  return body.model_stats.reduce((a, s) => a + s.inference_stats.success.count, 0);
}

describe('a cluster of two instances behind HAProxy', () => {
  const repo = tempDir('skiff-cluster-repo-');
  let cluster: Cluster;
  let ref: Awaited<ReturnType<typeof classifierReference>>;

  before(async () => {
    const clf = writeClassifier(repo.dir, 'clf', { seed: 11, hidden: 32 });
    ref = await classifierReference(clf.file, ROWS, { seed: 5, range: 2 });
    cluster = await startCluster({ instances: 2, repository: repo.dir });
  });
  after(async () => {
    const pids = [...cluster.instances.map((p) => p.pid), cluster.balancer.proc.pid, cluster.redis!.proc().pid];
    await cluster.stop();
    repo.cleanup();
    for (const pid of pids) assert.equal(alive(pid), false, `process ${pid} still running after stop()`);
  });

  const row = (i: number) => Array.from(ref.x.subarray(i * DIM, (i + 1) * DIM));

  /** One OIP infer of row i through `url`; asserts the answer. */
  async function oip(url: string, i: number): Promise<void> {
    const r = await postJson(`${url}/v2/models/clf/infer`, { inputs: [{ name: 'input', datatype: 'FP32', shape: [1, DIM], data: row(i) }] });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const probs = r.json.outputs.find((o: { name: string }) => o.name === 'probabilities');
    assertClose(probs.data, ref.probs.subarray(i * 10, (i + 1) * 10), 1e-5, `row ${i}`);
  }

  /** A fresh WebSocket connection through `wsUrl`; queries rows i..i+n and asserts the answers. */
  async function ws(wsUrl: string, first: number, n: number): Promise<void> {
    const c = await SkiffClient.connect(wsUrl);
    try {
      const answers = await c.inferMany(Array.from({ length: n }, (_, k) => ({
        model: 'clf', inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [1, DIM], data: bytesOf(ref.x.slice((first + k) * DIM, (first + k + 1) * DIM)) }],
      })));
      answers.forEach((a, k) => {
        const i = first + k;
        assert.equal(a.error, undefined, a.error?.code);
        assertClose(f32(a.outputs.find((o) => o.name === 'probabilities')!), ref.probs.subarray(i * 10, (i + 1) * 10), 1e-5, `ws row ${i}`);
        assert.equal(i64(a.outputs.find((o) => o.name === 'label')!)[0], ref.labels[i]);
      });
    } finally {
      await c.close();
    }
  }

  it('starts Redis beside the instances', async () => {
    const r = new Redis(cluster.redis!.url, { lazyConnect: true });
    await r.connect();
    assert.equal(await r.ping(), 'PONG');
    r.disconnect();
  });

  it('answers OIP REST and WebSocket queries through the balancer, spread over both instances', async () => {
    const [a0, b0] = await Promise.all(cluster.instances.map((p) => answered(p.url)));
    for (let i = 0; i < ROWS; i++) await oip(cluster.balancer.url, i);
    const [a1, b1] = await Promise.all(cluster.instances.map((p) => answered(p.url)));
    assert.equal(a1! - a0! + (b1! - b0!), ROWS, 'every query ran once');
    assert.ok(a1! > a0! && b1! > b0!, `round robin: ${a1! - a0!} and ${b1! - b0!}`);

    // WebSocket upgrades through the balancer; each new connection goes to the next instance.
    for (let k = 0; k < 4; k++) await ws(cluster.balancer.wsUrl, k * 4, 4);
    const [a2, b2] = await Promise.all(cluster.instances.map((p) => answered(p.url)));
    assert.equal(a2! - a1! + (b2! - b1!), ROWS);
    assert.ok(a2! > a1! && b2! > b1!, `connections spread: ${a2! - a1!} and ${b2! - b1!}`);
  });

  it('routes around an instance killed with SIGKILL: every later request succeeds', async () => {
    const survivor = cluster.instances[1]!;
    const before = await answered(survivor.url);
    await cluster.kill(0);
    // At once, before any health check could notice: refused connections are retried elsewhere.
    for (let i = 0; i < ROWS; i++) await oip(cluster.balancer.url, i);
    for (let k = 0; k < 4; k++) await ws(cluster.balancer.wsUrl, k * 4, 4);
    assert.equal(await answered(survivor.url) - before, 2 * ROWS, 'the survivor ran them all');
    await cluster.balancer.waitFor(['s0'], 'DOWN', 10_000);
    assert.equal((await cluster.balancer.states()).s1, 'UP');
    for (let i = 0; i < 4; i++) await oip(cluster.balancer.url, i);
  });
});

describe('the cluster harness', () => {
  it('drives the cluster benchmark (a smoke run: one instance, direct and balanced, no figures)', async () => {
    const { runClusterBench } = await import('../../bench/cluster.js');
    const runs = await runClusterBench(['--quick', '--instances', '1', '--duration', '0.3', '--no-save']);
    assert.deepEqual(runs.map((r) => r.protocol), ['ws', 'http', 'ws', 'http']);
    for (const r of runs) {
      assert.ok(r.ok > 0, `${r.label}: nothing answered`);
      assert.equal(r.errors, 0, `${r.label}: ${JSON.stringify(r.errorCodes)}`);
    }
  });

  it('stops what it started when an instance cannot start', async () => {
    const empty = tempDir('skiff-cluster-bad-');
    try {
      const before = new Set(await childPids());
      // An instance refuses to start (an option out of range): Redis and the first instance go too.
      await assert.rejects(startCluster({ instances: 2, repository: empty.dir, args: (i) => (i === 1 ? ['--max-timeout-ms', '0'] : []) }));
      const left = (await childPids()).filter((p) => !before.has(p));
      assert.deepEqual(left, [], 'no process left behind');
    } finally {
      empty.cleanup();
    }
  });
});

/** The live child processes of this test process (Linux /proc). */
async function childPids(): Promise<number[]> {
  const { readdirSync, readFileSync } = await import('node:fs');
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid && fields[0] !== 'Z') out.push(Number(e));
    } catch {
      // gone
    }
  }
  return out;
}

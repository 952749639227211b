import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { DEMO_REPOSITORY } from '../../src/paths.js';
import { writeNet } from '../../src/modelgen/fixtures.js';
import { brokenClassifier } from '../../src/modelgen/train.js';
import { loadMnist } from '../../src/modelgen/mnist-data.js';
import { parseModelConfig } from '../../src/config/model-config.js';
import { SkiffClient } from '../../src/client/ws-client.js';
import { bytesOf, serve, tempDir } from './helpers.js';

/**
 * The model selection layer learning from feedback on real models and held-out digits:
 * the demo models mnist_mlp (~96%), mnist_logreg (~91%) and mnist_weak (~64%).
 */
describe('selection policies learn from feedback on held-out digits', () => {
  const tmp = tempDir();
  let server: Awaited<ReturnType<typeof serve>>;
  let client: SkiffClient;
  const { test } = loadMnist();
  const EVENTS = 2000;
  const ARMS = ['mnist_mlp', 'mnist_logreg', 'mnist_weak'];

  before(async () => {
    cpSync(DEMO_REPOSITORY, tmp.dir, { recursive: true });
    writeNet(tmp.dir, 'broken_source', brokenClassifier(4), 2);
    server = await serve(tmp.dir);
    server.apps.add({ name: 'bandit', input_type: 'floats', input_shape: [784], latency_slo_micros: 500_000, default_output: -1, policy: 'exp3', models: ARMS, seed: 1 });
    // eta 0.05: fast enough to silence the weak model early, slow enough to keep the logreg's vote.
    server.apps.add({ name: 'ensemble', input_type: 'floats', input_shape: [784], latency_slo_micros: 500_000, default_output: -1, policy: 'exp4', policy_params: { eta: 0.05 }, models: ARMS, seed: 1 });
    client = await SkiffClient.connect(server.wsUrl);
  });
  after(async () => {
    await client?.close();
    await server?.close();
    tmp.cleanup();
  });

  const input = (i: number) => [{ name: 'input', datatype: 'FP32' as const, shape: [784], data: bytesOf(test.x.subarray(i * 784, (i + 1) * 784)) }];

  /** One event: predict, then feedback with the true label. Returns the models used and correctness. */
  async function event(app: string, k: number): Promise<{ used: string[]; correct: boolean }> {
    const i = k % test.n;
    const r = await client.infer({ app, inputs: input(i) });
    assert.equal(r.error, undefined, r.error?.message);
    const out = new Float64Array(r.outputs.find((t) => t.name === 'output')!.data.slice().buffer)[0];
    const fb = await client.sendFeedback({ app, inputs: input(i), label: test.y[i]! });
    assert.equal(fb.error, undefined, `feedback failed: ${fb.error?.code} ${fb.error?.message}`);
    assert.ok((fb.modelsUsed ?? []).length > 0, 'feedback updated a model');
    return { used: r.modelsUsed ?? [], correct: out === test.y[i] };
  }

  async function stream(app: string, from: number, to: number, window = 4): Promise<{ used: string[]; correct: boolean }[]> {
    const results: { used: string[]; correct: boolean }[] = new Array(to - from);
    let next = from;
    await Promise.all(Array.from({ length: window }, async () => {
      while (next < to) {
        const k = next++;
        results[k - from] = await event(app, k);
      }
    }));
    return results;
  }

  const weights = (app: string) => {
    const rt = server.apps.require(app);
    return rt.policy.weights(server.apps.state(rt, ''));
  };

  it(`Exp3 converges to the best model: > 90% of picks in events 1,501-${EVENTS}`, async () => {
    const res = await stream('bandit', 0, EVENTS);
    const late = res.slice(1500);
    const share = late.filter((r) => r.used[0] === 'mnist_mlp:1').length / late.length;
    const w = weights('bandit');
    console.log(`exp3: best-model share of picks in events 1501-2000 = ${share.toFixed(3)}, pick probability at ${EVENTS} = ${w.mnist_mlp!.toFixed(3)}`);
    assert.ok(share > 0.9, `share ${share}`);
    assert.ok(w.mnist_mlp! > 0.9, `weights ${JSON.stringify(w)}`);
  });

  it('Exp4 ensemble accuracy is at least that of the best single model on the same digits', async () => {
    const res = await stream('ensemble', 0, EVENTS, 1);
    const ensembleAcc = res.filter((r) => r.correct).length / res.length;
    const single: Record<string, number> = {};
    for (const m of ARMS) {
      const answers = await client.inferMany(Array.from({ length: EVENTS }, (_, k) => ({
        model: m, outputs: ['label'],
        inputs: [{ name: 'input', datatype: 'FP32' as const, shape: [1, 784], data: input(k % test.n)[0]!.data }],
      })));
      single[m] = answers.filter((a, k) => Number(new BigInt64Array(a.outputs[0]!.data.slice().buffer)[0]) === test.y[k % test.n]).length / EVENTS;
    }
    console.log(`exp4 ensemble accuracy ${ensembleAcc.toFixed(4)}; single models ${JSON.stringify(single)}`);
    assert.ok(ensembleAcc >= Math.max(...Object.values(single)), `ensemble ${ensembleAcc} vs ${JSON.stringify(single)}`);
  });

  it('both policies shift away from the best model within 300 feedback events after it is replaced by a broken version', async () => {
    const v2 = server.registry.list().find((m) => m.name === 'broken_source')!.versions[0]!.file;
    const mv = await server.registry.loadVersion('mnist_mlp', { ...v2, version: 2 }, parseModelConfig('mnist_mlp', {}));
    assert.equal(mv.state, 'ready');
    assert.equal(server.registry.resolve('mnist_mlp').version, 2, 'the broken version is now current');
    const BOUND = 300;
    // Exp3: the broken arm's share of picks in the trailing 50 events falls below 10%.
    const picks: boolean[] = [];
    let exp3After = -1;
    for (let k = 0; k < BOUND + 50 && exp3After < 0; k += 10) {
      const res = await stream('bandit', EVENTS + k, EVENTS + k + 10, 1);
      for (const r of res) picks.push(r.used[0] === 'mnist_mlp:2');
      const tail = picks.slice(-50);
      if (picks.length >= 50 && tail.filter(Boolean).length / tail.length < 0.1) exp3After = picks.length;
    }
    // Exp4: the broken arm's ensemble weight falls below 10%.
    let exp4After = -1;
    for (let k = 0; k < BOUND && exp4After < 0; k += 10) {
      await stream('ensemble', EVENTS + k, EVENTS + k + 10, 1);
      if (weights('ensemble').mnist_mlp! < 0.1) exp4After = k + 10;
    }
    console.log(`recovery: exp3 after ${exp3After} events (trailing-50 share < 10%), exp4 after ${exp4After} events (weight < 10%)`);
    assert.ok(exp3After > 0 && exp3After <= BOUND + 50, `exp3 recovery ${exp3After}`);
    assert.ok(exp4After > 0 && exp4After <= BOUND, `exp4 recovery ${exp4After}`);
  });
});

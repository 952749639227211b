import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SkiffError } from '../../src/errors.js';
import { createRng, type Rng } from '../../src/rng.js';
import {
  POLICIES,
  epsilonGreedyPolicy,
  exp3Policy,
  exp4Policy,
  isPolicyName,
  lossFor,
  policyByName,
  predictedLabel,
  singlePolicy,
  ucb1Policy,
  type AnySelectionPolicy,
  type ArmOutput,
  type Exp3State,
  type Exp4State,
  type Ucb1State,
} from '../../src/selection/policies/index.js';

/** An rng that replays the given numbers, then fails the test if asked for more. */
function scripted(...values: number[]): Rng {
  let i = 0;
  return {
    next(): number {
      assert.ok(i < values.length, 'rng asked for more numbers than scripted');
      return values[i++]!;
    },
  };
}

function close(actual: number, expected: number, eps = 1e-12): void {
  assert.ok(Math.abs(actual - expected) <= eps, `expected ${expected}, got ${actual}`);
}

function closeAll(actual: readonly number[], expected: readonly number[], eps = 1e-12): void {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => close(a, expected[i]!, eps));
}

function isBadRequestNaming(field: string) {
  return (err: unknown): boolean =>
    err instanceof SkiffError && err.code === 'BAD_REQUEST' && err.message.includes(field);
}

const outputs = (entries: Record<string, ArmOutput>): Map<string, ArmOutput> => new Map(Object.entries(entries));
const fb = (entries: Record<string, number>): Map<string, number> => new Map(Object.entries(entries));

describe('lossFor', () => {
  test('classifier outputs get 0/1 loss from the label, else the argmax of probabilities', () => {
    assert.equal(lossFor({ label: 3 }, 3), 0);
    assert.equal(lossFor({ label: 3 }, 2), 1);
    assert.equal(lossFor({ probabilities: [0.1, 0.7, 0.2] }, 1), 0);
    assert.equal(lossFor({ probabilities: new Float32Array([0.1, 0.7, 0.2]) }, 2), 1);
    assert.equal(lossFor({ probabilities: [0.6, 0.4], label: 1 }, 1), 0, 'an explicit label wins');
  });

  test('regressor outputs get the clipped absolute error', () => {
    close(lossFor({ value: 2.25 }, 2), 0.25);
    assert.equal(lossFor({ value: -5 }, 2), 1);
    close(lossFor({ value: 13 }, 10, 4), 0.75);
    assert.equal(lossFor({ value: 30 }, 10, 4), 1);
  });

  test('an output with nothing usable is fully wrong; the scale must be positive', () => {
    assert.equal(lossFor({}, 0), 1);
    assert.equal(lossFor({ value: NaN }, 0), 1);
    assert.equal(lossFor({ probabilities: [] }, 0), 1);
    assert.throws(() => lossFor({ value: 1 }, 1, 0), isBadRequestNaming('scale'));
  });

  test('predictedLabel takes the first maximum and skips NaN', () => {
    assert.equal(predictedLabel({ probabilities: [0.4, 0.4, 0.2] }), 0);
    assert.equal(predictedLabel({ probabilities: [NaN, 0.1, 0.3] }), 2);
    assert.equal(predictedLabel({ value: 1 }), undefined);
  });
});

describe('registry and parameter validation', () => {
  test('POLICIES holds every policy under its own name', () => {
    assert.deepEqual(Object.keys(POLICIES).sort(), ['epsilon_greedy', 'exp3', 'exp4', 'single', 'ucb1']);
    for (const [name, policy] of Object.entries(POLICIES)) assert.equal(policy.name, name);
    assert.equal(policyByName('exp4'), exp4Policy);
    assert.ok(isPolicyName('ucb1'));
    assert.ok(!isPolicyName('toString'));
    assert.throws(() => policyByName('thompson'), isBadRequestNaming('thompson'));
  });

  test('missing params give the defaults; partial params are merged', () => {
    for (const policy of Object.values(POLICIES)) {
      assert.deepEqual(policy.validateParams(undefined), policy.defaults);
      assert.deepEqual(policy.validateParams({}), policy.defaults);
    }
    assert.deepEqual(exp3Policy.validateParams({ eta: 0.01, gamma: 0 }), { ...exp3Policy.defaults, eta: 0.01, gamma: 0 });
    assert.deepEqual(epsilonGreedyPolicy.validateParams({ epsilon: 1 }), { epsilon: 1 });
  });

  test('bad params throw BAD_REQUEST naming the field', () => {
    assert.throws(() => exp3Policy.validateParams({ eta: 0 }), isBadRequestNaming('eta'));
    assert.throws(() => exp3Policy.validateParams({ eta: '0.1' }), isBadRequestNaming('eta'));
    assert.throws(() => exp3Policy.validateParams({ gamma: 1.5 }), isBadRequestNaming('gamma'));
    assert.throws(() => exp3Policy.validateParams({ maxLogRatio: Infinity }), isBadRequestNaming('maxLogRatio'));
    assert.throws(() => exp4Policy.validateParams({ eta: -1 }), isBadRequestNaming('eta'));
    assert.throws(() => exp4Policy.validateParams({ gamma: 0.1 }), isBadRequestNaming('gamma'));
    assert.throws(() => epsilonGreedyPolicy.validateParams({ epsilon: NaN }), isBadRequestNaming('epsilon'));
    assert.throws(() => ucb1Policy.validateParams({ c: 2 }), isBadRequestNaming('"c"'));
    assert.throws(() => singlePolicy.validateParams({ eta: 1 }), isBadRequestNaming('eta'));
    assert.throws(() => exp3Policy.validateParams([1]), isBadRequestNaming('exp3'));
    assert.throws(() => exp3Policy.validateParams('fast'), isBadRequestNaming('exp3'));
  });

  test('duplicate or empty arm names and out-of-range losses are rejected', () => {
    for (const policy of Object.values(POLICIES)) {
      assert.throws(() => policy.init(['a', 'b', 'a'], policy.defaults), isBadRequestNaming('"a"'));
      assert.throws(() => policy.init([''], policy.defaults), (e: unknown) => e instanceof SkiffError && e.code === 'BAD_REQUEST');
      const s = policy.init(['a', 'b'], policy.defaults);
      for (const bad of [NaN, -0.1, 1.5]) {
        assert.throws(() => policy.update(s, fb({ b: bad }), ['b']), isBadRequestNaming('"b"'));
      }
    }
  });
});

describe('single', () => {
  test('queries the first linked arm, ignores feedback, falls back to the next arm', () => {
    let s = singlePolicy.init(['m:1', 'm:2'], {});
    assert.deepEqual(singlePolicy.select(s, scripted()), ['m:1']);
    assert.deepEqual(singlePolicy.weights(s), { 'm:1': 1, 'm:2': 0 });
    assert.equal(singlePolicy.update(s, fb({ 'm:1': 1 }), ['m:1']), s);
    s = singlePolicy.removeArm(s, 'm:1');
    assert.deepEqual(singlePolicy.select(s, scripted()), ['m:2']);
    s = singlePolicy.removeArm(s, 'm:2');
    assert.deepEqual(singlePolicy.select(s, scripted()), []);
    assert.deepEqual(singlePolicy.weights(s), {});
  });

  test('combine answers with the earliest linked arm that answered', () => {
    const s = singlePolicy.init(['a', 'b', 'c'], {});
    const b = { label: 1 };
    const r = singlePolicy.combine(s, outputs({ c: { label: 2 }, b }));
    assert.ok(r);
    assert.equal(r.output, b);
    assert.deepEqual(r.used, ['b']);
    close(r.confidence, 0.5);
    assert.equal(singlePolicy.combine(s, outputs({ a: { label: 0 } }))!.confidence, 1);
    assert.equal(singlePolicy.combine(s, new Map()), null);
  });
});

describe('exp3', () => {
  const params = { eta: 0.5, gamma: 0, maxLogRatio: 8 };

  test('starts uniform; the importance-weighted update matches the formula', () => {
    const s0 = exp3Policy.init(['a', 'b'], params);
    assert.deepEqual(exp3Policy.weights(s0), { a: 0.5, b: 0.5 });
    // a chosen with p = 0.5, loss 1: ln w_a = -0.5 * 1 / 0.5 = -1; renormalised so max (b) = 0.
    const s1 = exp3Policy.update(s0, fb({ a: 1 }), ['a']);
    closeAll(s1.logWeights, [-1, 0]);
    const pa = Math.exp(-1) / (1 + Math.exp(-1));
    close(exp3Policy.weights(s1).a!, pa);
    // b chosen with p = 1 - pa, loss 0.5: ln w_b = -0.5 * 0.5 / (1 - pa); shift so b is the max again.
    const s2 = exp3Policy.update(s1, fb({ b: 0.5 }), ['b']);
    const lb = -0.25 / (1 - pa);
    closeAll(s2.logWeights, [-1 - lb, 0]);
    // Zero loss changes nothing.
    closeAll(exp3Policy.update(s2, fb({ a: 0 }), ['a']).logWeights, s2.logWeights);
  });

  test('gamma mixes in uniform exploration and enters the importance weight', () => {
    const s0 = exp3Policy.init(['a', 'b'], { ...params, gamma: 0.2 });
    const s1 = exp3Policy.update(s0, fb({ a: 1 }), ['a']); // p_a = 0.5 as before
    const q = Math.exp(-1) / (1 + Math.exp(-1));
    close(exp3Policy.weights(s1).a!, 0.8 * q + 0.1);
    const s2 = exp3Policy.update(s1, fb({ a: 1 }), ['a']);
    closeAll(s2.logWeights, [-1 - 0.5 / (0.8 * q + 0.1), 0]);
  });

  test('only chosen arms learn; feedback for other or unknown arms is ignored', () => {
    const s0 = exp3Policy.init(['a', 'b', 'c'], params);
    const s1 = exp3Policy.update(s0, fb({ a: 1, b: 1, zzz: 1 }), ['a']);
    closeAll(s1.logWeights, [-1.5, 0, 0]);
    // Without `chosen`, every arm in the feedback counts as chosen.
    closeAll(exp3Policy.update(s0, fb({ a: 1, b: 1 })).logWeights, [-1.5, -1.5, 0]);
    assert.equal(exp3Policy.update(s0, fb({ zzz: 1 })), s0);
  });

  test('log weights are clamped to maxLogRatio below the best', () => {
    const s0 = exp3Policy.init(['a', 'b'], { eta: 10, gamma: 0, maxLogRatio: 3 });
    const s1 = exp3Policy.update(s0, fb({ a: 1 }), ['a']);
    closeAll(s1.logWeights, [-3, 0]);
    const s2 = exp3Policy.update(s1, fb({ b: 1 }), ['b']); // b falls far below a
    closeAll(s2.logWeights, [0, -3]);
    for (const p of Object.values(exp3Policy.weights(s2))) assert.ok(p >= Math.exp(-3) / 2);
  });

  test('select samples by the pick probabilities using one rng draw', () => {
    const s = exp3Policy.update(exp3Policy.init(['a', 'b'], params), fb({ a: 1 }), ['a']);
    const pa = exp3Policy.weights(s).a!;
    assert.deepEqual(exp3Policy.select(s, scripted(pa - 1e-9)), ['a']);
    assert.deepEqual(exp3Policy.select(s, scripted(pa + 1e-9)), ['b']);
    assert.deepEqual(exp3Policy.select(s, scripted(0.999999999)), ['b']);
    assert.deepEqual(exp3Policy.select(exp3Policy.init([], params), scripted()), []);
  });

  test('a new arm joins at the mean weight; removing the best renormalises', () => {
    const s1 = exp3Policy.update(exp3Policy.init(['a', 'b'], params), fb({ a: 1 }), ['a']); // [-1, 0]
    const s2 = exp3Policy.addArm(s1, 'c');
    closeAll(s2.logWeights, [-1, 0, Math.log((Math.exp(-1) + 1) / 2)]);
    assert.equal(exp3Policy.addArm(s2, 'c'), s2);
    const s3 = exp3Policy.removeArm(s2, 'b');
    assert.deepEqual(s3.arms, ['a', 'c']);
    closeAll(s3.logWeights, [-1 - Math.log((Math.exp(-1) + 1) / 2), 0]);
    assert.equal(exp3Policy.removeArm(s3, 'b'), s3);
    closeAll(exp3Policy.addArm(exp3Policy.init([], params), 'x').logWeights, [0]);
  });

  test('combine uses the heaviest arm that answered', () => {
    const s = exp3Policy.update(exp3Policy.init(['a', 'b', 'c'], params), fb({ a: 1 }), ['a']);
    const r = exp3Policy.combine(s, outputs({ a: { label: 1 }, c: { label: 1 } }));
    assert.deepEqual(r?.used, ['c']);
    assert.equal(r?.confidence, 1);
    assert.deepEqual(exp3Policy.combine(s, outputs({ a: { value: 3 } }))?.used, ['a']);
  });
});

describe('exp4', () => {
  const params = { eta: 0.5, maxLogRatio: 8 };

  test('selects every arm; each arm learns from its own loss without importance weighting', () => {
    const s0 = exp4Policy.init(['a', 'b', 'c'], params);
    assert.deepEqual(exp4Policy.select(s0, scripted()), ['a', 'b', 'c']);
    const s1 = exp4Policy.update(s0, fb({ a: 1, c: 0.5 })); // b: straggler, no feedback
    closeAll(s1.logWeights, [-0.5, 0, -0.25]);
    const z = Math.exp(-0.5) + 1 + Math.exp(-0.25);
    const w = exp4Policy.weights(s1);
    close(w.a!, Math.exp(-0.5) / z);
    close(w.b!, 1 / z);
    close(w.c!, Math.exp(-0.25) / z);
    const s2 = exp4Policy.update(s1, fb({ a: 0, b: 1, c: 1 }));
    // raw [-0.5, -0.5, -0.75], shifted so the max is 0
    closeAll(s2.logWeights, [0, 0, -0.25]);
  });

  test('combine averages probability vectors by weight, renormalised over the present arms', () => {
    const s = exp4Policy.update(exp4Policy.init(['a', 'b', 'c'], params), fb({ a: 1, c: 0.5 }));
    const wa = Math.exp(-0.5);
    const wc = Math.exp(-0.25);
    const pa = [0.1, 0.6, 0.3];
    const pc = new Float32Array([0.5, 0.2, 0.3]);
    const r = exp4Policy.combine(s, outputs({ a: { probabilities: pa }, c: { probabilities: pc } }));
    assert.ok(r);
    assert.deepEqual(r.used, ['a', 'c']);
    const expected = pa.map((x, i) => (wa * x + wc * pc[i]!) / (wa + wc));
    closeAll(r.output.probabilities as number[], expected, 1e-7);
    assert.ok(expected[1]! > expected[0]! && expected[1]! > expected[2]!);
    assert.equal(r.output.label, 1);
    close(r.confidence, wa / (wa + wc), 1e-12); // only a's own argmax (1) agrees
  });

  test('equal weights: the hand-computed ensemble and agreement, and a subset of it', () => {
    const s = exp4Policy.init(['a', 'b', 'c'], params);
    const all = outputs({ a: { probabilities: [0.7, 0.3] }, b: { probabilities: [0.2, 0.8] }, c: { probabilities: [0.9, 0.1] } });
    const r = exp4Policy.combine(s, all)!;
    closeAll(r.output.probabilities as number[], [0.6, 0.4]);
    assert.equal(r.output.label, 0);
    close(r.confidence, 2 / 3);
    all.delete('c');
    const sub = exp4Policy.combine(s, all)!;
    closeAll(sub.output.probabilities as number[], [0.45, 0.55]);
    assert.equal(sub.output.label, 1);
    assert.deepEqual(sub.used, ['a', 'b']);
    close(sub.confidence, 0.5);
  });

  test('label-only members vote with their weight; no vector is invented', () => {
    const s = exp4Policy.init(['a', 'b', 'c'], params);
    const r = exp4Policy.combine(s, outputs({ a: { label: 7 }, b: { probabilities: [0.1, 0.9] }, c: { label: 7 } }))!;
    assert.deepEqual(r.output, { label: 7 });
    close(r.confidence, 2 / 3);
  });

  test('regressors: weighted mean, agreement from the clipped distance', () => {
    const s = exp4Policy.init(['a', 'b', 'c'], params);
    const r = exp4Policy.combine(s, outputs({ a: { value: 1 }, b: { value: 2 }, c: { value: 4 } }))!;
    close(r.output.value!, 7 / 3);
    // distances 4/3 -> 1 (clipped), 1/3, 5/3 -> 1
    close(r.confidence, 1 - (1 + 1 / 3 + 1) / 3);
    const one = exp4Policy.combine(s, outputs({ b: { value: 2 } }))!;
    assert.deepEqual(one, { output: { value: 2 }, used: ['b'], confidence: 1 });
  });

  test('unusable, unlinked and off-kind outputs are ignored; nothing usable gives null', () => {
    const s = exp4Policy.init(['a', 'b', 'c'], params);
    assert.equal(exp4Policy.combine(s, new Map()), null);
    assert.equal(exp4Policy.combine(s, outputs({ a: {}, zzz: { label: 1 } })), null);
    const r = exp4Policy.combine(s, outputs({ a: { probabilities: [0.2, 0.8] }, b: { value: 0 }, c: { label: -1 } }))!;
    assert.deepEqual(r.used, ['a']);
    assert.equal(r.output.label, 1);
  });

  test('add/remove arms: mean weight on join, renormalised on leave', () => {
    const s1 = exp4Policy.update(exp4Policy.init(['a', 'b'], params), fb({ a: 1, b: 0 }));
    const s2 = exp4Policy.addArm(s1, 'c');
    closeAll(s2.logWeights, [-0.5, 0, Math.log((Math.exp(-0.5) + 1) / 2)]);
    const s3 = exp4Policy.removeArm(s2, 'b');
    assert.equal(Math.max(...s3.logWeights), 0);
    assert.deepEqual(exp4Policy.select(s3, scripted()), ['a', 'c']);
  });
});

describe('epsilon_greedy', () => {
  const params = { epsilon: 0.1 };

  test('tracks counts and running mean losses', () => {
    let s = epsilonGreedyPolicy.init(['a', 'b'], params);
    s = epsilonGreedyPolicy.update(s, fb({ a: 1 }));
    s = epsilonGreedyPolicy.update(s, fb({ a: 0, b: 0.25 }));
    s = epsilonGreedyPolicy.update(s, fb({ a: 0.5 }));
    assert.deepEqual(s.counts, [3, 1]);
    closeAll(s.meanLoss, [0.5, 0.25]);
  });

  test('exploits the lowest mean loss, explores uniformly with probability epsilon', () => {
    const s = epsilonGreedyPolicy.update(epsilonGreedyPolicy.init(['a', 'b', 'c'], params), fb({ a: 0.5, b: 0.2, c: 0.9 }));
    assert.deepEqual(epsilonGreedyPolicy.select(s, scripted(0.1)), ['b']);
    assert.deepEqual(epsilonGreedyPolicy.select(s, scripted(0.0999, 0.7)), ['c']);
    assert.deepEqual(epsilonGreedyPolicy.select(s, scripted(0.05, 0.1)), ['a']);
    const w = epsilonGreedyPolicy.weights(s);
    close(w.a!, 0.1 / 3);
    close(w.b!, 0.9 + 0.1 / 3);
    close(w.c!, 0.1 / 3);
  });

  test('untried arms count as loss 0, so a new arm is tried next', () => {
    let s = epsilonGreedyPolicy.update(epsilonGreedyPolicy.init(['a'], params), fb({ a: 0.1 }));
    s = epsilonGreedyPolicy.addArm(s, 'b');
    assert.deepEqual(epsilonGreedyPolicy.select(s, scripted(0.5)), ['b']);
    s = epsilonGreedyPolicy.removeArm(s, 'a');
    assert.deepEqual({ arms: s.arms, counts: s.counts, meanLoss: s.meanLoss }, { arms: ['b'], counts: [0], meanLoss: [0] });
  });

  test('combine prefers the answering arm with the lowest mean loss', () => {
    const s = epsilonGreedyPolicy.update(epsilonGreedyPolicy.init(['a', 'b'], params), fb({ a: 0.5, b: 0.2 }));
    const r = epsilonGreedyPolicy.combine(s, outputs({ a: { label: 1 }, b: { label: 2 } }))!;
    assert.deepEqual(r.used, ['b']);
    assert.equal(r.output.label, 2);
    close(r.confidence, 0.5);
  });
});

describe('ucb1', () => {
  test('tries every arm once in link order, then follows the optimistic index', () => {
    let s = ucb1Policy.init(['a', 'b', 'c'], {});
    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [arm] = ucb1Policy.select(s, scripted());
      seen.push(arm!);
      s = ucb1Policy.update(s, fb({ [arm!]: arm === 'b' ? 0 : 1 }));
    }
    assert.deepEqual(seen, ['a', 'b', 'c']);
    assert.deepEqual(ucb1Policy.select(s, scripted()), ['b']);
  });

  test('exploration bonus sqrt(2 ln n / n_i) against mean loss, on hand-made states', () => {
    // n = 3: a: 0.5 - sqrt(2 ln 3 / 2) = -0.548, b: 0.4 - sqrt(2 ln 3) = -1.082 -> b
    const explore: Ucb1State = { params: {}, arms: ['a', 'b'], counts: [2, 1], meanLoss: [0.5, 0.4] };
    assert.deepEqual(ucb1Policy.select(explore, scripted()), ['b']);
    // n = 1100: a: 0.1 - sqrt(2 ln 1100 / 1000) = -0.018, b: 0.6 - sqrt(2 ln 1100 / 100) = 0.226 -> a
    const exploit: Ucb1State = { params: {}, arms: ['a', 'b'], counts: [1000, 100], meanLoss: [0.1, 0.6] };
    assert.deepEqual(ucb1Policy.select(exploit, scripted()), ['a']);
    assert.deepEqual(ucb1Policy.weights(exploit), { a: 1, b: 0 });
    // b's bonus shrinks as it is observed: at counts [1000, 1000] and means [0.3, 0.2], b wins.
    const tie: Ucb1State = { params: {}, arms: ['a', 'b'], counts: [1000, 1000], meanLoss: [0.3, 0.2] };
    assert.deepEqual(ucb1Policy.select(tie, scripted()), ['b']);
  });

  test('a new arm is tried first; removing drops its stats', () => {
    const s: Ucb1State = { params: {}, arms: ['a', 'b'], counts: [10, 10], meanLoss: [0.1, 0.2] };
    const s2 = ucb1Policy.addArm(s, 'c');
    assert.deepEqual(ucb1Policy.select(s2, scripted()), ['c']);
    assert.deepEqual(ucb1Policy.removeArm(s2, 'a'), { params: {}, arms: ['b', 'c'], counts: [10, 0], meanLoss: [0.2, 0] });
  });
});

describe('purity and serialisation (all policies)', () => {
  const arms = ['m:1', 'm:2', 'n'];
  const accuracy: Record<string, number> = { 'm:1': 0.9, 'm:2': 0.6, n: 0.3 };

  /** Drive a policy through queries and feedback with a seeded rng; returns the picks and the final state. */
  function drive(policy: AnySelectionPolicy, state: unknown, seed: number, steps: number): { picks: string[]; state: unknown } {
    const rng = createRng(seed);
    const env = createRng(seed + 1000);
    const picks: string[] = [];
    let s = state;
    for (let t = 0; t < steps; t++) {
      const chosen = policy.select(s, rng);
      picks.push(chosen.join('+'));
      const truth = Math.floor(env.next() * 3);
      const outs = new Map(chosen.map((a) => [a, { label: env.next() < accuracy[a]! ? truth : (truth + 1) % 3 }]));
      const combined = policy.combine(s, outs);
      picks.push(String(combined?.output.label));
      s = policy.update(s, new Map([...outs].map(([a, o]) => [a, lossFor(o, truth)])), chosen);
    }
    return { picks, state: s };
  }

  for (const policy of Object.values(POLICIES)) {
    test(`${policy.name}: no method mutates its input state`, () => {
      const s = drive(policy, policy.init(arms, policy.defaults), 1, 50).state;
      const snapshot = structuredClone(s);
      const outs = outputs({ 'm:1': { probabilities: [0.2, 0.8] }, n: { probabilities: [0.6, 0.4] } });
      policy.select(s, createRng(3));
      policy.combine(s, outs);
      policy.weights(s);
      const updated = policy.update(s, fb({ 'm:1': 1, 'm:2': 0.5, n: 0 }), ['m:1']);
      policy.addArm(s, 'x');
      policy.removeArm(s, 'm:2');
      assert.deepEqual(s, snapshot);
      if (policy.name !== 'single') assert.notDeepEqual(updated, s);
    });

    test(`${policy.name}: a JSON round-trip of the state gives identical behaviour`, () => {
      const s = drive(policy, policy.init(arms, policy.defaults), 2, 200).state;
      const restored: unknown = JSON.parse(JSON.stringify(s));
      assert.deepEqual(restored, s);
      const a = drive(policy, s, 7, 200);
      const b = drive(policy, restored, 7, 200);
      assert.deepEqual(b.picks, a.picks);
      assert.deepEqual(JSON.parse(JSON.stringify(b.state)), JSON.parse(JSON.stringify(a.state)));
    });

    test(`${policy.name}: weights are a distribution over the linked arms`, () => {
      let s = drive(policy, policy.init(arms, policy.defaults), 3, 100).state;
      s = policy.addArm(s, 'late');
      const w = policy.weights(s);
      assert.deepEqual(Object.keys(w), [...arms, 'late']);
      close(Object.values(w).reduce((x, y) => x + y, 0), 1, 1e-9);
      for (const p of Object.values(w)) assert.ok(p >= 0 && p <= 1);
      assert.deepEqual(policy.weights(policy.init([], policy.defaults)), {});
    });

    test(`${policy.name}: arm names are data, including awkward ones`, () => {
      const odd = ['__proto__', 'constructor', 'toString'];
      let s = policy.init(odd, policy.defaults);
      const w = policy.weights(s);
      assert.deepEqual(Object.keys(w), odd);
      assert.ok(Object.hasOwn(w, '__proto__'));
      const picked = policy.select(s, createRng(5));
      assert.ok(picked.every((a) => odd.includes(a)));
      s = policy.update(s, new Map(odd.map((a) => [a, 0.5])), picked);
      assert.deepEqual(JSON.parse(JSON.stringify(s)), s);
    });
  }

  test('exp3 and exp4 states stay finite and within the weight floor under extreme feedback', () => {
    let s3: Exp3State = exp3Policy.init(arms, exp3Policy.validateParams({ eta: 100, gamma: 0 }));
    let s4: Exp4State = exp4Policy.init(arms, exp4Policy.validateParams({ eta: 100 }));
    const rng = createRng(9);
    for (let t = 0; t < 2000; t++) {
      const chosen = exp3Policy.select(s3, rng);
      s3 = exp3Policy.update(s3, fb({ [chosen[0]!]: rng.next() }), chosen);
      s4 = exp4Policy.update(s4, fb({ 'm:1': rng.next(), 'm:2': rng.next(), n: rng.next() }));
    }
    for (const [s, floor] of [[s3, s3.params.maxLogRatio], [s4, s4.params.maxLogRatio]] as const) {
      assert.equal(Math.max(...s.logWeights), 0);
      for (const x of s.logWeights) assert.ok(Number.isFinite(x) && x >= -floor);
    }
  });
});

/**
 * Seeded simulations behind the exp3/exp4 defaults: convergence on a 3-arm problem with
 * accuracies 0.97 / 0.92 / 0.55 under 0/1 loss, the ensemble's accuracy, and recovery when the
 * best arm breaks (its accuracy drops to 0.1, i.e. loss ~0.9). Figures are printed as diagnostics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng, type Rng } from '../../src/rng.js';
import {
  epsilonGreedyPolicy,
  exp3Policy,
  exp4Policy,
  lossFor,
  ucb1Policy,
  type AnySelectionPolicy,
  type ArmOutput,
  type Exp3Params,
} from '../../src/selection/policies/index.js';

const ARMS = ['best', 'good', 'poor'];
const ACCURACY = [0.97, 0.92, 0.55];
const BROKEN_ACCURACY = 0.1;
const CLASSES = 10;

/** Accuracy of arm i at event t (1-based), with the best arm broken after `breakAt`. */
function accuracyAt(i: number, t: number, breakAt: number): number {
  return i === 0 && t > breakAt ? BROKEN_ACCURACY : ACCURACY[i]!;
}

interface BanditRun {
  /** Index of the arm picked at each event. */
  picks: number[];
  /** The best arm's pick probability after each event. */
  bestProbability: number[];
}

/** One-arm-per-query policy against Bernoulli 0/1 losses. */
function runBandit(policy: AnySelectionPolicy, params: unknown, seed: number, events: number, breakAt = Infinity): BanditRun {
  const rng = createRng(seed);
  let state = policy.init(ARMS, policy.validateParams(params));
  const picks: number[] = [];
  const bestProbability: number[] = [];
  for (let t = 1; t <= events; t++) {
    const chosen = policy.select(state, rng) as string[];
    const i = ARMS.indexOf(chosen[0]!);
    const loss = rng.next() < accuracyAt(i, t, breakAt) ? 0 : 1;
    state = policy.update(state, new Map([[chosen[0]!, loss]]), chosen);
    picks.push(i);
    bestProbability.push((policy.weights(state) as Record<string, number>)['best']!);
  }
  return { picks, bestProbability };
}

/** Share of picks of `arm` among events from..to (1-based, inclusive). */
function share(picks: readonly number[], arm: number, from: number, to: number): number {
  const window = picks.slice(from - 1, to);
  return window.filter((i) => i === arm).length / window.length;
}

/**
 * A correlated classifier: arm outputs share the example's difficulty (with probability RHO the
 * arm's correctness is decided by the shared draw, so the weak arms fail on the hard examples the
 * strong one fails on), wrong answers often agree on one confusable class, confidence is higher
 * when right (0.5..1) than when wrong (0.3..0.7), and a wrong answer keeps half its remaining mass
 * on the true class.
 */
const RHO = 0.5;

function classifierOutput(rng: Rng, accuracy: number, truth: number, difficulty: number, confusable: number): ArmOutput {
  const z = rng.next() < RHO ? difficulty : rng.next();
  const correct = z < accuracy;
  const top = correct ? truth : rng.next() < 0.5 ? confusable : (truth + 1 + Math.floor(rng.next() * (CLASSES - 1))) % CLASSES;
  const confidence = correct ? 0.5 + 0.5 * rng.next() : 0.3 + 0.4 * rng.next();
  const rest = 1 - confidence;
  const probabilities = Array.from({ length: CLASSES }, (_, c) => {
    if (c === top) return confidence;
    if (correct) return rest / (CLASSES - 1);
    return c === truth ? rest / 2 : rest / 2 / (CLASSES - 2);
  });
  return { probabilities };
}

interface EnsembleRun {
  ensembleCorrect: boolean[];
  memberCorrect: boolean[][];
  /** The best arm's ensemble weight after each event. */
  bestWeight: number[];
}

function runEnsemble(params: unknown, seed: number, events: number, breakAt = Infinity): EnsembleRun {
  const rng = createRng(seed);
  let state = exp4Policy.init(ARMS, exp4Policy.validateParams(params));
  const run: EnsembleRun = { ensembleCorrect: [], memberCorrect: ARMS.map(() => []), bestWeight: [] };
  for (let t = 1; t <= events; t++) {
    const truth = Math.floor(rng.next() * CLASSES);
    const difficulty = rng.next();
    const confusable = (truth + 1 + Math.floor(rng.next() * (CLASSES - 1))) % CLASSES;
    const outputs = new Map(
      exp4Policy.select(state, rng).map((arm, i) => [arm, classifierOutput(rng, accuracyAt(i, t, breakAt), truth, difficulty, confusable)]),
    );
    const combined = exp4Policy.combine(state, outputs);
    assert.ok(combined);
    run.ensembleCorrect.push(combined.output.label === truth);
    const feedback = new Map([...outputs].map(([arm, o]) => [arm, lossFor(o, truth)]));
    ARMS.forEach((arm, i) => run.memberCorrect[i]!.push(feedback.get(arm) === 0));
    state = exp4Policy.update(state, feedback);
    run.bestWeight.push(exp4Policy.weights(state)['best']!);
  }
  return run;
}

function rate(xs: readonly boolean[], from = 1, to = xs.length): number {
  const window = xs.slice(from - 1, to);
  return window.filter(Boolean).length / window.length;
}

const SEED = 1;
const SEEDS = Array.from({ length: 20 }, (_, k) => k + 1);

test('exp3 defaults: the best arm has > 90% of picks within 2,000 feedback events', (t) => {
  const run = runBandit(exp3Policy, undefined, SEED, 2000);
  const probability = run.bestProbability[1999]!;
  const late = share(run.picks, 0, 1501, 2000);
  t.diagnostic(`seed ${SEED}: P(best) at event 2000 = ${probability.toFixed(3)}, share of picks in events 1501-2000 = ${late.toFixed(3)}`);
  assert.ok(probability > 0.9, `P(best) at 2000 = ${probability}`);
  assert.ok(late > 0.9, `share 1501-2000 = ${late}`);

  // Exp3's importance-weighted steps are noisy, so a few seeds fall short; most must not.
  const results = SEEDS.map((seed) => {
    const r = runBandit(exp3Policy, undefined, seed, 2000);
    return { probability: r.bestProbability[1999]!, late: share(r.picks, 0, 1501, 2000) };
  });
  const passing = results.filter((r) => r.probability > 0.9 && r.late > 0.9).length;
  const medianLate = results.map((r) => r.late).sort((a, b) => a - b)[SEEDS.length / 2]!;
  t.diagnostic(`seeds 1-${SEEDS.length}: ${passing} meet both; median share 1501-2000 = ${medianLate.toFixed(3)}`);
  assert.ok(passing >= 17, `${passing} of ${SEEDS.length} seeds converge`);
  assert.ok(Math.min(...results.map((r) => r.late)) > 0.7);
});

test("Clipper's eta = 0.01 is too slow for that horizon", (t) => {
  const clipper: Partial<Exp3Params> = { eta: 0.01, gamma: 0 };
  const probabilities = SEEDS.map((seed) => runBandit(exp3Policy, clipper, seed, 2000).bestProbability[1999]!);
  const best = Math.max(...probabilities);
  t.diagnostic(`eta 0.01: P(best) at event 2000 ranges ${Math.min(...probabilities).toFixed(3)}..${best.toFixed(3)}`);
  assert.ok(best < 0.9, `eta 0.01 reached ${best}`);
});

test('exp3 recovery: within 250 events after the best arm breaks, its pick share is < 10%', (t) => {
  const breakAt = 2000;
  for (const seed of SEEDS) {
    const run = runBandit(exp3Policy, undefined, seed, breakAt + 500, breakAt);
    const before = share(run.picks, 0, breakAt - 199, breakAt);
    const probability = run.bestProbability[breakAt + 250 - 1]!;
    const after = share(run.picks, 0, breakAt + 251, breakAt + 500);
    if (seed === SEED) {
      t.diagnostic(
        `seed ${seed}: share before break ${before.toFixed(3)}; P(broken) 250 events after ${probability.toFixed(4)}; ` +
          `share in events 251-500 after ${after.toFixed(3)}`,
      );
    }
    assert.ok(probability < 0.1, `seed ${seed}: P(broken) 250 events after the break = ${probability}`);
    assert.ok(after < 0.1, `seed ${seed}: broken arm's share 251-500 events after the break = ${after}`);
  }
});

test('exp4 defaults: the ensemble is at least as accurate as the best single arm', (t) => {
  for (const seed of SEEDS.slice(0, 10)) {
    const run = runEnsemble(undefined, seed, 2000);
    const ensemble = rate(run.ensembleCorrect);
    const members = run.memberCorrect.map((m) => rate(m));
    if (seed === SEED) {
      t.diagnostic(`seed ${seed}: ensemble ${ensemble.toFixed(4)} vs members ${members.map((m) => m.toFixed(4)).join(' / ')} over 2000 events`);
    }
    assert.ok(ensemble >= Math.max(...members), `seed ${seed}: ensemble ${ensemble} < best member ${Math.max(...members)}`);
  }
});

test('exp4 recovery: within 150 events after the best arm breaks, its weight is < 10% and accuracy is back', (t) => {
  const breakAt = 2000;
  for (const seed of SEEDS.slice(0, 10)) {
    const run = runEnsemble(undefined, seed, breakAt + 450, breakAt);
    const weight = run.bestWeight[breakAt + 150 - 1]!;
    const accuracy = rate(run.ensembleCorrect, breakAt + 151, breakAt + 450);
    const good = rate(run.memberCorrect[1]!, breakAt + 151, breakAt + 450);
    if (seed === SEED) {
      const firstBelow = run.bestWeight.findIndex((w, k) => k >= breakAt && w < 0.1) + 1 - breakAt;
      t.diagnostic(
        `seed ${seed}: broken weight < 10% after ${firstBelow} events; 150 after: ${weight.toFixed(4)}; ` +
          `ensemble accuracy 151-450 after ${accuracy.toFixed(3)} (second arm alone ${good.toFixed(3)})`,
      );
    }
    assert.ok(weight < 0.1, `seed ${seed}: weight 150 events after the break = ${weight}`);
    assert.ok(accuracy >= good - 0.02, `seed ${seed}: ensemble ${accuracy} vs second arm ${good}`);
  }
});

test('epsilon_greedy and ucb1 find the best arm and leave it when it breaks', (t) => {
  const breakAt = 2000;
  for (const policy of [epsilonGreedyPolicy, ucb1Policy]) {
    const run = runBandit(policy, undefined, SEED, breakAt + 1000, breakAt);
    const before = share(run.picks, 0, 1001, breakAt);
    const after = share(run.picks, 0, breakAt + 501, breakAt + 1000);
    t.diagnostic(`${policy.name}: best arm's share in events 1001-2000 ${before.toFixed(3)}; after breaking, events 501-1000 after ${after.toFixed(3)}`);
    assert.ok(before > 0.6, `${policy.name} share before ${before}`);
    assert.ok(after < 0.15, `${policy.name} share after ${after}`);
  }
});

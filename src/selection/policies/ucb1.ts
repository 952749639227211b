import { combinePreferred } from './combine.js';
import { freshStats, recordLosses, withArm, withoutArm, type LossStats } from './loss-stats.js';
import { validateNumberParams } from './params.js';
import type { Arm, ArmOutput, Combined, Feedback, PolicyState, SelectionPolicy } from './types.js';

/** UCB1 has no parameters. */
export type Ucb1Params = Readonly<Record<string, never>>;

export type Ucb1State = PolicyState<Ucb1Params> & LossStats;

const DEFAULTS: Ucb1Params = {};

/**
 * UCB1 for losses: every arm is tried once (in link order); then the arm minimising the
 * optimistic loss estimate meanLoss_i - sqrt(2 ln n / n_i), n = total observations, the earlier
 * arm on ties. Deterministic: the rng is not used. Every linked arm's feedback updates its
 * statistics, whichever arm was chosen.
 */
export const ucb1Policy: SelectionPolicy<Ucb1State, Ucb1Params> = {
  name: 'ucb1',
  defaults: DEFAULTS,

  validateParams(raw: unknown): Ucb1Params {
    return validateNumberParams('ucb1', raw, DEFAULTS, {});
  },

  init(arms: readonly Arm[], params: Ucb1Params): Ucb1State {
    return { params, ...freshStats('ucb1', arms) };
  },

  addArm(state: Ucb1State, arm: Arm): Ucb1State {
    return withArm('ucb1', state, arm);
  },

  removeArm(state: Ucb1State, arm: Arm): Ucb1State {
    return withoutArm(state, arm);
  },

  select(state: Ucb1State): Arm[] {
    return state.arms.length === 0 ? [] : [state.arms[nextIndex(state)]!];
  },

  combine(state: Ucb1State, outputs: ReadonlyMap<Arm, ArmOutput>): Combined | null {
    return combinePreferred(state.arms, state.meanLoss.map((m) => -m), outputs);
  },

  update(state: Ucb1State, feedback: Feedback): Ucb1State {
    return recordLosses('ucb1', state, feedback);
  },

  weights(state: Ucb1State): Record<Arm, number> {
    const next = nextIndex(state);
    return Object.fromEntries(state.arms.map((arm, i) => [arm, i === next ? 1 : 0]));
  },
};

/** The arm UCB1 picks next (the state must have at least one arm). */
function nextIndex(state: Ucb1State): number {
  const untried = state.counts.indexOf(0);
  if (untried >= 0) return untried;
  const n = state.counts.reduce((a, b) => a + b, 0);
  let best = 0;
  let bestScore = Infinity;
  state.counts.forEach((count, i) => {
    const score = state.meanLoss[i]! - Math.sqrt((2 * Math.log(n)) / count);
    if (score < bestScore) {
      bestScore = score;
      best = i;
    }
  });
  return best;
}

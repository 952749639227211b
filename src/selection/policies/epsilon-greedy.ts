import type { Rng } from '../../rng.js';
import { combinePreferred } from './combine.js';
import { freshStats, lowestMeanLoss, recordLosses, withArm, withoutArm, type LossStats } from './loss-stats.js';
import { validateNumberParams } from './params.js';
import type { Arm, ArmOutput, Combined, Feedback, PolicyState, SelectionPolicy } from './types.js';

export type EpsilonGreedyParams = {
  /** Probability of exploring (a uniformly random arm) instead of exploiting. */
  readonly epsilon: number;
};

export type EpsilonGreedyState = PolicyState<EpsilonGreedyParams> & LossStats;

const DEFAULTS: EpsilonGreedyParams = { epsilon: 0.1 };

/**
 * Epsilon-greedy: with probability epsilon a uniformly random arm, otherwise the arm with the
 * lowest mean loss so far. Arms never observed count as loss 0, so each new arm is tried early.
 * Every linked arm's feedback updates its statistics, whichever arm was chosen.
 */
export const epsilonGreedyPolicy: SelectionPolicy<EpsilonGreedyState, EpsilonGreedyParams> = {
  name: 'epsilon_greedy',
  defaults: DEFAULTS,

  validateParams(raw: unknown): EpsilonGreedyParams {
    return validateNumberParams('epsilon_greedy', raw, DEFAULTS, { epsilon: { min: 0, max: 1 } });
  },

  init(arms: readonly Arm[], params: EpsilonGreedyParams): EpsilonGreedyState {
    return { params, ...freshStats('epsilon_greedy', arms) };
  },

  addArm(state: EpsilonGreedyState, arm: Arm): EpsilonGreedyState {
    return withArm('epsilon_greedy', state, arm);
  },

  removeArm(state: EpsilonGreedyState, arm: Arm): EpsilonGreedyState {
    return withoutArm(state, arm);
  },

  select(state: EpsilonGreedyState, rng: Rng): Arm[] {
    const k = state.arms.length;
    if (k === 0) return [];
    if (rng.next() < state.params.epsilon) return [state.arms[Math.min(k - 1, Math.floor(rng.next() * k))]!];
    return [state.arms[lowestMeanLoss(state)]!];
  },

  combine(state: EpsilonGreedyState, outputs: ReadonlyMap<Arm, ArmOutput>): Combined | null {
    return combinePreferred(state.arms, state.meanLoss.map((m) => -m), outputs);
  },

  update(state: EpsilonGreedyState, feedback: Feedback): EpsilonGreedyState {
    return recordLosses('epsilon_greedy', state, feedback);
  },

  weights(state: EpsilonGreedyState): Record<Arm, number> {
    const k = state.arms.length;
    const greedy = lowestMeanLoss(state);
    const { epsilon } = state.params;
    return Object.fromEntries(state.arms.map((arm, i) => [arm, epsilon / k + (i === greedy ? 1 - epsilon : 0)]));
  },
};

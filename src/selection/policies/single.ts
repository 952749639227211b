import { combinePreferred } from './combine.js';
import { checkArms, checkLoss, validateNumberParams } from './params.js';
import type { Arm, ArmOutput, Combined, Feedback, PolicyState, SelectionPolicy } from './types.js';

/** The single policy has no parameters. */
export type SingleParams = Readonly<Record<string, never>>;

export type SingleState = PolicyState<SingleParams>;

const DEFAULTS: SingleParams = {};

/**
 * No selection: every query goes to the first linked arm (after removing it, the next one).
 * Feedback is checked but otherwise ignored. If the first arm's output is missing but another linked arm answered,
 * combine uses the earliest linked arm that answered.
 */
export const singlePolicy: SelectionPolicy<SingleState, SingleParams> = {
  name: 'single',
  defaults: DEFAULTS,

  validateParams(raw: unknown): SingleParams {
    return validateNumberParams('single', raw, DEFAULTS, {});
  },

  init(arms: readonly Arm[], params: SingleParams): SingleState {
    checkArms('single', arms);
    return { params, arms: [...arms] };
  },

  addArm(state: SingleState, arm: Arm): SingleState {
    if (state.arms.includes(arm)) return state;
    checkArms('single', [arm]);
    return { ...state, arms: [...state.arms, arm] };
  },

  removeArm(state: SingleState, arm: Arm): SingleState {
    return state.arms.includes(arm) ? { ...state, arms: state.arms.filter((a) => a !== arm) } : state;
  },

  select(state: SingleState): Arm[] {
    return state.arms.length === 0 ? [] : [state.arms[0]!];
  },

  combine(state: SingleState, outputs: ReadonlyMap<Arm, ArmOutput>): Combined | null {
    return combinePreferred(state.arms, state.arms.map((_, i) => -i), outputs);
  },

  update(state: SingleState, feedback: Feedback): SingleState {
    for (const [arm, loss] of feedback) checkLoss('single', arm, loss);
    return state;
  },

  weights(state: SingleState): Record<Arm, number> {
    return Object.fromEntries(state.arms.map((arm, i) => [arm, i === 0 ? 1 : 0]));
  },
};

import { checkArms } from './params.js';
import type { Arm, PolicyName } from './types.js';

/**
 * Log-space weight arithmetic shared by exp3 and exp4. Weights are kept as natural logs,
 * normalised so the largest is exactly 0 and none is below -spread. Hence every weight lies in
 * [e^-spread, 1]: nothing overflows, nothing underflows to 0, and an arm that has fallen to the
 * floor needs a bounded amount of evidence to come back (see the policies for the bound).
 */

/** Shift so the maximum is 0, then clamp every entry to >= -spread. Returns a new array. */
export function normalise(logW: readonly number[], spread: number): number[] {
  if (logW.length === 0) return [];
  const max = Math.max(...logW);
  return logW.map((x) => Math.max(x - max, -spread));
}

/** exp(logW) normalised to sum 1. */
export function softmax(logW: readonly number[]): number[] {
  if (logW.length === 0) return [];
  const max = Math.max(...logW);
  const e = logW.map((x) => Math.exp(x - max));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / total);
}

/** log of the arithmetic mean of the weights: where a newly linked arm starts. 0 when empty. */
export function meanLogWeight(logW: readonly number[]): number {
  if (logW.length === 0) return 0;
  const max = Math.max(...logW);
  const total = logW.reduce((acc, x) => acc + Math.exp(x - max), 0);
  return max + Math.log(total / logW.length);
}

/** The shape exp3 and exp4 states share. */
export interface LogWeighted {
  readonly arms: readonly Arm[];
  /** ln w_i, parallel to `arms`; the largest is 0, none below -params.maxLogRatio. */
  readonly logWeights: readonly number[];
  readonly params: { readonly maxLogRatio: number };
}

/** `state` with `arm` appended at the current mean weight; `state` itself if already linked. */
export function withWeightedArm<S extends LogWeighted>(policy: PolicyName, state: S, arm: Arm): S {
  if (state.arms.includes(arm)) return state;
  checkArms(policy, [arm]);
  const logWeights = normalise([...state.logWeights, meanLogWeight(state.logWeights)], state.params.maxLogRatio);
  return { ...state, arms: [...state.arms, arm], logWeights };
}

/** `state` without `arm` (the rest renormalised); `state` itself if not linked. */
export function withoutWeightedArm<S extends LogWeighted>(state: S, arm: Arm): S {
  const i = state.arms.indexOf(arm);
  if (i < 0) return state;
  const keep = (_: unknown, k: number): boolean => k !== i;
  return { ...state, arms: state.arms.filter(keep), logWeights: normalise(state.logWeights.filter(keep), state.params.maxLogRatio) };
}

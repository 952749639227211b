import { checkArms, checkLoss } from './params.js';
import type { Arm, Feedback, PolicyName } from './types.js';

/** Per-arm observation counts and mean losses, parallel to `arms` (epsilon_greedy, ucb1). */
export interface LossStats {
  readonly arms: readonly Arm[];
  readonly counts: readonly number[];
  /** Mean observed loss; 0 for an arm never observed. */
  readonly meanLoss: readonly number[];
}

/** Fresh, zeroed statistics over `arms`. Throws BAD_REQUEST on a duplicate arm. */
export function freshStats(policy: PolicyName, arms: readonly Arm[]): LossStats {
  checkArms(policy, arms);
  return { arms: [...arms], counts: arms.map(() => 0), meanLoss: arms.map(() => 0) };
}

/** `state` with `arm` appended with fresh statistics; `state` itself if already linked. */
export function withArm<S extends LossStats>(policy: PolicyName, state: S, arm: Arm): S {
  if (state.arms.includes(arm)) return state;
  checkArms(policy, [arm]);
  return { ...state, arms: [...state.arms, arm], counts: [...state.counts, 0], meanLoss: [...state.meanLoss, 0] };
}

/** `state` without `arm` and its statistics; `state` itself if not linked. */
export function withoutArm<S extends LossStats>(state: S, arm: Arm): S {
  const i = state.arms.indexOf(arm);
  if (i < 0) return state;
  const keep = (_: unknown, k: number): boolean => k !== i;
  return { ...state, arms: state.arms.filter(keep), counts: state.counts.filter(keep), meanLoss: state.meanLoss.filter(keep) };
}

/** `state` with every linked arm's feedback loss folded into its running mean. */
export function recordLosses<S extends LossStats>(policy: PolicyName, state: S, feedback: Feedback): S {
  for (const [arm, loss] of feedback) checkLoss(policy, arm, loss);
  const counts = [...state.counts];
  const meanLoss = [...state.meanLoss];
  let changed = false;
  state.arms.forEach((arm, i) => {
    const loss = feedback.get(arm);
    if (loss === undefined) return;
    counts[i]! += 1;
    meanLoss[i]! += (loss - meanLoss[i]!) / counts[i]!;
    changed = true;
  });
  return changed ? { ...state, counts, meanLoss } : state;
}

/** Index of the lowest mean loss (never-observed arms count as 0); the earlier arm on ties. */
export function lowestMeanLoss(stats: LossStats): number {
  let best = 0;
  for (let i = 1; i < stats.meanLoss.length; i++) if (stats.meanLoss[i]! < stats.meanLoss[best]!) best = i;
  return best;
}

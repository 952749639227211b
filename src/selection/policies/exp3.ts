import type { Rng } from '../../rng.js';
import { combinePreferred } from './combine.js';
import { normalise, softmax, withWeightedArm, withoutWeightedArm, type LogWeighted } from './log-weights.js';
import { checkArms, checkLoss, validateNumberParams } from './params.js';
import type { Arm, ArmOutput, Combined, Feedback, PolicyState, SelectionPolicy } from './types.js';

export type Exp3Params = {
  /** Learning rate. */
  readonly eta: number;
  /** Share of uniform exploration mixed into the pick probabilities; 0 is Clipper's Exp3. */
  readonly gamma: number;
  /** Largest allowed ln(w_max / w_i): the weight floor that bounds recovery time. */
  readonly maxLogRatio: number;
};

export type Exp3State = PolicyState<Exp3Params> & LogWeighted;

/**
 * Exp3: one arm per query, drawn with p_i = (1 - gamma) * w_i / sum(w) + gamma / K. Feedback
 * with loss L for a chosen arm i applies the importance-weighted update
 * w_i <- w_i * exp(-eta * L / p_i), with p_i computed from the state passed to `update`
 * (the usual approximation when other feedback landed between selection and this update).
 * Feedback for arms that were not chosen is ignored: Exp3 learns from bandit feedback only.
 *
 * Defaults (eta 0.1, gamma 0.01, maxLogRatio 8) were chosen by simulation (see
 * test/unit/policies-sim.test.ts): three arms with accuracies 0.97/0.92/0.55 and 0/1 loss.
 * - Speed: the log-weight gap between the two best arms grows by eta * (0.08 - 0.03) = 0.05 * eta
 *   per event in expectation, and the best arm needs a gap of ~2.5 to be picked 90% of the time.
 *   Clipper's eta = 0.01 reaches a gap of only ~1 after 2,000 events: the best arm's pick
 *   probability is then ~0.72 (median of 1,000 seeds; no seed reaches 0.9). eta = 0.1 gets there
 *   after ~500 events. Larger eta does not help: single importance-weighted steps (eta / p_i)
 *   then dominate and the gap gets noisier (94% of seeds reach 90% at eta 0.1, 92% at 0.15).
 * - gamma = 0.01 keeps every pick probability >= gamma / K, so rivals of a favourite are still
 *   observed, and caps one step at eta * K / gamma, while letting the best arm reach 99%.
 * - maxLogRatio = 8 (weight floor e^-8 of the best) bounds recovery. The gamma floor alone does
 *   not: without a cap the weights keep drifting apart and recovery time grows with the time the
 *   favourite has been on top. When the favourite's loss rises by d per event, its log weight
 *   falls by ~eta * d per event relative to any rival, so even a rival at the floor takes over
 *   within about (8 + ln 9) / (eta * d) events, ~125 for d = 0.82 (measured over 1,000 seeds:
 *   the broken arm's share of a 50-event window is below 10% after 125 events in the median,
 *   203 at most).
 */
const DEFAULTS: Exp3Params = { eta: 0.1, gamma: 0.01, maxLogRatio: 8 };

export const exp3Policy: SelectionPolicy<Exp3State, Exp3Params> = {
  name: 'exp3',
  defaults: DEFAULTS,

  validateParams(raw: unknown): Exp3Params {
    return validateNumberParams('exp3', raw, DEFAULTS, {
      eta: { min: 0, max: 100, minExclusive: true },
      gamma: { min: 0, max: 1 },
      maxLogRatio: { min: 0, max: 700, minExclusive: true },
    });
  },

  init(arms: readonly Arm[], params: Exp3Params): Exp3State {
    checkArms('exp3', arms);
    return { params, arms: [...arms], logWeights: arms.map(() => 0) };
  },

  addArm(state: Exp3State, arm: Arm): Exp3State {
    return withWeightedArm('exp3', state, arm);
  },

  removeArm(state: Exp3State, arm: Arm): Exp3State {
    return withoutWeightedArm(state, arm);
  },

  select(state: Exp3State, rng: Rng): Arm[] {
    if (state.arms.length === 0) return [];
    const p = pickProbabilities(state);
    let u = rng.next();
    for (let i = 0; i < p.length; i++) {
      u -= p[i]!;
      if (u < 0) return [state.arms[i]!];
    }
    return [state.arms[p.length - 1]!]; // rounding left u a hair above 0
  },

  combine(state: Exp3State, outputs: ReadonlyMap<Arm, ArmOutput>): Combined | null {
    return combinePreferred(state.arms, state.logWeights, outputs);
  },

  update(state: Exp3State, feedback: Feedback, chosen?: readonly Arm[]): Exp3State {
    for (const [arm, loss] of feedback) checkLoss('exp3', arm, loss);
    const p = pickProbabilities(state);
    const logW = [...state.logWeights];
    let changed = false;
    for (const arm of new Set(chosen ?? feedback.keys())) {
      const i = state.arms.indexOf(arm);
      const loss = feedback.get(arm);
      if (i < 0 || loss === undefined) continue;
      logW[i]! -= (state.params.eta * loss) / p[i]!;
      changed = true;
    }
    return changed ? { ...state, logWeights: normalise(logW, state.params.maxLogRatio) } : state;
  },

  weights(state: Exp3State): Record<Arm, number> {
    const p = pickProbabilities(state);
    return Object.fromEntries(state.arms.map((arm, i) => [arm, p[i]!]));
  },
};

/** p_i = (1 - gamma) * softmax(logW)_i + gamma / K. */
function pickProbabilities(state: Exp3State): number[] {
  const k = state.arms.length;
  const { gamma } = state.params;
  return softmax(state.logWeights).map((q) => (1 - gamma) * q + gamma / k);
}

import { combineWeighted } from './combine.js';
import { normalise, softmax, withWeightedArm, withoutWeightedArm, type LogWeighted } from './log-weights.js';
import { checkArms, checkLoss, validateNumberParams } from './params.js';
import type { Arm, ArmOutput, Combined, Feedback, PolicyState, SelectionPolicy } from './types.js';

export type Exp4Params = {
  /** Learning rate. */
  readonly eta: number;
  /** Largest allowed ln(w_max / w_i): the weight floor that bounds recovery time. */
  readonly maxLogRatio: number;
};

export type Exp4State = PolicyState<Exp4Params> & LogWeighted;

const DEFAULTS: Exp4Params = { eta: 0.1, maxLogRatio: 4 };

/**
 * Exp4 (Clipper's ensemble): every query goes to all arms; the answer is the weight-averaged
 * output of the arms that answered, weights renormalised over those present. Feedback updates
 * every arm with its own loss, w_i <- w_i * exp(-eta * L_i) (full information, no importance
 * weighting); arms without feedback keep their weight.
 *
 * Defaults (eta 0.1, maxLogRatio 4) were chosen by simulation (see
 * test/unit/policies-sim.test.ts): three classifiers with accuracies 0.97/0.92/0.55 whose errors
 * are correlated and whose confidence is higher when they are right.
 * - Smaller eta keeps the ensemble diverse (more accurate while all members work) but reacts
 *   slowly when one breaks; eta = 0.1 moves the weight off the 0.55 member within ~100 events and
 *   still ends at least as accurate as the best member.
 * - maxLogRatio = 4 (weight floor e^-4 of the best) keeps weaker members in the vote with a small
 *   weight and bounds recovery: when a member's loss rises by d per event, its log weight falls by
 *   eta * d per event relative to every rival, so it drops below a 10% share within about
 *   (4 + ln 9) / (eta * d) events, ~75 for d = 0.82 (measured: 82 to 99 over 100 seeds). Without
 *   the cap, the gap to a rival keeps growing while the favourite is on top, and so does recovery.
 *   The floor is per arm: (K - 1) * e^-4 of the weight stays on floored arms, so raise
 *   maxLogRatio when linking many arms.
 */
export const exp4Policy: SelectionPolicy<Exp4State, Exp4Params> = {
  name: 'exp4',
  defaults: DEFAULTS,

  validateParams(raw: unknown): Exp4Params {
    return validateNumberParams('exp4', raw, DEFAULTS, {
      eta: { min: 0, max: 100, minExclusive: true },
      maxLogRatio: { min: 0, max: 700, minExclusive: true },
    });
  },

  init(arms: readonly Arm[], params: Exp4Params): Exp4State {
    checkArms('exp4', arms);
    return { params, arms: [...arms], logWeights: arms.map(() => 0) };
  },

  addArm(state: Exp4State, arm: Arm): Exp4State {
    return withWeightedArm('exp4', state, arm);
  },

  removeArm(state: Exp4State, arm: Arm): Exp4State {
    return withoutWeightedArm(state, arm);
  },

  select(state: Exp4State): Arm[] {
    return [...state.arms];
  },

  combine(state: Exp4State, outputs: ReadonlyMap<Arm, ArmOutput>): Combined | null {
    return combineWeighted(state.arms, softmax(state.logWeights), outputs);
  },

  update(state: Exp4State, feedback: Feedback): Exp4State {
    for (const [arm, loss] of feedback) checkLoss('exp4', arm, loss);
    const logW = [...state.logWeights];
    let changed = false;
    state.arms.forEach((arm, i) => {
      const loss = feedback.get(arm);
      if (loss === undefined) return;
      logW[i]! -= state.params.eta * loss;
      changed = true;
    });
    return changed ? { ...state, logWeights: normalise(logW, state.params.maxLogRatio) } : state;
  },

  weights(state: Exp4State): Record<Arm, number> {
    const w = softmax(state.logWeights);
    return Object.fromEntries(state.arms.map((arm, i) => [arm, w[i]!]));
  },
};

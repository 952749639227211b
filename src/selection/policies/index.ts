import { SkiffError } from '../../errors.js';
import { epsilonGreedyPolicy } from './epsilon-greedy.js';
import { exp3Policy } from './exp3.js';
import { exp4Policy } from './exp4.js';
import { singlePolicy } from './single.js';
import type { PolicyName, PolicyParams, PolicyState, SelectionPolicy } from './types.js';
import { ucb1Policy } from './ucb1.js';

/** Any policy, for code that handles policies and their states opaquely (stores, the router). */
export type AnySelectionPolicy = SelectionPolicy<any, any>;

/** Every selection policy by name. */
export const POLICIES: { readonly [N in PolicyName]: AnySelectionPolicy } = {
  single: singlePolicy,
  exp3: exp3Policy,
  exp4: exp4Policy,
  epsilon_greedy: epsilonGreedyPolicy,
  ucb1: ucb1Policy,
};

export function isPolicyName(x: unknown): x is PolicyName {
  return typeof x === 'string' && Object.hasOwn(POLICIES, x);
}

/** The policy called `name`; throws SkiffError('BAD_REQUEST') for an unknown name. */
export function policyByName(name: string): AnySelectionPolicy {
  if (!isPolicyName(name)) {
    throw new SkiffError('BAD_REQUEST', `unknown selection policy "${name}" (known: ${Object.keys(POLICIES).join(', ')})`);
  }
  return POLICIES[name];
}

export type { PolicyName, PolicyParams, PolicyState, SelectionPolicy };
export type { Arm, ArmOutput, Combined, Feedback } from './types.js';
export { lossFor, predictedLabel } from './loss.js';
export { epsilonGreedyPolicy, exp3Policy, exp4Policy, singlePolicy, ucb1Policy };
export type { EpsilonGreedyParams, EpsilonGreedyState } from './epsilon-greedy.js';
export type { Exp3Params, Exp3State } from './exp3.js';
export type { Exp4Params, Exp4State } from './exp4.js';
export type { SingleParams, SingleState } from './single.js';
export type { Ucb1Params, Ucb1State } from './ucb1.js';

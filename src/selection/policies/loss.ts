import { SkiffError } from '../../errors.js';
import type { ArmOutput } from './types.js';

/**
 * The class an output predicts: its explicit `label` if given, else the index of the largest
 * probability (the first one on ties; NaN entries never win). Undefined for a regressor's output.
 */
export function predictedLabel(output: ArmOutput): number | undefined {
  if (output.label !== undefined) return output.label;
  const probs = output.probabilities;
  if (probs === undefined || probs.length === 0) return undefined;
  let best = -1;
  let bestP = -Infinity;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i]!;
    if (p > bestP) {
      bestP = p;
      best = i;
    }
  }
  return best < 0 ? undefined : best;
}

/**
 * The loss in [0, 1] of one output against the true label, as policies expect it in feedback.
 * - Classifier output (label or probabilities): 0/1 loss, 0 when the predicted class equals `truth`.
 * - Regressor output (value): the clipped absolute error min(1, |value - truth| / scale); choose
 *   `scale` (> 0, default 1) as the error beyond which an answer counts as fully wrong.
 * - An output with nothing usable (or a non-finite value) is fully wrong: 1.
 */
export function lossFor(output: ArmOutput, truth: number, scale = 1): number {
  if (!(scale > 0) || !Number.isFinite(scale)) {
    throw new SkiffError('BAD_REQUEST', `loss scale must be a positive finite number, got ${scale}`);
  }
  const label = predictedLabel(output);
  if (label !== undefined) return label === truth ? 0 : 1;
  const value = output.value;
  if (value === undefined || !Number.isFinite(value)) return 1;
  return Math.min(1, Math.abs(value - truth) / scale);
}

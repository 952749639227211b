import { lossFor, predictedLabel } from './loss.js';
import type { Arm, ArmOutput, Combined } from './types.js';

/** A present, usable output of a linked arm, with its position in the state's arm list. */
interface Member {
  readonly arm: Arm;
  readonly index: number;
  readonly output: ArmOutput;
}

function isClassOutput(o: ArmOutput): boolean {
  const label = predictedLabel(o);
  return label !== undefined && Number.isSafeInteger(label) && label >= 0;
}

function isValueOutput(o: ArmOutput): boolean {
  return o.value !== undefined && Number.isFinite(o.value);
}

function isTextOutput(o: ArmOutput): boolean {
  return o.text !== undefined;
}

/**
 * The outputs that can take part in an answer, in link order. If any present output is a
 * classifier's (label or probabilities), only classifier outputs count; otherwise outputs with a
 * finite value count; otherwise text outputs. Outputs of unlinked arms are ignored.
 */
function members(arms: readonly Arm[], outputs: ReadonlyMap<Arm, ArmOutput>): Member[] {
  const present: Member[] = [];
  arms.forEach((arm, index) => {
    const output = outputs.get(arm);
    if (output !== undefined) present.push({ arm, index, output });
  });
  const classifiers = present.filter((m) => isClassOutput(m.output));
  if (classifiers.length > 0) return classifiers;
  const values = present.filter((m) => isValueOutput(m.output));
  return values.length > 0 ? values : present.filter((m) => isTextOutput(m.output));
}

/**
 * How much the members agree with an answer: 1 - sum_i w_i * lossFor(member_i, answer), with the
 * weights `w` normalised over the members. For classifiers that is the weight share of members
 * predicting the answer's label; for regressors, one minus the weighted mean clipped distance
 * min(1, |v_i - answer|) to the answer's value.
 */
function agreement(list: readonly Member[], w: readonly number[], answer: ArmOutput): number {
  const target = predictedLabel(answer) ?? answer.value ?? NaN;
  let total = 0;
  let loss = 0;
  list.forEach((m, k) => {
    total += w[k]!;
    // Texts agree when equal.
    loss += w[k]! * (answer.text !== undefined ? (m.output.text === answer.text ? 0 : 1) : lossFor(m.output, target));
  });
  return total > 0 ? Math.min(1, Math.max(0, 1 - loss / total)) : 0;
}

/**
 * Single-pick answer: the output of the present member with the highest `score` (indexed like the
 * state's arms; ties go to the earlier arm), returned as given. Confidence is the unweighted
 * agreement of all present members with it (1 in the usual case of one answer).
 */
export function combinePreferred(
  arms: readonly Arm[],
  score: readonly number[],
  outputs: ReadonlyMap<Arm, ArmOutput>,
): Combined | null {
  const list = members(arms, outputs);
  if (list.length === 0) return null;
  let best = list[0]!;
  for (const m of list) if (score[m.index]! > score[best.index]!) best = m;
  return {
    output: best.output,
    used: [best.arm],
    confidence: agreement(list, list.map(() => 1), best.output),
  };
}

/**
 * Ensemble answer over the present members, weighted by `weight` (indexed like the state's arms)
 * renormalised over the members that are present. Classifiers: the weighted average of the
 * members' class distributions (a label-only output counts as all mass on its label) and its
 * argmax (lowest class on ties) as label; `probabilities` is included when every member gave a
 * probability vector (shorter vectors zero-padded). Regressors: the weighted mean value. Texts: the
 * weighted vote.
 */
export function combineWeighted(
  arms: readonly Arm[],
  weight: readonly number[],
  outputs: ReadonlyMap<Arm, ArmOutput>,
): Combined | null {
  const list = members(arms, outputs);
  if (list.length === 0) return null;
  const w = list.map((m) => weight[m.index]!);
  const total = w.reduce((a, b) => a + b, 0);
  const share = total > 0 ? w.map((x) => x / total) : w.map(() => 1 / list.length);
  const first = list[0]!.output;
  const output = isClassOutput(first) ? averageClasses(list, share) : isValueOutput(first) ? { value: averageValue(list, share) } : { text: voteText(list, share) };
  return { output, used: list.map((m) => m.arm), confidence: agreement(list, share, output) };
}

/** The text with the largest weight share (the earlier member's on ties). */
function voteText(list: readonly Member[], share: readonly number[]): string {
  const mass = new Map<string, number>();
  list.forEach(({ output }, k) => mass.set(output.text!, (mass.get(output.text!) ?? 0) + share[k]!));
  let best = list[0]!.output.text!;
  for (const [t, m] of mass) if (m > mass.get(best)!) best = t;
  return best;
}

function averageValue(list: readonly Member[], share: readonly number[]): number {
  let value = 0;
  list.forEach(({ output }, k) => {
    value += share[k]! * output.value!;
  });
  return value;
}

function averageClasses(list: readonly Member[], share: readonly number[]): ArmOutput {
  const dense = list.every(({ output }) => output.probabilities !== undefined && output.probabilities.length > 0);
  const mass = new Map<number, number>();
  list.forEach(({ output }, k) => {
    const probs = output.probabilities;
    if (probs !== undefined && probs.length > 0) {
      for (let c = 0; c < probs.length; c++) mass.set(c, (mass.get(c) ?? 0) + share[k]! * probs[c]!);
    } else {
      const label = output.label!;
      mass.set(label, (mass.get(label) ?? 0) + share[k]!);
    }
  });
  let label = -1;
  let best = -Infinity;
  for (const [c, m] of mass) {
    if (m > best || (m === best && c < label)) {
      best = m;
      label = c;
    }
  }
  if (!dense) return { label };
  const width = Math.max(...list.map(({ output }) => output.probabilities!.length));
  const probabilities = Array.from({ length: width }, (_, c) => mass.get(c) ?? 0);
  return { probabilities, label };
}

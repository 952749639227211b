import { SkiffError } from '../../errors.js';
import type { PolicyName, PolicyParams } from './types.js';

/** The accepted range of one numeric parameter: [min, max], or (min, max] when minExclusive. */
export interface NumberRule {
  readonly min: number;
  readonly max: number;
  readonly minExclusive?: boolean;
}

/**
 * Validate user-supplied policy parameters against per-field rules and fill in the defaults.
 * `undefined`/`null` gives a copy of the defaults. Throws SkiffError('BAD_REQUEST') naming the
 * field for a non-object, an unknown field, or a value that is not a finite number in range.
 */
export function validateNumberParams<P extends PolicyParams>(
  policy: PolicyName,
  raw: unknown,
  defaults: P,
  rules: { readonly [K in keyof P]: NumberRule },
): P {
  if (raw === undefined || raw === null) return { ...defaults };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new SkiffError('BAD_REQUEST', `${policy} params must be an object`);
  }
  const out: Record<string, number> = { ...defaults };
  for (const [field, value] of Object.entries(raw)) {
    if (!Object.hasOwn(rules, field)) {
      throw new SkiffError('BAD_REQUEST', `${policy} params: unknown field "${field}"`);
    }
    const rule: NumberRule = rules[field as keyof P];
    const ok =
      typeof value === 'number' &&
      Number.isFinite(value) &&
      (rule.minExclusive ? value > rule.min : value >= rule.min) &&
      value <= rule.max;
    if (!ok) {
      const range = `${rule.minExclusive ? '(' : '['}${rule.min}, ${rule.max}]`;
      throw new SkiffError('BAD_REQUEST', `${policy} params: "${field}" must be a number in ${range}`);
    }
    out[field] = value;
  }
  return out as P;
}

/** Check a linked-arm list: strings, no duplicates. Throws BAD_REQUEST naming the bad arm. */
export function checkArms(policy: PolicyName, arms: readonly string[]): void {
  const seen = new Set<string>();
  for (const arm of arms) {
    if (typeof arm !== 'string' || arm.length === 0) {
      throw new SkiffError('BAD_REQUEST', `${policy}: arm names must be non-empty strings`);
    }
    if (seen.has(arm)) throw new SkiffError('BAD_REQUEST', `${policy}: arm "${arm}" is linked twice`);
    seen.add(arm);
  }
}

/** Check one feedback loss. Throws BAD_REQUEST naming the arm when it is not a number in [0, 1]. */
export function checkLoss(policy: PolicyName, arm: string, loss: number): void {
  if (typeof loss !== 'number' || !(loss >= 0 && loss <= 1)) {
    throw new SkiffError('BAD_REQUEST', `${policy}: loss for arm "${arm}" must be a number in [0, 1], got ${String(loss)}`);
  }
}

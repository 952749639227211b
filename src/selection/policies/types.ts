import type { Rng } from '../../rng.js';

/** One linked model as the application names it, e.g. "mnist_mlp" or "mnist_mlp:1". */
export type Arm = string;

export type PolicyName = 'single' | 'exp3' | 'exp4' | 'epsilon_greedy' | 'ucb1';

/**
 * One model's answer to one query. A classifier gives `probabilities` and/or `label`; a
 * regressor gives `value`; anything else gives `text`. Policies never mutate outputs and never keep references to them.
 */
export interface ArmOutput {
  readonly probabilities?: Float32Array | readonly number[];
  readonly label?: number;
  readonly value?: number;
  /** A model's answer that is neither a class nor a number (a model container's string). */
  readonly text?: string;
}

/** The answer a policy builds from the outputs that arrived for one query. */
export interface Combined {
  /** A fresh object, or (for single-pick policies) one of the caller's outputs as given. */
  output: ArmOutput;
  /** The arms whose outputs make up `output`, in link order. */
  used: Arm[];
  /** Agreement of the present outputs with `output`, in [0, 1]; 1 when only one answered. */
  confidence: number;
}

/** Per-arm loss in [0, 1] for one query (see lossFor). Arms no longer linked are ignored. */
export type Feedback = ReadonlyMap<Arm, number>;

/** Parameters are flat records of finite numbers, validated by the policy. */
export type PolicyParams = Readonly<Record<string, number>>;

/**
 * The part every policy state shares. States are plain JSON data (arrays, finite numbers,
 * strings): `JSON.parse(JSON.stringify(state))` behaves identically to `state`. One state
 * exists per (application, user/context); the policy never keeps state of its own.
 */
export interface PolicyState<P extends PolicyParams> {
  readonly params: P;
  /** The linked arms in link order; per-arm arrays in the state are parallel to this. */
  readonly arms: readonly Arm[];
}

/**
 * A model-selection policy. Every method is a pure function of its arguments: the state passed
 * in is never mutated, a changed state is returned as a new object (unchanged parts may be
 * shared, which is safe because nothing mutates states), and randomness comes only from the
 * injected `rng`.
 */
export interface SelectionPolicy<S extends PolicyState<P>, P extends PolicyParams> {
  readonly name: PolicyName;
  readonly defaults: P;
  /**
   * Check user-supplied parameters. `undefined`/`null` gives the defaults; an object may set any
   * subset of the fields. Throws SkiffError('BAD_REQUEST') naming the offending field.
   */
  validateParams(raw: unknown): P;
  /** A fresh state over `arms` (may be empty). Throws BAD_REQUEST on a duplicate arm. */
  init(arms: readonly Arm[], params: P): S;
  /** Link one more arm (exp3/exp4: at the current mean weight; others: with fresh stats). Already linked: `state` is returned as is. */
  addArm(state: S, arm: Arm): S;
  /** Unlink an arm. Not linked: `state` is returned as is. */
  removeArm(state: S, arm: Arm): S;
  /** The arms to query for one query: one arm, all arms (exp4), or none when nothing is linked. */
  select(state: S, rng: Rng): Arm[];
  /**
   * Combine whatever arrived, possibly only some of the selected arms (stragglers missing at the
   * deadline). Outputs of arms that are not linked, or carry nothing usable, are ignored.
   * Returns null when nothing usable arrived; the caller then answers its default output.
   */
  combine(state: S, outputs: ReadonlyMap<Arm, ArmOutput>): Combined | null;
  /**
   * Learn from one query's feedback. `chosen` is what `select` returned for that query (default:
   * the arms in `feedback`); only bandit policies (exp3) use it. Throws BAD_REQUEST when a loss is
   * not a number in [0, 1].
   */
  update(state: S, feedback: Feedback, chosen?: readonly Arm[]): S;
  /** What each arm gets from the next `select` (exp4: its share in the ensemble); sums to 1 (empty when no arm is linked). */
  weights(state: S): Record<Arm, number>;
}

import type { Clock } from '../clock.js';
import { SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import { ELEMENT_SIZE, viewAs } from '../tensor/datatype.js';
import type { Tensor } from '../tensor/tensor.js';
import { hashBytes } from '../hash.js';
import type { ModelRegistry } from '../models/registry.js';
import { INPUT_TYPES, parseArm } from './app.js';
import type { AppRegistry, AppRuntime } from './apps.js';
import { lossFor, type Arm, type ArmOutput } from './policies/index.js';
import { SHUTTING_DOWN, type ModelAnswer, type QueryProcessor } from './query-processor.js';
import type { QueryHandle } from '../engine/cache-layer.js';

const NOOP_QUERY: QueryHandle = { cancel() {} };
import { newHistogram, record } from '../metrics/latency.js';
import type { Histogram } from 'hdr-histogram-js';

/**
 * The model selection layer's query path (Clipper's, with the parts its released code lacked):
 * select arms with the app's policy and per-(app, user) state, query them through the model
 * layer (prediction cache, batching) with the app's deadline, combine whatever arrived when the
 * deadline fires, fall back to the default output, and learn from feedback.
 *
 * Main thread only. Every predict and feedback call answers its callback exactly once.
 */
export interface AppAnswer {
  queryId: number;
  /** The label (classifiers), the value (regressors), or the app's default output. */
  output: number | string;
  probabilities?: number[];
  isDefault: boolean;
  defaultExplanation?: string;
  /** "model:version" of each model whose output formed the answer. */
  modelsUsed: string[];
  /** Selected models whose output did not arrive (deadline, error). */
  modelsMissing: string[];
  confidence?: number;
}

export const EXPLAIN_SLO = 'Failed to retrieve a prediction response within the specified latency SLO';
export const EXPLAIN_NO_MODELS = 'No connected models found for query';

export interface AppInput {
  /** Raw little-endian bytes of one query's input, of the app's datatype. */
  data: Uint8Array;
}

const MEMO_LIMIT = 65_536;
/**
 * Deadline timers fire late: by ~1 ms on an idle loop, by several when other threads or
 * processes take the CPU. The SLO bounds when the answer leaves, so the timer is armed early by
 * the p99 of the lateness observed recently (at least MIN_DEADLINE_SLACK_MS, at most a quarter
 * of the SLO): 99% of answers then leave by the deadline. The window restarts every
 * LATENESS_WINDOW observations, so the slack follows the machine's load both ways.
 */
export const MIN_DEADLINE_SLACK_MS = 2;
const LATENESS_WINDOW = 2048;

/** Per-application measurements (answer latency from arrival to reply, µs). */
export interface AppStats {
  latencyUs: Histogram;
  queries: number;
  defaults: number;
  partial: number;
  errors: number;
  /** Error answers by code (error path only). */
  errorsByCode: Record<string, number>;
  feedback: number;
}

export class AppProcessor {
  private queryIds = 0;
  /** (app, context, input) -> arms served, so bandit feedback updates the arm that answered. */
  private readonly chosen = new Map<string, Arm[]>();
  private readonly stats = new Map<string, AppStats>();
  private readonly lateness = newHistogram();
  private slackMs = MIN_DEADLINE_SLACK_MS;

  /** How early deadline timers are armed now (ms): the recent p99 timer lateness. */
  get deadlineSlackMs(): number {
    return this.slackMs;
  }

  private observeLateness(lateMs: number): void {
    record(this.lateness, lateMs * 1000);
    if (this.lateness.totalCount >= 32) this.slackMs = Math.max(MIN_DEADLINE_SLACK_MS, this.lateness.getValueAtPercentile(99) / 1000);
    if (this.lateness.totalCount >= LATENESS_WINDOW) this.lateness.reset();
  }

  constructor(
    private readonly apps: AppRegistry,
    private readonly models: ModelRegistry,
    private readonly queries: QueryProcessor,
    private readonly clock: Clock,
  ) {}

  /**
   * The app's per-query input shape: declared, or the first linked model's input minus the batch
   * dim; null when that model takes inputs of any length (a model container).
   */
  private inputShape(rt: AppRuntime): number[] | null {
    if (rt.def.input_shape) return [...rt.def.input_shape];
    for (const arm of rt.def.models) {
      try {
        const { model, version } = parseArm(arm);
        const spec = this.models.resolve(model, version).spec!;
        const rest = spec.inputs[0]!.shape.slice(1);
        if (rest.some((d) => d < 0) || spec.inputs[0]!.datatype === 'BYTES') return null;
        return rest;
      } catch {
        // not loaded: try the next linked model
      }
    }
    throw new SkiffError('MODEL_UNAVAILABLE', `application '${rt.def.name}' has no loaded model to take its input shape from`);
  }

  /** Check one query's input against the app's input description; returns its shape. */
  private checkInput(rt: AppRuntime, input: AppInput): number[] {
    const dt = INPUT_TYPES[rt.def.input_type];
    const size = ELEMENT_SIZE[dt] || 1;
    const shape = this.inputShape(rt);
    if (shape === null) {
      // Any length: one row of whatever arrived (a whole number of elements).
      if (input.data.byteLength === 0 || input.data.byteLength % size !== 0) {
        throw new SkiffError('INVALID_INPUT', `application '${rt.def.name}' takes a non-empty list of ${rt.def.input_type}`);
      }
      return [input.data.byteLength / size];
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (input.data.byteLength !== n * size) {
      throw new SkiffError('INVALID_INPUT', `application '${rt.def.name}' takes ${n} ${rt.def.input_type} of shape [${shape}]; got ${input.data.byteLength / size} values`);
    }
    return shape;
  }

  private memoKey(app: string, context: string, data: Uint8Array): string {
    return `${app}\u0000${context}\u0000${hashBytes(data, 0x9e3779b9) >>> 0}:${hashBytes(data, 0x85ebca6b) >>> 0}:${data.byteLength}`;
  }

  private remember(key: string, arms: Arm[]): void {
    this.chosen.delete(key);
    this.chosen.set(key, arms);
    if (this.chosen.size > MEMO_LIMIT) this.chosen.delete(this.chosen.keys().next().value!);
  }

  /** Query one arm (through the model layer and its cache). */
  private runArm(rt: AppRuntime, arm: Arm, shape: number[], input: AppInput, timeoutUs: number, pin: number | undefined, cb: (err: ErrorInfo | null, a?: ModelAnswer) => void): { cancel(): void } {
    const parsed = parseArm(arm);
    const model = parsed.model;
    // A query's version (Clipper's "version") applies to arms that follow the current version.
    const version = parsed.version ?? pin;
    let spec;
    try {
      spec = this.models.resolve(model, version).spec!.inputs[0]!;
    } catch (err) {
      cb(toErrorInfo(err));
      return { cancel() {} };
    }
    // A model that takes strings or bytes (a container) gets the whole input as one element.
    const tensor: Tensor = spec.datatype === 'BYTES'
      ? { name: spec.name, datatype: 'BYTES', shape: [1], data: bytesElement(input.data) }
      : { name: spec.name, datatype: INPUT_TYPES[rt.def.input_type], shape: [1, ...shape], data: input.data };
    return this.queries.inferModel({ model, version, inputs: [tensor], timeoutUs }, cb);
  }

  /**
   * A query's version (Clipper's "version") must be a version of a linked model that follows the
   * current version, as Clipper requires: otherwise the query is refused (VERSION_NOT_FOUND), not
   * answered with the default.
   */
  private checkVersion(rt: AppRuntime, version: number): void {
    let found = false;
    for (const arm of rt.def.models) {
      const p = parseArm(arm);
      if (p.version !== undefined) continue;
      try {
        this.models.resolve(p.model, version);
        found = true;
      } catch (err) {
        // Known but not ready (loading, failed): the query is run and answers what it gets.
        if (toErrorInfo(err).code !== 'VERSION_NOT_FOUND' && toErrorInfo(err).code !== 'MODEL_NOT_FOUND') found = true;
      }
      if (found) return;
    }
    throw new SkiffError('VERSION_NOT_FOUND', `no model linked to application '${rt.def.name}' has version ${version}`);
  }

  /** No selected model has a replica to run on (model containers not connected yet). */
  private noneConnected(arms: readonly Arm[]): boolean {
    return arms.every((arm) => {
      try {
        const { model, version } = parseArm(arm);
        return this.models.resolve(model, version).executor?.replicas === 0;
      } catch {
        return false;
      }
    });
  }

  /** Measurements of an application (created on first use). */
  statsOf(app: string): AppStats {
    let s = this.stats.get(app);
    if (!s) {
      s = { latencyUs: newHistogram(), queries: 0, defaults: 0, partial: 0, errors: 0, feedback: 0, errorsByCode: {} };
      this.stats.set(app, s);
    }
    return s;
  }

  /** Answer one query by the app's deadline; the handle cancels it (exactly one answer either way). */
  predict(appName: string, input: AppInput, context: string, done: (err: ErrorInfo | null, a?: AppAnswer) => void, version?: number): QueryHandle {
    const t0 = this.clock.now();
    const cb = (err: ErrorInfo | null, a?: AppAnswer): void => {
      if (this.apps.get(appName)) {
        const st = this.statsOf(appName);
        st.queries++;
        if (err) {
          st.errors++;
          st.errorsByCode[err.code] = (st.errorsByCode[err.code] ?? 0) + 1;
        } else if (a!.isDefault) st.defaults++;
        else if (a!.modelsMissing.length > 0) st.partial++;
        record(st.latencyUs, (this.clock.now() - t0) * 1000);
      }
      done(err, a);
    };
    if (this.queries.draining) {
      cb(SHUTTING_DOWN);
      return NOOP_QUERY;
    }
    let rt: AppRuntime;
    let shape: number[];
    try {
      rt = this.apps.require(appName);
      if (rt.def.models.length === 0) {
        // Nothing linked (yet): Clipper's answer, the default with its explanation.
        cb(null, { queryId: ++this.queryIds, output: rt.def.default_output, isDefault: true, defaultExplanation: EXPLAIN_NO_MODELS, modelsUsed: [], modelsMissing: [] });
        return NOOP_QUERY;
      }
      shape = this.checkInput(rt, input);
      if (version !== undefined) this.checkVersion(rt, version);
    } catch (err) {
      cb(toErrorInfo(err));
      return NOOP_QUERY;
    }
    const queryId = ++this.queryIds;
    const state = this.apps.state(rt, context);
    const arms: Arm[] = rt.policy.select(state, rt.rng);
    if (arms.length === 0) {
      cb(null, { queryId, output: rt.def.default_output, isDefault: true, defaultExplanation: EXPLAIN_NO_MODELS, modelsUsed: [], modelsMissing: [] });
      return NOOP_QUERY;
    }
    if (rt.policy.name === 'exp3' || rt.policy.name === 'epsilon_greedy' || rt.policy.name === 'ucb1' || rt.policy.name === 'single') {
      this.remember(this.memoKey(appName, context, input.data), arms);
    }
    // The app's SLO is its deadline, bounded like every client deadline (--max-timeout-ms).
    const slo = Math.min(rt.def.latency_slo_micros, this.queries.maxTimeoutMs * 1000);
    const outputs = new Map<Arm, ArmOutput>();
    const served = new Map<Arm, string>();
    const errors: ErrorInfo[] = [];
    let pending = arms.length;
    let finished = false;
    let timer: NodeJS.Timeout | undefined;

    const finish = (): void => {
      if (finished) return;
      finished = true;
      if (timer) clearTimeout(timer);
      const missing = arms.filter((a) => !outputs.has(a)).map((a) => served.get(a) ?? a);
      const combined = rt.policy.combine(this.apps.state(rt, context), outputs);
      if (!combined) {
        const explanation = errors.length === arms.length ? `All selected models failed: ${[...new Set(errors.map((e) => e.code))].join(', ')}`
          : this.noneConnected(arms) ? EXPLAIN_NO_MODELS : EXPLAIN_SLO;
        cb(null, { queryId, output: rt.def.default_output, isDefault: true, defaultExplanation: explanation, modelsUsed: [], modelsMissing: missing });
        return;
      }
      const used = combined.used.map((a) => served.get(a) ?? a);
      if (rt.def.confidence_threshold > 0 && combined.confidence < rt.def.confidence_threshold) {
        cb(null, {
          queryId, output: rt.def.default_output, isDefault: true, confidence: combined.confidence, modelsUsed: used, modelsMissing: missing,
          defaultExplanation: `Ensemble confidence ${combined.confidence.toFixed(3)} is below the application's threshold ${rt.def.confidence_threshold}`,
        });
        return;
      }
      const out = combined.output;
      const answer: AppAnswer = {
        queryId,
        output: out.label ?? out.value ?? argmax(out.probabilities) ?? out.text ?? rt.def.default_output,
        isDefault: false,
        modelsUsed: used,
        modelsMissing: missing,
        confidence: combined.confidence,
      };
      if (out.probabilities) answer.probabilities = Array.from(out.probabilities);
      cb(null, answer);
    };

    const timeoutUs = rt.def.straggler_mitigation ? slo : 0;
    const handles: { cancel(): void }[] = [];
    for (const arm of arms) {
      handles.push(this.runArm(rt, arm, shape, input, timeoutUs, version, (err, ans) => {
        if (err) errors.push(err);
        else {
          served.set(arm, `${ans!.model}:${ans!.version}`);
          outputs.set(arm, armOutputOf(ans!.outputs));
        }
        if (--pending === 0) finish();
      }));
      if (finished) return NOOP_QUERY;
    }
    // Straggler mitigation: at the deadline, answer with whatever has arrived.
    if (!finished && rt.def.straggler_mitigation) {
      const delay = Math.max(0, slo / 1000 - Math.min(this.slackMs, slo / 4000));
      const armedAt = this.clock.now();
      timer = setTimeout(() => {
        this.observeLateness(this.clock.now() - armedAt - delay);
        finish();
      }, delay);
    }
    return {
      // The client went away or cancelled: its arms' queries leave their queues, one CANCELLED answer.
      cancel: () => {
        if (finished) return;
        finished = true;
        if (timer) clearTimeout(timer);
        for (const h of handles) h.cancel();
        cb({ code: 'CANCELLED', message: 'cancelled by the client' });
      },
    };
  }

  /**
   * Learn from a label for an earlier input: the arms' outputs come from the prediction cache
   * when present (the models run again only when not), losses go to the policy, the new state
   * is stored. Bandit policies update only the arm that served the query (or, if that is no
   * longer known, an arm sampled from the current distribution, which keeps Exp3 unbiased).
   */
  feedback(appName: string, input: AppInput, context: string, label: number, cb: (err: ErrorInfo | null, r?: { updated: string[] }) => void): void {
    let rt: AppRuntime;
    let shape: number[];
    try {
      rt = this.apps.require(appName);
      shape = this.checkInput(rt, input);
      if (!Number.isFinite(label)) throw new SkiffError('BAD_REQUEST', 'label must be a finite number');
    } catch (err) {
      cb(toErrorInfo(err));
      return;
    }
    this.statsOf(appName).feedback++;
    const key = this.memoKey(appName, context, input.data);
    const bandit = rt.policy.name === 'exp3';
    let arms: Arm[];
    if (bandit) arms = this.chosen.get(key) ?? rt.policy.select(this.apps.state(rt, context), rt.rng);
    else arms = [...rt.def.models];
    arms = arms.filter((a) => rt.def.models.includes(a));
    if (arms.length === 0) {
      cb(null, { updated: [] });
      return;
    }
    const losses = new Map<Arm, number>();
    let pending = arms.length;
    for (const arm of arms) {
      this.runArm(rt, arm, shape, input, 0, undefined, (err, ans) => {
        if (!err) losses.set(arm, lossFor(armOutputOf(ans!.outputs), label));
        if (--pending > 0) return;
        // An application deleted meanwhile: learn() answers APP_NOT_FOUND.
        this.apps.learn(appName, context, (cur, state) => cur.policy.update(state, losses, bandit ? [...losses.keys()] : undefined), (e) => {
          if (e) cb(toErrorInfo(e));
          else cb(null, { updated: [...losses.keys()] });
        });
      });
    }
  }
}

function argmax(p: ArrayLike<number> | undefined): number | undefined {
  if (!p || p.length === 0) return undefined;
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i]! > p[best]!) best = i;
  return best;
}

/**
 * What a model's outputs mean to a policy: `probabilities` and `label` outputs by name; otherwise
 * the first output is a value (one element) or a probability vector. A string output (a model
 * container answers strings) is a class when it reads as a non-negative integer, a value when it
 * reads as another finite number, and text otherwise.
 */
export function armOutputOf(outs: Tensor[]): ArmOutput {
  const o: { probabilities?: Float32Array; label?: number; value?: number } = {};
  for (const t of outs) {
    if (t.name === 'probabilities' && (t.datatype === 'FP32' || t.datatype === 'FP64')) o.probabilities = Float32Array.from(viewAs(t.datatype, t.data) as Float32Array);
    else if (t.name === 'label' && t.datatype !== 'BYTES') o.label = Number((viewAs(t.datatype, t.data) as ArrayLike<number | bigint>)[0] ?? NaN);
  }
  if (o.probabilities || o.label !== undefined) return o;
  const first = outs[0];
  if (!first) return o;
  if (first.datatype === 'BYTES') return stringOutput(first.data);
  const v = viewAs(first.datatype, first.data) as ArrayLike<number | bigint>;
  if (v.length === 1) return { value: Number(v[0]) };
  return { probabilities: Float32Array.from(Array.from(v, Number)) };
}

const utf8 = new TextDecoder();
const NUMBER = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/** The first element of a BYTES tensor as an output: a class, a value, or text. */
function stringOutput(data: Uint8Array): ArmOutput {
  if (data.byteLength < 4) return {};
  const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true);
  const text = utf8.decode(data.subarray(4, 4 + n));
  if (NUMBER.test(text)) {
    const x = Number(text);
    if (Number.isSafeInteger(x) && x >= 0) return { label: x };
    if (Number.isFinite(x)) return { value: x };
  }
  return { text };
}

/** Raw bytes as a one-element BYTES tensor's data (u32 length + bytes). */
function bytesElement(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.byteLength);
  new DataView(out.buffer).setUint32(0, data.byteLength, true);
  out.set(data, 4);
  return out;
}

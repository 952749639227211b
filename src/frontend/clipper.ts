import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { publicError, SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import type { DataType } from '../tensor/datatype.js';
import { expectObject, parseJsonBody } from '../protocol/safe-json.js';
import { INPUT_TYPES } from '../selection/app.js';
import type { AppRegistry } from '../selection/apps.js';
import type { AppAnswer, AppProcessor } from '../selection/app-processor.js';
import { exchange, readBody, sendError, sendJson, type Exchange } from '../http/exchange.js';
import type { BodyLimits } from '../http/exchange.js';

/**
 * Clipper's query REST API, per application:
 *   POST /<app>/predict  {"input": [..]} | {"input_batch": [[..], ..]}  (+ optional "uid")
 *     -> {"query_id", "output", "default", "default_explanation"?, "models_used", "models_missing", ...}
 *        | {"batch_predictions": [ ... ]}
 *   POST /<app>/update   {"uid", "input", "label"}  -> {"success": true, "models_updated": [..]}
 * Errors: {"error", "code", "cause"} with the code's HTTP status.
 */
export interface ClipperOptions {
  /** Body size limit and the bytes-in-flight budget. */
  body: BodyLimits;
  maxBatch: number;
}

/** Smallest magnitude that rounds to infinity as a float32 (FLT_MAX plus half an ulp). */
const FP32_OVERFLOW = 3.4028235677973366e38;

/**
 * JSON numbers (flat or nested up to 8 levels) -> little-endian bytes of `dt`, validating every
 * value: finite, and representable in `dt` (integral and in range for INT32 and UINT8, below the
 * float32 overflow for FP32). For UINT8 a base64 string is accepted too; for BYTES (strings) a
 * string. Nested lists are walked twice — once to count, once to write straight into the typed
 * array — so parsing allocates nothing beyond the result (no flattened copy of the input).
 */
export function numbersToBytes(raw: unknown, dt: DataType, what: string): Uint8Array {
  if (typeof raw === 'string' && dt === 'UINT8') return new Uint8Array(Buffer.from(raw, 'base64'));
  if (dt === 'BYTES') {
    if (typeof raw !== 'string') throw new SkiffError('BAD_REQUEST', `${what} must be a string`);
    return new Uint8Array(Buffer.from(raw, 'utf8'));
  }
  if (!Array.isArray(raw)) throw new SkiffError('BAD_REQUEST', `${what} must be an array of numbers`);
  const n = countLeaves(raw, 0, what);
  let out: Float32Array | Float64Array | Int32Array | Uint8Array;
  switch (dt) {
    case 'FP32': out = new Float32Array(n); break;
    case 'FP64': out = new Float64Array(n); break;
    case 'INT32': out = new Int32Array(n); break;
    case 'UINT8': out = new Uint8Array(n); break;
    default: throw new SkiffError('UNSUPPORTED_DATATYPE', `${dt} inputs are not supported by the Clipper API`);
  }
  let i = 0;
  const write = (a: unknown[]): void => {
    for (const v of a) {
      if (Array.isArray(v)) {
        write(v);
        continue;
      }
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new SkiffError('INVALID_INPUT', `${what}[${i}] is not a finite number`);
      if (dt === 'INT32' && (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)) throw new SkiffError('INVALID_INPUT', `${what}[${i}] is not an int32`);
      if (dt === 'UINT8' && (!Number.isInteger(v) || v < 0 || v > 255)) throw new SkiffError('INVALID_INPUT', `${what}[${i}] is not a byte`);
      if (dt === 'FP32' && (v >= FP32_OVERFLOW || v <= -FP32_OVERFLOW)) throw new SkiffError('INVALID_INPUT', `${what}[${i}] is out of the float32 range`);
      out[i++] = v;
    }
  };
  write(raw);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Leaves of a nested list (arrays nested deeper than 8 levels are refused). */
function countLeaves(a: unknown[], depth: number, what: string): number {
  if (depth > 8) throw new SkiffError('BAD_REQUEST', `${what} nests lists more than 8 deep`);
  let n = 0;
  for (const v of a) n += Array.isArray(v) ? countLeaves(v, depth + 1, what) : 1;
  return n;
}

/** A parsed POST /<app>/predict body. */
export interface ClipperPredictBody {
  /** One input (`input`) or each of `input_batch`, as bytes of the app's input datatype. */
  inputs: Uint8Array[];
  /** The body used `input_batch` (the answer is then `{"batch_predictions": [...]}`). */
  batch: boolean;
  /** Selection context from `uid` (or `user`); '' for the app-wide state. */
  context: string;
  /** Clipper's `"version"`: the model version to use (for linked models that follow the current one). */
  version?: number;
}

/** A parsed POST /<app>/update body. */
export interface ClipperUpdateBody {
  input: Uint8Array;
  label: number;
  context: string;
}

/** Clipper's optional `"version"` of a predict body: a positive integer, or its decimal string. */
function versionOf(body: Record<string, unknown>): { version?: number } {
  const v = body.version;
  if (v === undefined || v === null) return {};
  if (typeof v === 'string' && /^[1-9][0-9]{0,8}$/.test(v)) return { version: Number(v) };
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 999_999_999) return { version: v };
  throw new SkiffError('BAD_REQUEST', 'version must be a positive integer (model versions are numbered)');
}

function contextOf(body: Record<string, unknown>): string {
  const uid = body.uid ?? body.user;
  if (uid === undefined || uid === null || uid === 0 || uid === '') return '';
  if (typeof uid !== 'number' && typeof uid !== 'string') throw new SkiffError('BAD_REQUEST', 'uid must be a number or a string');
  return String(uid);
}

/**
 * Parse and validate a predict body for an app whose inputs are `dt`. Pure; throws SkiffError
 * (BAD_REQUEST, INVALID_INPUT, UNSUPPORTED_DATATYPE). Does not keep a reference to `bytes`.
 */
export function parsePredictBody(bytes: Uint8Array, dt: DataType, maxBatch: number): ClipperPredictBody {
  const body = expectObject(parseJsonBody(bytes), 'body');
  const context = contextOf(body);
  const version = versionOf(body);
  if (body.input_batch !== undefined) {
    if (!Array.isArray(body.input_batch) || body.input_batch.length === 0) throw new SkiffError('BAD_REQUEST', 'input_batch must be a non-empty array of inputs');
    if (body.input_batch.length > maxBatch) throw new SkiffError('BAD_REQUEST', `input_batch holds more than ${maxBatch} inputs`);
    return { inputs: body.input_batch.map((x, i) => numbersToBytes(x, dt, `input_batch[${i}]`)), batch: true, context, ...version };
  }
  if (body.input === undefined) throw new SkiffError('BAD_REQUEST', 'the body needs "input" or "input_batch"');
  return { inputs: [numbersToBytes(body.input, dt, 'input')], batch: false, context, ...version };
}

/** Parse and validate an update (feedback) body for an app whose inputs are `dt`. Pure, as parsePredictBody. */
export function parseUpdateBody(bytes: Uint8Array, dt: DataType): ClipperUpdateBody {
  const body = expectObject(parseJsonBody(bytes), 'body');
  if (body.input === undefined || body.label === undefined) throw new SkiffError('BAD_REQUEST', 'the body needs "uid", "input" and "label"');
  if (typeof body.label !== 'number') throw new SkiffError('BAD_REQUEST', 'label must be a number');
  const input = numbersToBytes(body.input, dt, 'input');
  return { input, label: body.label, context: contextOf(body) };
}

/**
 * Clipper nests a model's string answer as JSON when it parses as JSON (a container answering
 * '{"label": 3}' gives an object), and as a string otherwise.
 */
function clipperOutput(a: AppAnswer): unknown {
  if (typeof a.output !== 'string' || a.isDefault) return a.output;
  const t = a.output.trim();
  if (t === '' || !/^[[{"]/.test(t)) return a.output;
  try {
    return JSON.parse(t) as unknown;
  } catch {
    return a.output;
  }
}

/** An app answer in Clipper's JSON shape (plus which models produced it). */
export function clipperAnswer(a: AppAnswer): Record<string, unknown> {
  const r: Record<string, unknown> = { query_id: a.queryId, output: clipperOutput(a), default: a.isDefault };
  if (a.isDefault && a.defaultExplanation) r.default_explanation = a.defaultExplanation;
  r.models_used = a.modelsUsed;
  r.models_missing = a.modelsMissing;
  if (a.confidence !== undefined) r.confidence = a.confidence;
  if (a.probabilities) r.probabilities = a.probabilities;
  return r;
}

function clipperError(ex: Exchange, err: ErrorInfo): void {
  sendError(ex, err, false, { cause: err.message });
}

export function registerClipperRoutes(app: TemplatedApp, apps: AppRegistry, proc: AppProcessor, opts: ClipperOptions): void {
  const route = (handler: (ex: Exchange, appName: string, dt: DataType, bytes: Uint8Array) => void) =>
    (res: HttpResponse, req: HttpRequest): void => {
      const ex = exchange(res);
      const appName = req.getParameter(0) ?? '';
      readBody(ex, req, opts.body, (bytes) => {
        try {
          const rt = apps.require(appName);
          handler(ex, appName, INPUT_TYPES[rt.def.input_type], bytes);
        } catch (err) {
          clipperError(ex, toErrorInfo(err));
        }
      });
    };

  const predict = route((ex, appName, dt, bytes) => {
    const { inputs, batch, context, version } = parsePredictBody(bytes, dt, opts.maxBatch);
    if (batch) {
      const answers: Record<string, unknown>[] = new Array(inputs.length);
      let pending = inputs.length;
      const handles = inputs.map((data, i) =>
        proc.predict(appName, { data }, context, (err, a) => {
          answers[i] = err ? { error: publicError(err).info.message, code: err.code } : clipperAnswer(a!);
          if (--pending === 0) sendJson(ex, 200, { batch_predictions: answers });
        }, version));
      ex.onAbort = () => {
        for (const h of handles) h.cancel();
      };
      return;
    }
    const handle = proc.predict(appName, { data: inputs[0]! }, context, (err, a) => (err ? clipperError(ex, err) : sendJson(ex, 200, clipperAnswer(a!))), version);
    // A client that hangs up cancels its query (its models' queued work leaves the queues).
    ex.onAbort = () => handle.cancel();
  });
  app.post('/:app/predict', predict);
  // Clipper's frontend matches a trailing slash too (clients build URLs both ways).
  app.post('/:app/predict/', predict);

  const update = route((ex, appName, dt, bytes) => {
    const { input, label, context } = parseUpdateBody(bytes, dt);
    proc.feedback(appName, { data: input }, context, label, (err, r) =>
      err ? clipperError(ex, err) : sendJson(ex, 200, { success: true, models_updated: r!.updated }));
  });
  app.post('/:app/update', update);
  app.post('/:app/update/', update);
}

import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { SkiffError, toErrorInfo, type ErrorInfo } from '../errors.js';
import type { DataType } from '../tensor/datatype.js';
import { expectObject, parseJsonBody } from '../protocol/safe-json.js';
import { INPUT_TYPES } from '../selection/app.js';
import type { AppRegistry } from '../selection/apps.js';
import type { AppAnswer, AppProcessor } from '../selection/app-processor.js';
import { exchange, readBody, sendError, sendJson, type Exchange } from './http.js';

/**
 * Clipper's query REST API, per application:
 *   POST /<app>/predict  {"input": [..]} | {"input_batch": [[..], ..]}  (+ optional "uid")
 *     -> {"query_id", "output", "default", "default_explanation"?, "models_used", "models_missing", ...}
 *        | {"batch_predictions": [ ... ]}
 *   POST /<app>/update   {"uid", "input", "label"}  -> {"success": true, "models_updated": [..]}
 * Errors: {"error", "code", "cause"} with the code's HTTP status.
 */
export interface ClipperOptions {
  maxBodyBytes: number;
  maxBatch: number;
}

/** JSON numbers (flat or nested) -> little-endian bytes of `dt`, validating every value. */
export function numbersToBytes(raw: unknown, dt: DataType, what: string): Uint8Array {
  if (typeof raw === 'string' && dt === 'UINT8') return new Uint8Array(Buffer.from(raw, 'base64'));
  if (!Array.isArray(raw)) throw new SkiffError('BAD_REQUEST', `${what} must be an array of numbers`);
  const flat = (raw as unknown[]).flat(8);
  let out: Float32Array | Float64Array | Int32Array | Uint8Array;
  switch (dt) {
    case 'FP32': out = new Float32Array(flat.length); break;
    case 'FP64': out = new Float64Array(flat.length); break;
    case 'INT32': out = new Int32Array(flat.length); break;
    case 'UINT8': out = new Uint8Array(flat.length); break;
    default: throw new SkiffError('UNSUPPORTED_DATATYPE', `${dt} inputs are not supported by the Clipper API`);
  }
  for (let i = 0; i < flat.length; i++) {
    const v = flat[i];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new SkiffError('INVALID_INPUT', `${what}[${i}] is not a finite number`);
    if (dt === 'INT32' && (!Number.isInteger(v) || v < -2147483648 || v > 2147483647)) throw new SkiffError('INVALID_INPUT', `${what}[${i}] is not an int32`);
    if (dt === 'UINT8' && (!Number.isInteger(v) || v < 0 || v > 255)) throw new SkiffError('INVALID_INPUT', `${what}[${i}] is not a byte`);
    out[i] = v;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** An app answer in Clipper's JSON shape (plus which models produced it). */
export function clipperAnswer(a: AppAnswer): Record<string, unknown> {
  const r: Record<string, unknown> = { query_id: a.queryId, output: a.output, default: a.isDefault };
  if (a.isDefault && a.defaultExplanation) r.default_explanation = a.defaultExplanation;
  r.models_used = a.modelsUsed;
  r.models_missing = a.modelsMissing;
  if (a.confidence !== undefined) r.confidence = a.confidence;
  if (a.probabilities) r.probabilities = a.probabilities;
  return r;
}

function contextOf(body: Record<string, unknown>): string {
  const uid = body.uid ?? body.user;
  if (uid === undefined || uid === null || uid === 0 || uid === '') return '';
  if (typeof uid !== 'number' && typeof uid !== 'string') throw new SkiffError('BAD_REQUEST', 'uid must be a number or a string');
  return String(uid);
}

function clipperError(ex: Exchange, err: ErrorInfo): void {
  sendError(ex, err, false, { cause: err.message });
}

export function registerClipperRoutes(app: TemplatedApp, apps: AppRegistry, proc: AppProcessor, opts: ClipperOptions): void {
  const route = (handler: (ex: Exchange, appName: string, body: Record<string, unknown>) => void) =>
    (res: HttpResponse, req: HttpRequest): void => {
      const ex = exchange(res);
      const appName = req.getParameter(0) ?? '';
      readBody(ex, req, opts.maxBodyBytes, (bytes) => {
        try {
          apps.require(appName);
          handler(ex, appName, expectObject(parseJsonBody(bytes), 'body'));
        } catch (err) {
          clipperError(ex, toErrorInfo(err));
        }
      });
    };

  app.post('/:app/predict', route((ex, appName, body) => {
    const rt = apps.require(appName);
    const dt = INPUT_TYPES[rt.def.input_type];
    const context = contextOf(body);
    if (body.input_batch !== undefined) {
      if (!Array.isArray(body.input_batch) || body.input_batch.length === 0) throw new SkiffError('BAD_REQUEST', 'input_batch must be a non-empty array of inputs');
      if (body.input_batch.length > opts.maxBatch) throw new SkiffError('BAD_REQUEST', `input_batch holds more than ${opts.maxBatch} inputs`);
      const inputs = body.input_batch.map((x, i) => numbersToBytes(x, dt, `input_batch[${i}]`));
      const answers: Record<string, unknown>[] = new Array(inputs.length);
      let pending = inputs.length;
      inputs.forEach((data, i) => {
        proc.predict(appName, { data }, context, (err, a) => {
          answers[i] = err ? { error: err.message, code: err.code } : clipperAnswer(a!);
          if (--pending === 0) sendJson(ex, 200, { batch_predictions: answers });
        });
      });
      return;
    }
    if (body.input === undefined) throw new SkiffError('BAD_REQUEST', 'the body needs "input" or "input_batch"');
    const data = numbersToBytes(body.input, dt, 'input');
    proc.predict(appName, { data }, context, (err, a) => (err ? clipperError(ex, err) : sendJson(ex, 200, clipperAnswer(a!))));
  }));

  app.post('/:app/update', route((ex, appName, body) => {
    const rt = apps.require(appName);
    if (body.input === undefined || body.label === undefined) throw new SkiffError('BAD_REQUEST', 'the body needs "uid", "input" and "label"');
    if (typeof body.label !== 'number') throw new SkiffError('BAD_REQUEST', 'label must be a number');
    const data = numbersToBytes(body.input, INPUT_TYPES[rt.def.input_type], 'input');
    proc.feedback(appName, { data }, contextOf(body), body.label, (err, r) =>
      err ? clipperError(ex, err) : sendJson(ex, 200, { success: true, models_updated: r!.updated }));
  }));
}

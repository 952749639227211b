import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { SkiffError, scrubMessage, toErrorInfo } from '../errors.js';
import { parseInferRequest } from '../protocol/oip-decode.js';
import { encodeInferResponse } from '../protocol/oip-encode.js';
import type { ModelRegistry, ModelVersion } from '../models/registry.js';
import type { QueryProcessor } from '../selection/query-processor.js';
import { exchange, readBody, send, sendError, sendJson, type Exchange } from '../http/exchange.js';
import type { BodyLimits } from '../http/exchange.js';
import type { Logger } from 'pino';
import { logRequest, requestStart } from '../metrics/request-log.js';
import { toTritonConfig } from '../config/triton-config.js';

/**
 * Open Inference Protocol (KServe v2) REST routes: health, server and model metadata, model
 * readiness and infer (JSON tensors and Triton's binary tensor extension).
 */
export interface OipOptions {
  /** Body size limit and the bytes-in-flight budget. */
  body: BodyLimits;
  maxElements: number;
  serverName: string;
  serverVersion: string;
  /** Per-request logs (see metrics/request-log.ts); none = no request logs. */
  log?: Logger;
}

/**
 * The OIP/Triton extensions Skiff serves (GET /v2 lists exactly these). Not `parameters`: a
 * request's `timeout`, `priority` and `binary_data_output` are honoured and other parameters are
 * accepted, but nothing hands custom parameters to a model, which is what that extension promises.
 */
export const OIP_EXTENSIONS = ['binary_tensor_data', 'model_configuration', 'model_repository', 'statistics'] as const;

/** Triton's extensions Skiff does not serve: their routes answer NOT_SUPPORTED (501), not a bare 404. */
const UNSUPPORTED: readonly [string, string][] = [
  ['/v2/trace/setting', 'the trace extension'],
  ['/v2/models/:model/trace/setting', 'the trace extension'],
  ['/v2/logging', 'the logging extension'],
  ['/v2/systemsharedmemory/*', 'the system shared-memory extension'],
  ['/v2/cudasharedmemory/*', 'the CUDA shared-memory extension'],
];

function parseVersion(raw: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(raw)) throw new SkiffError('VERSION_NOT_FOUND', `'${raw}' is not a model version`);
  return Number(raw);
}

function metadataOf(v: ModelVersion, registry: ModelRegistry): unknown {
  const entry = registry.list().find((m) => m.name === v.model)!;
  return {
    name: v.model,
    versions: entry.versions.filter((x) => x.state === 'ready').map((x) => String(x.version)),
    platform: v.file.kind === 'onnx' ? 'onnxruntime_onnx' : v.file.kind === 'container' ? 'clipper_container' : 'skiff_js',
    inputs: v.spec!.inputs.map((i) => ({ name: i.name, datatype: i.datatype, shape: i.shape })),
    outputs: v.spec!.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
  };
}

export function registerOipRoutes(app: TemplatedApp, registry: ModelRegistry, qp: QueryProcessor, opts: OipOptions): void {
  app.get('/v2/health/live', (res) => sendJson(exchange(res), 200, { live: true }));
  app.get('/v2/health/ready', (res) => {
    // Not ready: which models hold it back, each version's state and the reason it failed.
    const waiting = registry.notReady();
    if (waiting.length === 0) return sendJson(exchange(res), 200, { ready: true });
    const notReady = waiting.map((m) => ({ ...m, versions: m.versions.map((v) => (v.reason ? { ...v, reason: scrubMessage(v.reason) } : v)) }));
    sendJson(exchange(res), 503, { ready: false, not_ready: notReady });
  });
  app.get('/v2', (res) => sendJson(exchange(res), 200, { name: opts.serverName, version: opts.serverVersion, extensions: OIP_EXTENSIONS }));

  const withModel = (hasVersion: boolean, fn: (ex: Exchange, req: HttpRequest, v: ModelVersion) => void) =>
    (res: HttpResponse, req: HttpRequest): void => {
      const ex = exchange(res, req);
      try {
        const name = req.getParameter(0) ?? '';
        const version = hasVersion ? parseVersion(req.getParameter(1) ?? '') : undefined;
        fn(ex, req, registry.resolve(name, version));
      } catch (err) {
        sendError(ex, toErrorInfo(err));
      }
    };

  const meta = (ex: Exchange, _req: HttpRequest, v: ModelVersion): void => sendJson(ex, 200, metadataOf(v, registry));
  app.get('/v2/models/:model', withModel(false, meta));
  app.get('/v2/models/:model/versions/:version', withModel(true, meta));
  // The model configuration extension: the version's configuration in Triton's JSON form.
  const config = (ex: Exchange, _req: HttpRequest, v: ModelVersion): void => sendJson(ex, 200, toTritonConfig({
    name: v.model, kind: v.file.kind, inputs: v.spec!.inputs, outputs: v.spec!.outputs, batchable: v.spec!.batchable,
    config: v.config, replicas: v.executor?.wantedReplicas ?? registry.replicasOf(v.model) ?? v.config.replicas,
  }));
  app.get('/v2/models/:model/config', withModel(false, config));
  app.get('/v2/models/:model/versions/:version/config', withModel(true, config));
  for (const [pattern, what] of UNSUPPORTED) {
    app.any(pattern, (res) => sendError(exchange(res), { code: 'NOT_SUPPORTED', message: `Skiff does not serve ${what}` }));
  }

  const readyRoute = (hasVersion: boolean) => (res: HttpResponse, req: HttpRequest): void => {
    const ex = exchange(res);
    try {
      const name = req.getParameter(0) ?? '';
      const version = hasVersion ? parseVersion(req.getParameter(1) ?? '') : undefined;
      registry.resolve(name, version);
      sendJson(ex, 200, { name, ready: true });
    } catch (err) {
      const info = toErrorInfo(err);
      sendError(ex, info, false, info.code === 'MODEL_UNAVAILABLE' ? { ready: false } : undefined);
    }
  };
  app.get('/v2/models/:model/ready', readyRoute(false));
  app.get('/v2/models/:model/versions/:version/ready', readyRoute(true));

  const infer = (hasVersion: boolean) => (res: HttpResponse, req: HttpRequest): void => {
    const ex = exchange(res, req);
    // uWS: read every header and parameter synchronously, before any callback.
    const model = req.getParameter(0) ?? '';
    const rawVersion = hasVersion ? req.getParameter(1) ?? '' : '';
    const headerLenRaw = req.getHeader('inference-header-content-length');
    const log = opts.log;
    const t0 = log ? requestStart(log) : 0;
    readBody(ex, req, opts.body, (body) => {
      let headerLength: number | undefined;
      if (headerLenRaw !== '') {
        if (!/^[0-9]{1,12}$/.test(headerLenRaw)) throw new SkiffError('BAD_REQUEST', 'Inference-Header-Content-Length must be a non-negative integer');
        headerLength = Number(headerLenRaw);
      }
      const version = hasVersion ? parseVersion(rawVersion) : undefined;
      // An unknown model is a 404 whatever the body holds (as Triton answers).
      if (!registry.has(model)) throw new SkiffError('MODEL_NOT_FOUND', `model '${model}' is not loaded`);
      const parsed = parseInferRequest(body, headerLength, { maxElements: opts.maxElements });
      // Requested outputs carry their resolved binary flag; otherwise binary_data_output decides.
      const binaryOf = new Map((parsed.outputs ?? []).map((o) => [o.name, o.binary]));
      const handle = qp.inferModel(
        { model, version, inputs: parsed.inputs, outputs: parsed.outputs?.map((o) => o.name), timeoutUs: parsed.timeoutUs },
        (err, answer) => {
          if (log && (err || t0)) logRequest(log, { http: true, req: parsed.id, target: model, version: answer?.version }, err, t0);
          if (ex.aborted) return;
          if (err) return sendError(ex, err);
          const enc = encodeInferResponse({
            modelName: answer!.model,
            modelVersion: String(answer!.version),
            id: parsed.id,
            outputs: answer!.outputs,
            binary: (name) => binaryOf.get(name) ?? parsed.binaryOutput,
          });
          const headers: Record<string, string> = {};
          if (enc.headerLength !== undefined) headers['inference-header-content-length'] = String(enc.headerLength);
          send(ex, {
            status: 200,
            body: enc.body,
            contentType: enc.headerLength !== undefined ? 'application/octet-stream' : 'application/json',
            headers,
          });
        },
      );
      // A client that disconnects cancels its query.
      ex.onAbort = () => handle.cancel();
    });
  };
  app.post('/v2/models/:model/infer', infer(false));
  app.post('/v2/models/:model/versions/:version/infer', infer(true));
}

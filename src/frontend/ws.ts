import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import uWS from '../http/uws.js';
import type { Logger } from 'pino';
import { ErrorCodes, publicError, toErrorInfo, type ErrorInfo } from '../errors.js';
import { decodeFrame, encodeFrame, ResponseEncoder, type WireFeedback, type WireRequest, type WireResponse } from '../protocol/wire.js';
import type { QueryHandle } from '../engine/executor.js';
import type { QueryProcessor } from '../selection/query-processor.js';
import type { AppAnswer, AppProcessor } from '../selection/app-processor.js';
import type { Tensor } from '../tensor/tensor.js';
import { logRequest, requestStart } from '../metrics/request-log.js';
import { rowOf, stackInputs, stackKey } from './stacking.js';
import { tensorSlab } from '../tensor/slab.js';
import { browserRefusal, type BrowserPolicy } from '../http/guard.js';
import { statusLine } from '../http/exchange.js';

/**
 * The primary protocol: WebSocket with one FlatBuffers Frame per binary message. Many requests
 * per frame and per connection, answers in any order, matched by the client's ids.
 *
 * Replies are queued per connection and flushed once per callback (a microtask) as one frame (split
 * at `maxResponsesPerFrame`). Backpressure: while uWS holds more than `highWaterBytes` for a
 * connection we stop writing and resume on `drain`; a client whose unsent replies exceed
 * `maxPendingBytes` is closed with code 4008 and a reason. A reply is never dropped silently:
 * a send uWS refuses (2 = dropped) closes the connection with 1011.
 */
export interface WsOptions {
  path: string;
  maxFrameBytes: number;
  idleTimeoutSec: number;
  highWaterBytes: number;
  maxPendingBytes: number;
  maxResponsesPerFrame: number;
  /** Which browsers may connect (src/http/guard.ts browserRefusal); clients without Origin are not browsers and pass. */
  browsers: BrowserPolicy;
}

interface Conn {
  ws: WebSocket<UserData>;
  closed: boolean;
  /** Requests in flight by client id: duplicate detection and cancellation. */
  inflight: Map<bigint, QueryHandle | null>;
  pending: WireResponse[];
  /** Frame-level errors (undecodable frames) waiting to be sent. */
  frameErrors: ErrorInfo[];
  pendingBytes: number;
  blocked: boolean;
  id: number;
}

interface UserData {
  conn?: Conn;
}

export const WS_CLOSE_SLOW_READER = 4008;

export interface WsRoute {
  connections(): number;
  /** Connections closed for not reading their replies. */
  slowReaderCloses(): number;
  /** Close every connection (shutdown): 1001 going away. */
  closeAll(): void;
}

/** An application's answer as response tensors: `output` (FP64, or BYTES for a string default) and `probabilities`. */
export function appAnswerTensors(a: AppAnswer): Tensor[] {
  const out: Tensor[] = [];
  if (typeof a.output === 'number') {
    out.push({ name: 'output', datatype: 'FP64', shape: [1], data: new Uint8Array(new Float64Array([a.output]).buffer) });
  } else {
    const s = Buffer.from(a.output, 'utf8');
    const data = new Uint8Array(4 + s.length);
    new DataView(data.buffer).setUint32(0, s.length, true);
    data.set(s, 4);
    out.push({ name: 'output', datatype: 'BYTES', shape: [1], data });
  }
  if (a.probabilities) {
    out.push({ name: 'probabilities', datatype: 'FP32', shape: [1, a.probabilities.length], data: new Uint8Array(Float32Array.from(a.probabilities).buffer) });
  }
  return out;
}

/** The decoder's slab memory of a request's inputs may be reused: nothing reads them any more. */
function releaseInputs(r: WireRequest): void {
  for (const t of r.inputs) tensorSlab.release(t.data);
}

export function registerWsRoute(app: TemplatedApp, qp: QueryProcessor, apps: AppProcessor, log: Logger, opts: WsOptions): WsRoute {
  const encoder = new ResponseEncoder();
  const dirty = new Set<Conn>();
  let flushScheduled = false;
  let nextConnId = 1;
  const conns = new Set<Conn>();
  let slowClosed = 0;

  const scheduleFlush = (c: Conn): void => {
    dirty.add(c);
    if (!flushScheduled) {
      flushScheduled = true;
      // After the current callback (a frame's requests, or a batch's answers) has run to the
      // end: every reply it produced goes out in one frame per connection, without waiting a
      // whole event-loop turn.
      queueMicrotask(flushAll);
    }
  };

  function flushAll(): void {
    flushScheduled = false;
    for (const c of dirty) flush(c);
    dirty.clear();
  }

  /** Send queued replies while uWS holds at most `highWater` bytes for the connection. */
  function flush(c: Conn, highWater = opts.highWaterBytes): void {
    if (c.closed) return;
    const ws = c.ws;
    while (c.frameErrors.length > 0) {
      if (ws.getBufferedAmount() > highWater) {
        c.blocked = true;
        return;
      }
      const bytes = encodeFrame({ error: c.frameErrors.shift()! });
      let r = 0;
      ws.cork(() => {
        r = ws.send(bytes, true, false) as number;
      });
      if (r === 2) return close(c, 1011, 'backpressure limit exceeded');
    }
    while (c.pending.length > 0) {
      if (ws.getBufferedAmount() > highWater) {
        c.blocked = true; // resume in drain()
        return;
      }
      const n = Math.min(c.pending.length, opts.maxResponsesPerFrame);
      const batch = n === c.pending.length ? c.pending : c.pending.slice(0, n);
      const bytes = encoder.encode(batch);
      let r = 0;
      ws.cork(() => {
        r = ws.send(bytes, true, false) as number;
      });
      if (r === 2) {
        log.warn({ conn: c.id }, 'websocket send dropped by backpressure limit; closing');
        close(c, 1011, 'backpressure limit exceeded');
        return;
      }
      c.pending = n === c.pending.length ? [] : c.pending.slice(n);
      c.pendingBytes = c.pending.length === 0 ? 0 : Math.max(0, c.pendingBytes - bytes.byteLength);
    }
  }

  function close(c: Conn, code: number, reason: string): void {
    if (c.closed) return;
    c.ws.end(code, reason);
  }

  function reply(c: Conn, r: WireResponse): void {
    if (c.closed) return;
    c.pending.push(r);
    let size = 64;
    for (const t of r.outputs) size += t.data.byteLength + 32;
    c.pendingBytes += size;
    // Over the limit: first hand uWS what it can take (up to the limit again), so a client that
    // reads but got a burst is not mistaken for one that stopped reading.
    if (c.pendingBytes > opts.maxPendingBytes) flush(c, opts.maxPendingBytes);
    if (c.pendingBytes > opts.maxPendingBytes) {
      log.warn({ conn: c.id, pendingBytes: c.pendingBytes }, 'slow reader exceeded the pending reply limit; closing');
      slowClosed++;
      close(c, WS_CLOSE_SLOW_READER, 'slow reader: too many unread replies');
      return;
    }
    if (!c.blocked) scheduleFlush(c);
  }

  function frameError(c: Conn, raw: ErrorInfo): void {
    if (c.closed) return;
    const { info: err, ref } = publicError(raw);
    logRequest(log, { conn: c.id, ...(ref ? { ref } : {}) }, err, 0);
    c.frameErrors.push(err);
    if (c.frameErrors.length > 1024) return close(c, 1008, 'too many malformed frames');
    if (!c.blocked) scheduleFlush(c);
  }

  /** Logs: `conn` + `req` identify a request (the client's id is unique per connection in flight). */
  function errorReply(c: Conn, id: bigint, raw: ErrorInfo, model = '', t0 = 0): void {
    const { info: err, ref } = publicError(raw);
    logRequest(log, { conn: c.id, req: String(id), target: model, ...(ref ? { ref } : {}) }, err, t0);
    reply(c, { id, model, version: 0, outputs: [], error: err });
  }

  function handleRequest(c: Conn, r: WireRequest): void {
    const t0 = requestStart(log);
    if (r.error) return errorReply(c, r.id, r.error, r.model);
    if (c.inflight.has(r.id)) return errorReply(c, r.id, { code: 'DUPLICATE_ID', message: `request id ${r.id} is already in flight on this connection` }, r.model);
    if (r.app) return handleAppRequest(c, r, t0);
    c.inflight.set(r.id, null);
    let answered = false;
    const handle = qp.inferModel(
      {
        model: r.model, version: r.version, inputs: r.inputs, outputs: r.outputs, timeoutUs: r.timeoutUs, deadlineUnixUs: r.deadlineUnixUs,
        inputsDone: () => releaseInputs(r),
      },
      (err, ans) => {
        answered = true;
        c.inflight.delete(r.id);
        if (err) return errorReply(c, r.id, err, r.model, t0);
        if (t0) logRequest(log, { conn: c.id, req: String(r.id), target: ans!.model, version: ans!.version }, null, t0);
        reply(c, { id: r.id, model: ans!.model, version: ans!.version, outputs: ans!.outputs });
      },
    );
    if (!answered) c.inflight.set(r.id, handle);
  }

  /**
   * A frame's requests: single-row model requests that agree on model, version, deadline and
   * shapes are answered as stacked queries of up to one batch each (see stacking.ts); the rest
   * one by one. Each request still gets its own answer, id, duplicate check and cancel handle.
   */
  function handleRequests(c: Conn, rs: WireRequest[]): void {
    // How many rows one stack of a model may have, looked up once per model in the frame
    // (0/1: the model does not stack, e.g. it has a cache; its requests go one by one).
    const limits = new Map<string, number>();
    const limitOf = (r: WireRequest): number => {
      const k = `${r.model}\u0000${r.version}`;
      let l = limits.get(k);
      if (l === undefined) limits.set(k, (l = qp.stackLimit(r.model, r.version)));
      return l;
    };
    let stacks: Map<string, WireRequest[]> | null = null;
    for (const r of rs) {
      // A repeated id is not stackable: handleRequest answers it DUPLICATE_ID.
      const key = r.error || r.app || c.inflight.has(r.id) || limitOf(r) <= 1 ? null : stackKey(r);
      if (key === null) {
        handleRequest(c, r);
        continue;
      }
      c.inflight.set(r.id, null); // registered now, so a later duplicate in the frame is caught
      stacks ??= new Map();
      const s = stacks.get(key);
      if (s) s.push(r);
      else stacks.set(key, [r]);
    }
    if (!stacks) return;
    for (const s of stacks.values()) {
      // At most one batch per stack: admission and deadlines then act per batch-sized group.
      const limit = limitOf(s[0]!);
      for (let i = 0; i < s.length; i += limit) {
        const part = s.slice(i, i + limit);
        if (part.length > 1) {
          handleStack(c, part);
          continue;
        }
        c.inflight.delete(part[0]!.id);
        handleRequest(c, part[0]!);
      }
    }
  }

  function handleStack(c: Conn, rs: WireRequest[]): void {
    const t0 = requestStart(log);
    const first = rs[0]!;
    const n = rs.length;
    const done = new Array<boolean>(n).fill(false);
    let live = n;
    const shared = qp.inferModel(
      {
        model: first.model, version: first.version, inputs: stackInputs(rs), outputs: first.outputs,
        timeoutUs: first.timeoutUs, deadlineUnixUs: first.deadlineUnixUs, requests: n,
        inputsDone: () => {
          for (const r of rs) releaseInputs(r);
        },
      },
      (err, ans) => {
        for (let k = 0; k < n; k++) {
          if (done[k]) continue;
          done[k] = true;
          const id = rs[k]!.id;
          c.inflight.delete(id);
          if (err) {
            errorReply(c, id, err, first.model, t0);
            continue;
          }
          if (t0) logRequest(log, { conn: c.id, req: String(id), target: ans!.model, version: ans!.version }, null, t0);
          reply(c, { id, model: ans!.model, version: ans!.version, outputs: rowOf(ans!.outputs, k, n) });
        }
      },
    );
    for (let k = 0; k < n; k++) {
      if (done[k]) continue; // answered synchronously
      const id = rs[k]!.id;
      c.inflight.set(id, {
        // One request of the stack leaves: answer it now; the stack is cancelled with the last one.
        cancel: () => {
          if (done[k]) return;
          done[k] = true;
          c.inflight.delete(id);
          errorReply(c, id, { code: 'CANCELLED', message: 'cancelled by the client' }, first.model, t0);
          if (--live === 0) shared.cancel();
        },
      });
    }
  }

  function handleAppRequest(c: Conn, r: WireRequest, t0: number): void {
    if (r.inputs.length !== 1) return errorReply(c, r.id, { code: 'INVALID_INPUT', message: 'an application query carries exactly one input tensor' }, r.app);
    c.inflight.set(r.id, null);
    let answered = false;
    const handle = apps.predict(r.app, { data: r.inputs[0]!.data }, r.user, (err, a) => {
      answered = true;
      c.inflight.delete(r.id);
      if (err) return errorReply(c, r.id, err, r.app, t0);
      if (t0) logRequest(log, { conn: c.id, req: String(r.id), target: r.app, default: a!.isDefault }, null, t0);
      reply(c, {
        id: r.id, model: r.app, version: 0, outputs: appAnswerTensors(a!), isDefault: a!.isDefault,
        ...(a!.defaultExplanation ? { defaultExplanation: a!.defaultExplanation } : {}),
        modelsUsed: a!.modelsUsed, modelsMissing: a!.modelsMissing,
      });
    });
    // A cancel frame or the connection closing cancels the application query too.
    if (!answered) c.inflight.set(r.id, handle);
  }

  function handleFeedback(c: Conn, f: WireFeedback): void {
    const t0 = requestStart(log);
    if (f.error) return errorReply(c, f.id, f.error, f.app);
    if (f.inputs.length !== 1) return errorReply(c, f.id, { code: 'INVALID_INPUT', message: 'feedback carries exactly one input tensor' }, f.app);
    apps.feedback(f.app, { data: f.inputs[0]!.data }, f.user, f.label, (err, r) => {
      if (err) return errorReply(c, f.id, err, f.app, t0);
      if (t0) logRequest(log, { conn: c.id, req: String(f.id), target: f.app, feedback: true }, null, t0);
      reply(c, { id: f.id, model: f.app, version: 0, outputs: [], modelsUsed: r!.updated });
    });
  }

  app.ws<UserData>(opts.path, {
    compression: uWS.DISABLED,
    maxPayloadLength: opts.maxFrameBytes,
    idleTimeout: opts.idleTimeoutSec,
    // Above this uWS drops sends (returns 2); we stop writing at highWaterBytes, far below it.
    maxBackpressure: Math.max(opts.highWaterBytes * 4, 64 * 1024 * 1024),
    closeOnBackpressureLimit: 0,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      // A page on another site (or one that rebinds its own name to this address) must not
      // stream queries with the visitor's browser: refuse it unless --allow-origin allows it.
      const refused = browserRefusal(req, opts.browsers);
      if (refused) {
        res.writeStatus(statusLine(ErrorCodes[refused.code].status)).writeHeader('content-type', 'application/json')
          .end(JSON.stringify({ error: refused.message, code: refused.code }));
        return;
      }
      res.upgrade<UserData>({}, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
    },
    open: (ws) => {
      const c: Conn = { ws, closed: false, inflight: new Map(), pending: [], frameErrors: [], pendingBytes: 0, blocked: false, id: nextConnId++ };
      ws.getUserData().conn = c;
      conns.add(c);
      if (log.isLevelEnabled('debug')) log.debug({ conn: c.id, remote: Buffer.from(ws.getRemoteAddressAsText()).toString() }, 'websocket open');
    },
    message: (ws, message, isBinary) => {
      const c = ws.getUserData().conn!;
      if (!isBinary) return frameError(c, { code: 'BAD_FRAME', message: 'frames must be binary FlatBuffers messages' });
      let frame;
      try {
        // decodeFrame copies every tensor out: `message` is neutered when this callback returns.
        frame = decodeFrame(new Uint8Array(message), undefined, tensorSlab);
      } catch (err) {
        return frameError(c, toErrorInfo(err, 'BAD_FRAME'));
      }
      for (const id of frame.cancel) c.inflight.get(id)?.cancel();
      if (frame.requests.length > 1) handleRequests(c, frame.requests);
      else for (const r of frame.requests) handleRequest(c, r);
      for (const f of frame.feedback) handleFeedback(c, f);
    },
    drain: (ws) => {
      const c = ws.getUserData().conn!;
      if (c.blocked && ws.getBufferedAmount() <= opts.highWaterBytes) {
        c.blocked = false;
        flush(c);
      }
    },
    close: (ws) => {
      const c = ws.getUserData().conn!;
      c.closed = true;
      conns.delete(c);
      dirty.delete(c);
      // Nobody is left to read the answers: cancel what is still queued.
      for (const h of c.inflight.values()) h?.cancel();
      c.inflight.clear();
      c.pending = [];
      if (log.isLevelEnabled('debug')) log.debug({ conn: c.id }, 'websocket closed');
    },
  });
  return {
    connections: () => conns.size,
    slowReaderCloses: () => slowClosed,
    closeAll: () => {
      for (const c of [...conns]) close(c, 1001, 'server shutting down');
    },
  };
}

import type { TemplatedApp, WebSocket } from 'uWebSockets.js';
import uWS from '../http/uws.js';
import type { Logger } from 'pino';
import { ErrorCodes, publicError, toErrorInfo, type ErrorInfo } from '../errors.js';
import { decodeFrame, decodeUniformRequests, encodeFrame, ResponseEncoder, type UniformRequests, type AnswerEntry, type AnswerRows, type RowSlice, type WireFeedback, type WireRequest, type WireResponse } from '../protocol/wire.js';
import type { QueryHandle } from '../engine/executor.js';
import type { ModelAnswer, QueryProcessor } from '../selection/query-processor.js';
import type { AppAnswer, AppProcessor } from '../selection/app-processor.js';
import type { Tensor } from '../tensor/tensor.js';
import { logRequest, requestStart } from '../metrics/request-log.js';
import { sameStack, stackInputs, stackKey } from './stacking.js';
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
  /**
   * Requests in flight by client id (idKey): duplicate detection and cancellation (null: being
   * registered).
   */
  inflight: Map<IdKey, Inflight | null>;
  /** Answers waiting to be sent, in order: single answers, and a stack's rows as one entry. */
  pending: (WireResponse | RowAnswers)[];
  /** Frame-level errors (undecodable frames) waiting to be sent. */
  frameErrors: ErrorInfo[];
  pendingBytes: number;
  blocked: boolean;
  id: number;
}

/**
 * A client id as the in-flight map's key: a number below 2^53 (what clients send in practice),
 * else the bigint. Numbers hash and compare far more cheaply than bigints, and the map is
 * touched several times per request.
 */
type IdKey = number | bigint;
const MAX_SAFE_ID = BigInt(Number.MAX_SAFE_INTEGER);
function idKey(id: bigint): IdKey {
  return id <= MAX_SAFE_ID ? Number(id) : id;
}

/** What a stacked query takes from its requests (all agree on it). */
type StackQuery = Pick<WireRequest, 'model' | 'version' | 'timeoutUs' | 'deadlineUnixUs'>;

/** A request's cancel handle: its own query, or the stack it shares (which finds it by id). */
interface Inflight {
  cancel(id: bigint): void;
}

/** Requests of a frame that share one stack key, cut into chunks of at most one batch. */
interface Group {
  first: WireRequest;
  limit: number;
  chunks: WireRequest[][];
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

/**
 * Releases the slab memory of a stack's requests once the engine is done with it. A stacked
 * input that is a view over the requests' adjacent rows holds one slab reference per request,
 * released through the view itself (a reference names only its slab); only inputs that had to be
 * copied keep the requests' own views until then.
 */
function stackRelease(rs: readonly WireRequest[], stacked: readonly Tensor[]): () => void {
  const n = rs.length;
  let views: Uint8Array[] | null = null;
  let shared: Uint8Array[] | null = null;
  for (let i = 0; i < stacked.length; i++) {
    const data = stacked[i]!.data;
    if (data.buffer === rs[0]!.inputs[i]!.data.buffer) (shared ??= []).push(data);
    else for (const r of rs) (views ??= []).push(r.inputs[i]!.data);
  }
  return () => {
    if (shared) for (const v of shared) for (let k = 0; k < n; k++) tensorSlab.release(v);
    if (views) for (const v of views) tensorSlab.release(v);
  };
}

/**
 * The answered rows of one stacked query, waiting in a connection's send queue as ONE entry.
 * The encoder writes row k's response (its id, and row k of each stacked output) straight from
 * the stacked outputs when its frame is encoded (protocol/response-writer.ts), so a stack's
 * answers cost no object per row, neither while they wait nor when they are sent.
 */
class RowAnswers implements AnswerRows {
  private next = 0;
  readonly model: string;
  readonly version: number;
  readonly outputs: readonly Tensor[];
  readonly rowBytes: number[];
  readonly shapes: number[][];

  constructor(
    readonly ids: readonly bigint[],
    /** Row indexes to answer, in order; null = every row. */
    private readonly rows: readonly number[] | null,
    ans: ModelAnswer,
  ) {
    const n = ids.length;
    this.model = ans.model;
    this.version = ans.version;
    this.outputs = ans.outputs;
    this.rowBytes = ans.outputs.map((t) => (t.shape[0] === n ? t.data.byteLength / n : -1));
    this.shapes = ans.outputs.map((t) => (t.shape[0] === n ? [1, ...t.shape.slice(1)] : t.shape));
  }

  private get count(): number {
    return this.rows === null ? this.ids.length : this.rows.length;
  }

  more(): boolean {
    return this.next < this.count;
  }

  /** Queued bytes, as reply() counts one answer: 64 + each output's bytes + 32, per row. */
  bytes(): number {
    let row = 64;
    const outs = this.outputs;
    for (let j = 0; j < outs.length; j++) row += (this.rowBytes[j]! >= 0 ? this.rowBytes[j]! : outs[j]!.data.byteLength) + 32;
    return row * this.count;
  }

  /** The next rows, at most `max` of them, for one frame. */
  take(max: number): RowSlice {
    const from = this.next;
    const to = Math.min(this.count, from + max);
    this.next = to;
    return { src: this, rows: this.rows, from, to };
  }
}

export function registerWsRoute(app: TemplatedApp, qp: QueryProcessor, apps: AppProcessor, log: Logger, opts: WsOptions): WsRoute {
  const encoder = new ResponseEncoder();
  /** The answers of the frame being encoded (single responses, and slices of stacked answers). */
  const frameScratch: AnswerEntry[] = [];
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
    const pending = c.pending;
    let head = 0;
    while (head < pending.length) {
      if (ws.getBufferedAmount() > highWater) {
        c.blocked = true; // resume in drain()
        break;
      }
      // The next frame: up to maxResponsesPerFrame answers; a stack's rows go in as a slice.
      const out = frameScratch;
      let n = 0;
      const max = opts.maxResponsesPerFrame;
      while (n < max && head < pending.length) {
        const e = pending[head]!;
        if (e instanceof RowAnswers) {
          const part = e.take(max - n);
          n += part.to - part.from;
          out.push(part);
          if (!e.more()) head++;
        } else {
          out.push(e);
          n++;
          head++;
        }
      }
      const bytes = encoder.encode(out);
      out.length = 0;
      let r = 0;
      ws.cork(() => {
        r = ws.send(bytes, true, false) as number;
      });
      if (r === 2) {
        log.warn({ conn: c.id }, 'websocket send dropped by backpressure limit; closing');
        close(c, 1011, 'backpressure limit exceeded');
        return;
      }
      c.pendingBytes = head === pending.length ? 0 : Math.max(0, c.pendingBytes - bytes.byteLength);
    }
    if (head === pending.length) pending.length = 0;
    else if (head > 0) pending.splice(0, head);
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
    queued(c, size);
  }

  /** A stack's answered rows, queued as one entry: each row becomes its response when flushed. */
  function replyRows(c: Conn, rows: RowAnswers): void {
    if (c.closed) return;
    c.pending.push(rows);
    queued(c, rows.bytes());
  }

  function queued(c: Conn, size: number): void {
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
    if (c.inflight.has(idKey(r.id))) return errorReply(c, r.id, { code: 'DUPLICATE_ID', message: `request id ${r.id} is already in flight on this connection` }, r.model);
    if (r.app) return handleAppRequest(c, r, t0);
    c.inflight.set(idKey(r.id), null);
    let answered = false;
    const handle = qp.inferModel(
      {
        model: r.model, version: r.version, inputs: r.inputs, outputs: r.outputs, timeoutUs: r.timeoutUs, deadlineUnixUs: r.deadlineUnixUs,
        inputsDone: () => releaseInputs(r),
      },
      (err, ans) => {
        answered = true;
        c.inflight.delete(idKey(r.id));
        if (err) return errorReply(c, r.id, err, r.model, t0);
        if (t0) logRequest(log, { conn: c.id, req: String(r.id), target: ans!.model, version: ans!.version }, null, t0);
        reply(c, { id: r.id, model: ans!.model, version: ans!.version, outputs: ans!.outputs });
      },
    );
    if (!answered) c.inflight.set(idKey(r.id), handle);
  }

  /**
   * A frame's requests: single-row model requests that agree on model, version, deadline and
   * shapes are answered as stacked queries of up to one batch each (see stacking.ts); the rest
   * one by one. Each request still gets its own answer, id, duplicate check and cancel handle.
   *
   * Per request this keeps only its id while it runs (in the stack and the connection's
   * in-flight map, whose value is the shared Stack): the decoded request objects are garbage as
   * soon as the stack is submitted, so thousands of queued requests are not thousands of live
   * objects for the collector to copy.
   */
  function handleRequests(c: Conn, rs: WireRequest[]): void {
    // Per stack key, its chunks of at most `limit` requests (one batch each), in arrival order.
    let groups: Map<string, Group> | null = null;
    let last: Group | null = null;
    let limitsKey = '';
    let limitsValue = 0;
    for (const r of rs) {
      // A repeated id is not stackable: handleRequest answers it DUPLICATE_ID.
      if (r.error || r.app || c.inflight.has(idKey(r.id))) {
        handleRequest(c, r);
        continue;
      }
      let g: Group | null = null;
      if (last !== null && sameStack(last.first, r)) g = last;
      else {
        // How many rows one stack of a model may have (0/1: the model does not stack, e.g. it
        // has a cache; its requests go one by one), looked up once per model in the frame.
        const lk = `${r.model}\u0000${r.version}`;
        if (lk !== limitsKey) {
          limitsKey = lk;
          limitsValue = qp.stackLimit(r.model, r.version);
        }
        const key = limitsValue <= 1 ? null : stackKey(r);
        if (key === null) {
          handleRequest(c, r);
          continue;
        }
        groups ??= new Map();
        g = groups.get(key) ?? null;
        if (g === null) groups.set(key, (g = { first: r, limit: limitsValue, chunks: [] }));
      }
      last = g;
      let chunk = g.chunks[g.chunks.length - 1];
      if (chunk === undefined || chunk.length >= g.limit) g.chunks.push((chunk = []));
      chunk.push(r);
      c.inflight.set(idKey(r.id), null); // registered now, so a later duplicate in the frame is caught
    }
    if (!groups) return;
    for (const g of groups.values()) {
      for (const part of g.chunks) {
        if (part.length > 1) {
          handleStack(c, part);
          continue;
        }
        c.inflight.delete(idKey(part[0]!.id));
        handleRequest(c, part[0]!);
      }
    }
  }

  function handleStack(c: Conn, rs: WireRequest[]): void {
    const first = rs[0]!;
    const n = rs.length;
    const ids = new Array<bigint>(n);
    for (let k = 0; k < n; k++) ids[k] = rs[k]!.id;
    const inputs = stackInputs(rs);
    startStack(c, first, ids, inputs, first.outputs, stackRelease(rs, inputs));
  }

  /** One stacked query for `ids` (registered in the in-flight map already, value null). */
  function startStack(c: Conn, q: StackQuery, ids: bigint[], inputs: Tensor[], outputs: string[], release: () => void): void {
    const stack = new Stack(c, q.model, ids, requestStart(log));
    stack.handle = qp.inferModel(
      {
        model: q.model, version: q.version, inputs, outputs,
        timeoutUs: q.timeoutUs, deadlineUnixUs: q.deadlineUnixUs, requests: ids.length,
        inputsDone: release,
      },
      (err, ans) => stack.answer(err, ans),
    );
    // Requests not answered synchronously are cancellable through the stack.
    for (let k = 0; k < ids.length; k++) if (stack.done[k] === 0) c.inflight.set(idKey(ids[k]!), stack);
  }

  /**
   * A frame of uniform requests (decodeUniformRequests): stacked queries of up to one batch each,
   * made straight from the decoded rows, with no object per request. False (and nothing done)
   * when the model does not stack or an id is in flight already or repeated in the frame: the
   * frame then takes the general path, which answers each request as it should.
   */
  function handleUniform(c: Conn, u: UniformRequests): boolean {
    const limit = qp.stackLimit(u.model, u.version);
    const { ids, rowBytes } = u;
    const n = ids.length;
    if (limit <= 1) return false;
    for (let k = 0; k < n; k++) {
      const key = idKey(ids[k]!);
      if (c.inflight.has(key)) {
        for (let j = 0; j < k; j++) c.inflight.delete(idKey(ids[j]!));
        return false;
      }
      c.inflight.set(key, null);
    }
    // The rows are one slab reference, released when the last stack's inputs are done with.
    let open = Math.ceil(n / limit);
    const release = (): void => {
      if (--open === 0) tensorSlab.release(u.data);
    };
    for (let from = 0; from < n; from += limit) {
      const to = Math.min(n, from + limit);
      const part = from === 0 && to === n ? ids : ids.slice(from, to);
      const data = from === 0 && to === n ? u.data : u.data.subarray(from * rowBytes, to * rowBytes);
      startStack(c, u, part, [{ name: u.name, datatype: u.datatype, shape: [to - from, ...u.rowShape], data }], [], release);
    }
    return true;
  }

  /**
   * The requests of one stacked query while it runs: their ids in row order and which of them
   * are answered (or cancelled). One object per stack, shared by its requests' in-flight entries.
   */
  class Stack {
    readonly done: Uint8Array;
    private live: number;
    private hint = 0;
    handle: QueryHandle | null = null;

    constructor(
      private readonly c: Conn,
      private readonly model: string,
      readonly ids: bigint[],
      private readonly t0: number,
    ) {
      this.done = new Uint8Array(ids.length);
      this.live = ids.length;
    }

    answer(err: ErrorInfo | null, ans: ModelAnswer | undefined): void {
      const { c, ids, done } = this;
      const n = ids.length;
      // Rows still waiting for an answer (a cancelled one was answered already): null = all.
      let rows: number[] | null = null;
      if (this.live !== n) {
        rows = [];
        for (let k = 0; k < n; k++) if (done[k] === 0) rows.push(k);
      }
      this.live = 0;
      for (let k = 0; k < n; k++) {
        if (done[k] !== 0) continue;
        done[k] = 1;
        const id = ids[k]!;
        c.inflight.delete(idKey(id));
        if (err) errorReply(c, id, err, this.model, this.t0);
        else if (this.t0) logRequest(log, { conn: c.id, req: String(id), target: ans!.model, version: ans!.version }, null, this.t0);
      }
      if (!err && (rows === null || rows.length > 0)) replyRows(c, new RowAnswers(ids, rows, ans!));
    }

    /** One request of the stack leaves: answer it now; the stack is cancelled with the last one. */
    cancel(id: bigint): void {
      // Cancels of a whole stack (a closing connection) come in row order: try the next row first.
      const k = this.ids[this.hint] === id ? this.hint : this.ids.indexOf(id);
      this.hint = k + 1;
      if (k < 0 || this.done[k] !== 0) return;
      this.done[k] = 1;
      this.c.inflight.delete(idKey(id));
      errorReply(this.c, id, { code: 'CANCELLED', message: 'cancelled by the client' }, this.model, this.t0);
      if (--this.live === 0) this.handle?.cancel();
    }
  }

  function handleAppRequest(c: Conn, r: WireRequest, t0: number): void {
    if (r.inputs.length !== 1) return errorReply(c, r.id, { code: 'INVALID_INPUT', message: 'an application query carries exactly one input tensor' }, r.app);
    c.inflight.set(idKey(r.id), null);
    let answered = false;
    const handle = apps.predict(r.app, { data: r.inputs[0]!.data }, r.user, (err, a) => {
      answered = true;
      c.inflight.delete(idKey(r.id));
      if (err) return errorReply(c, r.id, err, r.app, t0);
      if (t0) logRequest(log, { conn: c.id, req: String(r.id), target: r.app, default: a!.isDefault }, null, t0);
      reply(c, {
        id: r.id, model: r.app, version: 0, outputs: appAnswerTensors(a!), isDefault: a!.isDefault,
        ...(a!.defaultExplanation ? { defaultExplanation: a!.defaultExplanation } : {}),
        modelsUsed: a!.modelsUsed, modelsMissing: a!.modelsMissing,
      });
    });
    // A cancel frame or the connection closing cancels the application query too.
    if (!answered) c.inflight.set(idKey(r.id), handle);
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
      // Both decoders copy every tensor out: `message` is neutered when this callback returns.
      const bytes = new Uint8Array(message);
      const u = decodeUniformRequests(bytes, undefined, tensorSlab);
      if (u !== null) {
        if (handleUniform(c, u)) return;
        tensorSlab.release(u.data);
      }
      let frame;
      try {
        frame = decodeFrame(bytes, undefined, tensorSlab);
      } catch (err) {
        return frameError(c, toErrorInfo(err, 'BAD_FRAME'));
      }
      for (const id of frame.cancel) c.inflight.get(idKey(id))?.cancel(id);
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
      for (const [k, h] of c.inflight) h?.cancel(typeof k === 'bigint' ? k : BigInt(k));
      c.inflight.clear();
      c.pending.length = 0;
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

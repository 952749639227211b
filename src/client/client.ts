/**
 * The Skiff WebSocket client: FlatBuffers frames over any WebSocket that follows the browser's
 * API (the browser's own, Node 22+'s global one, or the `ws` package). No Node-only API is used
 * here, so the same module runs in a browser (served bundled at `/client/skiff.js`) and in Node.
 *
 * - Every call gets a fresh request id; answers are matched by id, in any order.
 * - Calls made in the same synchronous run go out as one frame (`coalesce`, default on).
 * - Backpressure: at most `maxInFlight` queries and feedback records are on the wire; more wait
 *   in the client and go out as answers come back. `ready()` resolves when fewer than
 *   `maxInFlight` calls are outstanding, so a producer that awaits it never holds more.
 * - Deadlines: `timeoutMs` (or `timeoutUs`) travels to the server as the query's timeout, what is
 *   left of it each time the query is sent; `deadlineUnixUs` travels as it is. The client keeps
 *   the deadline too: a query still in the client at its deadline (no room, no connection) is
 *   answered DEADLINE_EXCEEDED there and never sent; a sent one with no answer
 *   `deadlineGraceMs` after its deadline (a silent connection, say) is cancelled on the server
 *   and answered DEADLINE_EXCEEDED by the client.
 * - Cancellation: an `AbortSignal` per call, or `cancel(id)`. A query not yet sent is answered
 *   CANCELLED at once; a sent one is cancelled on the server, which answers it (or, when the
 *   connection drops first, the client does: a cancelled query is never sent again).
 * - Reconnect (default on): when the connection drops, the client reconnects with exponential
 *   backoff (with jitter) and sends again every query that was never answered, with what is
 *   left of its deadline, in id order. A query is re-sent only once the socket it went out on
 *   has closed, so the old connection can no longer answer it: every call settles exactly once.
 *   Feedback already sent is not sent again (the server may have learnt from it): its promise
 *   rejects, so the caller decides.
 *
 * Promise contract: `infer` resolves with the answer even when the answer is an error (server
 * errors, CANCELLED, DEADLINE_EXCEEDED); it rejects only when the request cannot be encoded, or
 * the client is closed (by `close()`, or the connection is lost for good) before an answer.
 */
import type { ErrorCode, ErrorInfo } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import { decodeFrame } from '../protocol/wire-decode.js';
import { encodeFrame } from '../protocol/wire-encode.js';
import { DEFAULT_WIRE_LIMITS, type FeedbackInit, type RequestInit, type WireLimits, type WireResponse } from '../protocol/wire-types.js';

export type { Tensor, WireResponse, ErrorInfo };

/** The part of the browser's WebSocket API the client uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export interface InferRequest {
  model?: string;
  app?: string;
  user?: string;
  version?: number;
  /** The query's deadline from now, in milliseconds (sent to the server as its timeout). */
  timeoutMs?: number;
  /** The same in microseconds, as on the wire (`timeoutMs` wins when both are given). */
  timeoutUs?: number;
  /** An absolute deadline in Unix microseconds (sent as-is; the server's clock decides). */
  deadlineUnixUs?: number;
  inputs: Tensor[];
  outputs?: string[];
}

export interface FeedbackRequest {
  app: string;
  user?: string;
  inputs: Tensor[];
  label: number;
}

export interface CallOptions {
  /** Aborting cancels the call (see the module comment). */
  signal?: AbortSignal;
}

export interface ReconnectOptions {
  /** First retry delay (default 100 ms), doubled per failed attempt up to `maxDelayMs`. */
  initialDelayMs?: number;
  /** Longest delay between attempts (default 5 s). */
  maxDelayMs?: number;
  /** Attempts before giving up and closing the client (default: no limit). */
  maxAttempts?: number;
}

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

export interface ClientOptions {
  /** Opens a socket (default: `new WebSocket(url)` with the global WebSocket). */
  createSocket?: (url: string) => WebSocketLike;
  /** Queries and feedback records on the wire at once (default 1024). */
  maxInFlight?: number;
  /** Coalesce calls made in the same tick into one frame (default true). */
  coalesce?: boolean;
  /** Largest number of requests (and of feedback records, cancels) per frame sent (default 4096). */
  maxRequestsPerFrame?: number;
  /** Limits applied when decoding the server's frames. */
  limits?: WireLimits;
  /** Opening handshake timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** How long after a query's deadline the client waits for the server's answer (default 1 s). */
  deadlineGraceMs?: number;
  /** Reconnect after a lost connection (default on); `false` closes the client instead. */
  reconnect?: boolean | ReconnectOptions;
  /** Frame-level errors: error records from the server, undecodable server frames. */
  onFrameError?: (err: ErrorInfo) => void;
  /** Connection state changes. */
  onStateChange?: (state: ClientState) => void;
}

/** The promise of one answer, with the id the request is sent under (for `cancel`). */
export type InferCall = Promise<WireResponse> & { readonly id: bigint };
/** The answers of an `inferMany`, in request order, with their ids. */
export type InferBatch = Promise<WireResponse[]> & { readonly ids: readonly bigint[] };

const OPEN = 1;
const CONNECTING = 0;
/** The longest delay setTimeout accepts (2^31 - 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

interface Call {
  readonly id: bigint;
  readonly kind: 'infer' | 'feedback';
  readonly init: RequestInit | FeedbackInit;
  /** Client clock (performance.now) deadline, when the call has one. */
  readonly deadline?: number;
  /** The deadline came (at least partly) from a relative timeout: sent as `timeout_us`. */
  readonly relative: boolean;
  /** Past its deadline while on the wire: waiting `deadlineGraceMs` for the server's answer. */
  graced: boolean;
  /** Cancelled by the caller while on the wire: answered CANCELLED if the connection drops. */
  cancelled: boolean;
  /** The connection generation the call was last sent on (0 = never sent). */
  sentOn: number;
  /** A feedback call that nobody awaits (`feedback`, not `sendFeedback`). */
  readonly fireAndForget: boolean;
  resolve(r: WireResponse): void;
  reject(e: Error): void;
  timer?: ReturnType<typeof setTimeout>;
  unlisten?: () => void;
}

function now(): number {
  return globalThis.performance.now();
}

function defaultSocket(url: string): WebSocketLike {
  const Ctor = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (!Ctor) throw new Error('no global WebSocket here (Node 20): pass createSocket, or use skiff-serve/client/node');
  return new Ctor(url);
}

function localAnswer(call: Call, code: ErrorCode, message: string): WireResponse {
  const init = call.init as RequestInit;
  return { id: call.id, model: init.model ?? '', version: 0, outputs: [], error: { code, message } };
}

export class SkiffClient {
  /** Frame-level errors; without a hook they are dropped. */
  onFrameError: ((err: ErrorInfo) => void) | undefined;

  private readonly url: string;
  private readonly createSocket: (url: string) => WebSocketLike;
  private readonly maxInFlight: number;
  private readonly coalesce: boolean;
  private readonly maxPerFrame: number;
  private readonly limits: WireLimits;
  private readonly connectTimeoutMs: number;
  private readonly graceMs: number;
  private readonly reconnect: Required<ReconnectOptions> | undefined;
  private readonly onStateChange: ((s: ClientState) => void) | undefined;

  private ws: WebSocketLike | undefined;
  private generation = 0;
  private stateNow: ClientState = 'connecting';
  private nextId = 1n;
  /** Calls not on the wire yet, in id order. */
  private waiting: Call[] = [];
  /** Calls on the wire, awaiting their answer. */
  private readonly sent = new Map<bigint, Call>();
  private cancels: bigint[] = [];
  private flushScheduled = false;
  private flushing = false;
  private flushAgain = false;
  private closedError: Error | undefined;
  private readyWaiters: Array<() => void> = [];
  private closeWaiters: Array<() => void> = [];
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private reconnects = 0;
  private everOpened = false;

  private constructor(url: string, opts: ClientOptions) {
    this.url = url;
    this.createSocket = opts.createSocket ?? defaultSocket;
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 1024);
    this.coalesce = opts.coalesce ?? true;
    this.maxPerFrame = Math.max(1, opts.maxRequestsPerFrame ?? DEFAULT_WIRE_LIMITS.maxRequestsPerFrame);
    this.limits = opts.limits ?? DEFAULT_WIRE_LIMITS;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.graceMs = opts.deadlineGraceMs ?? 1000;
    const r = opts.reconnect ?? true;
    this.reconnect = r === false ? undefined : {
      initialDelayMs: 100, maxDelayMs: 5000, maxAttempts: Number.POSITIVE_INFINITY, ...(r === true ? {} : r),
    };
    this.onFrameError = opts.onFrameError;
    this.onStateChange = opts.onStateChange;
  }

  /** Opens a connection; rejects if the first handshake fails. */
  static connect(url: string, opts: ClientOptions = {}): Promise<SkiffClient> {
    const client = new SkiffClient(url, opts);
    return client.open().then(() => client);
  }

  /** The connection's state. */
  get state(): ClientState {
    return this.stateNow;
  }

  /** Calls awaiting an answer: on the wire or waiting in the client. */
  get inFlight(): number {
    return this.sent.size + this.waiting.length;
  }

  /** Calls on the wire (at most `maxInFlight`). */
  get onWire(): number {
    return this.sent.size;
  }

  /** Calls waiting in the client for a slot or a connection. */
  get queued(): number {
    return this.waiting.length;
  }

  /** Connections opened again after a loss. */
  get reconnectCount(): number {
    return this.reconnects;
  }

  /** Resolves when fewer than `maxInFlight` calls are outstanding (at once if so already). */
  ready(): Promise<void> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.hasRoom()) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** Sends one query; resolves with the server's answer (which may carry an error). */
  infer(req: InferRequest, opts: CallOptions = {}): InferCall {
    const call = this.enqueue(req, opts);
    this.schedule();
    return call;
  }

  /** Sends all `reqs` at once (in one frame as far as `maxInFlight` allows). */
  inferMany(reqs: readonly InferRequest[], opts: CallOptions = {}): InferBatch {
    const calls = reqs.map((r) => this.enqueue(r, opts));
    this.flush();
    return Object.assign(Promise.all(calls), { ids: calls.map((c) => c.id) });
  }

  /**
   * Cancels call `id`: answered CANCELLED at once if it has not gone out, else cancelled on the
   * server, whose answer settles it.
   */
  cancel(id: bigint): void {
    if (id < 0n || id >= 1n << 64n) throw new RangeError(`request ids are unsigned 64-bit, got ${id}`);
    if (this.closedError) return;
    const i = this.waiting.findIndex((c) => c.id === id);
    if (i >= 0) {
      const [call] = this.waiting.splice(i, 1);
      this.settle(call!, localAnswer(call!, 'CANCELLED', 'cancelled before it was sent'));
      return;
    }
    const sent = this.sent.get(id);
    if (sent && !sent.cancelled) {
      sent.cancelled = true;
      this.cancels.push(id);
      this.schedule();
    }
  }

  /** Queues a feedback record; returns the id it goes under. Throws at once if it cannot be encoded. */
  feedback(f: FeedbackRequest): bigint {
    return this.enqueueFeedback(f, true).id;
  }

  /** Sends a feedback record and resolves with the server's answer to it (an error, or `modelsUsed`). */
  sendFeedback(f: FeedbackRequest): InferCall {
    return this.enqueueFeedback(f, false);
  }

  /** Sends `bytes` as one binary message as-is, after anything queued. For tests and tools. */
  sendRaw(bytes: Uint8Array): void {
    this.flush();
    if (this.ws?.readyState === OPEN) this.ws.send(bytes);
  }

  /** Closes the client; calls still waiting for answers reject. Resolves once the socket closed. */
  close(): Promise<void> {
    this.shutDown(new Error('client closed before the answer arrived'));
    const ws = this.ws;
    if (!ws || (ws.readyState !== OPEN && ws.readyState !== CONNECTING)) return Promise.resolve();
    const closed = new Promise<void>((resolve) => this.closeWaiters.push(resolve));
    ws.close(1000);
    return closed;
  }

  // -- connection ------------------------------------------------------------------------------

  private setState(s: ClientState): void {
    if (this.stateNow === s) return;
    this.stateNow = s;
    this.onStateChange?.(s);
  }

  /** One connection attempt: resolves on open, rejects on failure. */
  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = this.createSocket(this.url);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      ws.binaryType = 'arraybuffer';
      this.ws = ws;
      const gen = ++this.generation;
      let opened = false;
      let lastError = '';
      const timer = setTimeout(() => {
        lastError = `no handshake within ${this.connectTimeoutMs} ms`;
        ws.close();
      }, this.connectTimeoutMs);
      ws.onerror = (ev) => {
        const m = (ev as { message?: string; error?: Error }).error?.message ?? (ev as { message?: string }).message;
        if (m) lastError = m;
      };
      ws.onopen = () => {
        clearTimeout(timer);
        opened = true;
        if (this.closedError) {
          ws.close(1000);
          return;
        }
        this.attempt = 0;
        this.everOpened = true;
        this.setState('open');
        resolve();
        this.flush();
      };
      ws.onmessage = (ev) => this.onMessage(ev.data);
      ws.onclose = (ev) => {
        clearTimeout(timer);
        const why = `connection closed (code ${ev.code})${lastError ? `: ${lastError}` : ev.reason ? `: ${ev.reason}` : ''}`;
        if (gen === this.generation) this.lost(new Error(why));
        if (!opened) reject(new Error(why));
        const waiters = this.closeWaiters;
        this.closeWaiters = [];
        for (const w of waiters) w();
      };
    });
  }

  /** The socket of generation `this.generation` closed. */
  private lost(err: Error): void {
    if (this.closedError) return;
    // Calls on the wire: queries go back to the front of the queue for re-sending, unless the
    // caller cancelled them or their deadline has passed (answered here, never sent again);
    // feedback that went out is not repeated. The socket is closed, so nothing it carried can
    // still be answered: each call settles once.
    const back: Call[] = [];
    const settled: [Call, WireResponse][] = [];
    const t = now();
    for (const call of this.sent.values()) {
      if (call.kind === 'feedback') this.fail(call, new Error(`${err.message}: the feedback was sent, and may or may not have been applied`));
      else if (call.cancelled) settled.push([call, localAnswer(call, 'CANCELLED', 'cancelled; the connection closed before the server confirmed')]);
      else if (call.deadline !== undefined && call.deadline <= t) settled.push([call, localAnswer(call, 'DEADLINE_EXCEEDED', 'the deadline passed and the connection closed before an answer')]);
      else back.push(call);
    }
    this.sent.clear();
    this.cancels = [];
    this.waiting = [...back.sort((a, b) => (a.id < b.id ? -1 : 1)), ...this.waiting];
    for (const [call, r] of settled) this.settle(call, r);
    const r = this.reconnect;
    if (!r || !this.everOpened) {
      // No reconnect, or the very first connect failed (connect() rejects): close for good.
      this.shutDown(err);
      return;
    }
    if (this.attempt >= r.maxAttempts) {
      this.shutDown(new Error(`${err.message}; gave up after ${this.attempt} reconnect attempts`));
      return;
    }
    this.setState('reconnecting');
    const delay = Math.min(r.maxDelayMs, r.initialDelayMs * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.closedError) return;
      this.open().then(() => {
        this.reconnects++;
      }, () => { /* onclose scheduled the next attempt */ });
    }, delay);
  }

  // -- calls -----------------------------------------------------------------------------------

  /** Fewer calls outstanding (on the wire or about to go) than the window. */
  private hasRoom(): boolean {
    return this.sent.size + this.waiting.length < this.maxInFlight;
  }

  private newCall(kind: Call['kind'], init: RequestInit | FeedbackInit, deadline: number | undefined, fireAndForget: boolean, signal?: AbortSignal, relative = false): InferCall {
    const id = (init.id = this.nextId++);
    let call!: Call;
    const promise = new Promise<WireResponse>((resolve, reject) => {
      call = { id, kind, init, deadline, relative, sentOn: 0, fireAndForget, graced: false, cancelled: false, resolve, reject };
    });
    const out = Object.assign(promise, { id });
    if (this.closedError) {
      call.reject(this.closedError);
      return out;
    }
    if (signal?.aborted) {
      call.resolve(localAnswer(call, 'CANCELLED', 'aborted before it was sent'));
      return out;
    }
    if (signal) {
      const onAbort = (): void => this.cancel(id);
      signal.addEventListener('abort', onAbort, { once: true });
      call.unlisten = () => signal.removeEventListener('abort', onAbort);
    }
    if (deadline !== undefined) {
      // Beyond a timer's range (about 24.8 days) no local timer is armed: the server refuses or
      // clamps such a deadline and answers with its own code.
      const wait = Math.max(0, deadline - now());
      if (wait <= MAX_TIMER_MS) call.timer = setTimeout(() => this.expire(call), wait);
    }
    this.waiting.push(call);
    return out;
  }

  private enqueue(req: InferRequest, opts: CallOptions): InferCall {
    const timeoutMs = req.timeoutMs ?? (req.timeoutUs !== undefined ? req.timeoutUs / 1000 : undefined);
    if (timeoutMs !== undefined && !(timeoutMs >= 0 && Number.isFinite(timeoutMs))) throw new RangeError(`timeoutMs must be a non-negative number, got ${timeoutMs}`);
    const abs = req.deadlineUnixUs;
    if (abs !== undefined && !(abs > 0 && Number.isFinite(abs))) throw new RangeError(`deadlineUnixUs must be a positive number, got ${abs}`);
    const init: RequestInit = {
      model: req.model, app: req.app, user: req.user, version: req.version,
      deadlineUnixUs: abs, inputs: req.inputs, outputs: req.outputs,
    };
    // The client's own view of the deadline (the earlier of the two), on its monotonic clock.
    const t = now();
    let deadline = timeoutMs !== undefined ? t + timeoutMs : undefined;
    if (abs !== undefined) {
      const fromWall = t + (abs / 1000 - Date.now());
      if (deadline === undefined || fromWall < deadline) deadline = fromWall;
    }
    return this.newCall('infer', init, deadline, false, opts.signal, timeoutMs !== undefined);
  }

  private enqueueFeedback(f: FeedbackRequest, fireAndForget: boolean): InferCall {
    const init: FeedbackInit = { id: 0n, app: f.app, user: f.user, inputs: f.inputs, label: f.label };
    encodeFrame({ feedback: [init] }); // throws here if it cannot be encoded
    const call = this.newCall('feedback', init, undefined, fireAndForget);
    if (fireAndForget) call.catch(() => undefined);
    this.schedule();
    return call;
  }

  /**
   * The call's deadline came. Still in the client: answered here, never sent. On the wire: the
   * server has `deadlineGraceMs` more to answer (its answer is usually DEADLINE_EXCEEDED, on its
   * way); after that the client cancels it on the server and answers it itself.
   */
  private expire(call: Call): void {
    call.timer = undefined;
    const i = this.waiting.indexOf(call);
    if (i >= 0) {
      this.waiting.splice(i, 1);
      this.settle(call, localAnswer(call, 'DEADLINE_EXCEEDED', 'the deadline passed before the query could be sent'));
      return;
    }
    if (this.sent.get(call.id) !== call) return;
    if (!call.graced) {
      call.graced = true;
      call.timer = setTimeout(() => this.expire(call), this.graceMs);
      return;
    }
    this.sent.delete(call.id);
    if (!call.cancelled) {
      this.cancels.push(call.id);
      this.schedule();
    }
    this.settle(call, localAnswer(call, 'DEADLINE_EXCEEDED', 'no answer by the deadline'));
  }

  private settle(call: Call, r: WireResponse): void {
    if (call.timer) clearTimeout(call.timer);
    call.unlisten?.();
    call.resolve(r);
    this.freed();
  }

  private fail(call: Call, e: Error): void {
    if (call.timer) clearTimeout(call.timer);
    call.unlisten?.();
    call.reject(e);
  }

  /** A slot may be free: send what waits, then wake `ready()` waiters if there is room. */
  private freed(): void {
    if (this.waiting.length) this.schedule();
    if (this.readyWaiters.length && this.hasRoom()) {
      const ws = this.readyWaiters;
      this.readyWaiters = [];
      for (const w of ws) w();
    }
  }

  private readonly flushTask = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private schedule(): void {
    if (!this.coalesce) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushTask);
    }
  }

  /**
   * Sends cancels and as many waiting calls as there are free slots, in frames of at most
   * maxPerFrame. Re-entrant calls (a call settled while flushing frees a slot, and without
   * coalescing that flushes at once) only ask the running flush for another round, so the
   * waiting list is never spliced under a loop that indexes it.
   */
  private flush(): void {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.flushAgain = false;
        this.flushOnce();
      } while (this.flushAgain);
    } finally {
      this.flushing = false;
    }
  }

  private flushOnce(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN || this.closedError) return;
    const cancels = this.cancels;
    this.cancels = [];
    let requests: RequestInit[] = [];
    let feedback: FeedbackInit[] = [];
    let frameCancels = cancels.splice(0, this.maxPerFrame);
    const out = (): void => {
      if (requests.length || feedback.length || frameCancels.length) this.sendFrame(ws, requests, feedback, frameCancels);
      requests = [];
      feedback = [];
      frameCancels = cancels.splice(0, this.maxPerFrame);
    };
    let taken = 0;
    const t = now();
    while (taken < this.waiting.length && this.sent.size < this.maxInFlight) {
      const call = this.waiting[taken++]!;
      if (call.kind === 'infer') {
        const init = call.init as RequestInit;
        if (call.deadline !== undefined) {
          const left = call.deadline - t;
          if (left <= 0) {
            this.waiting.splice(--taken, 1);
            this.settle(call, localAnswer(call, 'DEADLINE_EXCEEDED', 'the deadline passed before the query could be sent'));
            continue;
          }
          if (call.relative) init.timeoutUs = Math.ceil(left * 1000);
        }
        requests.push(init);
      } else feedback.push(call.init as FeedbackInit);
      call.sentOn = this.generation;
      this.sent.set(call.id, call);
      if (requests.length >= this.maxPerFrame || feedback.length >= this.maxPerFrame) out();
    }
    this.waiting.splice(0, taken);
    out();
    while (frameCancels.length) out();
  }

  private sendFrame(ws: WebSocketLike, requests: RequestInit[], feedback: FeedbackInit[], cancel: bigint[]): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame({ requests, feedback, cancel });
    } catch {
      // Some request cannot be put on the wire (feedback was checked when queued): reject just
      // those requests and send the rest.
      const good = requests.filter((r) => {
        try {
          encodeFrame({ requests: [r] });
          return true;
        } catch (e) {
          const call = this.sent.get(r.id!);
          if (call) {
            this.sent.delete(r.id!);
            this.fail(call, e instanceof Error ? e : new Error(String(e)));
            this.freed();
          }
          return false;
        }
      });
      bytes = encodeFrame({ requests: good, feedback, cancel });
    }
    ws.send(bytes);
  }

  private onMessage(data: unknown): void {
    let bytes: Uint8Array;
    if (data instanceof ArrayBuffer) bytes = new Uint8Array(data);
    else if (data instanceof Uint8Array) bytes = data;
    else {
      this.onFrameError?.({ code: 'BAD_FRAME', message: 'the server sent a text message' });
      return;
    }
    let frame;
    try {
      frame = decodeFrame(bytes, this.limits);
    } catch (e) {
      const err = e as { code?: ErrorCode; message?: string };
      this.onFrameError?.({ code: err.code ?? 'BAD_FRAME', message: err.message ?? String(e) });
      return;
    }
    if (frame.error) this.onFrameError?.(frame.error);
    for (const r of frame.responses) {
      const call = this.sent.get(r.id);
      if (!call) continue;
      this.sent.delete(r.id);
      this.settle(call, r);
    }
  }

  /** Rejects everything waiting and on the wire; later calls reject at once. */
  private shutDown(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.setState('closed');
    const calls = [...this.waiting, ...this.sent.values()];
    this.waiting = [];
    this.sent.clear();
    this.cancels = [];
    for (const c of calls) this.fail(c, err);
    const ws = this.readyWaiters;
    this.readyWaiters = [];
    for (const w of ws) w(); // ready() callers then meet the closed client on their next call
  }
}

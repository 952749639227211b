/**
 * SkiffClient: the WebSocket/FlatBuffers client (Node, over the `ws` package).
 *
 * Every call gets a fresh, increasing request id; answers are matched by id, so the server may
 * answer in any order and across any number of frames. With `coalesce` (the default) all calls
 * made in the same synchronous run are sent as ONE frame, flushed from a microtask; `inferMany`
 * sends its requests as one frame immediately. Frames are split only to respect
 * `maxRequestsPerFrame`.
 *
 * Promise contract: `infer` resolves with the server's response even when that response
 * carries an error; it rejects only when the request cannot be encoded (TypeError/RangeError,
 * e.g. a non-integer dim) or the connection fails or closes before the answer arrives.
 */
import WebSocket, { type RawData } from 'ws';
import { toErrorInfo, type ErrorInfo } from '../errors.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  DEFAULT_WIRE_LIMITS, decodeFrame, encodeFrame,
  type FeedbackInit, type RequestInit, type WireLimits, type WireResponse,
} from '../protocol/wire.js';

export interface InferRequest {
  model?: string;
  app?: string;
  user?: string;
  version?: number;
  timeoutUs?: number;
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

export interface SkiffClientOptions {
  /** Coalesce calls made in the same tick into one frame (default true). */
  coalesce?: boolean;
  /** Largest number of requests (and of feedback records, cancels) per frame sent (default 4096). */
  maxRequestsPerFrame?: number;
  /** Limits applied when decoding the server's frames (default DEFAULT_WIRE_LIMITS). */
  limits?: WireLimits;
  /** Largest server message accepted, in bytes (default 64 MiB). */
  maxPayload?: number;
  /** Opening handshake timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** Frame-level errors: error records from the server, undecodable server frames. */
  onFrameError?: (err: ErrorInfo) => void;
}

/** The promise of one answer, with the id the request was sent under (for `cancel`). */
export type InferCall = Promise<WireResponse> & { readonly id: bigint };
/** The answers of an `inferMany`, in request order, with their ids. */
export type InferBatch = Promise<WireResponse[]> & { readonly ids: readonly bigint[] };

interface Waiter {
  resolve(r: WireResponse): void;
  reject(e: Error): void;
}

/** Zero-copy view of a received message where the form allows it. */
function messageBytes(data: RawData): Uint8Array {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (Array.isArray(data)) return data.length === 1 ? data[0]! : Buffer.concat(data);
  return data;
}

export class SkiffClient {
  /** Called for frame-level errors; without a hook they are dropped. */
  onFrameError: ((err: ErrorInfo) => void) | undefined;

  private readonly ws: WebSocket;
  private readonly coalesce: boolean;
  private readonly maxPerFrame: number;
  private readonly limits: WireLimits;
  private readonly waiting = new Map<bigint, Waiter>();
  private nextId = 1n;
  private requests: RequestInit[] = [];
  private feedbacks: FeedbackInit[] = [];
  private cancels: bigint[] = [];
  private flushScheduled = false;
  private closedError: Error | undefined;
  private readonly closed: Promise<void>;
  private readonly flushTask = (): void => {
    this.flushScheduled = false;
    this.flush();
  };

  private constructor(ws: WebSocket, opts: SkiffClientOptions) {
    this.ws = ws;
    this.coalesce = opts.coalesce ?? true;
    this.maxPerFrame = Math.max(1, opts.maxRequestsPerFrame ?? DEFAULT_WIRE_LIMITS.maxRequestsPerFrame);
    this.limits = opts.limits ?? DEFAULT_WIRE_LIMITS;
    this.onFrameError = opts.onFrameError;
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(data, isBinary));
    let lastError: Error | undefined;
    ws.on('error', (err: Error) => {
      lastError = err;
    });
    this.closed = new Promise((resolve) => {
      ws.once('close', (code: number, reason: Buffer) => {
        const why = lastError ? `: ${lastError.message}` : reason.length > 0 ? `: ${reason.toString()}` : '';
        this.shutDown(new Error(`connection closed (code ${code})${why}`));
        resolve();
      });
    });
  }

  /** Opens a connection; rejects if the handshake fails. */
  static connect(url: string, opts: SkiffClientOptions = {}): Promise<SkiffClient> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, {
        perMessageDeflate: false,
        maxPayload: opts.maxPayload ?? 64 * 1024 * 1024,
        handshakeTimeout: opts.connectTimeoutMs ?? 10_000,
      });
      // 'nodebuffer' hands us the received bytes without the copy 'arraybuffer' may need.
      ws.binaryType = 'nodebuffer';
      const onError = (err: Error): void => {
        ws.off('open', onOpen);
        reject(err);
      };
      const onOpen = (): void => {
        ws.off('error', onError);
        resolve(new SkiffClient(ws, opts));
      };
      ws.once('error', onError);
      ws.once('open', onOpen);
    });
  }

  /** Requests awaiting an answer (sent or queued). */
  get inFlight(): number {
    return this.waiting.size;
  }

  /** Sends one inference request; resolves with the server's answer (which may carry an error). */
  infer(req: InferRequest): InferCall {
    const call = this.enqueue(req);
    this.schedule();
    return call;
  }

  /** Sends all `reqs` now, in one frame (together with anything already queued). */
  inferMany(reqs: readonly InferRequest[]): InferBatch {
    const calls = reqs.map((r) => this.enqueue(r));
    this.flush();
    return Object.assign(Promise.all(calls), { ids: calls.map((c) => c.id) });
  }

  /**
   * Asks the server to cancel request `id`. The request's promise still settles with whatever
   * the server answers for it (or rejects if the connection closes first).
   */
  cancel(id: bigint): void {
    if (id < 0n || id >= 1n << 64n) throw new RangeError(`request ids are unsigned 64-bit, got ${id}`);
    if (this.closedError) return;
    this.cancels.push(id);
    this.schedule();
  }

  /**
   * Queues a feedback record (sent like requests, coalesced); returns the id it is sent under.
   * Throws at once if the record cannot be encoded. Dropped if the connection is closed.
   */
  feedback(f: FeedbackRequest): bigint {
    const id = this.nextId++;
    const rec: FeedbackInit = { id, app: f.app, user: f.user, inputs: f.inputs, label: f.label };
    encodeFrame({ feedback: [rec] });
    if (this.closedError) return id;
    this.feedbacks.push(rec);
    this.schedule();
    return id;
  }

  /**
   * Sends a feedback record like `feedback` and resolves with the server's answer to it (an error,
   * or the models it updated in `modelsUsed`).
   */
  sendFeedback(f: FeedbackRequest): InferCall {
    const id = this.nextId++;
    const rec: FeedbackInit = { id, app: f.app, user: f.user, inputs: f.inputs, label: f.label };
    encodeFrame({ feedback: [rec] });
    let waiter!: Waiter;
    const call = Object.assign(new Promise<WireResponse>((resolve, reject) => { waiter = { resolve, reject }; }), { id });
    if (this.closedError) {
      waiter.reject(this.closedError);
      return call;
    }
    this.waiting.set(id, waiter);
    this.feedbacks.push(rec);
    this.schedule();
    return call;
  }

  /** Sends `bytes` as one binary message as-is (after anything queued). For tests and tools. */
  sendRaw(bytes: Uint8Array): void {
    this.flush();
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes, { binary: true });
  }

  /** Closes the connection; requests still awaiting answers reject. Resolves once closed. */
  close(): Promise<void> {
    this.shutDown(new Error('client closed before the answer arrived'));
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(1000);
    return this.closed;
  }

  private enqueue(req: InferRequest): InferCall {
    const id = this.nextId++;
    let waiter!: Waiter;
    const promise = new Promise<WireResponse>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    const call = Object.assign(promise, { id });
    if (this.closedError) {
      waiter.reject(this.closedError);
      return call;
    }
    this.waiting.set(id, waiter);
    this.requests.push({
      id, model: req.model, app: req.app, user: req.user, version: req.version,
      timeoutUs: req.timeoutUs, deadlineUnixUs: req.deadlineUnixUs, inputs: req.inputs, outputs: req.outputs,
    });
    return call;
  }

  private schedule(): void {
    if (!this.coalesce) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushTask);
    }
  }

  /** Sends everything queued, in as few frames as `maxRequestsPerFrame` allows. */
  private flush(): void {
    const requests = this.requests;
    const feedback = this.feedbacks;
    const cancel = this.cancels;
    if (requests.length === 0 && feedback.length === 0 && cancel.length === 0) return;
    this.requests = [];
    this.feedbacks = [];
    this.cancels = [];
    const max = this.maxPerFrame;
    const n = Math.max(requests.length, feedback.length, cancel.length);
    for (let i = 0; i < n; i += max) {
      this.sendFrame(requests.slice(i, i + max), feedback.slice(i, i + max), cancel.slice(i, i + max));
    }
  }

  private sendFrame(requests: RequestInit[], feedback: FeedbackInit[], cancel: bigint[]): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame({ requests, feedback, cancel });
    } catch {
      // Some request cannot be put on the wire (feedback and cancels are checked when queued):
      // reject just those requests and send the rest.
      const good = requests.filter((r) => {
        try {
          encodeFrame({ requests: [r] });
          return true;
        } catch (e) {
          this.settleError(r.id!, e instanceof Error ? e : new Error(String(e)));
          return false;
        }
      });
      bytes = encodeFrame({ requests: good, feedback, cancel });
    }
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(bytes, { binary: true });
  }

  private settleError(id: bigint, err: Error): void {
    const w = this.waiting.get(id);
    if (w) {
      this.waiting.delete(id);
      w.reject(err);
    }
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    if (!isBinary) {
      this.frameError({ code: 'BAD_FRAME', message: 'the server sent a text message' });
      return;
    }
    let frame;
    try {
      frame = decodeFrame(messageBytes(data), this.limits);
    } catch (e) {
      this.frameError(toErrorInfo(e, 'BAD_FRAME'));
      return;
    }
    if (frame.error) this.frameError(frame.error);
    for (const r of frame.responses) {
      const w = this.waiting.get(r.id);
      if (w) {
        this.waiting.delete(r.id);
        w.resolve(r);
      }
    }
  }

  private frameError(err: ErrorInfo): void {
    this.onFrameError?.(err);
  }

  /** Rejects everything waiting and queued; later calls reject at once. */
  private shutDown(err: Error): void {
    if (this.closedError) return;
    this.closedError = err;
    this.requests = [];
    this.feedbacks = [];
    this.cancels = [];
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(err);
  }
}

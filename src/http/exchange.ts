import zlib from 'node:zlib';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { ErrorCodes, publicError, toErrorInfo, type ErrorInfo } from '../errors.js';
import type { ByteBudget } from '../budget.js';

/**
 * uWS HTTP plumbing shared by the REST frontends. The rules it encodes (each one aborts or
 * breaks the process when violated in uWS v20.30):
 *  - a handler that answers asynchronously registers onAborted before returning;
 *  - after abort, `res` must not be touched (the `aborted` flag);
 *  - writes after an await/timer/worker reply happen inside res.cork();
 *  - onData chunks are neutered after the callback: copy them;
 *  - uWS has no body limit: enforce one (413).
 */
export interface Exchange {
  readonly res: HttpResponse;
  /** The client went away: `res` must not be touched. */
  aborted: boolean;
  /** The one answer has been written. */
  answered: boolean;
  /** Called once if the client goes away before the answer (cancel the work). */
  onAbort?: () => void;
  /** A compression the client accepts for large responses (from Accept-Encoding). */
  encoding?: 'gzip' | 'deflate';
}

const STATUS_TEXT: Record<number, string> = {
  200: '200 OK', 400: '400 Bad Request', 401: '401 Unauthorized', 403: '403 Forbidden', 404: '404 Not Found',
  405: '405 Method Not Allowed', 413: '413 Payload Too Large', 415: '415 Unsupported Media Type', 429: '429 Too Many Requests',
  499: '499 Client Closed Request', 500: '500 Internal Server Error', 501: '501 Not Implemented', 503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
};

export function statusLine(status: number): string {
  return STATUS_TEXT[status] ?? `${status} Unknown`;
}

/** An exchange for `res`; with `req`, large answers are compressed when the client accepts it. */
export function exchange(res: HttpResponse, req?: HttpRequest): Exchange {
  const ex: Exchange = { res, aborted: false, answered: false };
  if (req) {
    const enc = acceptedEncoding(req.getHeader('accept-encoding'));
    if (enc) ex.encoding = enc;
  }
  res.onAborted(() => {
    ex.aborted = true;
    ex.onAbort?.();
  });
  return ex;
}

/** How much body a route takes: a limit (fixed, or computed per request) and the global bytes-in-flight budget. */
export interface BodyLimits {
  maxBytes: number | (() => number);
  budget?: ByteBudget;
}

/**
 * Read the whole body (copied out of uWS's buffers), refusing more than the limit with 413 — from
 * Content-Length before a byte is read, and while reading for a body without one — and refusing
 * with 503 what does not fit in the bytes-in-flight budget. The budget holds the body's bytes
 * until `onBody` has returned (what it keeps, e.g. tensors of queries, is counted by its owner).
 * Call synchronously from the route handler.
 */
export function readBody(ex: Exchange, req: HttpRequest, limits: BodyLimits | number, onBody: (body: Uint8Array) => void): void {
  const l: BodyLimits = typeof limits === 'number' ? { maxBytes: limits } : limits;
  const limit = typeof l.maxBytes === 'number' ? l.maxBytes : l.maxBytes();
  const coding = req.getHeader('content-encoding').trim().toLowerCase();
  if (coding !== '' && coding !== 'identity' && coding !== 'gzip' && coding !== 'x-gzip' && coding !== 'deflate') {
    sendError(ex, { code: 'UNSUPPORTED_MEDIA_TYPE', message: `Content-Encoding '${coding.slice(0, 32)}' is not supported (gzip, deflate)` }, true);
    return;
  }
  const declared = Number(req.getHeader('content-length') || '0');
  if (!(declared <= limit)) {
    sendError(ex, { code: 'PAYLOAD_TOO_LARGE', message: `body of ${req.getHeader('content-length').slice(0, 20)} bytes exceeds the limit of ${limit}` }, true);
    return;
  }
  let held = 0;
  const take = (n: number): boolean => {
    if (!l.budget || n === 0) return true;
    const refused = l.budget.acquire(n);
    if (refused) {
      sendError(ex, refused, true);
      return false;
    }
    held += n;
    return true;
  };
  const giveBack = (): void => {
    if (held > 0) l.budget!.release(held);
    held = 0;
  };
  if (!take(declared)) return;
  const chunks: Uint8Array[] = [];
  let size = 0;
  let refused = false;
  const onAbort = ex.onAbort;
  ex.onAbort = () => {
    giveBack();
    onAbort?.();
  };
  ex.res.onData((chunk, isLast) => {
    if (refused || ex.aborted || ex.answered) return;
    size += chunk.byteLength;
    if (size > limit) {
      refused = true;
      giveBack();
      sendError(ex, { code: 'PAYLOAD_TOO_LARGE', message: `body exceeds the limit of ${limit} bytes` }, true);
      return;
    }
    if (size > declared && !take(chunk.byteLength)) {
      refused = true;
      giveBack();
      return;
    }
    chunks.push(new Uint8Array(chunk.slice(0)));
    if (!isLast) return;
    let body: Uint8Array;
    if (chunks.length === 1) body = chunks[0]!;
    else {
      body = new Uint8Array(size);
      let off = 0;
      for (const c of chunks) {
        body.set(c, off);
        off += c.byteLength;
      }
    }
    if (coding === '' || coding === 'identity') {
      deliver(body);
      return;
    }
    inflateBounded(body);
  });

  /**
   * A compressed body, decompressed as a stream (zlib works off the main thread): every chunk
   * that comes out counts against the limit and takes its bytes from the bytes-in-flight budget
   * before it is kept, so a zip bomb stops at `limit` bytes (413) and concurrent compressed
   * bodies together never hold more than the budget (503) — nothing is inflated first and
   * measured after.
   */
  function inflateBounded(packed: Uint8Array): void {
    const z = coding === 'deflate'
      // "deflate" means zlib-wrapped data (RFC 9110; tritonclient sends zlib.compress); some
      // clients send the raw stream: a body without a zlib header is read as raw deflate.
      ? (isZlibHeader(packed) ? zlib.createInflate({ chunkSize: INFLATE_CHUNK }) : zlib.createInflateRaw({ chunkSize: INFLATE_CHUNK }))
      : zlib.createGunzip({ chunkSize: INFLATE_CHUNK });
    const parts: Buffer[] = [];
    let out = 0;
    let done = false;
    const stop = (err?: ErrorInfo): void => {
      if (done) return;
      done = true;
      z.destroy();
      if (err && !ex.aborted && !ex.answered) sendError(ex, err, true);
      giveBack();
    };
    z.on('data', (c: Buffer) => {
      if (done) return;
      if (ex.aborted || ex.answered) return stop();
      out += c.byteLength;
      if (out > limit) return stop({ code: 'PAYLOAD_TOO_LARGE', message: `the ${coding} body decompresses to more than the limit of ${limit} bytes` });
      // take() answers the refusal itself (SERVER_BUSY).
      if (!take(c.byteLength)) return stop();
      parts.push(c);
    });
    z.on('error', () => stop({ code: 'BAD_REQUEST', message: `the body is not valid ${coding} data` }));
    z.on('end', () => {
      if (done) return;
      done = true;
      if (ex.aborted || ex.answered) return giveBack();
      // One buffer of its own at offset 0, as an uncompressed body is (binary tensors are viewed in place).
      const plain = new Uint8Array(out);
      let off = 0;
      for (const c of parts) {
        plain.set(c, off);
        off += c.byteLength;
      }
      parts.length = 0;
      deliver(plain);
    });
    z.end(packed);
  }

  function deliver(body: Uint8Array): void {
    try {
      onBody(body);
    } catch (err) {
      sendError(ex, toErrorInfo(err));
    } finally {
      giveBack();
    }
  }
}

/** Output chunk of the request decompressors. */
const INFLATE_CHUNK = 64 * 1024;

/** Whether `b` starts with a zlib header (RFC 1950: method 8, header checksum a multiple of 31). */
export function isZlibHeader(b: Uint8Array): boolean {
  return b.byteLength >= 2 && (b[0]! & 0x0f) === 8 && (b[0]! >> 4) <= 7 && ((b[0]! << 8) | b[1]!) % 31 === 0;
}

/** gzip or deflate when Accept-Encoding allows it (q > 0), gzip preferred. */
export function acceptedEncoding(header: string): 'gzip' | 'deflate' | undefined {
  if (!header) return undefined;
  const ok = new Map<string, number>();
  for (const part of header.toLowerCase().split(',')) {
    const [name, ...params] = part.trim().split(';').map((x) => x.trim());
    if (!name) continue;
    ok.set(name, Number(params.find((p) => p.startsWith('q='))?.slice(2) ?? '1'));
  }
  const q = (n: string): number => ok.get(n) ?? (ok.has('*') ? ok.get('*')! : 0);
  if (q('gzip') > 0) return 'gzip';
  if (q('deflate') > 0) return 'deflate';
  return undefined;
}

/** Answers smaller than this go out uncompressed (compression costs more than it saves). */
const COMPRESS_MIN_BYTES = 8192;

export interface Reply {
  status: number;
  body: string | Uint8Array;
  contentType?: string;
  headers?: Record<string, string>;
  /** Close the connection after answering (e.g. a body we stopped reading). */
  close?: boolean;
}

/** Write a complete response (corked; a no-op when the client is gone). */
export function send(ex: Exchange, r: Reply): void {
  if (ex.aborted || ex.answered) return;
  ex.answered = true;
  const size = typeof r.body === 'string' ? r.body.length : r.body.byteLength;
  if (ex.encoding && size >= COMPRESS_MIN_BYTES && !r.close) {
    const encoding = ex.encoding;
    (encoding === 'gzip' ? zlib.gzip : zlib.deflate)(r.body, { level: 1 }, (err, packed) => {
      if (ex.aborted) return;
      const headers = err ? r.headers : { ...r.headers, 'content-encoding': encoding, vary: 'Accept-Encoding' };
      write(ex, { ...r, headers, body: err ? r.body : new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength) });
    });
    return;
  }
  write(ex, r);
}

function write(ex: Exchange, r: Reply): void {
  ex.res.cork(() => {
    ex.res.writeStatus(statusLine(r.status));
    ex.res.writeHeader('content-type', r.contentType ?? 'application/json');
    if (r.headers) for (const [k, v] of Object.entries(r.headers)) ex.res.writeHeader(k, v);
    ex.res.end(r.body, r.close ?? false);
  });
}

export function sendJson(ex: Exchange, status: number, value: unknown): void {
  send(ex, { status, body: JSON.stringify(value) });
}

/**
 * Send a coded error: `{"error": message, "code": CODE}` (plus retry_after_ms), with the code's
 * HTTP status and, for OVERLOADED, a Retry-After header in whole seconds. The message is what a
 * client may see (errors.ts publicError); anything hidden goes to the log under a reference.
 */
export function sendError(ex: Exchange, raw: ErrorInfo, close = false, extra?: Record<string, unknown>, extraHeaders?: Record<string, string>): void {
  const { info: err } = publicError(raw);
  const status = ErrorCodes[err.code].status;
  const body: Record<string, unknown> = { error: err.message, code: err.code, ...extra };
  if (extra && 'cause' in extra) body.cause = err.message;
  const headers: Record<string, string> = { ...extraHeaders };
  if (err.retryAfterMs !== undefined) {
    body.retry_after_ms = err.retryAfterMs;
    headers['retry-after'] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
  }
  send(ex, { status, body: JSON.stringify(body), headers, close });
}

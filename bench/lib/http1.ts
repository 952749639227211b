/**
 * A minimal HTTP/1.1 keep-alive client connection for the load generator: one request in
 * flight at a time, pre-encoded request bytes in, status and body out. Node's http client costs
 * several times more CPU per request and would make the generator the bottleneck.
 *
 * Understands Content-Length and chunked bodies; a response with neither, or a server closing
 * the connection, fails the request in flight (and the connection).
 */
import { connect, type Socket } from 'node:net';

export type HttpCallback = (err: Error | null, status: number, body: Buffer) => void;

const CRLFCRLF = Buffer.from('\r\n\r\n');
const EMPTY = Buffer.alloc(0);

export class Http1Connection {
  /** Called once when the connection is gone (after failing the request in flight, if any). */
  onClose: (() => void) | undefined;
  private buf: Buffer = EMPTY;
  private cb: HttpCallback | null = null;
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    const gone = (err?: Error): void => this.fail(err ?? new Error('connection closed by the server'));
    socket.on('error', gone);
    socket.on('close', () => gone());
  }

  static connect(host: string, port: number): Promise<Http1Connection> {
    return new Promise((resolve, reject) => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.off('error', reject);
        resolve(new Http1Connection(s));
      });
      s.once('error', reject);
    });
  }

  get busy(): boolean {
    return this.cb !== null;
  }

  get alive(): boolean {
    return !this.closed;
  }

  /** Send one request; `cb` is called exactly once. Throws if a request is already in flight. */
  request(bytes: Buffer, cb: HttpCallback): void {
    if (this.cb) throw new Error('Http1Connection: one request at a time');
    if (this.closed) {
      cb(new Error('connection closed'), 0, EMPTY);
      return;
    }
    this.cb = cb;
    this.socket.write(bytes);
  }

  close(): void {
    this.socket.destroy();
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.closed = true;
    const cb = this.cb;
    this.cb = null;
    this.socket.destroy();
    cb?.(err, 0, EMPTY);
    this.onClose?.();
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const r = parseResponse(this.buf);
      if (r === null) return;
      if (r instanceof Error) return this.fail(r);
      this.buf = this.buf.subarray(r.consumed);
      const cb = this.cb;
      this.cb = null;
      if (!cb) return this.fail(new Error('unsolicited response'));
      cb(null, r.status, r.body);
      if (r.close) return this.fail(new Error('server closed the connection (Connection: close)'));
    }
  }
}

interface Parsed {
  status: number;
  body: Buffer;
  consumed: number;
  close: boolean;
}

/** One complete response at the start of `buf`, null if incomplete, an Error if malformed. */
export function parseResponse(buf: Buffer): Parsed | Error | null {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0) return buf.length > 65536 ? new Error('response head too large') : null;
  const head = buf.toString('latin1', 0, end);
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  if (!m) return new Error('malformed status line');
  const status = Number(m[1]);
  const close = /\r\nconnection:\s*close/i.test(head);
  const start = end + 4;
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (cl) {
    const n = Number(cl[1]);
    if (buf.length < start + n) return null;
    return { status, body: buf.subarray(start, start + n), consumed: start + n, close };
  }
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return parseChunked(buf, start, status, close);
  if (status === 204 || status === 304) return { status, body: EMPTY, consumed: start, close };
  return new Error('response has neither Content-Length nor chunked encoding');
}

function parseChunked(buf: Buffer, start: number, status: number, close: boolean): Parsed | Error | null {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const eol = buf.indexOf('\r\n', at, 'latin1');
    if (eol < 0) return null;
    const size = parseInt(buf.toString('latin1', at, eol), 16);
    if (!Number.isFinite(size) || size < 0) return new Error('malformed chunk size');
    const dataStart = eol + 2;
    if (size === 0) {
      // Last chunk: no trailers expected; the body ends with an empty line.
      const fin = buf.indexOf('\r\n', dataStart, 'latin1');
      if (fin < 0) return null;
      return { status, body: Buffer.concat(parts), consumed: fin + 2, close };
    }
    if (buf.length < dataStart + size + 2) return null;
    parts.push(buf.subarray(dataStart, dataStart + size));
    at = dataStart + size + 2;
  }
}

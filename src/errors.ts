/**
 * The one error table. Every failure that reaches a client carries one of these stable codes;
 * tests assert codes, never message text. Errors cross threads as plain {code, message}.
 *
 * `status` is the HTTP status the REST frontends use; the WebSocket frontend sends the code
 * itself in an error record. docs/errors.md is checked against this table by a test.
 */
export const ErrorCodes = {
  BAD_REQUEST: { status: 400, doc: 'The request is malformed (JSON or frame cannot be parsed, fields of the wrong type).' },
  BAD_FRAME: { status: 400, doc: 'A WebSocket frame is not a valid Skiff FlatBuffers frame.' },
  INVALID_INPUT: { status: 400, doc: 'An input tensor does not match the model: unknown or missing name, wrong datatype, shape or byte length.' },
  UNSUPPORTED_DATATYPE: { status: 400, doc: 'The datatype is valid in the protocol but cannot be served by this model or frontend.' },
  INVALID_DEADLINE: { status: 400, doc: 'A timeout or deadline is negative, not a number, or absurdly far (over 24 h); timeouts beyond `--max-timeout-ms` are clamped, not refused.' },
  DUPLICATE_ID: { status: 400, doc: 'A WebSocket request reused the id of a request still in flight on the same connection.' },
  UNAUTHORIZED: { status: 401, doc: 'The admin API needs a bearer token and the request had none or a wrong one.' },
  PATH_NOT_ALLOWED: { status: 403, doc: 'A model file path resolves outside the model repository and the upload directory.' },
  HOST_NOT_ALLOWED: { status: 403, doc: 'The Host header does not name the listener (a DNS-rebinding defence); `--allow-host` adds names.' },
  ORIGIN_NOT_ALLOWED: { status: 403, doc: 'A browser request from another origin (admin API, WebSocket); `--allow-origin` allows one.' },
  CODE_UPLOAD_FORBIDDEN: { status: 403, doc: 'Uploading executable model code (a JS module) needs the server to be started with `--allow-code-upload`.' },
  MODEL_NOT_FOUND: { status: 404, doc: 'No model of that name is loaded.' },
  APP_NOT_FOUND: { status: 404, doc: 'No application of that name exists.' },
  VERSION_NOT_FOUND: { status: 404, doc: 'The model exists but the requested version is not loaded.' },
  NOT_FOUND: { status: 404, doc: 'No such route.' },
  METHOD_NOT_ALLOWED: { status: 405, doc: 'The route exists but not for this HTTP method.' },
  PAYLOAD_TOO_LARGE: { status: 413, doc: 'The body or frame exceeds the configured size limit.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, doc: 'An admin POST without `Content-Type: application/json` (refused so no HTML form or text/plain post from a web page goes through).' },
  OVERLOADED: { status: 429, doc: 'The queue is full or the query cannot meet its deadline; retry after the advertised delay.' },
  CANCELLED: { status: 499, doc: 'The client cancelled the query (cancel frame or disconnect) before it was answered.' },
  DEADLINE_EXCEEDED: { status: 504, doc: 'The query\'s deadline passed before it could be run or answered.' },
  MODEL_UNAVAILABLE: { status: 503, doc: 'The model version is not ready (loading, draining, failed or shutting down).' },
  SERVER_BUSY: { status: 503, doc: 'The server holds its maximum of request bytes in flight (`--max-inflight-bytes`); retry after the advertised delay (`Retry-After`).' },
  STORE_UNAVAILABLE: { status: 503, doc: 'The shared state store (Redis, `--state redis://...`) cannot be reached: admin changes and feedback are refused until it returns; queries are still answered with the last state.' },
  SHUTTING_DOWN: { status: 503, doc: 'The server is draining for shutdown and takes no new queries; retry on another instance.' },
  NOT_SUPPORTED: { status: 501, doc: 'A protocol feature Skiff does not serve (Triton\'s trace, logging and shared-memory extensions, model files in a load request).' },
  MODEL_ERROR: { status: 500, doc: 'The model failed while running the batch that held this query.' },
  CONFIG_INVALID: { status: 400, doc: 'A configuration (a `config.json`, a config override in a repository load request) does not satisfy its schema or names a field Skiff cannot honour, or a start-up option is refused (e.g. `--no-admin-token` with an admin listener off loopback, an empty token, an address the server cannot bind).' },
  PORT_IN_USE: { status: 500, doc: 'Start-up only: the port (`--port`, `--admin-port`) is held by another server; Skiff listens exclusively, so a second server never shares a port.' },
  MODEL_LOAD_FAILED: { status: 500, doc: 'A model version could not be loaded.' },
  INTERNAL: { status: 500, doc: 'An unexpected internal error; the server keeps running.' },
} as const satisfies Record<string, { status: number; doc: string }>;

export type ErrorCode = keyof typeof ErrorCodes;

/** The cross-thread, cross-wire shape of an error. */
export interface ErrorInfo {
  code: ErrorCode;
  message: string;
  /** For OVERLOADED: how long the client should wait before retrying, in milliseconds. */
  retryAfterMs?: number;
}

export class SkiffError extends Error {
  readonly code: ErrorCode;
  readonly retryAfterMs?: number;
  constructor(code: ErrorCode, message: string, retryAfterMs?: number) {
    super(message);
    this.name = 'SkiffError';
    this.code = code;
    if (retryAfterMs !== undefined) this.retryAfterMs = retryAfterMs;
  }
  get status(): number {
    return ErrorCodes[this.code].status;
  }
  toInfo(): ErrorInfo {
    const info: ErrorInfo = { code: this.code, message: this.message };
    if (this.retryAfterMs !== undefined) info.retryAfterMs = this.retryAfterMs;
    return info;
  }
}

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(ErrorCodes, x);
}

/** Normalise anything thrown into an ErrorInfo without leaking stack traces to clients. */
export function toErrorInfo(err: unknown, fallback: ErrorCode = 'INTERNAL'): ErrorInfo {
  if (err instanceof SkiffError) return err.toInfo();
  if (err && typeof err === 'object' && isErrorCode((err as { code?: unknown }).code)) {
    const e = err as { code: ErrorCode; message?: unknown };
    return { code: e.code, message: String(e.message ?? e.code) };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: fallback, message };
}

export function httpStatusOf(code: ErrorCode): number {
  return ErrorCodes[code].status;
}

/**
 * What a client may see of an error: the one place where an ErrorInfo becomes an answer (every
 * frontend, the admin API and the WebSocket call it). Messages are for people, but some come from
 * inside the server (exceptions, model runtimes, the filesystem): those never reach a client as
 * they are. INTERNAL gets a generic text; every message loses stack-trace lines, has paths under
 * the server's own directories (setPrivatePaths: the install, the repository, home, temp...)
 * replaced by `<path>` — and, for the codes whose messages come from a model or the filesystem
 * (RUNTIME_DETAIL), every absolute path — control characters escaped and its length capped.
 * When anything was hidden, `ref` is set, the original goes to the log under it (the sink set by
 * setErrorDetailSink) and the client's message names it. The code is never changed.
 */
export function publicError(err: ErrorInfo): { info: ErrorInfo; ref?: string } {
  const original = err.message;
  let message = err.code === 'INTERNAL' ? 'an internal error occurred'
    : scrubMessage(original, RUNTIME_DETAIL.has(err.code));
  if (message === original) return { info: err };
  const ref = Math.floor(Math.random() * 0xffffffff).toString(16).padStart(8, '0');
  message = `${message} (details in the server log, ref ${ref})`;
  // The log gets the original, escaped by the logger and capped (a client's name may be long;
  // 2 KiB keeps the head of a stack trace).
  errorDetail(ref, original.length > MAX_DETAIL ? { ...err, message: `${original.slice(0, MAX_DETAIL)}…` } : err);
  return { info: { ...err, message }, ref };
}

/** Codes whose messages may carry what a model runtime, a model's code or the filesystem said. */
const RUNTIME_DETAIL: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['MODEL_ERROR', 'MODEL_LOAD_FAILED', 'MODEL_UNAVAILABLE', 'CONFIG_INVALID', 'PATH_NOT_ALLOWED']);
/** An absolute file path: '/' after a start, space, quote or bracket, then at least one name. */
const ABSOLUTE_PATH = /(?<=^|[\s'"`(\[=])\/[^\s'"`()\[\],;]+/g;

/** Where the full text of an error a client saw only in part goes (the server log, set at start). */
let errorDetail: (ref: string, err: ErrorInfo) => void = () => {};

export function setErrorDetailSink(sink: (ref: string, err: ErrorInfo) => void): void {
  errorDetail = sink;
}

const MAX_MESSAGE = 512;
const MAX_DETAIL = 2048;
const STACK_LINE = /\n\s+at [^\n]*/g;
/** Directories whose paths are the server's business (set by the composition root), longest first. */
let privateRoots: string[] = [];
let rootsPattern: RegExp | null = null;

/** Paths under these directories are replaced by `<path>` in client-facing messages. */
export function setPrivatePaths(roots: readonly string[]): void {
  privateRoots = [...new Set(roots.filter((r) => r.length > 1).map((r) => r.replace(/\/+$/, '')))].sort((a, b) => b.length - a.length);
  rootsPattern = privateRoots.length
    ? new RegExp(`(?:${privateRoots.map((r) => r.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})(?:/[^\\s'"\\)\\],;:]*)?`, 'g')
    : null;
}

/**
 * A message safe to show a client (see publicError); also for a failed version's reason wherever
 * it is listed. `fromRuntime`: the text may quote a model runtime, a model's code or the
 * filesystem, so every absolute path goes, not only those under the server's directories.
 */
export function scrubMessage(text: string, fromRuntime = false): string {
  let t = text.replace(STACK_LINE, '');
  if (rootsPattern) t = t.replace(rootsPattern, '<path>');
  if (fromRuntime) t = t.replace(ABSOLUTE_PATH, '<path>');
  t = escapeControl(t);
  return t.length > MAX_MESSAGE ? `${t.slice(0, MAX_MESSAGE)}…` : t;
}

/** A client-supplied name as it may appear in a message or a log line: escaped and length-limited. */
export function safeName(name: string, max = 128): string {
  const t = escapeControl(name);
  return t.length > max ? `${t.slice(0, max)}…` : t;
}

function escapeControl(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

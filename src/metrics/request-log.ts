import type { Logger } from 'pino';
import { ErrorCodes, safeName, type ErrorInfo } from '../errors.js';

/**
 * Per-request structured logs. Every answered request is logged at debug (ids, model or app,
 * code, latency: never tensor data). Errors are logged by kind: a fault of the server or a model
 * (5xx) at warn, a client's mistake (4xx) at info, and load shedding or a client leaving
 * (OVERLOADED, DEADLINE_EXCEEDED, CANCELLED, SHUTTING_DOWN) only at debug, since they come in
 * floods exactly when the server is busiest and the metrics already count them.
 *
 * Cheap when debug is off: `requestStart` returns 0 and the caller builds the log fields only
 * for errors (`if (err || t0) logRequest(...)`).
 */
export type RequestLogLevel = 'debug' | 'info' | 'warn';

const LOAD_CODES: ReadonlySet<string> = new Set(['OVERLOADED', 'DEADLINE_EXCEEDED', 'CANCELLED', 'SHUTTING_DOWN']);

export function requestLogLevel(err: ErrorInfo | null): RequestLogLevel {
  if (!err || LOAD_CODES.has(err.code)) return 'debug';
  return ErrorCodes[err.code].status >= 500 ? 'warn' : 'info';
}

/** performance.now() when per-request debug logs are on, else 0. */
export function requestStart(log: Logger): number {
  return log.isLevelEnabled('debug') ? performance.now() : 0;
}

/**
 * Log one answered request (`startedAt` from requestStart; 0 = untimed). Fields often hold what a
 * client sent (a model name from the URL, a request id): every string is escaped and cut to 128
 * characters, the message to 1024, so no client fills the log or forges lines in it.
 */
export function logRequest(log: Logger, fields: Record<string, unknown>, err: ErrorInfo | null, startedAt: number): void {
  const level = requestLogLevel(err);
  if (!log.isLevelEnabled(level)) return;
  const rec: Record<string, unknown> = { code: err ? err.code : 'OK' };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) rec[k] = typeof v === 'string' ? safeName(v) : v;
  if (startedAt > 0) rec.us = Math.round((performance.now() - startedAt) * 1000);
  log[level](rec, err ? safeName(err.message, 1024) : 'request answered');
}

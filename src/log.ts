import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

/**
 * Logs go to stderr, so stdout stays free for command output. Two formats:
 *   - json: one JSON object per line (for log collectors); the default when stderr is not a terminal;
 *   - pretty: one readable, coloured line per record (pino-pretty); the default on a terminal.
 * Log records carry ids, codes and sizes, never tensor data.
 */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogFormat = 'json' | 'pretty';

export function createLogger(level: string = process.env.SKIFF_LOG_LEVEL ?? 'info', format?: LogFormat): Logger {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new Error(`--log-level ${level}: expected one of ${LOG_LEVELS.join(', ')}`);
  }
  const fmt = format ?? (process.stderr.isTTY ? 'pretty' : 'json');
  const opts = { level, base: { svc: 'skiff' } };
  if (fmt === 'pretty') {
    return pino(opts, pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY === true, ignore: 'pid,hostname,svc', translateTime: 'HH:MM:ss.l', singleLine: true }));
  }
  return pino(opts, pino.destination(2));
}

export const silentLogger: Logger = pino({ level: 'silent' });

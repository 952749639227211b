import { pino, type Logger } from 'pino';

/**
 * Structured logs (JSON lines on stderr, so stdout stays free for command output). Log records
 * carry ids, codes and sizes, never tensor data.
 */
export function createLogger(level: string = process.env.SKIFF_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { svc: 'skiff' } }, pino.destination(2));
}

export const silentLogger: Logger = pino({ level: 'silent' });

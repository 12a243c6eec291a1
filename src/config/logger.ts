import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One logger for the process, on stderr: JSON lines by default (what a log shipper wants),
 * pretty when `CRYSTALWATCH_LOG_PRETTY=1` or stdout is a terminal.
 * Every stage takes a child logger named after itself (`logger.child({ stage: 'ingest' })`).
 */
export function createLogger(options: { level?: string; pretty?: boolean; name?: string } = {}): Logger {
  const level = options.level ?? process.env.CRYSTALWATCH_LOG_LEVEL ?? 'info';
  const pretty = options.pretty ?? (process.env.CRYSTALWATCH_LOG_PRETTY === '1' || (process.stderr.isTTY && process.env.CRYSTALWATCH_LOG_PRETTY !== '0'));
  const base = { name: options.name ?? 'crystalwatch', level };
  // Logs go to stderr, so that stdout carries only what a command prints for machines (--json).
  if (pretty) {
    return pino({
      ...base,
      transport: { target: 'pino-pretty', options: { colorize: true, destination: 2, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino(base, pino.destination({ dest: 2, sync: true }));
}

/** A logger that writes nothing: for tests and library use where the caller gave none. */
export const silentLogger: Logger = pino({ level: 'silent' });

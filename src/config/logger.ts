import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * One logger for the process: JSON lines by default (what a log shipper wants),
 * pretty when `CRYSTALWATCH_LOG_PRETTY=1` or stdout is a terminal.
 * Every stage takes a child logger named after itself (`logger.child({ stage: 'ingest' })`).
 */
export function createLogger(options: { level?: string; pretty?: boolean; name?: string } = {}): Logger {
  const level = options.level ?? process.env.CRYSTALWATCH_LOG_LEVEL ?? 'info';
  const pretty = options.pretty ?? (process.env.CRYSTALWATCH_LOG_PRETTY === '1' || (process.stdout.isTTY && process.env.CRYSTALWATCH_LOG_PRETTY !== '0'));
  return pino({
    name: options.name ?? 'crystalwatch',
    level,
    ...(pretty ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } } : {}),
  });
}

/** A logger that writes nothing: for tests and library use where the caller gave none. */
export const silentLogger: Logger = pino({ level: 'silent' });

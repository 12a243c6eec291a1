/**
 * `crystalwatch broker`: run the embedded broker standalone until SIGINT/SIGTERM.
 *
 * When it is listening it prints one JSON line on stdout:
 *   {"event":"listening","host":"127.0.0.1","port":9092,"address":"127.0.0.1:9092","dataDir":"/abs/path"}
 * so a parent process (tests, scripts) started with --port 0 learns the port.
 * Logs go to stderr.
 */
import type { Command } from 'commander';
import { pino } from 'pino';
import { startBroker, DEFAULT_PORT } from './index.js';

interface Limits {
  maxRequestBytes?: number;
  requestReadTimeoutMs: number;
  maxConnections: number;
  maxBufferedBytes?: number;
}

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer ${min}..${max}, got ${JSON.stringify(value)}`);
    return n;
  };
}

export function registerBrokerCommands(program: Command): void {
  program
    .command('broker')
    .description('Run the embedded single-node Kafka-protocol broker (kafkajs, librdkafka/kcat) until SIGINT/SIGTERM')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'TCP port (0 = any free port, printed on stdout)', integer('--port', 0, 65535), DEFAULT_PORT)
    .option('--data-dir <dir>', 'folder for segment files and committed offsets', './data/broker')
    .option('--partitions <n>', 'partitions of auto-created topics', integer('--partitions', 1, 1000), 3)
    .option('--fsync <policy>', 'always (before each ack) | interval (every second) | never (leave it to the OS)', 'interval')
    .option('--message-max-bytes <n>', 'largest record batch accepted', integer('--message-max-bytes', 1024, 1024 ** 3), 16 * 1024 * 1024)
    .option('--retention-bytes <n>', 'default per-partition size limit', integer('--retention-bytes', 0, Number.MAX_SAFE_INTEGER))
    .option('--retention-ms <n>', 'default age limit of records', integer('--retention-ms', 0, Number.MAX_SAFE_INTEGER))
    .option(
      '--max-request-bytes <n>',
      'largest request accepted; a bigger size prefix closes the connection (default: message max bytes + 1 MiB)',
      integer('--max-request-bytes', 1024, 2 ** 31 - 1),
    )
    .option(
      '--request-read-timeout-ms <ms>',
      'time a client has to send the rest of a request it started',
      integer('--request-read-timeout-ms', 100, 24 * 3600_000),
      30_000,
    )
    .option('--max-connections <n>', 'client connections open at once; more are closed at accept', integer('--max-connections', 1, 1_000_000), 1000)
    .option(
      '--max-buffered-bytes <n>',
      'bytes of incomplete requests held across all connections (default: max(256 MiB, 2 x max request bytes))',
      integer('--max-buffered-bytes', 1024, Number.MAX_SAFE_INTEGER),
    )
    .option('--no-auto-create-topics', 'refuse Metadata requests for unknown topics instead of creating them')
    .option('--log-level <level>', 'pino level for stderr logs', process.env.CRYSTALWATCH_LOG_LEVEL ?? 'info')
    .action(
      async (
        options: {
          host: string;
          port: number;
          dataDir: string;
          partitions: number;
          fsync: string;
          messageMaxBytes: number;
          retentionBytes?: number;
          retentionMs?: number;
          autoCreateTopics: boolean;
          logLevel: string;
        } & Limits,
      ) => {
        if (!['always', 'interval', 'never'].includes(options.fsync))
          throw new Error(`--fsync must be always, interval or never, got ${JSON.stringify(options.fsync)}`);
        // stdout carries the machine-readable "listening" line; logs go to stderr.
        const logger = pino({ name: 'crystalwatch', level: options.logLevel }, pino.destination(2));
        const retention: { bytes?: number; ms?: number } = {};
        if (options.retentionBytes !== undefined) retention.bytes = options.retentionBytes;
        if (options.retentionMs !== undefined) retention.ms = options.retentionMs;
        const broker = await startBroker({
          host: options.host,
          port: options.port,
          dataDir: options.dataDir,
          defaultPartitions: options.partitions,
          autoCreateTopics: options.autoCreateTopics,
          messageMaxBytes: options.messageMaxBytes,
          fsync: options.fsync as 'always' | 'interval' | 'never',
          retention,
          logger,
          requestReadTimeoutMs: options.requestReadTimeoutMs,
          maxConnections: options.maxConnections,
          ...(options.maxRequestBytes !== undefined ? { maxRequestBytes: options.maxRequestBytes } : {}),
          ...(options.maxBufferedBytes !== undefined ? { maxBufferedBytes: options.maxBufferedBytes } : {}),
        });
        process.stdout.write(
          JSON.stringify({ event: 'listening', host: broker.host, port: broker.port, address: broker.address, dataDir: options.dataDir }) + '\n',
        );
        await new Promise<void>((resolve) => {
          const stop = (signal: string): void => {
            logger.info({ signal }, 'stopping broker');
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
        });
        await broker.close();
        process.stdout.write(JSON.stringify({ event: 'closed' }) + '\n');
      },
    );
}

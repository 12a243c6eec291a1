import { Command, Option } from 'commander';
import { Registry } from 'prom-client';
import { connectStageBus } from '../bus/kafka.js';
import { DEFAULT_TOPIC_PREFIX } from '../bus/topics.js';
import { DEFAULT_INGEST_AFTER, DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_PARTITIONS, DEFAULT_RECONCILE_INTERVAL_MS } from '../config/defaults.js';
import { createLogger } from '../config/logger.js';
import { IngestStage, type CameraFolder } from './index.js';

const collect = (value: string, previous: string[]) => [...previous, value];

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

export function registerIngestCommands(program: Command): void {
  program
    .command('ingest')
    .description('Watch camera drop folders and produce every complete frame to the Kafka frames topic (exactly once, in order per camera)')
    .requiredOption('--watch <dir>', 'camera folder to watch; repeat with --camera for several cameras', collect, [] as string[])
    .requiredOption('--camera <id>', 'camera id for the matching --watch (Kafka key, metric label)', collect, [] as string[])
    .option('--brokers <list>', 'Kafka bootstrap servers host:port[,host:port] (default: $KAFKA_BROKERS)')
    .option('--topic-prefix <prefix>', 'topic name prefix', DEFAULT_TOPIC_PREFIX)
    .option('--partitions <n>', 'partitions for topics this command creates', positiveInt('--partitions'), DEFAULT_PARTITIONS)
    .option('--run-id <id>', 'run id stamped on every frame (default <camera>-<UTC date>)')
    .addOption(
      new Option('--after <action>', 'what to do with a file once Kafka acknowledged it (production: move)')
        .choices(['keep', 'move', 'delete'])
        .default(DEFAULT_INGEST_AFTER),
    )
    .option('--archive <dir>', 'where --after move puts files (<dir>/<camera>/...; default <watch>/.archive/)')
    .option('--quarantine <dir>', 'where rejected files go (<dir>/<camera>/...; default <watch>/.quarantine/)')
    .option('--max-bytes <n>', 'largest file accepted, in bytes', positiveInt('--max-bytes'), DEFAULT_MAX_FILE_BYTES)
    .option(
      '--max-pixels <n>',
      'largest width × height a header may claim (the limit classify decodes, config limits.maxPixels)',
      positiveInt('--max-pixels'),
      DEFAULT_MAX_PIXELS,
    )
    .option('--ledger <file>', 'ledger of ingested files (default <first watch>/.ingest-ledger.jsonl)')
    .option(
      '--reconcile-ms <ms>',
      'interval of the folder scan that catches missed watcher events',
      positiveInt('--reconcile-ms'),
      DEFAULT_RECONCILE_INTERVAL_MS,
    )
    .option('--stall-ms <ms>', 'an incomplete file unchanged this long is quarantined as truncated/empty', positiveInt('--stall-ms'), 5_000)
    .option('--max-in-flight-bytes <n>', 'bytes read but not yet acknowledged before reading pauses', positiveInt('--max-in-flight-bytes'), 256 * 1024 * 1024)
    .option('--json', 'print the final counts as JSON on stdout when stopped')
    .addHelpText(
      'after',
      `
Examples:
  crystalwatch ingest --watch /srv/cam1 --camera cam1 --brokers 127.0.0.1:9092
  crystalwatch ingest --watch /srv/cam1 --camera cam1 --watch /srv/cam2 --camera cam2 --after move

Kafka settings also come from the environment: KAFKA_BROKERS, KAFKA_SSL=1, KAFKA_SASL_MECHANISM,
KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD, KAFKA_MAX_MESSAGE_BYTES. Stops cleanly on SIGINT/SIGTERM.`,
    )
    .action(
      async (opts: {
        watch: string[];
        camera: string[];
        brokers?: string;
        topicPrefix: string;
        partitions: number;
        runId?: string;
        after: 'keep' | 'move' | 'delete';
        archive?: string;
        quarantine?: string;
        maxBytes: number;
        maxPixels: number;
        ledger?: string;
        reconcileMs: number;
        stallMs: number;
        maxInFlightBytes: number;
        json?: boolean;
      }) => {
        if (opts.watch.length !== opts.camera.length) {
          throw new Error(`ingest: give one --camera per --watch (got ${opts.watch.length} --watch and ${opts.camera.length} --camera)`);
        }
        const logger = createLogger();
        const { kafka, topics, bus } = await connectStageBus('ingest', opts, logger);
        const cameras: CameraFolder[] = opts.watch.map((watch, i) => ({ camera: opts.camera[i]!, watch, ...(opts.runId ? { runId: opts.runId } : {}) }));
        const stage = new IngestStage({
          kafka,
          topics,
          cameras,
          after: opts.after,
          archiveDir: opts.archive,
          quarantineDir: opts.quarantine,
          maxFileBytes: opts.maxBytes,
          maxPixels: opts.maxPixels,
          maxMessageBytes: bus.maxMessageBytes,
          ledgerPath: opts.ledger,
          reconcileIntervalMs: opts.reconcileMs,
          stallTimeoutMs: opts.stallMs,
          maxInFlightBytes: opts.maxInFlightBytes,
          registry: new Registry(),
          logger,
        });
        await stage.start();
        process.stderr.write(`ingest: watching ${cameras.map((c) => `${c.camera}=${c.watch}`).join(', ')} → ${topics.frames} (after: ${opts.after})\n`);
        let last = '';
        const progress = setInterval(() => {
          const line = `ingest: ${stage.stats.ingested} frames ingested, ${stage.stats.rejected} rejected`;
          if (line !== last) process.stderr.write(`${line}\n`);
          last = line;
        }, 5_000);
        await new Promise<void>((resolve) => {
          const stop = () => resolve();
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
        clearInterval(progress);
        await stage.close();
        if (opts.json) process.stdout.write(`${JSON.stringify(stage.stats)}\n`);
        else process.stderr.write(`ingest: stopped; ${stage.stats.ingested} frames ingested, ${stage.stats.rejected} rejected\n`);
      },
    );
}

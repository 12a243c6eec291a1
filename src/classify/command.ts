/**
 * `crystalwatch classify` (the streaming stage) and `crystalwatch predict` (files on disk).
 */
import { Command, Option } from 'commander';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { connectStageBus } from '../bus/kafka.js';
import {
  DEFAULT_BACKEND,
  DEFAULT_MAX_BATCH_SIZE,
  DEFAULT_MAX_BATCH_WAIT_MS,
  DEFAULT_MAX_PIXELS,
  DEFAULT_MODEL_DIR,
  DEFAULT_PARTITIONS,
  DEFAULT_TOPIC_PREFIX,
} from '../config/defaults.js';
import { createLogger } from '../config/logger.js';
import { packageRoot } from '../config/paths.js';
import { DEFAULT_MAX_FRAME_AGE_MS, DEFAULT_OVERLOAD_POLICY, OVERLOAD_POLICIES, type OverloadPolicy } from '../config/overload.js';
import { Classifier, ClassifyStage, DEFAULT_GROUP_ID } from './index.js';
import type { BackendChoice } from './backends/index.js';

export const defaultModelDir = (): string => join(packageRoot(), DEFAULT_MODEL_DIR);

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

function nonNegativeInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be an integer ≥ 0, got "${value}"`);
    return n;
  };
}

/** `--tiling auto|off|TILE[:STRIDE]`. */
function parseTiling(value: string): 'auto' | 'off' | { tile: number; stride: number } {
  if (value === 'auto' || value === 'off') return value;
  const m = /^(\d+)(?::(\d+))?$/.exec(value);
  if (!m) throw new Error(`--tiling must be auto, off or TILE[:STRIDE] in pixels (e.g. 224:112), got "${value}"`);
  const tile = Number(m[1]);
  const stride = m[2] ? Number(m[2]) : tile;
  if (tile < 1 || stride < 1 || stride > tile) throw new Error(`--tiling: need 1 ≤ stride ≤ tile, got tile ${tile}, stride ${stride}`);
  return { tile, stride };
}

const backendOption = () => new Option('--backend <name>', 'inference engine').choices(['auto', 'onnx', 'tfjs']).default(DEFAULT_BACKEND);

export function registerClassifyCommands(program: Command): void {
  program
    .command('classify')
    .description('Consume the Kafka frames topic as a consumer group, classify every frame CEX vs PG, and produce predictions')
    .option('--brokers <list>', 'Kafka bootstrap servers host:port[,host:port] (default: $KAFKA_BROKERS)')
    .option('--model <dir>', 'model folder holding card.json (default: models/default of the package)')
    .addOption(backendOption())
    .option('--group <id>', 'consumer group id; processes with the same id split the partitions', DEFAULT_GROUP_ID)
    .option('--topic-prefix <prefix>', 'topic name prefix', DEFAULT_TOPIC_PREFIX)
    .option('--partitions <n>', 'partitions for topics this command creates', positiveInt('--partitions'), DEFAULT_PARTITIONS)
    .option('--max-batch-size <n>', 'images (crops or tiles) per inference call', positiveInt('--max-batch-size'), DEFAULT_MAX_BATCH_SIZE)
    .option('--max-batch-wait-ms <ms>', 'longest wait for a batch to fill', nonNegativeInt('--max-batch-wait-ms'), DEFAULT_MAX_BATCH_WAIT_MS)
    .option('--tiling <mode>', 'auto (tile frames over 2× the tile size), off, or TILE[:STRIDE] pixels', parseTiling, 'auto' as const)
    .option('--max-pixels <n>', 'largest image decoded (decompression-bomb guard)', positiveInt('--max-pixels'), DEFAULT_MAX_PIXELS)
    .addOption(
      new Option('--overload <policy>', 'when frames come faster than they are classified: newest-first, in-order (every frame, a backlog grows) or skip')
        .choices([...OVERLOAD_POLICIES])
        .default(DEFAULT_OVERLOAD_POLICY),
    )
    .option(
      '--max-frame-age-ms <ms>',
      'latency bound: a frame that would be predicted later than this after ingest, with a newer one of its camera fetched, is skipped',
      nonNegativeInt('--max-frame-age-ms'),
      DEFAULT_MAX_FRAME_AGE_MS,
    )
    .addHelpText(
      'after',
      `
Examples:
  crystalwatch classify --brokers 127.0.0.1:9092
  crystalwatch classify --group crystalwatch-replay-1 --overload in-order   # re-classify every frame Kafka still holds
  crystalwatch classify --brokers kafka-1:9092 --model /srv/models/georgia-resnet101 --backend onnx

Each frame gets one JSON record on <prefix>predictions (key = camera); bad frames go to
<prefix>dead-letter with a reason. The offset is committed after the prediction is acknowledged
(at least once: de-duplicate by frameId downstream). Kafka settings also come from the
environment (KAFKA_BROKERS, KAFKA_SSL, KAFKA_SASL_*). Stops cleanly on SIGINT/SIGTERM.`,
    )
    .action(
      async (opts: {
        brokers?: string;
        model?: string;
        backend: BackendChoice;
        group: string;
        topicPrefix: string;
        partitions: number;
        maxBatchSize: number;
        maxBatchWaitMs: number;
        tiling: 'auto' | 'off' | { tile: number; stride: number };
        maxPixels: number;
        overload: OverloadPolicy;
        maxFrameAgeMs: number;
      }) => {
        const logger = createLogger();
        const { kafka, topics, bus } = await connectStageBus('classify', opts, logger);
        const stage = new ClassifyStage({
          kafka,
          topics,
          groupId: opts.group,
          modelDir: opts.model ?? defaultModelDir(),
          backend: opts.backend,
          maxBatchSize: opts.maxBatchSize,
          maxBatchWaitMs: opts.maxBatchWaitMs,
          tiling: opts.tiling,
          maxPixels: opts.maxPixels,
          maxMessageBytes: bus.maxMessageBytes,
          overload: { policy: opts.overload, maxFrameAgeMs: opts.maxFrameAgeMs },
          registry: new Registry(),
          logger,
        });
        const stop = new Promise<void>((resolve) => {
          process.once('SIGINT', () => resolve());
          process.once('SIGTERM', () => resolve());
        });
        await stage.start();
        const { backend, device, model } = stage.info;
        process.stderr.write(`classify: ${model} on ${backend}/${device}, group ${opts.group}, ${topics.frames} → ${topics.predictions}\n`);
        let last = '';
        const progress = setInterval(() => {
          const line = `classify: ${stage.stats.predicted} frames predicted (${stage.stats.unusable} unusable), ${stage.stats.deadLettered} dead-lettered`;
          if (line !== last) process.stderr.write(`${line}\n`);
          last = line;
        }, 5_000);
        await stop;
        clearInterval(progress);
        await stage.close();
        process.stderr.write(`classify: stopped; ${stage.stats.predicted} frames predicted, ${stage.stats.deadLettered} dead-lettered\n`);
      },
    );

  program
    .command('predict')
    .description('Classify image files with a model: class and P(PG) per file')
    .argument('<files...>', 'image files (PNG, JPEG, TIFF, ...)')
    .option('--model <dir>', 'model folder holding card.json (default: models/default of the package)')
    .addOption(backendOption())
    .option('--json', 'one JSON object per line, in file order: {"file","predicted","pPG","reason"?}')
    .option('--tiling <mode>', 'auto (tile images over 2× the tile size), off, or TILE[:STRIDE] pixels', parseTiling, 'auto' as const)
    .option('--max-batch-size <n>', 'images per inference call', positiveInt('--max-batch-size'), DEFAULT_MAX_BATCH_SIZE)
    .addHelpText(
      'after',
      `
Examples:
  crystalwatch predict crops/*.png
  crystalwatch predict --model models/examples/georgia-resnet101 --json frame.png

predicted is cex, pg, unusable (quality gate / out of distribution, with a reason) or error (the
file could not be read or decoded, with a reason). The exit code is 1 when any file was an error.`,
    )
    .action(
      async (
        files: string[],
        opts: { model?: string; backend: BackendChoice; json?: boolean; tiling: 'auto' | 'off' | { tile: number; stride: number }; maxBatchSize: number },
      ) => {
        const classifier = await Classifier.load(opts.model ?? defaultModelDir(), {
          backend: opts.backend,
          tiling: opts.tiling,
          maxBatchSize: opts.maxBatchSize,
          log: (m) => process.stderr.write(`predict: ${m}\n`),
        });
        let failed = 0;
        try {
          const { backend, device, model } = classifier.info;
          process.stderr.write(`predict: ${model} on ${backend}/${device}, ${files.length} file(s)\n`);
          // Files in groups of a batch, so memory stays bounded for thousands of files.
          for (let start = 0; start < files.length; start += opts.maxBatchSize) {
            const group = files.slice(start, start + opts.maxBatchSize);
            const bytes = await Promise.all(
              group.map((f) =>
                readFile(f).then(
                  (b) => ({ ok: true as const, b }),
                  (err: Error) => ({ ok: false as const, reason: `cannot read file (${(err as NodeJS.ErrnoException).code ?? err.message})` }),
                ),
              ),
            );
            const readable = bytes.flatMap((r) => (r.ok ? [r.b] : []));
            const results = await classifier.classify(readable);
            let k = 0;
            group.forEach((file, i) => {
              const read = bytes[i]!;
              const r = read.ok ? results[k++]! : { predicted: 'error' as const, pPG: null, reason: read.reason };
              if (r.predicted === 'error') failed++;
              if (opts.json) {
                process.stdout.write(`${JSON.stringify({ file, predicted: r.predicted, pPG: r.pPG, ...(r.reason ? { reason: r.reason } : {}) })}\n`);
              } else {
                const p = r.pPG === null ? '' : `  P(PG)=${r.pPG.toFixed(4)}`;
                process.stdout.write(`${file}: ${r.predicted}${p}${r.reason ? `  (${r.reason})` : ''}\n`);
              }
            });
            if (files.length > opts.maxBatchSize) process.stderr.write(`predict: ${Math.min(start + group.length, files.length)}/${files.length}\n`);
          }
        } finally {
          await classifier.close();
        }
        if (failed > 0) {
          process.stderr.write(`predict: ${failed} of ${files.length} file(s) could not be classified\n`);
          process.exitCode = 1;
        }
      },
    );
}

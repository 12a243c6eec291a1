/**
 * Composes the stages of DESIGN.md into one process. The stages never import each
 * other; this is the one place that knows all of them. With `kafka.brokers` empty
 * the embedded broker is started here; otherwise every stage talks to the cluster.
 */
import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import type { Config } from '../config/index.js';
import type { Logger } from '../config/logger.js';
import { startBroker } from '../broker/index.js';
import { busOptions, createKafka, ensureTopics, kafkajsCrc32c, kafkajsEncoder, type InProcessBroker } from '../bus/kafka.js';
import { topicNames, type Topics } from '../bus/topics.js';
import type { Alert, Prediction } from '../bus/messages.js';
import { IngestStage } from '../ingest/index.js';
import { ClassifyStage } from '../classify/index.js';
import type { QualityStage } from '../quality/index.js';
import type { AlertStage } from '../alert/index.js';
import type { AuditTrail } from '../audit/index.js';
import type { OpcUaServer } from '../opcua/index.js';
import { WebServer } from '../web/index.js';
import { RunControl } from '../runs/index.js';
import { Lifecycle } from './lifecycle.js';
import { startMonitor } from './monitor.js';
import { plantRoutes } from './routes.js';
import { resolveModelDir } from './paths.js';

/**
 * The consuming stages stop together (DESIGN's order: intake first — ingest is added last, so
 * closed first — then the consumers, each finishing and committing the batch in hand, then web
 * and the broker). What one of them had not finished is redelivered at the next start.
 */
const CONSUMERS = { phase: 'consumers' } as const;

export interface Pipeline {
  config: Config;
  kafka: Kafka;
  topics: Topics;
  registry: Registry;
  /** host:port of the brokers in use (the embedded one, or the cluster's first). */
  brokers: string[];
  web?: WebServer;
  ingest?: IngestStage;
  classify?: ClassifyStage;
  metrics?: QualityStage;
  alerts?: AlertStage;
  runs?: RunControl;
  audit?: AuditTrail;
  opcua?: OpcUaServer;
  close(): Promise<void>;
}

export interface PipelineOptions {
  /** Where relative paths in the config (model, data dir) are resolved from. */
  baseDir?: string;
  /** Called for each prediction and alert seen by the monitor stage (the demo's terminal status). */
  onPrediction?: (prediction: Prediction) => void;
  onAlert?: (alert: Alert) => void;
}

export async function startPipeline(config: Config, logger: Logger, options: PipelineOptions = {}): Promise<Pipeline> {
  const lifecycle = new Lifecycle(logger);
  const base = options.baseDir ?? process.cwd();
  const dataDir = path.resolve(base, config.dataDir);
  const stages = new Set(config.stages);
  // Every part this process will start is listed from the outset, so /readyz never says ready
  // before the last of them is (the web stage answers while the others are still starting).
  const ready: Record<string, boolean | string> = {
    kafka: 'connecting',
    runs: 'waiting',
    ...(stages.has('monitor') ? { metrics: 'waiting', alert: 'waiting' } : {}),
    ...(stages.has('classify') ? { model: 'waiting' } : {}),
    ...(stages.has('ingest') ? { ingest: 'waiting' } : {}),
  };
  // The bytes path's native shortcuts (src/bus): said once, so a fallback after an upgrade is seen.
  logger.info({ kafkajsCrc32c, kafkajsEncoder }, 'kafkajs: CRC-32C and encoder in use');
  try {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'crystalwatch_process_' });

    let brokers = config.kafka.brokers;
    let inProcess: InProcessBroker | undefined;
    if (brokers.length === 0) {
      const brokerDir = path.join(dataDir, 'broker');
      await mkdir(brokerDir, { recursive: true });
      const broker = lifecycle.add(
        'broker',
        await startBroker({
          host: config.broker.host,
          port: config.broker.port,
          dataDir: brokerDir,
          defaultPartitions: config.kafka.partitions,
          messageMaxBytes: config.kafka.maxMessageBytes,
          fsync: config.broker.fsync,
          registry,
          logger: logger.child({ stage: 'broker' }),
        }),
      );
      brokers = [broker.address];
      if (config.broker.inProcessClients) inProcess = broker;
      logger.info(
        { address: broker.address, dataDir: brokerDir, clients: inProcess ? 'in-process' : 'tcp' },
        `embedded Kafka broker listening; this process's clients reach it ${inProcess ? 'in memory' : 'over TCP'}`,
      );
    }

    const { clientId, ssl, sasl, maxMessageBytes } = config.kafka;
    const kafka = createKafka({ ...busOptions({ brokers, clientId, ssl, sasl, maxMessageBytes }), inProcess });
    const topics = topicNames(config.kafka.topicPrefix);
    await ensureTopics(kafka, topics, config.kafka.partitions);
    ready.kafka = true;

    const pipeline: Pipeline = { config, kafka, topics, registry, brokers, close: () => lifecycle.close() };

    if (stages.has('web')) {
      pipeline.web = lifecycle.add(
        'web',
        new WebServer({
          host: config.web.host,
          port: config.web.port,
          registry,
          token: config.web.token,
          alerts: {
            list: () => pipeline.alerts?.list() ?? [],
            acknowledge: async (id, by, comment) => pipeline.alerts?.acknowledge(id, by, comment),
          },
          health: () => ({ ready: Object.values(ready).every((v) => v === true), checks: { ...ready } }),
          routes: plantRoutes(() => pipeline),
          // Thumbnails for the live page only where the page's data lives (the monitor stage).
          thumbnails: stages.has('monitor') ? { kafka, topics } : undefined,
          logger: logger.child({ stage: 'web' }),
        }),
      );
      await pipeline.web.start();
      logger.info({ url: pipeline.web.url }, 'web server listening');
    }

    // Every process folds the runs topic: ingest stamps frames with the camera's run, the
    // monitor records run starts and ends and writes reports at a run's end, the web and OPC UA
    // serve it. Created first (the monitor's hooks need it), started after the monitor so it
    // closes together with the other consumers.
    const runs = new RunControl({ kafka, topics, logger });
    pipeline.runs = runs;

    if (stages.has('monitor')) {
      const monitor = await startMonitor({
        config,
        kafka,
        topics,
        registry,
        dataDir,
        modelDir: resolveModelDir(base, config.classify.model),
        runs,
        lifecycle,
        consumers: CONSUMERS,
        ready,
        publish: (event) => pipeline.web?.publish(event),
        onPrediction: options.onPrediction,
        onAlert: options.onAlert,
        logger,
      });
      pipeline.metrics = monitor.metrics;
      pipeline.alerts = monitor.alerts;
      pipeline.audit = monitor.audit?.trail;
      pipeline.opcua = monitor.opcua?.server;
    }

    lifecycle.add('runs', runs, CONSUMERS);
    ready.runs = 'starting';
    await runs.start();
    ready.runs = true;

    if (stages.has('classify')) {
      ready.model = 'loading';
      const classify = new ClassifyStage({
        kafka,
        topics,
        modelDir: resolveModelDir(base, config.classify.model),
        backend: config.classify.backend,
        maxBatchSize: config.classify.maxBatchSize,
        maxBatchWaitMs: config.classify.maxBatchWaitMs,
        maxMessageBytes: config.kafka.maxMessageBytes,
        overload: config.classify.overload,
        fetch: config.classify.fetch,
        maxPixels: config.limits.maxPixels,
        frozen: config.classify.frozenRepeats === 0 ? false : { repeats: config.classify.frozenRepeats },
        ...(config.classify.probeGate ? {} : { probe: false as const }),
        cameras: config.cameras.map((c) => c.id),
        maxCameras: config.metrics.maxCameras,
        registry,
        logger: logger.child({ stage: 'classify' }),
      });
      pipeline.classify = lifecycle.add('classify', classify, CONSUMERS);
      await classify.start();
      ready.model = true;
      logger.info(classify.info, 'classifier ready');
    }

    if (stages.has('ingest')) {
      if (config.cameras.length === 0) {
        throw new Error('stage "ingest" needs at least one camera: set `cameras` in the config file or CRYSTALWATCH_CAMERAS=id=/folder');
      }
      const ingest = new IngestStage({
        kafka,
        topics,
        cameras: config.cameras.map((c) => ({ camera: c.id, watch: path.resolve(base, c.watch), runId: c.runId })),
        runFor: (camera) => pipeline.runs?.runFor(camera),
        after: config.ingest.after,
        archiveDir: config.ingest.archiveDir ? path.resolve(base, config.ingest.archiveDir) : undefined,
        quarantineDir: config.ingest.quarantineDir ? path.resolve(base, config.ingest.quarantineDir) : undefined,
        maxFileBytes: config.ingest.maxFileBytes,
        maxPixels: config.limits.maxPixels,
        maxMessageBytes: config.kafka.maxMessageBytes,
        reconcileIntervalMs: config.ingest.reconcileIntervalMs,
        ledgerPath: path.join(dataDir, 'ingest-ledger.jsonl'),
        registry,
        logger: logger.child({ stage: 'ingest' }),
      });
      pipeline.ingest = lifecycle.add('ingest', ingest);
      await ingest.start();
      ready.ingest = true;
    }
    return pipeline;
  } catch (err) {
    await lifecycle.close();
    throw err;
  }
}

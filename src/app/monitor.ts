/**
 * The monitor stage of one process: the quality metrics, the alert stage and what hangs off
 * them for the plant — the audit trail, the OPC UA server and the batch reports. Started in
 * this order, so the audit trail is open before anything records to it and the OPC UA server is
 * a sink before the alert stage delivers; closed in reverse by the caller's lifecycle.
 */
import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Alert, Prediction } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import type { Config } from '../config/index.js';
import type { Logger } from '../config/logger.js';
import { AlertStage, type DetectorConfig } from '../alert/index.js';
import type { LlrTable } from '../alert/llr-table.js';
import { loadModelCard, type ModelCard } from '../model/card.js';
import { QualityStage, type QualityEvent } from '../quality/index.js';
import { runInfo, type RunControl, type OpenRun } from '../runs/index.js';
import { KnownCameras } from '../bus/known-cameras.js';
import type { RunEvent } from '../bus/messages.js';
import type { LiveEvent } from '../web/index.js';
import { openAudit, type AuditWiring } from './audit-wiring.js';
import type { AddOptions, Lifecycle } from './lifecycle.js';
import { OpcUaWiring } from './opcua-wiring.js';
import { RunReports } from './report-wiring.js';

export interface MonitorContext {
  config: Config;
  kafka: Kafka;
  topics: Topics;
  registry: Registry;
  dataDir: string;
  modelDir: string;
  runs: RunControl;
  lifecycle: Lifecycle;
  /** The phase the consuming parts close in (together with the other consumers). */
  consumers: AddOptions;
  ready: Record<string, boolean | string>;
  publish: (event: LiveEvent) => void;
  onPrediction?: (prediction: Prediction) => void;
  onAlert?: (alert: Alert) => void;
  logger: Logger;
}

export interface Monitor {
  metrics: QualityStage;
  alerts: AlertStage;
  audit?: AuditWiring;
  opcua?: OpcUaWiring;
  reports?: RunReports;
}

/**
 * The onset detector: k-of-n or CUSUM as configured; a CUSUM uses the clean-score model that
 * `crystalwatch calibrate` fitted for this camera when the model card carries one.
 */
export function detectorFor(config: Config, card: ModelCard | undefined, logger: Logger): DetectorConfig {
  if (config.alert.detector !== 'cusum') return { kind: config.alert.detector };
  if (!card) return { kind: 'cusum' };
  const fitted = card.detector as { kind?: string; threshold?: unknown; llr?: LlrTable } | undefined;
  if (fitted?.kind !== 'cusum' || typeof fitted.threshold !== 'number' || !fitted.llr) return { kind: 'cusum' };
  logger.info(
    { model: `${card.name}@${card.version}`, threshold: fitted.threshold, camera: card.calibration?.camera },
    'onset detector: the clean-score model calibrated for this camera',
  );
  return { kind: 'cusum', threshold: fitted.threshold, llr: fitted.llr };
}

export async function startMonitor(ctx: MonitorContext): Promise<Monitor> {
  const { config, kafka, topics, registry, runs, lifecycle, consumers, ready, logger } = ctx;

  // The card in force, read once for the audit trail and the detector (classify reads its own:
  // it may run in another process). The audit trail must name it; the detector can do without.
  const model = await loadModelCard(ctx.modelDir).catch((err: Error) => {
    if (config.audit.enabled) throw err;
    logger.warn({ modelDir: ctx.modelDir, err: err.message }, 'monitor: cannot read the model card; the onset detector uses its default model');
    return undefined;
  });
  let audit: AuditWiring | undefined;
  if (config.audit.enabled && model) {
    ready.audit = 'opening';
    audit = lifecycle.add('audit', await openAudit({ config, dataDir: ctx.dataDir, model, kafka, logger }));
    ready.audit = true;
  }
  const reports = config.reports.enabled
    ? new RunReports({ kafka, topics, dataDir: ctx.dataDir, pdf: config.reports.pdf, logger, ...(audit ? { audit: audit.trail } : {}) })
    : undefined;

  const metrics = new QualityStage({
    kafka,
    topics,
    registry,
    windows: { frames: config.metrics.windowFrames, seconds: config.metrics.windowSeconds },
    labelHorizonMs: config.metrics.labelHorizonMs,
    cameras: config.cameras.map((c) => c.id),
    maxCameras: config.metrics.maxCameras,
    logger: logger.child({ stage: 'metrics' }),
  });
  let opcua: OpcUaWiring | undefined;
  const runOf = runInfo(registry, new KnownCameras({ cameras: config.cameras.map((c) => c.id), maxCameras: config.metrics.maxCameras }));
  metrics.on('prediction', (prediction: Prediction) => {
    runOf(prediction.camera, prediction.runId);
    ctx.publish({ type: 'prediction', prediction });
    reports?.watch(prediction.runId);
    opcua?.prediction(prediction);
    ctx.onPrediction?.(prediction);
  });
  metrics.on('quality', (quality: QualityEvent) => ctx.publish({ type: 'quality', ...quality }));
  lifecycle.add('metrics', metrics, consumers);
  ready.metrics = 'starting';
  await metrics.start();
  ready.metrics = true;

  const alerts = new AlertStage({
    kafka,
    topics,
    registry,
    detector: detectorFor(config, model?.card, logger),
    resolveAfterCleanFrames: config.alert.resolveAfterCleanFrames,
    sinks: {
      webhooks: config.alert.webhooks,
      alertmanagerUrl: config.alert.alertmanagerUrl,
      actionCommand: config.alert.actionCommand,
      actionUrl: config.alert.actionUrl,
    },
    delivery: { ...config.alert.delivery, deadlineMs: config.alert.delivery.deadlineSeconds * 1000 },
    silentAfterMs: config.alert.silentAfterSeconds * 1000,
    partitions: config.kafka.partitions,
    cameras: config.cameras.map((c) => c.id),
    maxCameras: config.metrics.maxCameras,
    publish: (alert: Alert) => ctx.publish({ type: 'alert', alert }),
    ...(audit ? { onDelivery: audit.onDelivery } : {}),
    logger: logger.child({ stage: 'alert' }),
  });
  alerts.on('alert', (alert: Alert) => {
    opcua?.alert(alert);
    ctx.onAlert?.(alert);
  });
  if (audit) alerts.addSink(audit.sink);

  if (config.opcua.enabled) {
    opcua = new OpcUaWiring(config.opcua, ctx.dataDir, { acknowledge: (id, by, comment) => alerts.acknowledge(id, by, comment), runs: () => runs }, logger);
    alerts.addSink(opcua.sink);
  }

  lifecycle.add('alert', alerts, consumers);
  ready.alert = 'starting';
  await alerts.start();
  ready.alert = true;

  if (opcua) {
    ready.opcua = 'starting';
    lifecycle.add('opcua', opcua, consumers);
    await opcua.start(alerts.list());
    ready.opcua = true;
    logger.info({ endpoint: opcua.server.endpointUrl, security: config.opcua.security }, 'OPC UA server listening');
  }

  runs.on('started', (run: OpenRun, event: RunEvent) => audit?.onRunStarted(run, event));
  runs.on('ended', (run: OpenRun, event: RunEvent) => {
    audit?.onRunEnded(run, event);
    reports?.runEnded(run.runId);
  });
  if (reports) {
    lifecycle.add('reports', reports, consumers);
    await reports.start();
  }
  return { metrics, alerts, ...(audit ? { audit } : {}), ...(opcua ? { opcua } : {}), ...(reports ? { reports } : {}) };
}

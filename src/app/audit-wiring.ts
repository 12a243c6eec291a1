/**
 * What the monitor process records in the audit trail (src/audit): the configuration and model
 * card in force at each start, every alert change as the delivery consumer takes it from the
 * `alerts` topic (so a record is written once the change is durable, and again after a crash
 * only if it was not), each sink's delivery or dead letter, and run starts and ends.
 */
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { Kafka, Producer } from 'kafkajs';
import { AuditTrail, canonicalJson, kafkaAuditMirror, sha256Hex } from '../audit/index.js';
import type { Alert, RunEvent } from '../bus/messages.js';
import { createProducer } from '../bus/kafka.js';
import { maskSecrets, type Config } from '../config/index.js';
import type { Logger } from '../config/logger.js';
import type { ModelCard } from '../model/card.js';
import type { OpenRun } from '../runs/index.js';

type AlertKind = 'firing' | 'resolved' | 'acknowledged';

/** The audit trail as an alert sink: the delivery consumer commits a change only after it is recorded. */
export class AuditAlertSink {
  readonly name = 'audit';
  constructor(
    private readonly trail: AuditTrail,
    readonly target: string,
  ) {}

  wants(): boolean {
    return true;
  }

  async deliver(alert: Alert, kind: AlertKind): Promise<void> {
    const ref = { alertId: alert.id, camera: alert.camera, runId: alert.runId, reason: alert.reason ?? 'pg-onset' };
    if (kind === 'firing') {
      await this.trail.append('alert.fired', {
        ...ref,
        startsAt: alert.startsAt,
        ...(alert.evidence.statistic !== undefined ? { statistic: alert.evidence.statistic } : {}),
        ...(alert.evidence.firstPgFrameId ? { firstPgFrameId: alert.evidence.firstPgFrameId } : {}),
      });
    } else if (kind === 'resolved') {
      await this.trail.append('alert.resolved', { ...ref, endsAt: alert.endsAt ?? new Date().toISOString() });
    } else {
      const who = alert.acknowledgedBy ?? 'unknown';
      await this.trail.append(
        'alert.acknowledged',
        {
          alertId: alert.id,
          who,
          when: alert.acknowledgedAt ?? new Date().toISOString(),
          ...(alert.acknowledgedComment ? { comment: alert.acknowledgedComment } : {}),
          via: who.startsWith('opcua') ? 'opcua' : 'web',
        },
        who,
      );
    }
  }
}

export interface AuditWiring {
  trail: AuditTrail;
  sink: AuditAlertSink;
  /** For AlertOptions.onDelivery. */
  onDelivery(event: { sink: string; outcome: 'delivered' | 'dead-lettered'; alert: Alert; kind: AlertKind }): void;
  onRunStarted(run: OpenRun, event: RunEvent): void;
  onRunEnded(run: OpenRun, event: RunEvent): void;
  close(): Promise<void>;
}

/**
 * Opens the trail in `<dataDir>/audit`, mirrored to the `audit` topic when Kafka is external,
 * and records `config.loaded`.
 */
export async function openAudit(options: {
  config: Config;
  dataDir: string;
  model: { card: ModelCard; dir: string };
  kafka: Kafka;
  logger: Logger;
}): Promise<AuditWiring> {
  const { config, dataDir, kafka, logger } = options;
  let producer: Producer | undefined;
  if (config.kafka.brokers.length > 0) {
    producer = createProducer(kafka);
    await producer.connect();
  }
  const trail = await AuditTrail.open({
    dir: dataDir,
    fsync: config.audit.fsync,
    logger: logger.child({ stage: 'audit' }),
    ...(producer ? { mirror: kafkaAuditMirror(producer, { topic: `${config.kafka.topicPrefix}audit`, key: `${hostname()}/monitor` }) } : {}),
  });
  const { card, dir } = options.model;
  const cardBytes = await readFile(path.join(dir, 'card.json'));
  const modelCardSha256 = sha256Hex(cardBytes);
  // A calibrated card not seen at an earlier start was written by `crystalwatch calibrate` since:
  // the trail records that calibration came into force (the command itself may run elsewhere).
  if (card.calibration?.status === 'calibrated' && !(await cardSeenBefore(trail, modelCardSha256))) {
    await trail.append('calibration.written', {
      ...(card.calibration.camera ? { camera: card.calibration.camera } : {}),
      modelName: card.name,
      modelVersion: card.version,
      modelCardSha256,
    });
  }
  await trail.append('config.loaded', {
    configSha256: sha256Hex(canonicalJson(maskSecrets(config))),
    modelCardSha256,
    modelName: card.name,
    modelVersion: card.version,
    calibrated: card.calibration?.status === 'calibrated',
  });
  const record = (what: string, write: () => Promise<unknown>) => {
    write().catch((err: Error) => logger.error({ err: err.message }, `audit: could not record ${what}`));
  };
  return {
    trail,
    sink: new AuditAlertSink(trail, path.join(dataDir, 'audit')),
    onDelivery: ({ sink, outcome, alert, kind }) => {
      if (sink === 'audit') return;
      if (outcome === 'delivered')
        record('a delivery', () => trail.append('alert.delivered', { alertId: alert.id, sink, ...(kind === 'acknowledged' ? {} : { state: kind }) }));
      else record('a dead letter', () => trail.append('alert.dead-lettered', { alertId: alert.id, sink, reason: `${kind} not delivered by the deadline` }));
    },
    onRunStarted: (run, event) =>
      record('a run start', () =>
        trail.append(
          'run.started',
          { runId: run.runId, ...(run.camera ? { camera: run.camera } : {}), source: event.source === 'shutdown' ? 'api' : event.source },
          event.by,
        ),
      ),
    onRunEnded: (run, event) =>
      record('a run end', () =>
        trail.append('run.ended', { runId: run.runId, ...(run.camera ? { camera: run.camera } : {}), reason: `${event.source} (${event.by})` }, event.by),
      ),
    close: async () => {
      await trail.close();
      await producer?.disconnect().catch(() => undefined);
    },
  };
}

/** Whether an earlier `config.loaded` record named this model card (the trail read in pages, newest last). */
async function cardSeenBefore(trail: AuditTrail, modelCardSha256: string): Promise<boolean> {
  for (let after = 0; ;) {
    const page = await trail.read({ after, limit: 1000 });
    if (page.records.some((r) => r.kind === 'config.loaded' && r.data.modelCardSha256 === modelCardSha256)) return true;
    if (page.next === undefined) return false;
    after = page.next;
  }
}

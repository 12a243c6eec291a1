/**
 * The alert stage's own topics: the `alerts` topic (the outbox) and the state topic next to it
 * (`<prefix>alert-state`: only the latest record per camera-run matters, so it is compacted
 * where the cluster allows it, and kept for STATE_RETENTION_MS), and reading both back at start.
 */
import type { Kafka } from 'kafkajs';
import type { Alert } from '../bus/messages.js';
import { decodeAlert } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import type { Logger } from '../config/logger.js';
import { readToEnd } from './restore.js';
import { decodeRunSnapshot, type RunSnapshot } from './run-snapshot.js';

/** `crystalwatch.alerts` → `crystalwatch.alert-state`. */
export function alertStateTopic(topics: Topics): string {
  return topics.alerts.endsWith('alerts') ? `${topics.alerts.slice(0, -'alerts'.length)}alert-state` : `${topics.alerts}-state`;
}

/**
 * How long the state topic keeps a record: 7 days. A snapshot is written every 10 s per running
 * camera, and restore reads the topic from its start within its timeout, so it must not grow
 * forever (the embedded broker does not compact). A camera-run whose last snapshot is older
 * than this starts its detector afresh after a restart; its firing alerts come back from the
 * `alerts` topic regardless.
 */
export const STATE_RETENTION_MS = 7 * 24 * 3600_000;

/**
 * Creates the topics that are missing. The state topic asks for compaction and deletion after
 * `stateRetentionMs`; a broker that refuses compaction (the embedded one deletes by retention
 * only: age and size) gets the retention alone, and restore then reads every snapshot still
 * retained, keeping the latest per run. A topic that exists keeps its settings.
 */
export async function ensureAlertTopics(
  kafka: Kafka,
  topics: { alerts: string; state: string },
  partitions: number,
  logger: Logger,
  stateRetentionMs = STATE_RETENTION_MS,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const create = async (topic: string, configEntries: { name: string; value: string }[]) => {
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: partitions, replicationFactor: -1, configEntries }] });
    };
    if (!existing.has(topics.alerts)) await create(topics.alerts, []);
    if (!existing.has(topics.state)) {
      const retention = { name: 'retention.ms', value: String(stateRetentionMs) };
      try {
        await create(topics.state, [{ name: 'cleanup.policy', value: 'compact,delete' }, retention]);
      } catch (err) {
        logger.info(
          { topic: topics.state, retentionMs: stateRetentionMs, err: (err as Error).message },
          'broker refused a compacted alert state topic; creating it with age retention only',
        );
        await create(topics.state, [retention]);
      }
    }
  } finally {
    await admin.disconnect();
  }
}

export interface SavedAlertState {
  /** The latest version of every alert on the topic, oldest change first. */
  alerts: Alert[];
  /** The latest snapshot of every camera-run not forgotten. */
  snapshots: RunSnapshot[];
  records: number;
  /** Records that did not decode (skipped). */
  skipped: number;
}

export async function loadAlertState(
  kafka: Kafka,
  topics: { alerts: string; state: string },
  groupPrefix: string,
  timeoutMs?: number,
): Promise<SavedAlertState> {
  const alerts = new Map<string, Alert>();
  const snapshots = new Map<string, RunSnapshot | null>();
  let skipped = 0;
  const records = await readToEnd(
    kafka,
    [topics.alerts, topics.state],
    (topic, _partition, message) => {
      if (topic === topics.alerts) {
        const decoded = decodeAlert(message.value);
        if (!decoded.ok) return void (skipped += 1);
        alerts.delete(decoded.value.id); // re-inserted: the map keeps the order of latest change
        alerts.set(decoded.value.id, decoded.value);
        return;
      }
      const key = message.key?.toString();
      if (!key) return void (skipped += 1);
      if (!message.value || message.value.length === 0) return void snapshots.set(key, null);
      const decoded = decodeRunSnapshot(message.value);
      if (decoded.ok) snapshots.set(key, decoded.value);
      else skipped += 1;
    },
    { groupPrefix, timeoutMs },
  );
  return { alerts: [...alerts.values()], snapshots: [...snapshots.values()].filter((s): s is RunSnapshot => s !== null), records, skipped };
}

/** The alert stage's options (src/alert/stage.ts): its Kafka wiring, detector, sinks, delivery and bounds. */
import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Alert } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import type { Logger } from '../config/logger.js';
import type { AlertChange } from './change.js';
import type { DetectorConfig } from './detector.js';
import type { DeliveryOptions } from './dispatch.js';

export interface AlertSinksOptions {
  /** Ignored: every change is written to the `alerts` topic, which is the outbox the sinks are fed from. */
  topic?: boolean;
  webhooks?: { url: string; secret?: string }[];
  /** Alertmanager base URL (http://host:9093); alerts go to POST /api/v2/alerts. */
  alertmanagerUrl?: string;
  /** Early-stop hook on a firing PG alert: a shell command (alert JSON on stdin, CRYSTALWATCH_* env) ... */
  actionCommand?: string;
  /** ... and/or a URL that gets {"action":"stop-batch","alert":...} POSTed. */
  actionUrl?: string;
}

export interface AlertOptions {
  kafka: Kafka;
  topics: Topics;
  /** Consumer group on `predictions`. Default `crystalwatch-alert`. */
  groupId?: string;
  /** Consumer group of the delivery consumer on `alerts`. Default `<groupId>-delivery`. */
  deliveryGroupId?: string;
  registry: Registry;
  /** Default: CUSUM tuned for one false alarm per 100,000 CEX frames. */
  detector?: DetectorConfig;
  /** Consecutive clean frames (usable, P(PG) below cleanBelow) that resolve a firing alert. Default 50. */
  resolveAfterCleanFrames?: number;
  /** A frame is clean when P(PG) is below this. Default 0.5. */
  cleanBelow?: number;
  sinks?: AlertSinksOptions;
  /**
   * A sink took a change, or it was dead-lettered past its deadline (the audit trail's
   * `alert.delivered` / `alert.dead-lettered`). Called once per sink and change in this process.
   */
  onDelivery?: (event: { sink: string; outcome: 'delivered' | 'dead-lettered'; alert: Alert; kind: AlertChange['kind'] }) => void;
  /** The WebSocket feed, given by the app; called synchronously on every alert change (not durable, not retried). */
  publish?: (event: Alert) => void;
  /** Retries (250 ms doubling to 30 s), the delivery deadline (24 h) and the HTTP timeout per attempt (5 s). */
  delivery?: DeliveryOptions & { timeoutMs?: number };
  /** How often a firing alert is re-sent to Alertmanager (it expires after 5 × this). Default 60 s. */
  alertmanagerResendMs?: number;
  /** A camera whose latest run sent no prediction for this long raises a camera-silent alert; 0 never. Default 0. */
  silentAfterMs?: number;
  /** A camera-run whose state only aged is re-written to the state topic at most this often. Default 10 s. */
  snapshotIntervalMs?: number;
  /** Partitions of the alerts and state topics when the stage creates them. Default 3. */
  partitions?: number;
  /** Read `predictions` from the start when the group has no committed offset. Default true. */
  fromBeginning?: boolean;
  /** Frame ids remembered to drop redelivered predictions. Default 100,000. */
  dedupCapacity?: number;
  /** Cameras with per-camera series (the configured ones; else the first `maxCameras` seen, default 64). */
  cameras?: readonly string[];
  maxCameras?: number;
  /** Camera-runs tracked at once; beyond it the oldest quiet run (no firing alert) is forgotten first. Default 10,000. */
  maxRuns?: number;
  logger?: Logger;
  now?: () => number;
}

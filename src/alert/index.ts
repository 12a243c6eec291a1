/**
 * src/alert: PG onset detection, the alert lifecycle, the outbox on the `alerts` topic, the
 * delivery consumer and its sinks, and camera-silent alerts. See README.md.
 */
export { AlertStage, AlertStageClosedError, type AlertOptions, type AlertSinksOptions } from './stage.js';
export { AlertLifecycle, type LifecycleOptions, type Observation, type RecordPosition } from './lifecycle.js';
export { AlertBook } from './book.js';
export { pgAlertId, silentAlertId, changeKey, reasonOf, type AlertChange, type AlertEventKind, type AlertReason } from './change.js';
export {
  OnsetDetector,
  logLikelihoodRatio,
  cusumThresholdForArl,
  cusumAverageRunLength,
  DEFAULT_CUSUM_MODEL,
  type DetectorConfig,
  type DetectorState,
  type CusumConfig,
  type KOfNConfig,
  type DetectorStep,
} from './detector.js';
export { AlertDispatcher, DeliveryClosedError, type DeliveryOptions, type DispatcherOptions } from './dispatch.js';
export { SinkWorker, type DeliveryOutcome, type DeliveryRecord, type DeadLetterWriter, type SinkWorkerOptions } from './sink-worker.js';
export { AlertDelivery, DELIVERY_STAGE, type AlertDeliveryOptions } from './delivery.js';
export { AlertOutbox, refusedForGood, MAX_REQUEST_BYTES, type OutboxOptions, type OutboxTopics, type DroppableRecord } from './outbox.js';
export { OffsetTracker } from './offset-tracker.js';
export { backoffDelay, checkBackoff, type BackoffOptions } from './backoff.js';
export { WebhookSink, AlertmanagerSink, ActionSink, toAlertmanagerAlert, type AlertSink } from './sinks.js';
export { signWebhook, webhookSignatureProblem, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './signature.js';
export { alertStateTopic, ensureAlertTopics, loadAlertState, STATE_RETENTION_MS, type SavedAlertState } from './state-topic.js';
export { readToEnd } from './restore.js';
export { runKey, encodeRunSnapshot, MAX_SNAPSHOT_BYTES, type RunSnapshot, type StateRecord } from './run-snapshot.js';
export { createAlertMetrics, type AlertMetrics } from './metrics.js';

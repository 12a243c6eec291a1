/** The alert stage's Prometheus metrics, declared once (see src/quality/metrics.ts for the rules). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { once } from '../config/prometheus.js';
import { deadLetterCounter, duplicatePredictionsCounter } from '../bus/metrics.js';

export function createAlertMetrics(registry: Registry) {
  const registers = [registry];
  return {
    alarm: once(
      registry,
      'crystalwatch_alarm',
      () =>
        new Gauge({
          name: 'crystalwatch_alarm',
          help: 'PG onset alarm per camera: 1 while an alert of any run of that camera fires, 0 otherwise.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    alerts: once(
      registry,
      'crystalwatch_alerts_total',
      () =>
        new Counter({
          name: 'crystalwatch_alerts_total',
          help: 'PG onset alerts fired, per camera.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    deliveries: once(
      registry,
      'crystalwatch_alert_deliveries_total',
      () =>
        new Counter({
          name: 'crystalwatch_alert_deliveries_total',
          help: 'Alert delivery attempts by sink (webhook, alertmanager, action, websocket, listener) and outcome: delivered, retried (an attempt failed, another follows), dead-lettered (not taken within the delivery deadline), failed (the websocket callback or an in-process alert listener threw).',
          labelNames: ['sink', 'outcome'] as const,
          registers,
        }),
    ),
    queued: once(
      registry,
      'crystalwatch_alert_deliveries_queued',
      () =>
        new Gauge({
          name: 'crystalwatch_alert_deliveries_queued',
          help: 'Alert changes waiting for a sink (or being retried), by sink.',
          labelNames: ['sink'] as const,
          registers,
        }),
    ),
    silent: once(
      registry,
      'crystalwatch_camera_silent',
      () =>
        new Gauge({
          name: 'crystalwatch_camera_silent',
          help: 'Camera-silent alarm per camera: 1 while its running camera sent no prediction for alert.silentAfterSeconds, 0 otherwise.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    silentAlerts: once(
      registry,
      'crystalwatch_camera_silent_alerts_total',
      () =>
        new Counter({
          name: 'crystalwatch_camera_silent_alerts_total',
          help: 'Camera-silent alerts fired, per camera.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    outboxPending: once(
      registry,
      'crystalwatch_alert_outbox_pending',
      () =>
        new Gauge({
          name: 'crystalwatch_alert_outbox_pending',
          help: 'Alert changes and state records not yet written to Kafka (above 0 for long: Kafka refuses the writes).',
          registers,
        }),
    ),
    outboxDropped: once(
      registry,
      'crystalwatch_alert_outbox_dropped_total',
      () =>
        new Counter({
          name: 'crystalwatch_alert_outbox_dropped_total',
          help: 'State records and dead letters Kafka refused for good (reason: the Kafka error, e.g. MESSAGE_TOO_LARGE, TOPIC_AUTHORIZATION_FAILED) and the outbox dropped so that later alerts are not held back. Alert changes are never dropped.',
          labelNames: ['kind', 'reason'] as const,
          registers,
        }),
    ),
    predictionToAlert: once(
      registry,
      'crystalwatch_prediction_to_alert_seconds',
      () =>
        new Histogram({
          name: 'crystalwatch_prediction_to_alert_seconds',
          help: 'From the tripping prediction being produced (its Kafka record timestamp) to the alert being emitted.',
          buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
          registers,
        }),
    ),
    duplicates: duplicatePredictionsCounter(registry),
    deadLetter: deadLetterCounter(registry),
  };
}

export type AlertMetrics = ReturnType<typeof createAlertMetrics>;

/**
 * The metrics stage's Prometheus metrics, declared once. Every gauge whose value can be
 * undefined (precision with no PG predicted, ...) is *removed* for that label set rather
 * than set to NaN, 0 or 1: a Grafana stat panel then shows "No data", and PromQL
 * comparisons (alert rules) simply have no sample. See src/quality/README.md.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { once } from '../config/prometheus.js';
import { deadLetterCounter, duplicatePredictionsCounter } from '../bus/metrics.js';

export function createQualityMetrics(registry: Registry) {
  const registers = [registry];
  return {
    confusion: once(
      registry,
      'crystalwatch_confusion_total',
      () =>
        new Counter({
          name: 'crystalwatch_confusion_total',
          help: 'Labelled frames by ground truth (actual) and model decision (predicted); PG is the positive class. Any window is increase() of these cells.',
          labelNames: ['camera', 'actual', 'predicted'] as const,
          registers,
        }),
    ),
    precision: once(
      registry,
      'crystalwatch_rolling_precision',
      () =>
        new Gauge({
          name: 'crystalwatch_rolling_precision',
          help: 'PG precision tp/(tp+fp) over the in-process rolling window (window="500f": last 500 labelled frames, "300s": labelled in the last 300 s). Absent when undefined.',
          labelNames: ['camera', 'window'] as const,
          registers,
        }),
    ),
    recall: once(
      registry,
      'crystalwatch_rolling_recall',
      () =>
        new Gauge({
          name: 'crystalwatch_rolling_recall',
          help: 'PG recall tp/(tp+fn) over the rolling window. Absent when no labelled PG frame is in the window.',
          labelNames: ['camera', 'window'] as const,
          registers,
        }),
    ),
    f1: once(
      registry,
      'crystalwatch_rolling_f1',
      () =>
        new Gauge({
          name: 'crystalwatch_rolling_f1',
          help: 'PG F1 2tp/(2tp+fp+fn) over the rolling window. Absent when the window holds no positive (actual or predicted).',
          labelNames: ['camera', 'window'] as const,
          registers,
        }),
    ),
    accuracy: once(
      registry,
      'crystalwatch_rolling_accuracy',
      () =>
        new Gauge({
          name: 'crystalwatch_rolling_accuracy',
          help: 'Accuracy (tp+tn)/support over the rolling window. Absent when the window is empty.',
          labelNames: ['camera', 'window'] as const,
          registers,
        }),
    ),
    support: once(
      registry,
      'crystalwatch_rolling_support_frames',
      () =>
        new Gauge({
          name: 'crystalwatch_rolling_support_frames',
          help: 'Labelled, usable frames in the rolling window (how much the rolling figures rest on).',
          labelNames: ['camera', 'window'] as const,
          registers,
        }),
    ),
    ppg: once(
      registry,
      'crystalwatch_ppg',
      () =>
        new Gauge({
          name: 'crystalwatch_ppg',
          help: 'Latest P(PG) of a usable frame, per camera.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    ppgSmoothed: once(
      registry,
      'crystalwatch_ppg_smoothed',
      () =>
        new Gauge({
          name: 'crystalwatch_ppg_smoothed',
          help: 'Exponentially smoothed P(PG) of usable frames, per camera (weight of the newest frame: see QualityOptions.smoothing).',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    pgFrames: once(
      registry,
      'crystalwatch_pg_frames_total',
      () =>
        new Counter({
          name: 'crystalwatch_pg_frames_total',
          help: 'Frames the model called PG, per camera.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    fileToPrediction: once(
      registry,
      'crystalwatch_file_to_prediction_seconds',
      () =>
        new Histogram({
          name: 'crystalwatch_file_to_prediction_seconds',
          help: 'From the image file being complete in the drop folder (ingestedAt) to its prediction being consumed by the metrics stage.',
          labelNames: ['camera'] as const,
          buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
          registers,
        }),
    ),
    lastFrame: once(
      registry,
      'crystalwatch_last_frame_timestamp_seconds',
      () =>
        new Gauge({
          name: 'crystalwatch_last_frame_timestamp_seconds',
          help: 'Unix time at which the metrics stage consumed the newest prediction of a camera (wall clock, so camera clock skew cannot fake a stall).',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    unusableRatio: once(
      registry,
      'crystalwatch_unusable_ratio',
      () =>
        new Gauge({
          name: 'crystalwatch_unusable_ratio',
          help: 'Fraction of unusable frames among the last N predictions of a camera (N = the frame window).',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    joined: once(
      registry,
      'crystalwatch_labels_joined_total',
      () =>
        new Counter({
          name: 'crystalwatch_labels_joined_total',
          help: 'Predictions joined with ground truth, by where the label came from (header, frame, span).',
          labelNames: ['source'] as const,
          registers,
        }),
    ),
    unlabelled: once(
      registry,
      'crystalwatch_labels_missed_total',
      () =>
        new Counter({
          name: 'crystalwatch_labels_missed_total',
          help: 'Predictions that left the label join without a label: horizon (waited too long) or overflow (too many waiting).',
          labelNames: ['reason'] as const,
          registers,
        }),
    ),
    pending: once(
      registry,
      'crystalwatch_labels_pending_predictions',
      () =>
        new Gauge({
          name: 'crystalwatch_labels_pending_predictions',
          help: 'Predictions waiting for a label within the label horizon.',
          registers,
        }),
    ),
    duplicates: duplicatePredictionsCounter(registry),
    deadLetter: deadLetterCounter(registry),
  };
}

export type QualityMetrics = ReturnType<typeof createQualityMetrics>;

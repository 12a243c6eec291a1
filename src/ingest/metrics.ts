/** The ingest stage's metrics, declared once. Several stages may share one registry. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { once } from '../config/prometheus.js';

export interface IngestMetrics {
  ingested: Counter<'camera'>;
  rejected: Counter<'camera' | 'reason'>;
  latency: Histogram<'camera'>;
  reconciled: Counter<'camera'>;
  sendErrors: Counter<'camera'>;
  inFlightBytes: Gauge;
}

export function ingestMetrics(registry: Registry): IngestMetrics {
  const registers = [registry];
  return {
    ingested: once(
      registry,
      'crystalwatch_frames_ingested_total',
      () =>
        new Counter({
          name: 'crystalwatch_frames_ingested_total',
          help: 'Frames read from a camera folder and acknowledged by Kafka on the frames topic.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    rejected: once(
      registry,
      'crystalwatch_frames_rejected_total',
      () =>
        new Counter({
          name: 'crystalwatch_frames_rejected_total',
          help: 'Files moved to the quarantine folder instead of being ingested, by reason (empty, truncated, corrupt, not-an-image, too-large, dimensions, symlink, unreadable, bad-sidecar).',
          labelNames: ['camera', 'reason'] as const,
          registers,
        }),
    ),
    latency: once(
      registry,
      'crystalwatch_ingest_seconds',
      () =>
        new Histogram({
          name: 'crystalwatch_ingest_seconds',
          help: 'Time from a frame file being complete on disk to Kafka acknowledging it.',
          labelNames: ['camera'] as const,
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
          registers,
        }),
    ),
    reconciled: once(
      registry,
      'crystalwatch_ingest_reconciled_total',
      () =>
        new Counter({
          name: 'crystalwatch_ingest_reconciled_total',
          help: 'Files found by the periodic folder scan that no watcher event had reported (a sign of inotify overflow).',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    sendErrors: once(
      registry,
      'crystalwatch_ingest_send_errors_total',
      () =>
        new Counter({
          name: 'crystalwatch_ingest_send_errors_total',
          help: 'Produce requests to the frames topic that failed and were retried after a backoff.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    inFlightBytes: once(
      registry,
      'crystalwatch_ingest_in_flight_bytes',
      () =>
        new Gauge({
          name: 'crystalwatch_ingest_in_flight_bytes',
          help: 'Bytes of frames read but not yet acknowledged by Kafka; bounded by maxInFlightBytes.',
          registers,
        }),
    ),
  };
}

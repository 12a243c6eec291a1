/** The classify stage's metrics, declared once. Several stages may share one registry. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { once } from '../config/prometheus.js';
import { deadLetterCounter } from '../bus/metrics.js';

export interface ClassifyMetrics {
  inference: Histogram<'backend' | 'device'>;
  batchSize: Histogram;
  classified: Counter<'camera' | 'predicted'>;
  unusable: Counter<'camera' | 'reason'>;
  backendInfo: Gauge<'backend' | 'device'>;
  modelInfo: Gauge<'model' | 'version' | 'calibration'>;
  deadLetter: Counter<'stage' | 'reason'>;
  lag: Gauge<'group' | 'topic'>;
  skipped: Counter<'camera' | 'reason'>;
  caughtUp: Counter<'camera'>;
  catchUpPending: Gauge;
}

export function classifyMetrics(registry: Registry): ClassifyMetrics {
  const registers = [registry];
  return {
    inference: once(
      registry,
      'crystalwatch_inference_seconds',
      () =>
        new Histogram({
          name: 'crystalwatch_inference_seconds',
          help: 'Time of one inference call (one batch of crops or tiles) in the engine, by backend and device.',
          labelNames: ['backend', 'device'] as const,
          buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
          registers,
        }),
    ),
    batchSize: once(
      registry,
      'crystalwatch_batch_size',
      () =>
        new Histogram({
          name: 'crystalwatch_batch_size',
          help: 'Images (crops or tiles) per inference call, after micro-batching across messages and partitions.',
          buckets: [1, 2, 4, 8, 16, 32, 64, 128],
          registers,
        }),
    ),
    classified: once(
      registry,
      'crystalwatch_frames_classified_total',
      () =>
        new Counter({
          name: 'crystalwatch_frames_classified_total',
          help: 'Frames for which a prediction was produced, by camera and predicted class (cex, pg, unusable).',
          labelNames: ['camera', 'predicted'] as const,
          registers,
        }),
    ),
    unusable: once(
      registry,
      'crystalwatch_frames_unusable_total',
      () =>
        new Counter({
          name: 'crystalwatch_frames_unusable_total',
          help: 'Frames the quality gate or the out-of-distribution check kept from the model, by reason (black, saturated, blank, out-of-focus, out-of-distribution).',
          labelNames: ['camera', 'reason'] as const,
          registers,
        }),
    ),
    backendInfo: once(
      registry,
      'crystalwatch_backend_info',
      () =>
        new Gauge({
          name: 'crystalwatch_backend_info',
          help: 'The inference engine in use (value 1): backend onnx|tfjs, device cpu|cuda|tensorrt|webgpu|wasm|...',
          labelNames: ['backend', 'device'] as const,
          registers,
        }),
    ),
    modelInfo: once(
      registry,
      'crystalwatch_model_info',
      () =>
        new Gauge({
          name: 'crystalwatch_model_info',
          help: 'The model in use (value 1): its name, card version and calibration (uncalibrated: fitted on the simulator, not on this camera; calibrated: fitted by crystalwatch calibrate).',
          labelNames: ['model', 'version', 'calibration'] as const,
          registers,
        }),
    ),
    deadLetter: deadLetterCounter(registry),
    lag: once(
      registry,
      'crystalwatch_consumer_lag_messages',
      () =>
        new Gauge({
          name: 'crystalwatch_consumer_lag_messages',
          help: 'Records on the topic not yet processed by the consumer group (high watermark minus next offset, summed over the partitions this process holds).',
          labelNames: ['group', 'topic'] as const,
          registers,
        }),
    ),
    skipped: once(
      registry,
      'crystalwatch_frames_skipped_total',
      () =>
        new Counter({
          name: 'crystalwatch_frames_skipped_total',
          help: 'Frames not classified in time under overload (classify.overload), by camera and reason (stale: older than maxFrameAgeMs with a newer frame of the camera in hand). They stay in Kafka; under newest-first they are classified later (crystalwatch_frames_caught_up_total).',
          labelNames: ['camera', 'reason'] as const,
          registers,
        }),
    ),
    caughtUp: once(
      registry,
      'crystalwatch_frames_caught_up_total',
      () =>
        new Counter({
          name: 'crystalwatch_frames_caught_up_total',
          help: 'Skipped frames classified later, once the stage had nothing newer to do (policy newest-first); their predictions are marked late.',
          labelNames: ['camera'] as const,
          registers,
        }),
    ),
    catchUpPending: once(
      registry,
      'crystalwatch_frames_catch_up_pending',
      () =>
        new Gauge({
          name: 'crystalwatch_frames_catch_up_pending',
          help: 'Skipped frames this process still means to classify when idle (newest-first; the commit stays before the oldest, so a restart re-delivers them).',
          registers,
        }),
    ),
  };
}

/**
 * The quality-metrics stage: consumes `predictions` and `labels`, joins them, and keeps per camera
 * a rolling confusion matrix over the last N labelled frames and over the last T seconds,
 * published as prom-client metrics on the registry it is given and as 'quality' events.
 *
 * Events: 'prediction' (Prediction, each new frame once), 'quality' (QualityEvent, after
 * every change of a camera's window).
 */
import type { Consumer, Kafka, KafkaMessage, Producer } from 'kafkajs';
import type { Registry } from 'prom-client';
import { createConsumer, createProducer } from '../bus/kafka.js';
import { deadLetterRecord, type DeadLetterLimits } from '../bus/dead-letter.js';
import { KnownCameras, unknownCameraCounter } from '../bus/known-cameras.js';
import { decodeLabel, decodePrediction, type Label, type LabelMessage, type Prediction, type QualityEvent } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import { DEFAULT_LABEL_HORIZON_MS, DEFAULT_WINDOW_FRAMES, DEFAULT_WINDOW_SECONDS } from '../config/defaults.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { StageLifecycle } from '../config/stage-lifecycle.js';
import { LabelJoin, type DropReason, type JoinedPrediction } from './join.js';
import { createQualityMetrics, type QualityMetrics } from './metrics.js';
import { RollingConfusion, RollingRatio, type QualityFigures } from './rolling.js';
import { RecentKeys } from '../bus/recent-keys.js';

export { RecentKeys } from '../bus/recent-keys.js';
export { RollingConfusion, RollingRatio, figuresFrom, type QualityFigures, type Outcome, type ConfusionCounts } from './rolling.js';
export { LabelJoin, type JoinedPrediction, type LabelSource, type DropReason } from './join.js';
export { createQualityMetrics, type QualityMetrics } from './metrics.js';

export interface QualityOptions {
  kafka: Kafka;
  topics: Topics;
  groupId?: string;
  registry: Registry;
  /** Rolling windows: the last `frames` labelled frames and the frames labelled in the last `seconds`. Default 500 and 300 (config `metrics.windowFrames`, `metrics.windowSeconds`). */
  windows?: { frames: number; seconds: number };
  /** How long a prediction waits for a label, and a label for its prediction. Default 6 h. */
  labelHorizonMs?: number;
  /** Most predictions (and early labels) waiting at once. Default 100,000. */
  maxPending?: number;
  /** Weight of the newest frame in crystalwatch_ppg_smoothed (EWMA), in (0,1]. Default 0.2. */
  smoothing?: number;
  /** Frame ids remembered to drop redelivered predictions. Default 100,000. */
  dedupCapacity?: number;
  /** Read the topics from the start when the group has no committed offset. Default true. */
  fromBeginning?: boolean;
  /**
   * The configured camera ids: only these get per-camera series. Without them, the first
   * `maxCameras` ids seen do (default 64). Predictions of other cameras are counted in
   * `crystalwatch_unknown_camera_total{stage="metrics"}` and otherwise ignored.
   */
  cameras?: readonly string[];
  maxCameras?: number;
  /** Largest record expected on `predictions`/`labels` (consumer fetch sizes). Default 1 MiB. */
  maxMessageBytes?: number;
  /** Size bounds of the records written to `dead-letter`. */
  deadLetter?: DeadLetterLimits;
  logger?: Logger;
  /** Clock (ms since the epoch); tests pass their own. */
  now?: () => number;
}

export type { QualityEvent };

export interface QualitySnapshot extends QualityFigures {
  camera: string;
  window: string;
}

interface CameraState {
  byFrames: RollingConfusion;
  bySeconds: RollingConfusion;
  unusable: RollingRatio;
  smoothed: number | null;
  /** Support of the time window when last published, to publish again only on change. */
  lastSecondsSupport: number;
}

const STAGE = 'metrics';

export class QualityStage extends StageLifecycle {
  readonly metrics: QualityMetrics;
  private readonly windows: { frames: number; seconds: number };
  private readonly join: LabelJoin;
  private readonly seen: RecentKeys;
  private readonly cameras = new Map<string, CameraState>();
  private readonly known: KnownCameras;
  private readonly unknownCameras: ReturnType<typeof unknownCameraCounter>;
  private unknownLogged = false;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly smoothing: number;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: QualityOptions) {
    super({ stage: STAGE });
    this.windows = options.windows ?? { frames: DEFAULT_WINDOW_FRAMES, seconds: DEFAULT_WINDOW_SECONDS };
    if (!Number.isInteger(this.windows.frames) || this.windows.frames < 1)
      throw new RangeError(`metrics: windows.frames must be a positive integer, got ${this.windows.frames}`);
    if (!(this.windows.seconds > 0)) throw new RangeError(`metrics: windows.seconds must be a positive number, got ${this.windows.seconds}`);
    this.smoothing = options.smoothing ?? 0.2;
    if (!(this.smoothing > 0 && this.smoothing <= 1)) throw new RangeError(`metrics: smoothing must be in (0, 1], got ${this.smoothing}`);
    this.logger = (options.logger ?? silentLogger).child({ stage: STAGE });
    this.now = options.now ?? Date.now;
    this.metrics = createQualityMetrics(options.registry);
    this.seen = new RecentKeys(options.dedupCapacity ?? 100_000);
    this.known = new KnownCameras({ cameras: options.cameras, maxCameras: options.maxCameras });
    this.unknownCameras = unknownCameraCounter(options.registry);
    this.unknownCameras.inc({ stage: STAGE }, 0);
    this.join = new LabelJoin({
      horizonMs: options.labelHorizonMs ?? DEFAULT_LABEL_HORIZON_MS,
      maxPending: options.maxPending ?? 100_000,
      onDrop: (p, reason) => this.onDrop(p, reason),
    });
  }

  get frameWindow(): string {
    return `${this.windows.frames}f`;
  }

  get timeWindow(): string {
    return `${this.windows.seconds}s`;
  }

  /** Connects to Kafka and starts consuming; start() resolves once the consumer runs (StageLifecycle: a failure here closes the stage). */
  protected async open(): Promise<void> {
    const { kafka, topics } = this.options;
    this.producer = createProducer(kafka);
    await this.producer.connect();
    this.throwIfClosed('start()');
    this.consumer = createConsumer(kafka, this.options.groupId ?? 'crystalwatch-metrics', { maxMessageBytes: this.options.maxMessageBytes ?? 1024 * 1024 });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [topics.predictions, topics.labels], fromBeginning: this.options.fromBeginning ?? true });
    this.throwIfClosed('start()');
    await this.consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        if (topic === topics.predictions) {
          const decoded = decodePrediction(message.value);
          if (decoded.ok) this.observePrediction(decoded.value);
          else await this.deadLetter(topic, partition, message, decoded.reason, 'invalid-prediction');
        } else {
          const decoded = decodeLabel(message.value);
          if (decoded.ok) this.observeLabel(decoded.value);
          else await this.deadLetter(topic, partition, message, decoded.reason, 'invalid-label');
        }
      },
    });
    // Time windows age out even when no label arrives; the timer must not keep the process alive.
    this.sweepTimer = setInterval(() => this.sweep(), 1000);
    this.sweepTimer.unref();
    this.logger.info({ windows: this.windows, topics: [topics.predictions, topics.labels] }, 'metrics stage consuming');
  }

  /** The sweep timer, then the consumer, then the producer. */
  protected async shut(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    await this.consumer?.disconnect().catch((err: Error) => this.logger.warn({ err }, 'metrics consumer disconnect failed'));
    await this.producer?.disconnect().catch((err: Error) => this.logger.warn({ err }, 'metrics producer disconnect failed'));
  }

  /** Handles one prediction (what the consumer does per record); public for in-process use and tests. */
  observePrediction(prediction: Prediction): void {
    if (!this.admit(prediction.camera)) return;
    if (!this.seen.add(prediction.frameId)) {
      this.metrics.duplicates.inc({ stage: STAGE });
      return;
    }
    const now = this.now();
    const { camera } = prediction;
    const state = this.camera(camera);
    const m = this.metrics;
    // A late prediction (caught up under overload) is an old frame: it counts for precision and
    // recall, but not for the camera's live state, nor for the file → prediction latency of the line.
    const live = prediction.late !== true;
    if (live) m.lastFrame.set({ camera }, now / 1000);
    if (live && prediction.ingestedAt !== undefined) m.fileToPrediction.observe({ camera }, Math.max(0, now - prediction.ingestedAt) / 1000);
    state.unusable.add(prediction.predicted === 'unusable');
    m.unusableRatio.set({ camera }, state.unusable.ratio ?? 0);
    if (live && prediction.pPG !== null && prediction.predicted !== 'unusable') {
      state.smoothed = state.smoothed === null ? prediction.pPG : state.smoothed + this.smoothing * (prediction.pPG - state.smoothed);
      m.ppg.set({ camera }, prediction.pPG);
      m.ppgSmoothed.set({ camera }, state.smoothed);
    }
    if (prediction.predicted === 'pg') m.pgFrames.inc({ camera });
    this.emit('prediction', prediction);
    const joined = this.join.addPrediction(prediction, now);
    if (joined) this.record([joined], now);
    m.pending.set(this.join.pendingCount);
  }

  /** Handles one label message. */
  observeLabel(label: LabelMessage): void {
    if ('camera' in label && !this.admit(label.camera)) return;
    const now = this.now();
    const joined = this.join.addLabel(label, now);
    if (joined.length > 0) this.record(joined, now);
    this.metrics.pending.set(this.join.pendingCount);
  }

  /** The current figures of every camera and window (undefined figures are null). */
  snapshot(): QualitySnapshot[] {
    const now = this.now();
    const out: QualitySnapshot[] = [];
    for (const [camera, state] of [...this.cameras].sort(([a], [b]) => a.localeCompare(b))) {
      out.push({ camera, window: this.frameWindow, ...state.byFrames.figures() });
      out.push({ camera, window: this.timeWindow, ...state.bySeconds.figures(now) });
    }
    return out;
  }

  /** Ages the time windows and label waiting room out; run every second by start(). */
  sweep(): void {
    const now = this.now();
    this.join.expire(now);
    this.metrics.pending.set(this.join.pendingCount);
    for (const [camera, state] of this.cameras) {
      const figures = state.bySeconds.figures(now);
      if (figures.support !== state.lastSecondsSupport) this.publish(camera, this.timeWindow, figures, state);
    }
  }

  private record(joined: JoinedPrediction[], now: number): void {
    const touched = new Set<string>();
    for (const { prediction, label, source } of joined) {
      this.metrics.joined.inc({ source });
      this.metrics.confusion.inc({ camera: prediction.camera, actual: label, predicted: prediction.predicted });
      if (prediction.predicted === 'unusable') continue;
      const state = this.camera(prediction.camera);
      const outcome = { actual: label, predicted: prediction.predicted as Label, atMs: now };
      state.byFrames.add(outcome);
      state.bySeconds.add(outcome);
      touched.add(prediction.camera);
    }
    for (const camera of touched) {
      const state = this.camera(camera);
      this.publish(camera, this.frameWindow, state.byFrames.figures(), state);
      this.publish(camera, this.timeWindow, state.bySeconds.figures(now), state);
    }
  }

  private publish(camera: string, window: string, f: QualityFigures, state: CameraState): void {
    if (window === this.timeWindow) state.lastSecondsSupport = f.support;
    const labels = { camera, window };
    const m = this.metrics;
    // Undefined → the series is removed (Grafana: "No data"; PromQL: no sample), never NaN/0/1.
    const set = (gauge: QualityMetrics['precision'], value: number | null) => (value === null ? gauge.remove(labels) : gauge.set(labels, value));
    set(m.precision, f.precision);
    set(m.recall, f.recall);
    set(m.f1, f.f1);
    set(m.accuracy, f.accuracy);
    m.support.set(labels, f.support);
    const event: QualityEvent = { camera, window, precision: f.precision, recall: f.recall, f1: f.f1, accuracy: f.accuracy, support: f.support };
    this.emit('quality', event);
  }

  private camera(camera: string): CameraState {
    let state = this.cameras.get(camera);
    if (!state) {
      state = {
        byFrames: new RollingConfusion({ maxFrames: this.windows.frames }),
        bySeconds: new RollingConfusion({ maxAgeMs: this.windows.seconds * 1000 }),
        unusable: new RollingRatio(this.windows.frames),
        smoothed: null,
        lastSecondsSupport: 0,
      };
      this.cameras.set(camera, state);
      // Every cell starts at 0 so that increase() over the first window counts the first frames.
      for (const actual of ['cex', 'pg'] as const) {
        for (const predicted of ['cex', 'pg', 'unusable'] as const) this.metrics.confusion.inc({ camera, actual, predicted }, 0);
      }
      this.metrics.pgFrames.inc({ camera }, 0);
    }
    return state;
  }

  /** Whether a camera gets its own series; an unknown one is counted and its record ignored. */
  private admit(camera: string): boolean {
    if (this.known.admit(camera)) return true;
    this.unknownCameras.inc({ stage: STAGE });
    if (!this.unknownLogged) {
      // Once per process: a flood of made-up ids must not flood the log either.
      this.unknownLogged = true;
      this.logger.warn(
        { camera, admitted: this.known.describe() },
        'records of unknown cameras are counted in crystalwatch_unknown_camera_total and otherwise ignored; list the camera in `cameras` or raise metrics.maxCameras',
      );
    }
    return false;
  }

  private onDrop(prediction: Prediction, reason: DropReason): void {
    this.metrics.unlabelled.inc({ reason });
    if (reason === 'overflow') this.logger.debug({ frameId: prediction.frameId }, 'label join full: oldest unlabelled prediction dropped');
  }

  private async deadLetter(sourceTopic: string, partition: number, message: KafkaMessage, reason: string, reasonLabel: string): Promise<void> {
    this.metrics.deadLetter.inc({ stage: STAGE, reason: reasonLabel });
    this.logger.warn({ sourceTopic, partition, offset: message.offset, reason }, 'malformed message sent to dead-letter');
    const letter = deadLetterRecord(
      {
        sourceTopic,
        partition,
        offset: message.offset,
        reason,
        stage: STAGE,
        key: message.key,
        value: message.value,
        headers: message.headers,
        at: new Date(this.now()),
      },
      this.options.deadLetter,
    );
    try {
      await this.producer?.send({ topic: this.options.topics.deadLetter, messages: [letter] });
    } catch (err) {
      // A dead-letter topic that is down must not stall the quality metrics: log and go on.
      this.logger.error({ err, sourceTopic, offset: message.offset }, 'could not write to dead-letter; the malformed message is skipped');
    }
  }
}

/**
 * The classify stage: consumes `frames` as a consumer group, classifies every frame, produces
 * one record per frame to `predictions` (or `dead-letter`), then commits the offset — at least
 * once: after a crash a frame may be predicted twice, never zero times; consumers de-duplicate
 * by `frameId`.
 *
 *   const stage = new ClassifyStage({ kafka, topics, modelDir: 'models/default', registry });
 *   await stage.start();   // stage.info → { backend: 'onnx', device: 'cpu', model: 'default@1.0.0' }
 *   ...
 *   await stage.close();
 */
import type { Kafka, Consumer, Producer, KafkaMessage, Message } from 'kafkajs';
import type { Counter, Registry } from 'prom-client';
import { KnownCameras, unknownCameraCounter } from '../bus/known-cameras.js';
import type { Topics } from '../bus/topics.js';
import { CONSUMER_MAX_WAIT_MS, createProducer, sendBatched } from '../bus/kafka.js';
import { decodeFrameHeaders, encodeJson, type FrameHeaders, type Prediction } from '../bus/messages.js';
import { DEFAULT_DEAD_LETTER_MAX_BYTES, deadLetterRecord } from '../bus/dead-letter.js';
import { DEFAULT_BACKEND, DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_BATCH_WAIT_MS } from '../config/defaults.js';
import { fetchBounds, type FetchConfig } from '../config/overload.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { StageLifecycle } from '../config/stage-lifecycle.js';
import { Classifier, type ClassifyResult, type TilingOption } from './classifier.js';
import type { BackendChoice } from './backends/index.js';
import type { ModelCard } from '../model/card.js';
import { MicroBatcher } from './batcher.js';
import { classifyMetrics, type ClassifyMetrics } from './metrics.js';
import type { QualityThresholds } from './quality.js';
import type { ProbeThresholds } from './probe-gate.js';
import { contentHash, FrozenDetector, type FrozenOptions } from './frozen.js';
import { OverloadController, type OverloadOptions } from './overload.js';

export { Classifier, type ClassifyResult, type ClassifierOptions, type TilingOption } from './classifier.js';
export { classifyMetrics, type ClassifyMetrics } from './metrics.js';
export { FrozenDetector, DEFAULT_FROZEN_REPEATS, type FrozenOptions } from './frozen.js';
export { UNUSABLE_REASONS, type UnusableReason } from './reasons.js';
export { OverloadController, staleFrames, type OverloadOptions, type OverloadPolicy } from './overload.js';

export const DEFAULT_GROUP_ID = 'crystalwatch-classify';

export interface ClassifyOptions {
  kafka: Kafka;
  topics: Topics;
  groupId?: string;
  modelDir: string;
  /** Default DEFAULT_BACKEND (`auto`), as config `classify.backend`. */
  backend?: BackendChoice;
  /** Images per inference call (default DEFAULT_MAX_BATCH_SIZE, 32, as config `classify.maxBatchSize`). */
  maxBatchSize?: number;
  /** Longest wait for a batch to fill before it runs anyway (default DEFAULT_MAX_BATCH_WAIT_MS, 10 ms, as config `classify.maxBatchWaitMs`). */
  maxBatchWaitMs?: number;
  /** `auto` (default): tile frames over 2× the tile size; `off`: always whole-image. */
  tiling?: TilingOption;
  registry: Registry;
  logger?: Logger;
  /** Decompression-bomb guard (default 40 Mpx). */
  maxPixels?: number;
  quality?: Partial<QualityThresholds>;
  /** Bounds of the "is it a probe image" check (probe-gate.ts); false turns it off. */
  probe?: Partial<ProbeThresholds> | false;
  /** Largest frame record expected: a fetch response is never smaller. */
  maxMessageBytes?: number;
  /** Under overload (config `classify.overload`): policy `newest-first` (default) | `in-order` | `skip`, `maxFrameAgeMs`, `maxCatchUpFrames`. */
  overload?: OverloadOptions;
  /** Fetch and queue bounds (config `classify.fetch`), each left out derived from `frameBytes` (src/config/overload.ts `fetchBounds`). */
  fetch?: Partial<FetchConfig>;
  /** Test seam: awaited before every inference call with its image count (a deliberately slow classifier). */
  beforeInference?: (images: number) => Promise<void>;
  /** Read `frames` from the start when the group has no committed offset (default true). */
  fromBeginning?: boolean;
  /** Partitions processed at once, batched together (default 8). */
  partitionsConsumedConcurrently?: number;
  /**
   * Frozen cameras: the same image `repeats` times in a row from one camera is `unusable` /
   * `frozen` from that copy on (default 5 repeats); false turns the check off.
   */
  frozen?: FrozenOptions | false;
  /** Cameras whose frames get per-camera series (the configured ones; else the first `maxCameras` seen). */
  cameras?: readonly string[];
  maxCameras?: number;
}

const STAGE = 'classify';

export class ClassifyStage extends StageLifecycle {
  private readonly known: KnownCameras;
  private calibration: NonNullable<Prediction['calibration']> = { status: 'uncalibrated' };
  private readonly unknownCameras: Counter<'stage'>;
  private classifier?: Classifier;
  private batcher?: MicroBatcher;
  private consumer?: Consumer;
  private producer?: Producer;
  private readonly metrics: ClassifyMetrics;
  private readonly logger: Logger;
  private readonly groupId: string;
  private readonly lagByPartition = new Map<number, number>();
  private readonly frozen?: FrozenDetector;
  private readonly overload: OverloadController;
  /** Cameras whose overload series exist (at 0 from their first frame). */
  private readonly overloadSeries = new Set<string>();
  /** Frames predicted (or dead-lettered) by this process; skipped under overload, and of those caught up later. */
  readonly stats = { predicted: 0, unusable: 0, deadLettered: 0, skipped: 0, caughtUp: 0 };

  constructor(private readonly o: ClassifyOptions) {
    // A model load (an ONNX or GPU session) may take a while: close() waits up to 30 s for it.
    super({ stage: STAGE, startWaitMs: 30_000 });
    this.metrics = classifyMetrics(o.registry);
    this.known = new KnownCameras({ cameras: o.cameras, maxCameras: o.maxCameras });
    this.unknownCameras = unknownCameraCounter(o.registry);
    this.logger = (o.logger ?? silentLogger).child({ stage: STAGE });
    this.groupId = o.groupId ?? DEFAULT_GROUP_ID;
    if (o.frozen !== false) this.frozen = new FrozenDetector(o.frozen);
    this.overload = new OverloadController(o.overload ?? {}, o.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE, {
      skipped: (camera, reason) => {
        this.stats.skipped++;
        if (this.ownSeries(camera)) this.metrics.skipped.inc({ camera, reason });
      },
      caughtUp: (camera) => {
        this.stats.caughtUp++;
        if (this.ownSeries(camera)) this.metrics.caughtUp.inc({ camera });
      },
      forgotten: (partition, count, why) =>
        this.logger.warn(
          { partition, count, why },
          `classify: ${count} skipped frame(s) of partition ${partition} will not be caught up (${why === 'list-full' ? 'classify.overload.maxCatchUpFrames reached' : 'no longer in Kafka'}); they stay counted in crystalwatch_frames_skipped_total`,
        ),
    });
  }

  /** Whether `camera` gets its own series; a camera seen for the first time gets its overload series at 0 (a panel shows 0, not "no data"). */
  private ownSeries(camera: string): boolean {
    if (!this.known.admit(camera)) return false;
    if (!this.overloadSeries.has(camera)) {
      this.overloadSeries.add(camera); // bounded: only admitted cameras get here
      this.metrics.skipped.inc({ camera, reason: 'stale' }, 0);
      this.metrics.caughtUp.inc({ camera }, 0);
    }
    return true;
  }

  /** `frameInference`: how tiled frames are run (`feature-map` or `tiles`; `none` before start). */
  get info(): { backend: string; device: string; model: string; frameInference: 'feature-map' | 'tiles' | 'none' } {
    if (!this.classifier) return { backend: 'none', device: 'none', model: 'none', frameInference: 'none' };
    return this.classifier.info;
  }

  /**
   * The model card in use (undefined before start): `card.calibration` says whether the
   * out-of-distribution statistics are this camera's or the uncalibrated default.
   */
  get card(): ModelCard | undefined {
    return this.classifier?.card;
  }

  /** Loads the model, then connects and consumes (StageLifecycle: a failure here closes the stage). */
  protected async open(): Promise<void> {
    const maxBatchSize = this.o.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    // Filled once the engine is known; inference cannot run before that.
    const backendLabels = { backend: '', device: '' };
    this.classifier = await Classifier.load(this.o.modelDir, {
      backend: this.o.backend ?? DEFAULT_BACKEND,
      maxBatchSize,
      tiling: this.o.tiling ?? 'auto',
      maxPixels: this.o.maxPixels,
      quality: this.o.quality,
      probe: this.o.probe,
      log: (message) => this.logger.info(message),
      onInference: (seconds, n) => {
        this.metrics.inference.observe(backendLabels, seconds);
        this.metrics.batchSize.observe(n);
      },
    });
    const info = this.classifier.info;
    Object.assign(backendLabels, { backend: info.backend, device: info.device });
    this.metrics.backendInfo.set(backendLabels, 1);
    const { card } = this.classifier;
    const status = card.calibration?.status ?? 'uncalibrated';
    // What each prediction says of the model's calibration (the note stays in the card: predictions stay small).
    this.calibration = {
      status,
      ...(card.calibration?.camera ? { camera: card.calibration.camera } : {}),
      ...(card.calibration?.calibratedAt ? { calibratedAt: card.calibration.calibratedAt } : {}),
    };
    this.metrics.modelInfo.set({ model: card.name, version: card.version, calibration: status }, 1);
    this.logger.info(
      { ...info, modelDir: this.classifier.modelDir, calibration: status },
      `classify: model ${info.model} (${status}) on ${info.backend}/${info.device}`,
    );
    if (status === 'uncalibrated') {
      this.logger.warn(
        { model: info.model, note: card.calibration?.note },
        `classify: model ${info.model} is uncalibrated: its out-of-distribution statistics and threshold were fitted on simulator camera profiles, not on these cameras; expect false alarms on a real probe until it is calibrated: crystalwatch calibrate --model ${this.classifier.modelDir} --clean <folder of this camera's clean frames> --out <new model folder>, then set classify.model to it`,
      );
    }
    const bounds = fetchBounds(this.o.fetch, { maxBatchSize, maxMessageBytes: this.o.maxMessageBytes });
    const classifier = this.classifier;
    const hook = this.o.beforeInference;
    const engine = hook ? { classify: async (images: Buffer[]) => (await hook(images.length), classifier.classify(images)) } : classifier;
    this.batcher = new MicroBatcher(engine, maxBatchSize, this.o.maxBatchWaitMs ?? DEFAULT_MAX_BATCH_WAIT_MS, undefined, undefined, bounds);
    this.logger.info(
      { policy: this.overload.policy, maxFrameAgeMs: this.overload.maxFrameAgeMs, ...bounds },
      `classify: overload policy ${this.overload.policy}; fetch ≤ ${bounds.maxBytesPerPartition} B per partition, ${bounds.maxBytes} B per response; queue ≤ ${bounds.maxQueuedImages} images, ${bounds.maxQueuedBytes} B; ≤ ${bounds.maxBatchBytes} B of images a call`,
    );

    this.throwIfClosed('start()');
    this.producer = createProducer(this.o.kafka);
    await this.producer.connect();
    this.throwIfClosed('start()');
    // As bus createConsumer, with the fetch bounds of classify.fetch (derived from the frame size: 8 frames a partition, 4 partitions a response).
    this.consumer = this.o.kafka.consumer({
      groupId: this.groupId,
      maxBytesPerPartition: bounds.maxBytesPerPartition,
      maxBytes: bounds.maxBytes,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: CONSUMER_MAX_WAIT_MS,
      allowAutoTopicCreation: true,
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.o.topics.frames], fromBeginning: this.o.fromBeginning ?? true });
    const consumer = this.consumer;
    // Listeners before run(): the first join happens inside it.
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      // Partitions moved: lag of partitions no longer held must not linger in the sum.
      const held = new Set(Object.values(e.payload.memberAssignment).flat());
      for (const p of this.lagByPartition.keys()) if (!held.has(p)) this.lagByPartition.delete(p);
      this.overload.assigned(e.payload.memberAssignment[this.o.topics.frames] ?? []);
      this.logger.info({ assignment: e.payload.memberAssignment }, 'classify: partitions assigned');
    });
    consumer.on(consumer.events.CRASH, (e) => this.logger.error({ err: e.payload.error?.message, restart: e.payload.restart }, 'classify: consumer crashed'));
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.o.partitionsConsumedConcurrently ?? 8,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        const { topic, partition } = batch;
        await this.overload.handle({
          partition,
          messages: batch.messages,
          highWatermark: batch.highWatermark,
          process: async (messages, late) => {
            // Long batches (a slow CPU, a tiled frame) must not cost the group membership.
            const beat = setInterval(() => void heartbeat().catch(() => {}), 1_000);
            try {
              await this.process(partition, messages, late);
            } finally {
              clearInterval(beat);
            }
          },
          commit: async (offset) => {
            resolveOffset(offset);
            await consumer.commitOffsets([{ topic, partition, offset: (BigInt(offset) + 1n).toString() }]);
            this.noteLag(partition, topic, batch.highWatermark, offset);
            await heartbeat();
          },
          resolve: (offset) => resolveOffset(offset),
          commitOnly: async (offset) => {
            await consumer.commitOffsets([{ topic, partition, offset: (offset + 1n).toString() }]);
            await heartbeat();
          },
          seek: (offset) => consumer.seek({ topic, partition, offset: offset.toString() }),
          stopped: () => !isRunning() || isStale(),
        });
        // The lag is the live position behind the log's end (frames skipped for later are not lag).
        const live = this.overload.livePosition(partition);
        if (live !== undefined) this.noteLag(partition, topic, batch.highWatermark, (live - 1n).toString());
        this.metrics.catchUpPending.set(this.overload.pending);
      },
    });
  }

  private noteLag(partition: number, topic: string, highWatermark: string, offset: string): void {
    this.lagByPartition.set(partition, Math.max(0, Number(BigInt(highWatermark) - BigInt(offset) - 1n)));
    this.metrics.lag.set(
      { group: this.groupId, topic },
      [...this.lagByPartition.values()].reduce((a, b) => a + b, 0),
    );
  }

  /** Classify one partition's chunk and produce its predictions and dead letters, in offset order; `late`: a catch-up pass (overload.ts). */
  private async process(partition: number, messages: KafkaMessage[], late = false): Promise<void> {
    const received = performance.now();
    const predictions: Message[] = [];
    const deadLetters: Message[] = [];
    const deadLetter = (m: KafkaMessage, reasonLabel: string, reason: string) => {
      deadLetters.push(
        deadLetterRecord({
          sourceTopic: this.o.topics.frames,
          partition,
          offset: m.offset,
          reason,
          stage: STAGE,
          key: m.key,
          value: m.value,
          headers: m.headers,
        }),
      );
      this.metrics.deadLetter.inc({ stage: STAGE, reason: reasonLabel });
      this.stats.deadLettered++;
      this.logger.warn({ partition, offset: m.offset, reason }, 'classify: frame sent to dead-letter');
    };

    const usable: { message: KafkaMessage; headers: FrameHeaders }[] = [];
    for (const m of messages) {
      const headers = decodeFrameHeaders(m.headers);
      if (!headers.ok) {
        deadLetter(m, 'bad-headers', headers.reason);
        continue;
      }
      if (!m.value || m.value.length === 0) {
        deadLetter(m, 'empty', `frame ${headers.value['frame-id']}: empty value (no image bytes)`);
        continue;
      }
      usable.push({ message: m, headers: headers.value });
    }

    const results: ClassifyResult[] = usable.length ? await this.batcher!.classify(usable.map((u) => u.message.value!)) : [];
    const latencyMs = Math.round((performance.now() - received) * 1000) / 1000;
    const info = this.classifier!.info;
    usable.forEach(({ message, headers }, k) => {
      let r = results[k]!;
      if (r.predicted === 'error') {
        deadLetter(message, r.errorKind ?? 'undecodable', `frame ${headers['frame-id']}: ${r.reason}`);
        return;
      }
      // In offset order, so per camera in capture order. Only a frame that would count becomes
      // `frozen`: a stuck camera showing a black frame is first of all `black`.
      // A late frame is out of capture order: it neither feeds nor meets the frozen check.
      if (!late && this.frozen?.observe(headers.camera, headers['frame-id'], contentHash(message.value!)) && r.predicted !== 'unusable') {
        const copies = this.frozen.runLength(headers.camera);
        r = {
          predicted: 'unusable',
          pPG: null,
          reason: 'frozen',
          detail: `the same image ${copies} times in a row from camera ${headers.camera}`,
          width: r.width,
          height: r.height,
        };
      }
      const prediction: Prediction = {
        frameId: headers['frame-id'],
        camera: headers.camera,
        runId: headers['run-id'],
        capturedAt: headers['captured-at'],
        pPG: r.pPG,
        predicted: r.predicted,
        ...(r.reason ? { reason: r.reason } : {}),
        ...(r.ood !== undefined ? { ood: r.ood } : {}),
        ...(r.tiles ? { tiles: r.tiles } : {}),
        ...(headers.label ? { label: headers.label } : {}),
        model: info.model,
        calibration: this.calibration,
        backend: info.backend,
        device: info.device,
        latencyMs,
        ...(headers['completed-at'] ? { ingestedAt: Number(headers['completed-at']) } : {}),
        ...(late ? { late: true } : {}),
      };
      predictions.push({ key: headers.camera, value: encodeJson(prediction), headers: { 'frame-id': headers['frame-id'] } });
      // The frame is classified whatever its camera; only known cameras get series of their own.
      const ownSeries = this.ownSeries(headers.camera);
      if (ownSeries) this.metrics.classified.inc({ camera: headers.camera, predicted: r.predicted });
      else this.unknownCameras.inc({ stage: STAGE });
      if (r.predicted === 'unusable') {
        if (ownSeries) this.metrics.unusable.inc({ camera: headers.camera, reason: r.reason ?? 'unknown' });
        this.stats.unusable++;
      }
      this.stats.predicted++;
    });
    // Produced (acks from all replicas) before the caller commits the offset: at least once.
    if (predictions.length) await sendBatched(this.producer!, this.o.topics.predictions, predictions);
    if (deadLetters.length) await sendBatched(this.producer!, this.o.topics.deadLetter, deadLetters, DEFAULT_DEAD_LETTER_MAX_BYTES);
  }

  /** The consumer first: it lets the batch in hand finish and commit, then stops fetching. Then the batcher, producer and model. */
  protected async shut(): Promise<void> {
    this.overload.close();
    await this.consumer?.disconnect().catch((err: Error) => this.logger.warn({ err: err.message }, 'classify: consumer disconnect failed'));
    this.batcher?.close();
    await this.producer?.disconnect().catch((err: Error) => this.logger.warn({ err: err.message }, 'classify: producer disconnect failed'));
    await this.classifier?.close();
    if (this.classifier) this.metrics.backendInfo.remove({ backend: this.classifier.info.backend, device: this.classifier.info.device });
  }
}

/**
 * The classify stage under overload (issue #15), against the embedded broker through kafkajs,
 * with a deliberately slow classifier (the `beforeInference` seam holds every inference call).
 * Load: a backlog of frames ingested while the stage was away (stamped over the last seconds),
 * then live frames faster than the slow classifier takes them. For each policy, every offset of
 * `frames` is accounted for: predicted (on time or late) or counted skipped, per camera.
 * Unit parts: the stale-frame rule, the catch-up ledger and the bounded micro-batcher queue.
 * Needs `npm run build` (the inference worker thread runs from dist/).
 */
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { Kafka, Producer } from 'kafkajs';
import { createKafka, createProducer, ensureTopics } from '../src/bus/kafka.js';
import { topicNames, type Topics } from '../src/bus/topics.js';
import { ClassifyStage } from '../src/classify/index.js';
import { MicroBatcher } from '../src/classify/batcher.js';
import {
  OverloadController,
  PartitionLedger,
  frameInHand,
  staleFrames,
  type BatchIO,
  type FrameInHand,
  type OverloadPolicy,
} from '../src/classify/overload.js';
import type { KafkaMessage } from 'kafkajs';
import type { Classifier, ClassifyResult } from '../src/classify/classifier.js';
import { writeTinyModelDir } from '../src/classify/fixtures.js';
import { fetchBounds } from '../src/config/overload.js';
import { validateConfig } from '../src/config/index.js';
import { renderCrop } from '../simulator/index.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { collectPredictions } from './helpers/predictions.js';
import { waitFor, withDeadline } from './helpers/wait.js';

const CAMERAS = ['cam-a', 'cam-b', 'cam-c'];
const BACKLOG = 8; // frames per camera waiting when the stage starts
const LIVE_ROUNDS = 12; // then one frame per camera per round
const MAX_FRAME_AGE_MS = 150;

let broker: TestBroker;
let root: string;
let modelDir: string;
let crops: Buffer[];

beforeAll(async () => {
  broker = await startTestBroker();
  root = await mkdtemp(join(tmpdir(), 'cw-classify-overload-'));
  modelDir = await writeTinyModelDir(
    join(root, 'model'),
    { layout: 'NHWC', width: 32, height: 32, channels: 1, kind: 'sigmoid', weights: [12], bias: [-3] },
    {
      name: 'overload-tiny',
      input: { layout: 'NHWC', width: 32, height: 32, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' },
      output: { kind: 'sigmoid' },
    },
    { tfjs: false },
  );
  crops = await Promise.all([1, 2, 3, 4].map(async (seed) => (await renderCrop({ label: seed % 2 ? 'cex' : 'pg', seed, width: 96, height: 96 })).png));
});

afterAll(async () => {
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

interface Sent {
  frameId: string;
  camera: string;
  partition: number;
  offset: string;
}

/** One frame, as ingest writes it; `ingestedAt` may lie in the past (the frame waited in Kafka). */
async function sendFrame(producer: Producer, topics: Topics, camera: string, index: number, ingestedAt: number): Promise<Sent> {
  const frameId = `${camera}-${index}`;
  const [meta] = await producer.send({
    topic: topics.frames,
    messages: [
      {
        key: camera,
        value: crops[index % crops.length]!,
        headers: {
          'frame-id': frameId,
          camera,
          'captured-at': new Date(ingestedAt - 50).toISOString(),
          'content-type': 'image/png',
          'run-id': 'run-overload',
          'completed-at': String(ingestedAt),
        },
      },
    ],
  });
  return { frameId, camera, partition: meta!.partition, offset: meta!.baseOffset! };
}

async function counterByCamera(registry: Registry, name: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const { labels, value } of (await registry.getSingleMetric(name)!.get()).values) out[String(labels.camera)] = (out[String(labels.camera)] ?? 0) + value;
  return out;
}

async function committedOffsets(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [offsets] = await admin.fetchOffsets({ groupId: 'crystalwatch-classify', topics: [topic] });
    return offsets!.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Runs one policy: backlog, stage start, live frames while every inference call takes ≥ 100 ms
 * (a classifier about 3× slower than the offered load). Returns what is needed to account for every offset.
 */
async function overloadRun(policy: OverloadPolicy, prefix: string) {
  const kafka = createKafka({ brokers: [broker.address], clientId: `overload-${policy}` });
  const topics = topicNames(prefix);
  await ensureTopics(kafka, topics, 2);
  const registry = new Registry();
  const producer = createProducer(kafka);
  await producer.connect();
  const sent: Sent[] = [];
  // The backlog: ingested over the last seconds while no classify stage ran.
  const start = Date.now();
  for (let i = 0; i < BACKLOG; i++) for (const camera of CAMERAS) sent.push(await sendFrame(producer, topics, camera, i, start - (BACKLOG - i) * 400));

  let calls = 0;
  const stage = new ClassifyStage({
    kafka,
    topics,
    modelDir,
    registry,
    maxBatchSize: 4,
    maxBatchWaitMs: 5,
    frozen: false,
    probe: false,
    cameras: CAMERAS, // configured cameras: their overload series exist at 0 from their first frame
    overload: { policy, maxFrameAgeMs: MAX_FRAME_AGE_MS },
    // The "model" is slow: every inference call takes 100 ms more.
    beforeInference: () =>
      new Promise<void>((resolve) => {
        calls++;
        setTimeout(resolve, 100);
      }),
  });
  const out = await collectPredictions(kafka, topics, `${prefix}reader`);
  try {
    await stage.start();
    await waitFor(() => calls > 0, { timeout: 60_000, message: 'the stage to start classifying the backlog' });
    for (let round = BACKLOG; round < BACKLOG + LIVE_ROUNDS; round++) {
      // Three frames at once, every ~30 ms: about 100 frames/s offered, about 40/s classified.
      for (const camera of CAMERAS) sent.push(await sendFrame(producer, topics, camera, round, Date.now()));
      await new Promise((resolve) => setTimeout(resolve, 30)); // pacing the load, not waiting for an outcome
    }
    const produced = sent.length;
    // Every frame handled: the group's committed offsets cover all of them.
    await waitFor(async () => (await committedOffsets(kafka, topics.frames)) === produced, {
      timeout: 90_000,
      message: `the committed offsets to cover all ${produced} frames`,
      detail: () => `stats ${JSON.stringify(stage.stats)}`,
    });
    if (policy === 'newest-first') {
      await waitFor(() => stage.stats.caughtUp === stage.stats.skipped, {
        timeout: 90_000,
        message: 'every skipped frame to be caught up once production stopped',
        detail: () => `stats ${JSON.stringify(stage.stats)}`,
      });
    }
    const expectedPredictions = produced - (policy === 'skip' ? stage.stats.skipped : 0);
    await waitFor(() => new Set(out.predictions.map((p) => p.frameId)).size >= expectedPredictions, {
      timeout: 60_000,
      message: `${expectedPredictions} distinct predictions`,
      detail: () => `${out.predictions.length} predictions, stats ${JSON.stringify(stage.stats)}`,
    });
    return {
      sent,
      predictions: [...out.predictions],
      stats: { ...stage.stats },
      skipped: await counterByCamera(registry, 'crystalwatch_frames_skipped_total'),
      caughtUp: await counterByCamera(registry, 'crystalwatch_frames_caught_up_total'),
      metrics: await registry.metrics(),
    };
  } finally {
    await stage.close();
    await producer.disconnect();
    await out.close();
  }
}

/** The last frame sent by each camera. */
const newestOf = (sent: Sent[]) => CAMERAS.map((camera) => sent.filter((s) => s.camera === camera).at(-1)!);

describe('ClassifyStage under overload', () => {
  it('skip: the newest frame of every camera is predicted on time; every other offset is predicted or counted skipped', async () => {
    const run = await overloadRun('skip', 'ovl-skip.');
    const predicted = new Map(run.predictions.map((p) => [p.frameId, p]));
    expect(run.stats.skipped, 'the backlog alone makes frames stale').toBeGreaterThan(0);
    for (const newest of newestOf(run.sent)) expect(predicted.get(newest.frameId), `newest frame ${newest.frameId}`).toMatchObject({ camera: newest.camera });
    expect(run.predictions.some((p) => p.late)).toBe(false);
    // By offsets, per camera: produced = predicted + skipped.
    for (const camera of CAMERAS) {
      const offsets = run.sent.filter((s) => s.camera === camera);
      const predictedOffsets = offsets.filter((s) => predicted.has(s.frameId));
      expect(predictedOffsets.length + (run.skipped[camera] ?? 0), `camera ${camera}: ${offsets.length} offsets`).toBe(offsets.length);
    }
    expect(predicted.size + run.stats.skipped).toBe(run.sent.length);
    expect(run.caughtUp).toEqual(Object.fromEntries(CAMERAS.map((c) => [c, 0])));
  });

  it('newest-first: skipped frames are caught up, marked late, once production stops; every offset ends with one prediction', async () => {
    const run = await overloadRun('newest-first', 'ovl-newest.');
    expect(run.stats.skipped).toBeGreaterThan(0);
    expect(run.stats.caughtUp).toBe(run.stats.skipped);
    const byFrame = new Map<string, boolean[]>();
    for (const p of run.predictions) byFrame.set(p.frameId, [...(byFrame.get(p.frameId) ?? []), p.late === true]);
    // Every offset produced has a prediction: on time or late (at least once: a redelivery could add a copy).
    expect(run.sent.filter((s) => !byFrame.has(s.frameId)).map((s) => s.frameId)).toEqual([]);
    for (const newest of newestOf(run.sent)) expect(byFrame.get(newest.frameId), `newest frame ${newest.frameId}`).toContain(false);
    for (const camera of CAMERAS) {
      const frames = run.sent.filter((s) => s.camera === camera);
      const late = frames.filter((s) => byFrame.get(s.frameId)!.includes(true));
      expect(late.length, `camera ${camera}: late predictions = skipped = caught up`).toBe(run.skipped[camera] ?? 0);
      expect(run.caughtUp[camera] ?? 0).toBe(run.skipped[camera] ?? 0);
    }
    expect(run.metrics).toContain('crystalwatch_frames_catch_up_pending 0');
  });

  it('in-order: nothing is skipped; every frame is predicted, per camera in offset order', async () => {
    const run = await overloadRun('in-order', 'ovl-inorder.');
    expect(run.stats.skipped).toBe(0);
    expect(run.skipped).toEqual(Object.fromEntries(CAMERAS.map((c) => [c, 0])));
    const firstSeen = [...new Map(run.predictions.map((p) => [p.frameId, p])).values()];
    for (const camera of CAMERAS) {
      expect(
        firstSeen.filter((p) => p.camera === camera).map((p) => p.frameId),
        `camera ${camera}`,
      ).toEqual(run.sent.filter((s) => s.camera === camera).map((s) => s.frameId));
    }
    expect(run.predictions.some((p) => p.late)).toBe(false);
  });
});

describe('newest-first commits', () => {
  /** A kafkajs-like record of camera `camera`, completed at `atMs`. */
  const record = (offset: number, camera: string, atMs: number): KafkaMessage =>
    ({
      offset: String(offset),
      timestamp: String(atMs),
      headers: { camera, 'completed-at': String(atMs) },
      key: null,
      value: null,
      attributes: 0,
    }) as unknown as KafkaMessage;

  it('never commit past a skipped frame still to catch up; once caught up, the commit reaches the end', async () => {
    let now = 10_000;
    const controller = new OverloadController(
      { policy: 'newest-first', maxFrameAgeMs: 1_000 },
      4,
      { skipped: () => {}, caughtUp: () => {} },
      () => now,
      () => now,
    );
    const commits: bigint[] = [];
    const processed: { offset: string; late: boolean }[] = [];
    let seekTo: bigint | undefined;
    const io = (messages: KafkaMessage[], highWatermark: number): BatchIO => ({
      partition: 0,
      messages,
      highWatermark: String(highWatermark),
      process: async (m, late) => void processed.push(...m.map((r) => ({ offset: r.offset, late }))),
      commit: async (offset) => void commits.push(BigInt(offset)),
      commitOnly: async (offset) => void commits.push(offset),
      resolve: () => {},
      seek: (offset) => void (seekTo = offset),
      stopped: () => false,
    });
    // Offsets 0–2 of cam-a are 5 s old with offset 3 (fresh) behind them: 0–2 are skipped.
    await controller.handle(io([record(0, 'cam-a', 5_000), record(1, 'cam-a', 5_000), record(2, 'cam-a', 5_000), record(3, 'cam-a', 10_000)], 10));
    expect(processed).toEqual([{ offset: '3', late: false }]);
    expect(controller.pending).toBe(3);
    // Nothing before offset 0 to commit: a crash here re-delivers 0–3.
    expect(commits).toEqual([]);
    now += 1_100;
    await controller.handle(io([record(4, 'cam-a', now), record(5, 'cam-a', now)], 6));
    expect(commits).toEqual([]);
    // Idle (high watermark = next live offset), nothing skipped for maxFrameAgeMs: the controller seeks back to the oldest skipped.
    expect(seekTo).toBe(0n);
    await controller.handle(
      io(
        [0, 1, 2, 3, 4, 5].map((o) => record(o, 'cam-a', 5_000)),
        6,
      ),
    );
    expect(processed.filter((p) => p.late).map((p) => p.offset)).toEqual(['0', '1', '2']);
    expect(controller.pending).toBe(0);
    // Caught up: committed through the live position.
    expect(commits.at(-1)).toBe(5n);
  });

  it('catch up only once nothing was skipped for maxFrameAgeMs: an idle partition is sought back by a timer, a catch-up stops when skipping resumes', async () => {
    vi.useFakeTimers();
    let clock = 50_000;
    const wall = 1_700_000_000_000;
    const controller = new OverloadController(
      { policy: 'newest-first', maxFrameAgeMs: 1_000 },
      4,
      { skipped: () => {}, caughtUp: () => {} },
      () => wall,
      () => clock,
    );
    const seeks: { partition: number; offset: bigint }[] = [];
    const processed: { partition: number; offset: string; late: boolean }[] = [];
    const io = (partition: number, messages: KafkaMessage[], highWatermark: number): BatchIO => ({
      partition,
      messages,
      highWatermark: String(highWatermark),
      process: async (m, late) => void processed.push(...m.map((r) => ({ partition, offset: r.offset, late }))),
      commit: async () => {},
      commitOnly: async () => {},
      resolve: () => {},
      seek: (offset) => void seeks.push({ partition, offset }),
      stopped: () => false,
    });
    const passes = (ms: number) => {
      clock += ms;
      vi.advanceTimersByTime(ms);
    };
    const old = wall - 5_000;
    try {
      // Partition 0 at the log's end, two stale frames skipped: idle, but frames were just skipped.
      await controller.handle(io(0, [record(0, 'cam-a', old), record(1, 'cam-a', old), record(2, 'cam-a', wall)], 3));
      expect(processed).toEqual([{ partition: 0, offset: '2', late: false }]);
      passes(900);
      expect(seeks, 'no catch-up while frames are being skipped').toEqual([]);
      // No batch comes for partition 0 (its camera is idle): once quiet, the timer seeks it back.
      passes(200);
      expect(seeks).toEqual([{ partition: 0, offset: 0n }]);
      // The catch-up batch arrives, but partition 1 has just skipped a frame: back to the live position, no late work.
      await controller.handle(io(1, [record(10, 'cam-b', old), record(11, 'cam-b', wall)], 20));
      await controller.handle(io(0, [record(0, 'cam-a', old), record(1, 'cam-a', old), record(2, 'cam-a', old)], 3));
      expect(processed.filter((p) => p.late)).toEqual([]);
      expect(seeks.at(-1)).toEqual({ partition: 0, offset: 3n });
      // Quiet again: the timer sends partition 0 back, and the catch-up classifies its two frames, late.
      passes(1_000);
      expect(seeks.at(-1)).toEqual({ partition: 0, offset: 0n });
      await controller.handle(io(0, [record(0, 'cam-a', old), record(1, 'cam-a', old), record(2, 'cam-a', old)], 3));
      expect(processed.filter((p) => p.late && p.partition === 0).map((p) => p.offset)).toEqual(['0', '1']);

      // A deferred seek dies with a rebalance, and with close(): no timer is left behind.
      await controller.handle(io(1, [record(12, 'cam-b', old), record(13, 'cam-b', wall)], 14));
      const seeksBefore = seeks.length;
      controller.assigned([0, 1]);
      passes(2_000);
      expect(seeks.length).toBe(seeksBefore);
      await controller.handle(io(1, [record(14, 'cam-b', old), record(15, 'cam-b', wall)], 16));
      controller.close();
      expect(vi.getTimerCount()).toBe(0);
      passes(2_000);
      expect(seeks.length).toBe(seeksBefore);
    } finally {
      controller.close();
      vi.useRealTimers();
    }
  });

  it('after a rebalance, re-delivered skipped frames are neither counted twice nor caught up twice', async () => {
    let now = 10_000;
    const counts = { skipped: 0, caughtUp: 0 };
    const controller = new OverloadController(
      { policy: 'newest-first', maxFrameAgeMs: 1_000 },
      4,
      { skipped: () => void counts.skipped++, caughtUp: () => void counts.caughtUp++ },
      () => now,
      () => now,
    );
    const predicted: string[] = [];
    const io = (messages: KafkaMessage[], highWatermark: number): BatchIO => ({
      partition: 0,
      messages,
      highWatermark: String(highWatermark),
      process: async (m, late) => void predicted.push(...m.map((r) => `${r.offset}${late ? ' late' : ''}`)),
      commit: async () => {},
      commitOnly: async () => {},
      resolve: () => {},
      seek: () => {},
      stopped: () => false,
    });
    const batch = () => [record(0, 'cam-a', 5_000), record(1, 'cam-a', 5_000), record(2, 'cam-a', 5_000), record(3, 'cam-a', now)];
    await controller.handle(io(batch(), 4));
    expect([counts.skipped, predicted]).toEqual([3, ['3']]);
    // Rebalanced: kafkajs re-delivers from the commit, which stayed before offset 0.
    controller.assigned([0]);
    await controller.handle(io(batch(), 4));
    // 0–2 are stale again but were counted already; 3 is predicted again (at least once).
    expect(counts).toEqual({ skipped: 3, caughtUp: 0 });
    expect(predicted).toEqual(['3', '3']);
    expect(controller.pending).toBe(3);
    // Idle, and nothing skipped for maxFrameAgeMs: caught up once each.
    now += 1_100;
    await controller.handle(io(batch(), 4));
    expect(predicted.filter((p) => p.endsWith('late'))).toEqual(['0 late', '1 late', '2 late']);
    expect(counts).toEqual({ skipped: 3, caughtUp: 3 });
    expect(controller.pending).toBe(0);
  });

  it('judges staleness by the ingest time or the record time, never by the camera clock', () => {
    const skewed = { offset: '7', timestamp: '5000', headers: { camera: 'cam-a', 'captured-at': '2001-01-01T00:00:00.000Z' } } as unknown as KafkaMessage;
    expect(frameInHand(skewed).atMs).toBe(5_000);
  });
});

describe('stale frames', () => {
  const at = (offset: number, camera: string | undefined, atMs: number): FrameInHand => ({ offset: BigInt(offset), camera, atMs });

  it('is older than maxFrameAgeMs with a newer frame of its camera in hand; the newest of each camera never is', () => {
    const frames = [at(0, 'a', 0), at(1, 'b', 0), at(2, 'a', 900), at(3, 'a', 1_950), at(4, undefined, 0)];
    // At t = 2000 with 1000 ms: a@0 is old and a@1950 is newer → stale; a@900 is 1100 ms old → stale; b@0 is b's newest.
    expect(staleFrames(frames, 2_000, 1_000)).toEqual([0, 2]);
    expect(staleFrames(frames, 1_800, 1_000)).toEqual([0]); // a@900 is only 900 ms old
    // Frames already done do not count as newer.
    expect(staleFrames(frames, 2_000, 1_000, [false, false, false, true, false])).toEqual([0]);
    // Behind the log's end (newer frames wait in Kafka), each camera's newest in hand is stale too when old.
    expect(staleFrames(frames, 2_000, 1_000, [], false)).toEqual([0, 1, 2]);
  });

  it('the catch-up ledger keeps offsets sorted, once each, and forgets the oldest beyond its capacity', () => {
    const ledger = new PartitionLedger(3);
    for (const o of [5n, 2n, 9n, 2n, 7n]) ledger.remember(o, 'a');
    expect(ledger.size).toBe(3);
    expect(ledger.forgotten).toBe(1);
    expect(ledger.first()).toBe(5n);
    expect(ledger.take(7n)).toBe('a');
    expect(ledger.take(7n)).toBeUndefined();
    expect(ledger.dropBelow(9n)).toBe(1);
    expect(ledger.first()).toBe(9n);
  });

  it('config: newest-first with 1 s by default, and fetch bounds derived from the frame size', () => {
    const config = validateConfig({});
    expect(config.classify.overload).toEqual({ policy: 'newest-first', maxFrameAgeMs: 1000, maxCatchUpFrames: 10_000 });
    expect(fetchBounds(config.classify.fetch, { maxBatchSize: 32, maxMessageBytes: 16 * 1024 * 1024 })).toEqual({
      maxBytesPerPartition: 16 * 1024 * 1024,
      maxBytes: 64 * 1024 * 1024,
      maxQueuedImages: 64,
      maxQueuedBytes: 128 * 1024 * 1024,
      maxBatchBytes: 4 * 1024 * 1024,
    });
    expect(() => validateConfig({ classify: { overload: { policy: 'drop' } } })).toThrow(/classify\.overload\.policy/);
  });
});

/** A classifier that answers at once and records the image sizes of each call. */
function recordingClassifier(): { calls: number[][]; classifier: Pick<Classifier, 'classify'> } {
  const calls: number[][] = [];
  const classify = async (images: Buffer[]) => {
    calls.push(images.map((b) => b.length));
    return images.map(() => ({ predicted: 'cex', pPG: 0.1 }) as ClassifyResult);
  };
  return { calls, classifier: { classify } };
}

describe('MicroBatcher queue and call bounds', () => {
  it('never holds more than maxQueuedImages or maxQueuedBytes while the classifier is overloaded, and loses no image', async () => {
    const releases: (() => void)[] = [];
    let classified = 0;
    const slow = {
      classify: (images: Buffer[]) =>
        new Promise<ClassifyResult[]>((resolve) =>
          releases.push(() => {
            classified += images.length;
            resolve(images.map((b) => ({ predicted: 'cex', pPG: b.length / 1e6, width: 1, height: 1 }) as ClassifyResult));
          }),
        ),
    };
    const batcher = new MicroBatcher(slow, 4, 1, undefined, 2, { maxQueuedImages: 8, maxQueuedBytes: 8 * 1000 });
    const image = (n: number) => Buffer.alloc(1000, n);
    let over: string | undefined;
    const watch = () => {
      const q = batcher.queued;
      if (q.images > 8 || q.bytes > 8000) over ??= `queue held ${q.images} images, ${q.bytes} B`;
    };
    // 20 submissions of 3 images: 60 images offered at once, the classifier takes none yet.
    const submissions = Array.from({ length: 20 }, (_, i) => batcher.classify([image(i), image(i), image(i)]));
    watch();
    try {
      await waitFor(() => releases.length === 2, { timeout: 5_000, message: 'two inference calls in flight' });
      expect(batcher.queued.waitingSubmissions).toBeGreaterThan(0);
      while (classified < 60) {
        watch();
        await waitFor(() => releases.length > 0 || classified >= 60, { timeout: 5_000, message: `an inference call (${classified}/60 classified)` });
        releases.shift()?.();
        await new Promise((resolve) => setImmediate(resolve));
      }
      const results = await withDeadline(Promise.all(submissions), { timeout: 5_000, message: 'every submission answered' });
      expect(results.flat()).toHaveLength(60);
      expect(over).toBeUndefined();
      expect(batcher.peak.images).toBeLessThanOrEqual(8);
      expect(batcher.peak.bytes).toBeLessThanOrEqual(8000);
      expect(batcher.peak.images, 'the bound was reached: the test overloaded the queue').toBeGreaterThanOrEqual(6);
    } finally {
      batcher.close();
      for (const release of releases) release();
    }
  });

  it('puts at most maxBatchBytes of images in a call (one image always), and sends a call full by bytes without waiting for maxWaitMs', async () => {
    const { calls, classifier } = recordingClassifier();
    // A minute's wait: only the byte bound can send these calls within the deadline.
    const batcher = new MicroBatcher(classifier, 32, 60_000, undefined, 2, { maxBatchBytes: 2500 });
    const images = (...sizes: number[]) => sizes.map((n) => Buffer.alloc(n));
    try {
      const results = await withDeadline(
        Promise.all([batcher.classify(images(1200, 1200, 1200, 1200)), batcher.classify(images(3000)), batcher.classify(images(1000, 1500))]),
        { timeout: 5_000, message: 'every call sent by the byte bound' },
      );
      expect(results.map((r) => r.length)).toEqual([4, 1, 2]);
      expect(calls).toEqual([[1200, 1200], [1200, 1200], [3000], [1000, 1500]]);
    } finally {
      batcher.close();
    }
  });

  it('holds a call under maxBatchBytes for maxWaitMs, and sends one full by bytes at once', async () => {
    vi.useFakeTimers();
    const { calls, classifier } = recordingClassifier();
    const batcher = new MicroBatcher(classifier, 32, 200, undefined, 2, { maxBatchBytes: 2000 });
    try {
      const partial = batcher.classify([Buffer.alloc(1000)]);
      await vi.advanceTimersByTimeAsync(199);
      expect(calls, 'a partial call waits for more images').toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(calls).toEqual([[1000]]);
      expect(await partial).toHaveLength(1);
      const full = batcher.classify([Buffer.alloc(1000), Buffer.alloc(1000)]);
      expect(calls, 'a call full by bytes goes at once').toEqual([[1000], [1000, 1000]]);
      expect(await full).toHaveLength(2);
    } finally {
      batcher.close();
      vi.useRealTimers();
    }
  });

  it('sends a call under maxBatchBytes once maxWaitMs is over, and lets waiting submissions in as byte-bound calls leave', async () => {
    const { calls, classifier } = recordingClassifier();
    // One call in flight, a queue of 3,000 bytes: the second and third submissions wait for room.
    const batcher = new MicroBatcher(classifier, 32, 5, undefined, 1, { maxBatchBytes: 2000, maxQueuedBytes: 3000 });
    const images = (...sizes: number[]) => sizes.map((n) => Buffer.alloc(n));
    try {
      const submissions = [batcher.classify(images(1000, 1000, 1000)), batcher.classify(images(1500, 1500)), batcher.classify(images(700))];
      expect(batcher.queued.waitingSubmissions).toBe(2);
      const results = await withDeadline(Promise.all(submissions), { timeout: 5_000, message: 'every submission answered' });
      expect(results.map((r) => r.length)).toEqual([3, 2, 1]);
      // [1000, 1000] goes by bytes; [1000] after the 5-ms wait, which lets the second submission
      // in; [1500] twice by bytes, letting the third in; [700] after the wait.
      expect(calls).toEqual([[1000, 1000], [1000], [1500], [1500], [700]]);
      expect(batcher.peak.bytes).toBeLessThanOrEqual(3000);
    } finally {
      batcher.close();
    }
  });

  it('lets one submission larger than the bounds in alone, so it cannot stall', async () => {
    const batcher = new MicroBatcher(
      { classify: async (images: Buffer[]) => images.map(() => ({ predicted: 'cex', pPG: 0.1 }) as ClassifyResult) },
      4,
      1,
      undefined,
      2,
      {
        maxQueuedImages: 2,
        maxQueuedBytes: 10,
      },
    );
    try {
      const results = await withDeadline(batcher.classify([Buffer.alloc(100), Buffer.alloc(100), Buffer.alloc(100)]), {
        timeout: 5_000,
        message: 'an oversized submission',
      });
      expect(results).toHaveLength(3);
    } finally {
      batcher.close();
    }
  });
});

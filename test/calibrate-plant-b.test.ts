/**
 * `crystalwatch calibrate` on a camera the shipped model never saw (simulator plant B, seeded):
 * 200 clean 640×480 frames (tiled exactly as the classify stage tiles them, 20 tiles each) and
 * 40 PG frames. Calibration must bring the false-positive rate on held-out clean frames within
 * the stated target while keeping PG recall, and the folder it writes must load where
 * production loads models: the real `crystalwatch predict` and a ClassifyStage on Kafka.
 * Needs `npm run build` (the classifier's worker thread and the CLI run from dist/).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import type { Consumer, Producer } from 'kafkajs';
import { calibrate, type CalibrateResult } from '../src/model/calibrate.js';
import { loadModelCard } from '../src/model/card.js';
import { createProducer, ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { decodePrediction, type Prediction } from '../src/bus/messages.js';
import { ClassifyStage } from '../src/classify/index.js';
import { renderPlantBBatch, writePlantBFrames } from '../simulator/plant-b.js';
import { startTestBus, type TestBus } from './helpers/bus.js';
import { waitFor } from './helpers/wait.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin/crystalwatch.js');
const DEFAULT_MODEL = join(ROOT, 'models/default');
const TARGET = 0.02;
const run = promisify(execFile);

let dir: string;
let clean: string;
let pg: string;
let result: CalibrateResult;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cw-calibrate-b-'));
  clean = join(dir, 'clean');
  pg = join(dir, 'pg');
  // A clean batch at 2 frames/s (capture times in the names and sidecars), and a batch from PG onset on, a frame every 5 s.
  await writePlantBFrames(clean, await renderPlantBBatch({ count: 200, batch: 1, width: 640, height: 480, fps: 2, startS: 600 }));
  await writePlantBFrames(pg, await renderPlantBBatch({ count: 40, batch: 2, width: 640, height: 480, fps: 0.2, startS: 300, pgOnsetS: 300 }));
  result = await calibrate({ model: DEFAULT_MODEL, clean: [clean], pg: [pg], out: join(dir, 'model-b'), maxFalsePositiveRate: TARGET });
}, 150_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('calibrate on plant B', () => {
  it('brings the held-out false-positive rate within the target and keeps PG recall', () => {
    const { before, after, inputs } = result.report;
    expect(inputs).toMatchObject({
      kind: 'frames',
      frameSize: { width: 640, height: 480 },
      modelInputsPerImage: 20,
      fps: { value: 2, source: 'capture times' },
    });
    expect(inputs.clean).toMatchObject({ images: 200, fit: 150, heldOut: 50 });
    // The uncalibrated default calls a few per cent of this camera's clean frames PG (8 % measured), more than the target.
    expect(before.heldOut.rate!).toBeGreaterThan(0.02);
    expect(before.detector.falseAlarmsPer100kFrames).toBeGreaterThan(20); // 82 measured
    // Calibrated: on the 50 clean frames it was not fitted on, within the target; usable, not refused.
    expect(after.heldOut.usable).toBe(50);
    expect(after.heldOut.rate!).toBeLessThanOrEqual(TARGET);
    expect(after.fit.rate!).toBeLessThanOrEqual(TARGET);
    expect(after.threshold).toBeGreaterThan(before.threshold);
    // PG: most frames still PG (the misses are the first frames after onset, one small agglomerate), none refused.
    expect(after.pgImages!.usable).toBe(40);
    expect(after.pgImages!.rate!).toBeGreaterThanOrEqual(0.6);
    // The detector: no false alarm in 100,000 frames drawn from held-out clean scores, PG still caught within a few frames.
    expect(after.detector.falseAlarmsPer100kFrames).toBe(0);
    expect(after.detector.delaySource).toBe('pg images');
    expect(after.detector.delayFrames).toBeLessThan(5);
    expect(result.report.detector.claim).toMatch(/^≤ 1 false alarm per [\d.,]+ batch-days (\([\d.]+ h of this camera\) )?at 2 frames\/s/);
    // The claim is the cautious one: the bootstrap's 10th percentile, not the point fit.
    expect(after.detector.arl0Frames).toBeLessThan(result.report.detector.modelArl0Frames);
  });

  it('writes a new model folder: weights copied, version bumped, calibration with provenance, detector model, report', async () => {
    const out = result.outDir;
    const { card } = await loadModelCard(out);
    expect(card.version).toBe('1.1.0');
    expect(card.threshold).toBe(result.report.after.threshold);
    const raw = JSON.parse(await readFile(join(out, 'card.json'), 'utf8'));
    const parentBytes = await readFile(join(DEFAULT_MODEL, 'card.json'));
    expect(raw.calibration).toMatchObject({
      status: 'calibrated',
      camera: 'plant-b',
      provenance: {
        sources: { clean: [clean], pg: [pg] },
        fileCounts: { clean: 200, cleanFit: 150, cleanHeldOut: 50, pg: 40 },
        parentCardSha256: createHash('sha256').update(parentBytes).digest('hex'),
        targets: { maxFalsePositiveRate: TARGET, source: 'stated' },
      },
    });
    expect(raw.calibration.provenance.fileListSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(raw.calibration.provenance.figures.heldOutFalsePositiveRate.after).toBe(result.report.after.heldOut.rate);
    expect(Date.parse(raw.calibration.calibratedAt)).toBeGreaterThan(0);
    expect(raw.ood.classes.map((c: { name: string }) => c.name)).toEqual(['camera-clean', 'pg']);
    expect(raw.detector).toMatchObject({
      kind: 'cusum',
      targetArlFrames: 100_000,
      cleanScoreModel: { kind: 'kde-logit-exponential-tail', frames: 150, tailShare: 0.1 },
    });
    expect(raw.detector.llr.values.length).toBeGreaterThan(100);
    const sha = async (path: string) =>
      createHash('sha256')
        .update(await readFile(path))
        .digest('hex');
    for (const f of ['model.onnx', 'model.json', 'weights.bin']) expect(await sha(join(out, f)), f).toBe(await sha(join(DEFAULT_MODEL, f)));
    const files = await readdir(out);
    for (const f of ['report.json', 'report.md', 'scores.png', 'threshold-curve.png', 'evidence.png', 'false-alarms.png', 'ood.png'])
      expect(files).toContain(f);
    const md = await readFile(join(out, 'report.md'), 'utf8');
    expect(md).toContain('## What this calibration could not do');
  });

  it('loads in the real crystalwatch predict', async () => {
    const heldOutFrame = join(
      clean,
      (await readdir(clean))
        .filter((f) => f.endsWith('.png'))
        .sort()
        .at(-1)!,
    );
    const pgFrame = join(
      pg,
      (await readdir(pg))
        .filter((f) => f.endsWith('.png'))
        .sort()
        .at(-1)!,
    );
    const { stdout, stderr } = await run(process.execPath, [CLI, 'predict', '--model', result.outDir, '--json', heldOutFrame, pgFrame], {
      cwd: ROOT,
      timeout: 60_000,
    });
    expect(stderr).toContain('crystalwatch-default@1.1.0');
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.predicted)).toEqual(['cex', 'pg']);
  });

  it('loads in the classify stage, which predicts with it through Kafka', async () => {
    let bus: TestBus | undefined;
    let stage: ClassifyStage | undefined;
    let producer: Producer | undefined;
    let consumer: Consumer | undefined;
    try {
      bus = await startTestBus('cw-calibrate-stage-');
      const topics = topicNames('cal.');
      await ensureTopics(bus.kafka, topics, 1);
      stage = new ClassifyStage({ kafka: bus.kafka, topics, modelDir: result.outDir, registry: new Registry() });
      await stage.start();
      expect(stage.info.model).toBe('crystalwatch-default@1.1.0');
      expect(stage.card?.calibration?.status).toBe('calibrated');
      const predictions: Prediction[] = [];
      consumer = bus.kafka.consumer({ groupId: 'cal-reader' });
      await consumer.connect();
      await consumer.subscribe({ topic: topics.predictions, fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const decoded = decodePrediction(message.value);
          if (decoded.ok) predictions.push(decoded.value);
        },
      });
      producer = createProducer(bus.kafka);
      await producer.connect();
      const name = (await readdir(pg))
        .filter((f) => f.endsWith('.png'))
        .sort()
        .at(-1)!;
      await producer.send({
        topic: topics.frames,
        messages: [
          {
            key: 'plant-b',
            value: await readFile(join(pg, name)),
            headers: { 'frame-id': 'plant-b-1', camera: 'plant-b', 'captured-at': '2026-01-01T00:10:00.000Z', 'content-type': 'image/png', 'run-id': 'run-1' },
          },
        ],
      });
      const p = await waitFor(() => predictions[0], { timeout: 60_000, message: 'a prediction from the calibrated model' });
      expect(p).toMatchObject({ frameId: 'plant-b-1', model: 'crystalwatch-default@1.1.0', predicted: 'pg' });
    } finally {
      await consumer?.disconnect();
      await producer?.disconnect();
      await stage?.close();
      await bus?.close();
    }
  });
});

import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import type { Prediction } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { LabelJoin, QualityStage, RecentKeys, RollingConfusion, RollingRatio, type QualityEvent } from '../src/quality/index.js';
import { prediction as buildPrediction, T0 } from './helpers/messages.js';

const prediction = (frameId: string, over: Partial<Prediction> = {}): Prediction => buildPrediction({ frameId, ...over });

describe('RollingConfusion', () => {
  it('computes precision, recall, F1 and accuracy for PG as the positive class', () => {
    const w = new RollingConfusion({ maxFrames: 100 });
    // 8 tp, 2 fp, 4 fn, 86 tn
    for (let i = 0; i < 8; i++) w.add({ actual: 'pg', predicted: 'pg', atMs: i });
    for (let i = 0; i < 2; i++) w.add({ actual: 'cex', predicted: 'pg', atMs: i });
    for (let i = 0; i < 4; i++) w.add({ actual: 'pg', predicted: 'cex', atMs: i });
    for (let i = 0; i < 86; i++) w.add({ actual: 'cex', predicted: 'cex', atMs: i });
    const f = w.figures();
    expect(f).toMatchObject({ tp: 8, fp: 2, fn: 4, tn: 86, support: 100, positives: 12 });
    expect(f.precision).toBeCloseTo(0.8, 12);
    expect(f.recall).toBeCloseTo(8 / 12, 12);
    expect(f.f1).toBeCloseTo(16 / 22, 12);
    expect(f.accuracy).toBeCloseTo(0.94, 12);
  });

  it('says null, not 0 or 1, when a figure is undefined', () => {
    const w = new RollingConfusion({ maxFrames: 10 });
    expect(w.figures()).toMatchObject({ precision: null, recall: null, f1: null, accuracy: null, support: 0 });
    w.add({ actual: 'cex', predicted: 'cex', atMs: 0 });
    expect(w.figures()).toMatchObject({ precision: null, recall: null, f1: null, accuracy: 1, support: 1 });
    w.add({ actual: 'pg', predicted: 'cex', atMs: 0 });
    // PG exists but was never predicted: recall 0 and F1 0 are defined, precision is not.
    expect(w.figures()).toMatchObject({ precision: null, recall: 0, f1: 0, accuracy: 0.5 });
  });

  it('keeps only the last N frames', () => {
    const w = new RollingConfusion({ maxFrames: 3 });
    w.add({ actual: 'pg', predicted: 'pg', atMs: 0 });
    for (let i = 0; i < 3; i++) w.add({ actual: 'cex', predicted: 'cex', atMs: 0 });
    expect(w.figures()).toMatchObject({ tp: 0, tn: 3, support: 3 });
    for (let i = 0; i < 5000; i++) w.add({ actual: 'cex', predicted: 'pg', atMs: 0 });
    expect(w.figures()).toMatchObject({ fp: 3, tn: 0, support: 3, precision: 0 });
  });

  it('keeps only the last T milliseconds', () => {
    const w = new RollingConfusion({ maxAgeMs: 1000 });
    w.add({ actual: 'pg', predicted: 'pg', atMs: 0 });
    w.add({ actual: 'cex', predicted: 'pg', atMs: 500 });
    expect(w.figures(900)).toMatchObject({ tp: 1, fp: 1, precision: 0.5 });
    expect(w.figures(1000)).toMatchObject({ tp: 0, fp: 1, precision: 0 });
    expect(w.figures(1500)).toMatchObject({ support: 0, precision: null, accuracy: null });
  });

  it('rejects a window that is not one', () => {
    expect(() => new RollingConfusion({ maxFrames: 0 })).toThrow(/maxFrames must be a positive integer, got 0/);
  });
});

describe('RollingRatio and RecentKeys', () => {
  it('RollingRatio is the fraction over the last N values', () => {
    const r = new RollingRatio(4);
    expect(r.ratio).toBeNull();
    r.add(true);
    expect(r.ratio).toBe(1);
    r.add(false);
    r.add(false);
    r.add(false);
    expect(r.ratio).toBe(0.25);
    r.add(false);
    expect(r.ratio).toBe(0);
  });
  it('RecentKeys forgets the oldest key beyond its capacity', () => {
    const k = new RecentKeys(2);
    expect(k.add('a')).toBe(true);
    expect(k.add('a')).toBe(false);
    k.add('b');
    k.add('c');
    expect(k.has('a')).toBe(false);
    expect(k.size).toBe(2);
  });
});

describe('LabelJoin', () => {
  it('joins header labels at once, frame labels before or after, and span labels late', () => {
    const join = new LabelJoin({ horizonMs: 3600_000, maxPending: 100 });
    expect(join.addPrediction(prediction('h', { label: 'pg' }), T0)).toMatchObject({ label: 'pg', source: 'header' });
    // label before prediction
    expect(join.addLabel({ frameId: 'early', label: 'cex' }, T0)).toEqual([]);
    expect(join.addPrediction(prediction('early'), T0 + 1)).toMatchObject({ label: 'cex', source: 'frame' });
    // label after prediction
    expect(join.addPrediction(prediction('late'), T0)).toBeNull();
    expect(join.addLabel({ frameId: 'late', label: 'pg' }, T0 + 10)).toMatchObject([{ label: 'pg', source: 'frame' }]);
    // a lab result for a time span, 50 minutes later
    const at = (s: number) => new Date(T0 + s * 1000).toISOString();
    expect(join.addPrediction(prediction('s1', { capturedAt: at(10) }), T0)).toBeNull();
    expect(join.addPrediction(prediction('s2', { capturedAt: at(20) }), T0)).toBeNull();
    expect(join.addPrediction(prediction('s3', { capturedAt: at(40) }), T0)).toBeNull();
    expect(join.addPrediction(prediction('other', { camera: 'cam-2', capturedAt: at(15) }), T0)).toBeNull();
    const joined = join.addLabel({ camera: 'cam-1', from: at(5), to: at(30), label: 'pg' }, T0 + 50 * 60_000);
    expect(joined.map((j) => j.prediction.frameId)).toEqual(['s1', 's2']);
    // a prediction arriving after the span label also gets it
    expect(join.addPrediction(prediction('s4', { capturedAt: at(25) }), T0 + 50 * 60_000)).toMatchObject({ label: 'pg', source: 'span' });
    // the first label wins: a second label for a joined frame is ignored
    expect(join.addLabel({ frameId: 'late', label: 'cex' }, T0 + 11)).toEqual([]);
    expect(join.pendingCount).toBe(2); // s3 and other
  });

  it('drops predictions past the horizon and beyond maxPending, reporting why', () => {
    const dropped: string[] = [];
    const join = new LabelJoin({ horizonMs: 1000, maxPending: 3, onDrop: (p, reason) => dropped.push(`${p.frameId}:${reason}`) });
    for (let i = 0; i < 5; i++) join.addPrediction(prediction(`f${i}`), T0 + i);
    expect(dropped).toEqual(['f0:overflow', 'f1:overflow']);
    expect(join.pendingCount).toBe(3);
    join.expire(T0 + 1003);
    expect(dropped).toEqual(['f0:overflow', 'f1:overflow', 'f2:horizon', 'f3:horizon']);
    expect(join.addLabel({ frameId: 'f2', label: 'pg' }, T0 + 1003)).toEqual([]);
    expect(join.addLabel({ frameId: 'f4', label: 'pg' }, T0 + 1003)).toHaveLength(1);
    expect(join.pendingCount).toBe(0);
  });
});

describe('LabelJoin at scale', () => {
  it('evicts the oldest still-waiting prediction, skipping those joined meanwhile', () => {
    const dropped: string[] = [];
    const join = new LabelJoin({ horizonMs: 1000, maxPending: 3, onDrop: (p, reason) => dropped.push(`${p.frameId}:${reason}`) });
    for (let i = 0; i < 3; i++) join.addPrediction(prediction(`f${i}`), T0);
    expect(join.addLabel({ frameId: 'f0', label: 'cex' }, T0)).toHaveLength(1);
    join.addPrediction(prediction('f3'), T0);
    join.addPrediction(prediction('f4'), T0);
    expect(dropped).toEqual(['f1:overflow']);
    join.expire(T0 + 1000);
    expect(dropped).toEqual(['f1:overflow', 'f2:horizon', 'f3:horizon', 'f4:horizon']);
  });

  it('stays bounded and exact through 400,000 predictions at capacity (half labelled by id)', () => {
    let dropped = 0;
    const join = new LabelJoin({ horizonMs: 3600_000, maxPending: 100_000, onDrop: () => dropped++ });
    const keys = new RecentKeys(100_000);
    let joined = 0;
    for (let i = 0; i < 400_000; i++) {
      const id = `f${i}`;
      keys.add(id);
      join.addPrediction(prediction(id), T0 + i);
      if (i % 2 === 0) joined += join.addLabel({ frameId: id, label: 'cex' }, T0 + i).length;
    }
    expect(joined).toBe(200_000);
    expect(join.pendingCount).toBe(100_000);
    expect(dropped).toBe(200_000 - 100_000);
    expect(keys.size).toBe(100_000);
    expect(keys.has('f299999')).toBe(false);
    expect(keys.has('f300000')).toBe(true);
  });
});

describe('QualityStage (in process)', () => {
  function stage(now: { t: number }) {
    const registry = new Registry();
    // start() is not called: the Kafka object is never touched.
    const s = new QualityStage({ kafka: {} as Kafka, topics: topicNames(), registry, windows: { frames: 4, seconds: 60 }, now: () => now.t });
    return { s, registry };
  }

  it('publishes confusion counters, rolling gauges, and removes undefined gauges', async () => {
    const now = { t: T0 };
    const { s, registry } = stage(now);
    const events: QualityEvent[] = [];
    s.on('quality', (e: QualityEvent) => events.push(e));
    s.observePrediction(prediction('a', { label: 'cex', pPG: 0.1, ingestedAt: T0 - 250 }));
    let text = await registry.metrics();
    expect(text).toContain('crystalwatch_confusion_total{camera="cam-1",actual="cex",predicted="cex"} 1');
    expect(text).toContain('crystalwatch_confusion_total{camera="cam-1",actual="pg",predicted="pg"} 0');
    expect(text).toContain('crystalwatch_rolling_accuracy{camera="cam-1",window="4f"} 1');
    // no PG predicted, none actual: precision/recall/F1 have no sample at all (not NaN, not 0)
    expect(text).not.toMatch(/crystalwatch_rolling_precision\{/);
    expect(text).not.toMatch(/crystalwatch_rolling_f1\{/);
    expect(text).toContain('crystalwatch_file_to_prediction_seconds_bucket{le="0.25",camera="cam-1"} 1');
    expect(events.at(-1)).toEqual({ camera: 'cam-1', window: '60s', precision: null, recall: null, f1: null, accuracy: 1, support: 1 });

    s.observePrediction(prediction('b', { pPG: 0.9, predicted: 'pg' }));
    s.observeLabel({ frameId: 'b', label: 'pg' });
    s.observePrediction(prediction('b', { pPG: 0.9, predicted: 'pg' })); // redelivered
    s.observePrediction(prediction('c', { pPG: null, predicted: 'unusable', label: 'pg' }));
    text = await registry.metrics();
    expect(text).toContain('crystalwatch_rolling_precision{camera="cam-1",window="4f"} 1');
    expect(text).toContain('crystalwatch_rolling_recall{camera="cam-1",window="4f"} 1');
    expect(text).toContain('crystalwatch_confusion_total{camera="cam-1",actual="pg",predicted="unusable"} 1');
    expect(text).toContain('crystalwatch_duplicate_predictions_total{stage="metrics"} 1');
    expect(text).toContain('crystalwatch_pg_frames_total{camera="cam-1"} 1');
    expect(text).toContain('crystalwatch_ppg{camera="cam-1"} 0.9');
    expect(text).toContain('crystalwatch_ppg_smoothed{camera="cam-1"} 0.26'); // 0.1 + 0.2 * (0.9 - 0.1)
    expect(text).toContain('crystalwatch_unusable_ratio{camera="cam-1"} 0.3333333333333333');
    expect(text).toContain('crystalwatch_labels_joined_total{source="frame"} 1');

    // 61 s later the time window is empty: its accuracy disappears, the frame window stays.
    now.t += 61_000;
    s.sweep();
    text = await registry.metrics();
    expect(text).not.toContain('crystalwatch_rolling_accuracy{camera="cam-1",window="60s"}');
    expect(text).toContain('crystalwatch_rolling_accuracy{camera="cam-1",window="4f"} 1');
    expect(text).toContain('crystalwatch_rolling_support_frames{camera="cam-1",window="60s"} 0');
    const snap = s.snapshot();
    expect(snap.map((x) => [x.window, x.support, x.precision])).toEqual([
      ['4f', 2, 1],
      ['60s', 0, null],
    ]);
    await s.close();
  });

  it('counts a late (caught-up) prediction in the confusion, but not in the live P(PG) or the latency', async () => {
    const now = { t: T0 };
    const { s, registry } = stage(now);
    s.observePrediction(prediction('live', { label: 'cex', pPG: 0.1, ingestedAt: T0 - 100 }));
    s.observePrediction(prediction('old', { label: 'pg', pPG: 0.95, predicted: 'pg', ingestedAt: T0 - 60_000, late: true }));
    const text = await registry.metrics();
    expect(text).toContain('crystalwatch_confusion_total{camera="cam-1",actual="pg",predicted="pg"} 1');
    expect(text).toContain('crystalwatch_ppg{camera="cam-1"} 0.1');
    expect(text).toContain('crystalwatch_file_to_prediction_seconds_count{camera="cam-1"} 1');
    await s.close();
  });

  it('gives series only to the configured cameras; others are counted, not joined, not emitted', async () => {
    const registry = new Registry();
    const s = new QualityStage({ kafka: {} as Kafka, topics: topicNames(), registry, cameras: ['cam-1'], maxCameras: 1000 });
    const seen: string[] = [];
    s.on('prediction', (p: Prediction) => seen.push(p.camera));
    s.observePrediction(prediction('a', { label: 'cex' }));
    s.observePrediction(prediction('b', { camera: 'cam-2', label: 'pg' }));
    s.observeLabel({ camera: 'cam-3', from: '2026-01-01T00:00:00Z', to: '2026-01-01T01:00:00Z', label: 'pg' });
    const text = await registry.metrics();
    expect(seen).toEqual(['cam-1']);
    expect(text).toContain('crystalwatch_unknown_camera_total{stage="metrics"} 2');
    expect(text).toContain('crystalwatch_confusion_total{camera="cam-1",actual="cex",predicted="cex"} 1');
    expect(text).not.toContain('cam-2');
    expect(text).not.toContain('cam-3');
    expect(s.snapshot().map((x) => x.camera)).toEqual(['cam-1', 'cam-1']);
    await s.close();
  });
});

/**
 * Frozen cameras: the same image N times in a row from one camera is `unusable` / `frozen`
 * from the N-th copy on. The detector on its own, then the classify stage with the shipped
 * model over the embedded broker. Needs `npm run build` (the inference worker runs from dist/).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { resolve } from 'node:path';
import { Registry } from 'prom-client';
import type { Producer } from 'kafkajs';
import { createKafka, createProducer, ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { ClassifyStage, FrozenDetector } from '../src/classify/index.js';
import { renderCrop } from '../simulator/index.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { collectPredictions, frameHeaders } from './helpers/predictions.js';
import { waitFor } from './helpers/wait.js';

const SHIPPED = resolve(import.meta.dirname, '../models/default');

describe('FrozenDetector', () => {
  it('passes the first N−1 copies in a row, refuses the N-th and later, and starts over on new content', () => {
    const d = new FrozenDetector({ repeats: 3 });
    const verdicts = ['a', 'a', 'a', 'a', 'b', 'b', 'a'].map((hash, i) => d.observe('cam-1', `f${i}`, hash));
    expect(verdicts).toEqual([false, false, true, true, false, false, false]);
    expect(d.runLength('cam-1')).toBe(1);
  });

  it('keeps cameras apart and answers a redelivered frame as it did the first time', () => {
    const d = new FrozenDetector({ repeats: 2 });
    expect(d.observe('cam-1', 'f0', 'x')).toBe(false);
    expect(d.observe('cam-2', 'g0', 'x')).toBe(false); // another camera: its own run
    expect(d.observe('cam-1', 'f1', 'x')).toBe(true);
    expect(d.observe('cam-1', 'f0', 'x')).toBe(false); // f0 again (at-least-once): it passed before
    expect(d.observe('cam-1', 'f1', 'x')).toBe(true); // f1 again: it was frozen before
  });

  it('remembers at most maxCameras cameras, forgetting the least recently seen', () => {
    const d = new FrozenDetector({ repeats: 2, maxCameras: 3 });
    for (const cam of ['a', 'b', 'c']) d.observe(cam, `${cam}0`, 'h');
    d.observe('a', 'a1', 'h'); // a is now the most recent
    d.observe('d', 'd0', 'h'); // b goes
    expect(d.cameras).toBe(3);
    expect(d.runLength('b')).toBe(0);
    expect(d.runLength('a')).toBe(2);
    expect(d.observe('b', 'b1', 'h')).toBe(false); // b starts over
  });

  it('refuses a repeat count that cannot work', () => {
    expect(() => new FrozenDetector({ repeats: 1 })).toThrow('frozen detection: repeats must be an integer ≥ 2');
  });
});

describe('ClassifyStage with the shipped model: frozen cameras', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker();
  });
  afterAll(async () => {
    await broker?.close();
  });

  it('marks the 5th and later identical frames of one camera frozen, per camera, and counts them', async () => {
    const kafka = createKafka({ brokers: [broker.address], clientId: 'frozen-test' });
    const topics = topicNames('frozen.');
    await ensureTopics(kafka, topics, 2);
    const registry = new Registry();
    // in-order: the frames are one backlog stamped hours ago; newest-first would classify each camera's newest first
    // and the rest late, out of capture order, where the frozen check does not apply (src/classify/README.md, Overload).
    const stage = new ClassifyStage({ kafka, topics, modelDir: SHIPPED, registry, maxBatchSize: 8, maxBatchWaitMs: 5, overload: { policy: 'in-order' } });
    const out = await collectPredictions(kafka, topics, 'frozen-reader');
    const producer: Producer = createProducer(kafka);
    await producer.connect();
    try {
      await stage.start();
      const stuck = (await renderCrop({ label: 'cex', seed: 31 })).png;
      const next = (await renderCrop({ label: 'pg', seed: 32 })).png;
      const cam1 = [...Array.from({ length: 7 }, (_, i) => ({ id: `cam-1-${i}`, png: stuck })), { id: 'cam-1-2', png: stuck }, { id: 'cam-1-7', png: next }];
      // The same picture from another camera twice: that camera is not frozen.
      const cam2 = [0, 1].map((i) => ({ id: `cam-2-${i}`, png: stuck }));
      await producer.send({
        topic: topics.frames,
        messages: [
          ...cam1.map((f, i) => ({ key: 'cam-1', value: f.png, headers: frameHeaders(f.id, 'cam-1', i) })),
          ...cam2.map((f, i) => ({ key: 'cam-2', value: f.png, headers: frameHeaders(f.id, 'cam-2', i) })),
        ],
      });
      await waitFor(() => out.predictions.length >= 11, { timeout: 90_000, message: '11 predictions', detail: () => `${out.predictions.length} so far` });
      const cam1Out = out.predictions.filter((p) => p.camera === 'cam-1').map((p) => [p.frameId, p.predicted === 'unusable' ? p.reason : 'counted']);
      expect(cam1Out).toEqual([
        ['cam-1-0', 'counted'],
        ['cam-1-1', 'counted'],
        ['cam-1-2', 'counted'],
        ['cam-1-3', 'counted'],
        ['cam-1-4', 'frozen'],
        ['cam-1-5', 'frozen'],
        ['cam-1-6', 'frozen'],
        ['cam-1-2', 'counted'], // redelivered: the verdict it had
        ['cam-1-7', 'counted'], // new content: the camera moves again
      ]);
      for (const p of out.predictions.filter((q) => q.reason === 'frozen')) expect(p.pPG).toBeNull();
      expect(out.predictions.filter((p) => p.camera === 'cam-2').map((p) => p.predicted)).toEqual(['cex', 'cex']);
      expect(await registry.metrics()).toContain('crystalwatch_frames_unusable_total{camera="cam-1",reason="frozen"} 3');
    } finally {
      await stage.close();
      await producer.disconnect();
      await out.close();
    }
  }, 120_000);
});

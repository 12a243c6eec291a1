/**
 * The simulator's camera (slow in-place writes, some frames damaged on purpose)
 * into ingest: every good frame arrives once with its ground truth, every damaged
 * one is quarantined with the reason the simulator says it has.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import { startTestBus, type TestBus } from './helpers/bus.js';
import { readTopic } from './helpers/topic.js';
import { waitFor } from './helpers/wait.js';
import { ensureTopics } from '../src/bus/kafka.js';
import { decodeFrameHeaders, type FrameHeaders } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { IngestStage } from '../src/ingest/index.js';
import { FrameCamera, type FrameTruth } from '../simulator/index.js';

let dir: string;
let kafka: Kafka;
let bus: TestBus;
beforeEach(async () => {
  bus = await startTestBus('ingest-sim-');
  ({ dir, kafka } = bus);
});
afterEach(async () => {
  await bus.close();
});

describe('simulator camera → ingest', () => {
  it('slow writes and damaged frames: good frames arrive once with their truth, damaged ones are quarantined by reason', async () => {
    const topics = topicNames('sim.');
    await ensureTopics(kafka, topics, 1);
    const watch = join(dir, 'cam-1');
    await mkdir(watch, { recursive: true });
    const registry = new Registry();
    const stage = new IngestStage({
      kafka,
      topics,
      registry,
      after: 'move',
      stallTimeoutMs: 1_000,
      reconcileIntervalMs: 500,
      cameras: [{ camera: 'cam-1', watch }],
      ledgerPath: join(dir, 'ledger.jsonl'),
    });
    await stage.start();

    const truths: FrameTruth[] = [];
    const camera = new FrameCamera({
      out: watch,
      camera: 'cam-1',
      fps: 10,
      durationS: 4,
      width: 320,
      height: 240,
      pgOnsetS: 2,
      seed: 42,
      write: 'slow',
      faults: 0.2,
      onFrame: (_path, truth) => {
        truths.push(truth);
      },
    });
    try {
      await camera.start();
      await camera.done();
      const good = truths.filter((t) => !t.fault);
      const damaged = truths.filter((t) => t.fault);
      expect(truths.length).toBe(40);
      expect(damaged.length).toBeGreaterThan(0);
      await waitFor(() => stage.stats.ingested + stage.stats.rejected >= truths.length, {
        timeout: 30_000,
        message: `all ${truths.length} frames ingested or rejected`,
        detail: () => JSON.stringify(stage.stats),
      });
      expect(stage.stats).toEqual({ ingested: good.length, rejected: damaged.length });

      const frames = await readTopic(kafka, topics.frames, (r): FrameHeaders => {
        const h = decodeFrameHeaders(r.headers);
        if (!h.ok) throw new Error(`frame at offset ${r.offset}: ${h.reason}`);
        return h.value;
      });
      // Every good frame, then 1 s with no more: a duplicate would show up in that time.
      const got = await frames
        .quiet({ atLeast: good.length, quietMs: 1000, timeout: 30_000, message: `${good.length} good frames on the topic` })
        .finally(() => frames.close());

      expect(got.map((h) => h['captured-at'])).toEqual(good.map((t) => new Date(t.capturedAt).toISOString()));
      expect(got.map((h) => h.label)).toEqual(good.map((t) => t.label));
      expect(got.some((h) => h.label === 'pg')).toBe(true);

      const metric = await registry.getSingleMetric('crystalwatch_frames_rejected_total')!.get();
      const byReason: Record<string, number> = {};
      for (const v of metric.values) byReason[String(v.labels.reason)] = v.value;
      const want: Record<string, number> = {};
      for (const t of damaged) want[t.fault!] = (want[t.fault!] ?? 0) + 1;
      expect(byReason).toEqual(want);
      // Only the good frames were acknowledged.
      const ledger = await readFile(join(dir, 'ledger.jsonl'), 'utf8');
      expect(ledger.split('\n').filter((l) => l.includes('"t":"ack"')).length).toBe(good.length);
    } finally {
      await camera.close();
      await stage.close();
    }
  });
});

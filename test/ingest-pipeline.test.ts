/**
 * Ingest against the real embedded broker and real files: 1,000 frames written as
 * fast as possible by two cameras, and slow in-place writers.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdir, open, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import { noise, noisePng, startTestBus, type TestBus } from './helpers/bus.js';
import { readTopic } from './helpers/topic.js';
import { waitFor } from './helpers/wait.js';
import { ensureTopics } from '../src/bus/kafka.js';
import { decodeFrameHeaders, type FrameHeaders } from '../src/bus/messages.js';
import { topicNames, type Topics } from '../src/bus/topics.js';
import { IngestStage } from '../src/ingest/index.js';

let dir: string;
let kafka: Kafka;
let bus: TestBus;
let topics: Topics;
const closers: Array<() => Promise<unknown>> = [];

beforeEach(async () => {
  bus = await startTestBus('ingest-pipeline-');
  ({ dir, kafka } = bus);
  topics = topicNames('test.');
  await ensureTopics(kafka, topics, 3);
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await bus.close();
});

interface Received {
  headers: FrameHeaders;
  value: Buffer;
  partition: number;
  offset: string;
}

/**
 * Every record of `topic` from the beginning, duplicates included: at least `expected`, then
 * `quietMs` with no new one (time for a late duplicate to arrive), within the deadline.
 */
async function readAll(topic: string, expected: number, quietMs: number, timeout: number): Promise<Received[]> {
  const reader = await readTopic(kafka, topic, (r): Received => {
    const h = decodeFrameHeaders(r.headers);
    if (!h.ok) throw new Error(`frame at ${r.partition}/${r.offset}: ${h.reason}`);
    return { headers: h.value, value: r.value!, partition: r.partition, offset: r.offset };
  });
  closers.push(() => reader.close());
  return reader.quiet({ atLeast: expected, quietMs, timeout, message: `${expected} frames on ${topic}` });
}

/** How many records the topic holds, from the broker's high watermarks (a second count, independent of any consumer). */
async function recordsOnTopic(topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    return (await admin.fetchTopicOffsets(topic)).reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('ingest → frames (real broker, real files)', () => {
  it('1,000 frames written as fast as possible arrive exactly once, in order per camera', async () => {
    const registry = new Registry();
    const cams = ['cam-a', 'cam-b'];
    for (const c of cams) await mkdir(join(dir, c), { recursive: true });
    const stage = new IngestStage({
      kafka,
      topics,
      registry,
      after: 'keep',
      reconcileIntervalMs: 500,
      cameras: cams.map((camera) => ({ camera, watch: join(dir, camera), runId: 'run-1' })),
      ledgerPath: join(dir, 'ledger.jsonl'),
    });
    closers.push(() => stage.close());
    await stage.start();

    const perCamera = 500;
    const images = await Promise.all(Array.from({ length: 40 }, (_, i) => noisePng(150, 150, i + 1)));
    const expected = new Map<string, string[]>(); // camera → sha256 in capture order
    const t0 = Date.parse('2026-11-22T10:00:00.000Z');
    for (let i = 0; i < perCamera; i += 1) {
      for (const [ci, camera] of cams.entries()) {
        // Same image bytes recur: frame ids must still differ (capture time is part of them).
        const bytes = images[(i * 7 + ci) % images.length]!;
        const name = `frame-${String(i).padStart(5, '0')}`;
        const folder = join(dir, camera, i % 2 === 0 ? 'cex' : 'pg');
        await mkdir(folder, { recursive: true });
        const capturedAt = new Date(t0 + i * 33).toISOString();
        await writeFile(join(folder, `${name}.json`), JSON.stringify({ camera, capturedAt, label: i % 2 === 0 ? 'cex' : 'pg', pgBoxes: [], frameIndex: i }));
        await writeFile(join(folder, `${name}.png.tmp`), bytes);
        await rename(join(folder, `${name}.png.tmp`), join(folder, `${name}.png`));
        expected.set(camera, [...(expected.get(camera) ?? []), sha(bytes)]);
      }
    }

    // Everything on the topic, duplicates too: 1,000 records, then 2 s with no more.
    const got = await readAll(topics.frames, perCamera * cams.length, 2000, 120_000);
    const ids = got.map((m) => m.headers['frame-id']);
    const duplicates = ids.filter((id, i) => ids.indexOf(id) !== i);
    expect(duplicates, 'frame ids on the topic more than once').toEqual([]);
    expect(new Set(ids).size).toBe(1000);
    expect(got).toHaveLength(1000);
    expect(await recordsOnTopic(topics.frames)).toBe(1000);
    for (const camera of cams) {
      const mine = got.filter((m) => m.headers.camera === camera);
      expect(mine).toHaveLength(perCamera);
      expect(new Set(mine.map((m) => m.partition)).size).toBe(1); // key = camera
      const times = mine.map((m) => m.headers['captured-at']);
      expect(times).toEqual([...times].sort()); // in capture order
      expect(mine.map((m) => sha(m.value))).toEqual(expected.get(camera)); // bytes untouched
      expect(mine.map((m) => m.headers.label)).toEqual(mine.map((_, i) => (i % 2 === 0 ? 'cex' : 'pg')));
      expect(mine.every((m) => m.headers['content-type'] === 'image/png' && m.headers['run-id'] === 'run-1' && Number(m.headers['completed-at']) > 0)).toBe(
        true,
      );
    }
    expect(stage.stats).toEqual({ ingested: 1000, rejected: 0 });
    const ingested = await registry.getSingleMetric('crystalwatch_frames_ingested_total')!.get();
    expect(ingested.values.map((v) => [v.labels.camera, v.value]).sort()).toEqual([
      ['cam-a', 500],
      ['cam-b', 500],
    ]);
    const latency = await registry.getSingleMetric('crystalwatch_ingest_seconds')!.get();
    expect(
      latency.values.filter((v) => (v as { metricName?: string }).metricName === 'crystalwatch_ingest_seconds_count').reduce((s, v) => s + v.value, 0),
    ).toBe(1000);
  });

  it('slow in-place writers never produce a partial frame, and move only after the ack', async () => {
    const watch = join(dir, 'cam-slow');
    await mkdir(watch, { recursive: true });
    const stage = new IngestStage({
      kafka,
      topics,
      registry: new Registry(),
      after: 'move',
      reconcileIntervalMs: 300,
      stallTimeoutMs: 3_000,
      cameras: [{ camera: 'cam-slow', watch }],
      ledgerPath: join(dir, 'ledger.jsonl'),
    });
    closers.push(() => stage.close());
    await stage.start();

    const full = await noisePng(1280, 960, 99);
    const jpeg = await sharp(noise(1280, 960, 5), { raw: { width: 1280, height: 960, channels: 1 } })
      .jpeg({ quality: 90 })
      .toBuffer();
    const tiff = await sharp(noise(640, 480, 8), { raw: { width: 640, height: 480, channels: 1 } })
      .tiff()
      .toBuffer();
    const files: Array<[string, Buffer]> = [
      ['slow-0.png', full],
      ['slow-1.jpg', jpeg],
      ['slow-2.png', await noisePng(640, 480, 3)],
      ['slow-3.tif', tiff],
    ];
    for (const [name, bytes] of files) {
      // Write in place, 64 KiB at a time with pauses, like a camera driver streaming to disk.
      const handle = await open(join(watch, name), 'w');
      for (let offset = 0; offset < bytes.length; offset += 64 * 1024) {
        await handle.write(bytes.subarray(offset, Math.min(bytes.length, offset + 64 * 1024)));
        await handle.sync();
        await new Promise((r) => setTimeout(r, 15)); // the slow writer is the scenario, not a synchronisation
      }
      await handle.close();
    }
    const got = await readAll(topics.frames, files.length, 1000, 60_000);
    expect(got.map((m) => sha(m.value))).toEqual(files.map(([, b]) => sha(b)));
    expect(got.map((m) => m.headers['content-type'])).toEqual(['image/png', 'image/jpeg', 'image/png', 'image/tiff']);
    // After the ack the files went to .archive/; nothing left in the drop folder.
    await waitFor(async () => (await readdir(join(watch, '.archive')).catch(() => [])).length >= files.length, {
      timeout: 10_000,
      message: `all ${files.length} files archived after their ack`,
    });
    expect((await readdir(join(watch, '.archive'))).sort()).toEqual(files.map(([n]) => n).sort());
    expect((await readdir(watch)).filter((n) => !n.startsWith('.'))).toEqual([]);
    expect(stage.stats).toEqual({ ingested: files.length, rejected: 0 });
  });
});

/**
 * Thumbnails from the real `frames` topic: kafkajs against the embedded broker, simulator frames
 * (fixed seeds) produced with the frame headers of the contract, the web server's own consumer
 * group turning them into ≤320 px JPEGs served by frame id and per camera.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import sharp from 'sharp';
import type { Kafka, Producer } from 'kafkajs';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { createKafka, createProducer, ensureTopics } from '../src/bus/kafka.js';
import { encodeFrameHeaders } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { WebServer } from '../src/web/index.js';
import { renderCrop } from '../simulator/index.js';
import { alert as buildAlert, frameHeaders } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const topics = topicNames('webtest.');
let broker: TestBroker;
let kafka: Kafka;
let producer: Producer;
let web: WebServer;

beforeAll(async () => {
  broker = await startTestBroker();
  kafka = createKafka({ brokers: [broker.address], clientId: 'web-thumbnails-test' });
  await ensureTopics(kafka, topics, 2);
  producer = createProducer(kafka);
  await producer.connect();
  web = new WebServer({ registry: new Registry(), port: 0, thumbnails: { kafka, topics, groupId: 'web-thumbnails-test', intervalMs: 60_000 } });
  await web.start();
});

afterAll(async () => {
  await web?.close();
  await producer?.disconnect();
  await broker?.close();
});

async function produceFrame(camera: string, frameId: string, value: Buffer, capturedAt = new Date().toISOString()): Promise<void> {
  const headers = encodeFrameHeaders(frameHeaders({ 'frame-id': frameId, camera, 'captured-at': capturedAt }));
  await producer.send({ topic: topics.frames, messages: [{ key: camera, value, headers }] });
}

async function get(path: string): Promise<Response> {
  return fetch(`${web.url}${path}`);
}

describe('thumbnails from the frames topic', () => {
  it('consumes frames from latest with its own group and serves ≤320 px JPEGs', async () => {
    const crop = await renderCrop({ label: 'pg', seed: 42, width: 640, height: 480 });
    // The consumer starts from the latest offset: keep producing until it has joined and seen one.
    let n = 0;
    await waitFor(
      async () => {
        await produceFrame('cam-a', `cam-a-warmup-${n++}`, crop.png);
        return (await get('/api/cameras/cam-a/latest.jpg')).status === 200;
      },
      { timeout: 60_000, interval: 500, message: 'a thumbnail of cam-a while producing a frame every 0.5 s' },
    );

    await produceFrame('cam-b', 'cam-b-2026-11-22T10:00:00Z-0001', crop.png, '2026-11-22T10:00:00.000Z');
    // Another camera: cam-b has just had its thumbnail, and one per camera per second is made.
    await produceFrame('cam-c', 'cam-c-bad-bytes', Buffer.from('this is not an image'));
    await producer.send({ topic: topics.frames, messages: [{ key: 'cam-b', value: crop.png, headers: { camera: 'cam-b' } }] }); // no frame-id
    // A frame produced a minute ago: the page is behind the line, so it is skipped, not shown late.
    const old = encodeFrameHeaders(frameHeaders({ 'frame-id': 'cam-b-old', camera: 'cam-b', 'captured-at': '2026-11-22T09:59:00.000Z' }));
    await producer.send({ topic: topics.frames, messages: [{ key: 'cam-b', value: crop.png, headers: old, timestamp: String(Date.now() - 60_000) }] });
    // The good frame's thumbnail, and each of the three bad records counted.
    const response = await waitFor(
      async () => {
        const thumbnail = await get('/api/frames/cam-b-2026-11-22T10%3A00%3A00Z-0001/thumbnail');
        const metrics = await (await get('/metrics')).text();
        return thumbnail.status === 200 && ['bad_headers', 'decode_error', 'skipped_lag'].every((r) => metrics.includes(`result="${r}"}`))
          ? thumbnail
          : undefined;
      },
      { timeout: 15_000, interval: 250, message: "cam-b's thumbnail and its three bad records counted" },
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/jpeg');
    const meta = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['jpeg', 320, 240]);

    const metrics = await (await get('/metrics')).text();
    expect(metrics).toMatch(/crystalwatch_web_thumbnails_total\{result="bad_headers"\} 1/);
    expect(metrics).toMatch(/crystalwatch_web_thumbnails_total\{result="decode_error"\} 1/);
    expect(metrics).toMatch(/crystalwatch_web_thumbnails_total\{result="skipped_lag"\} 1/);
    expect((await get('/api/frames/cam-b-old/thumbnail')).status).toBe(404);

    const cameras = (await (await get('/api/cameras')).json()) as {
      camera: string;
      thumbnail?: { frameId: string; sourceWidth: number; sourceHeight: number };
    }[];
    const b = cameras.find((c) => c.camera === 'cam-b');
    expect(b?.thumbnail).toMatchObject({ frameId: 'cam-b-2026-11-22T10:00:00Z-0001', sourceWidth: 640, sourceHeight: 480 });

    // Its own consumer group, so it never takes partitions from classify.
    const admin = kafka.admin();
    await admin.connect();
    try {
      const groups = await admin.listGroups();
      expect(groups.groups.map((g) => g.groupId)).toContain('web-thumbnails-test');
    } finally {
      await admin.disconnect();
    }
  });

  it('makes one thumbnail per camera per interval, and always the frames an alert wants as evidence', async () => {
    const crop = await renderCrop({ label: 'pg', seed: 9 });
    const okCount = async () => Number(/crystalwatch_web_thumbnails_total\{result="ok"\} (\d+)/.exec(await (await get('/metrics')).text())?.[1] ?? 0);
    const skippedCount = async () =>
      Number(/crystalwatch_web_thumbnails_total\{result="skipped_interval"\} (\d+)/.exec(await (await get('/metrics')).text())?.[1] ?? 0);
    await produceFrame('cam-d', 'cam-d-first', crop.png);
    await waitFor(async () => (await get('/api/frames/cam-d-first/thumbnail')).status === 200, {
      timeout: 20_000,
      message: 'the first frame of cam-d gets a thumbnail',
    });
    const ok0 = await okCount();
    const skipped0 = await skippedCount();
    // An alert names a frame before the page has seen it: it is made although cam-d just had one.
    web.thumbnailCache.pin(['cam-d-evidence']);
    const burst = Array.from({ length: 5 }, (_, i) => `cam-d-burst-${i}`);
    await producer.send({
      topic: topics.frames,
      messages: [...burst, 'cam-d-evidence'].map((frameId) => ({
        key: 'cam-d',
        value: crop.png,
        headers: encodeFrameHeaders(frameHeaders({ 'frame-id': frameId, camera: 'cam-d', 'captured-at': new Date().toISOString() })),
      })),
    });
    await waitFor(async () => (await get('/api/frames/cam-d-evidence/thumbnail')).status === 200, {
      timeout: 20_000,
      message: 'the evidence frame gets a thumbnail',
    });
    await waitFor(async () => (await skippedCount()) - skipped0 + (await okCount()) - ok0 >= burst.length + 1, {
      timeout: 20_000,
      message: 'every frame of the burst counted as made or skipped',
    });
    // One thumbnail per camera per minute here: of the burst, only the evidence frame is made.
    expect((await okCount()) - ok0).toBe(1);
    expect((await skippedCount()) - skipped0).toBe(burst.length);
    expect((await get('/api/frames/cam-d-burst-1/thumbnail')).status).toBe(404);
    // An alert fires naming skipped frames: they were held, and are made now.
    web.publish({
      type: 'alert',
      alert: buildAlert({
        id: 'cam-d-run-1',
        camera: 'cam-d',
        evidence: {
          firstPgFrameId: 'cam-d-burst-1',
          frames: [{ frameId: 'cam-d-burst-2', capturedAt: new Date().toISOString(), pPG: 0.9 }],
          detector: 'cusum',
          statistic: 5,
        },
      }),
    });
    await waitFor(
      async () => (await get('/api/frames/cam-d-burst-1/thumbnail')).status === 200 && (await get('/api/frames/cam-d-burst-2/thumbnail')).status === 200,
      {
        timeout: 20_000,
        message: 'the held evidence frames get thumbnails when the alert names them',
      },
    );
  });
});

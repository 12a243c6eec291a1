/**
 * The broker stops for 10 s mid-way (same port, same data folder when it returns):
 * ingest backs off, stops reading new files once its memory budget is full, and
 * catches up; every frame arrives exactly once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:net';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Registry } from 'prom-client';
import { startBroker, type Broker } from '../src/broker/index.js';
import { createConsumer, createKafka, ensureTopics } from '../src/bus/kafka.js';
import { decodeFrameHeaders } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { IngestStage } from '../src/ingest/index.js';
import { noise } from './helpers/bus.js';

let dir: string | undefined;
let broker: Broker | undefined;
let stage: IngestStage | undefined;
afterEach(async () => {
  await stage?.close();
  await broker?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

describe('ingest while the broker is down', () => {
  it('keeps every frame through a 10 s broker outage, with bounded memory', async () => {
    dir = await mkdtemp(join(tmpdir(), 'ingest-down-'));
    const port = await freePort();
    const dataDir = join(dir, 'broker');
    broker = await startBroker({ port, dataDir });
    const kafka = createKafka({ brokers: [`127.0.0.1:${port}`] });
    const topics = topicNames('down.');
    await ensureTopics(kafka, topics, 1);
    const watch = join(dir, 'cam');
    await mkdir(watch, { recursive: true });

    const images = await Promise.all(Array.from({ length: 8 }, (_, i) => sharp(noise(150, 150, i + 1), { raw: { width: 150, height: 150, channels: 1 } }).png().toBuffer()));
    const frameBytes = Math.max(...images.map((b) => b.length));
    const maxInFlightBytes = 10 * frameBytes; // about 10 frames: reading must stop during the outage
    const registry = new Registry();
    stage = new IngestStage({ kafka, topics, registry, after: 'move', maxInFlightBytes, reconcileIntervalMs: 500, cameras: [{ camera: 'cam', watch }], ledgerPath: join(dir, 'ledger.jsonl') });
    await stage.start();

    let maxInFlight = 0;
    const sampler = setInterval(() => {
      void registry.getSingleMetric('crystalwatch_ingest_in_flight_bytes')!.get().then((m) => { maxInFlight = Math.max(maxInFlight, m.values[0]?.value ?? 0); });
    }, 20);

    const total = 300; // 30 frames/s for 10 s
    const writer = (async () => {
      const t0 = Date.now();
      for (let i = 0; i < total; i += 1) {
        const due = t0 + (i * 1000) / 30;
        if (Date.now() < due) await sleep(due - Date.now());
        const name = `f${String(i).padStart(5, '0')}.png`;
        await writeFile(join(watch, `${name}.tmp`), images[i % images.length]);
        await rename(join(watch, `${name}.tmp`), join(watch, name));
      }
    })();

    while (stage.stats.ingested < 60) await sleep(20);
    await broker.close();
    await sleep(1_000); // a batch the broker answered while closing may still be finishing
    const downAt = stage.stats.ingested;
    await sleep(9_000);
    // While down: nothing was marked ingested, and files waited in the folder.
    expect(stage.stats.ingested).toBe(downAt);
    expect((await readdir(watch)).filter((n) => n.endsWith('.png')).length).toBeGreaterThan(0);
    broker = await startBroker({ port, dataDir });
    await writer;
    while (stage.stats.ingested < total) await sleep(50);
    clearInterval(sampler);

    const consumer = createConsumer(kafka, 'down-check');
    const ids: string[] = [];
    await consumer.connect();
    await consumer.subscribe({ topics: [topics.frames], fromBeginning: true });
    await consumer.run({ eachMessage: async ({ message }) => {
      const h = decodeFrameHeaders(message.headers);
      if (h.ok) ids.push(h.value['frame-id']);
    } });
    while (ids.length < total) await sleep(50);
    await sleep(1500);
    await consumer.disconnect();

    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total);
    expect(stage.stats).toEqual({ ingested: total, rejected: 0 });
    // Bounded memory: never more than the budget plus one frame (one frame always fits).
    expect(maxInFlight).toBeLessThanOrEqual(maxInFlightBytes + frameBytes);
    expect(maxInFlight).toBeGreaterThan(0);
    for (let i = 0; i < 100 && (await readdir(join(watch, '.archive'))).length < total; i += 1) await sleep(50);
    expect((await readdir(join(watch, '.archive'))).length).toBe(total);
  });
});

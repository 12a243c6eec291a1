/**
 * The broker stops for 10 s mid-way (same port, same data folder when it returns):
 * ingest backs off, stops reading new files once its memory budget is full, and
 * catches up; every frame arrives exactly once.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Registry } from 'prom-client';
import { startBroker, type Broker } from '../src/broker/index.js';
import { createKafka, ensureTopics } from '../src/bus/kafka.js';
import { decodeFrameHeaders } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { IngestStage } from '../src/ingest/index.js';
import { noise } from './helpers/bus.js';
import { freePort } from './helpers/ports.js';
import { readTopic } from './helpers/topic.js';
import { waitFor, waitForQuiet } from './helpers/wait.js';

let dir: string | undefined;
let broker: Broker | undefined;
let stage: IngestStage | undefined;
afterEach(async () => {
  await stage?.close();
  await broker?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

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

    const images = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        sharp(noise(150, 150, i + 1), { raw: { width: 150, height: 150, channels: 1 } })
          .png()
          .toBuffer(),
      ),
    );
    const frameBytes = Math.max(...images.map((b) => b.length));
    const maxInFlightBytes = 10 * frameBytes; // about 10 frames: reading must stop during the outage
    const registry = new Registry();
    const ingest = new IngestStage({
      kafka,
      topics,
      registry,
      after: 'move',
      maxInFlightBytes,
      reconcileIntervalMs: 500,
      cameras: [{ camera: 'cam', watch }],
      ledgerPath: join(dir, 'ledger.jsonl'),
    });
    stage = ingest; // closed by afterEach
    await ingest.start();

    let maxInFlight = 0;
    const sampler = setInterval(() => {
      void registry
        .getSingleMetric('crystalwatch_ingest_in_flight_bytes')!
        .get()
        .then((m) => {
          maxInFlight = Math.max(maxInFlight, m.values[0]?.value ?? 0);
        });
    }, 20);

    const total = 300; // 30 frames/s for 10 s
    const writer = (async () => {
      const t0 = Date.now();
      for (let i = 0; i < total; i += 1) {
        const due = t0 + (i * 1000) / 30;
        // Pacing the camera (30 frames/s), not synchronisation.
        if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
        const name = `f${String(i).padStart(5, '0')}.png`;
        await writeFile(join(watch, `${name}.tmp`), images[i % images.length]!);
        await rename(join(watch, `${name}.tmp`), join(watch, name));
      }
    })();

    await waitFor(() => ingest.stats.ingested >= 60, { timeout: 30_000, message: '60 frames ingested before the outage' });
    await broker.close();
    // A batch the broker answered while closing may still be finishing: wait until the count holds still.
    const downAt = await waitForQuiet(() => ingest.stats.ingested, {
      quietMs: 500,
      timeout: 10_000,
      message: 'the ingested count to stop moving once the broker is down',
    });
    // The outage itself is the scenario under test, not a synchronisation: the broker stays away
    // while the camera keeps writing, and nothing may count as ingested meanwhile.
    await new Promise((r) => setTimeout(r, 9_000));
    // While down: nothing was marked ingested, and files waited in the folder.
    expect(ingest.stats.ingested).toBe(downAt);
    expect((await readdir(watch)).filter((n) => n.endsWith('.png')).length).toBeGreaterThan(0);
    broker = await startBroker({ port, dataDir });
    await writer;
    await waitFor(() => ingest.stats.ingested >= total, {
      timeout: 60_000,
      message: `all ${total} frames ingested after the outage`,
      detail: () => `ingested ${ingest.stats.ingested}`,
    });
    clearInterval(sampler);

    const frames = await readTopic(kafka, topics.frames, (r) => {
      const h = decodeFrameHeaders(r.headers);
      if (!h.ok) throw new Error(`frame ${r.offset}: ${h.reason}`);
      return h.value['frame-id'];
    });
    // Every record, then 1.5 s with no more: a duplicate would show up in that time.
    const ids = await frames.quiet({ atLeast: total, quietMs: 1500, timeout: 60_000, message: `${total} frames on the topic` }).finally(() => frames.close());

    expect(ids).toHaveLength(total);
    expect(new Set(ids).size).toBe(total);
    expect(ingest.stats).toEqual({ ingested: total, rejected: 0 });
    // Bounded memory: never more than the budget plus one frame (one frame always fits).
    expect(maxInFlight).toBeLessThanOrEqual(maxInFlightBytes + frameBytes);
    expect(maxInFlight).toBeGreaterThan(0);
    await waitFor(async () => (await readdir(join(watch, '.archive'))).length >= total, {
      timeout: 10_000,
      message: `all ${total} files archived after their ack`,
    });
    expect((await readdir(join(watch, '.archive'))).length).toBe(total);
  });
});

/**
 * Crashes: kill -9 of an ingest process mid-way, and a crash between Kafka's ack
 * and the ledger's ack record. Nothing lost, nothing duplicated.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import type { Broker } from '../src/broker/index.js';
import { noisePng, startTestBus, type TestBus } from './helpers/bus.js';
import { readTopic } from './helpers/topic.js';
import { waitFor, waitForExit } from './helpers/wait.js';
import { ensureTopics } from '../src/bus/kafka.js';
import { decodeFrameHeaders } from '../src/bus/messages.js';
import { topicNames, type Topics } from '../src/bus/topics.js';
import { IngestStage } from '../src/ingest/index.js';

let dir: string;
let broker: Broker;
let kafka: Kafka;
let bus: TestBus;
const children = new Set<ChildProcess>();

beforeEach(async () => {
  bus = await startTestBus('ingest-crash-');
  ({ dir, broker, kafka } = bus);
});
afterEach(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  children.clear();
  await bus.close();
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every frame on `topic` (duplicates too): `atLeast` of them, then `quietMs` with no more. */
async function framesOn(topic: string, atLeast: number, quietMs = 1500): Promise<Array<{ frameId: string; value: Buffer }>> {
  const reader = await readTopic(kafka, topic, (r) => {
    const h = decodeFrameHeaders(r.headers);
    if (!h.ok) throw new Error(`frame at offset ${r.offset}: ${h.reason}`);
    return { frameId: h.value['frame-id'], value: r.value! };
  });
  // The quiet period is room for a duplicate to show up.
  return reader.quiet({ atLeast, quietMs, timeout: 60_000, message: `${atLeast} frames on ${topic}` }).finally(() => reader.close());
}

/** Frames acknowledged so far: `--after move` archives each one after its ack. */
async function archived(watch: string): Promise<number> {
  return (await readdir(join(watch, '.archive')).catch(() => [])).length;
}

function startIngest(watch: string, ledger: string, topics: Topics): ChildProcess {
  const cli = resolve(import.meta.dirname, '../bin/crystalwatch.js');
  const child = spawn(
    process.execPath,
    [
      cli,
      'ingest',
      '--watch',
      watch,
      '--camera',
      'cam',
      '--brokers',
      broker.address,
      '--ledger',
      ledger,
      '--after',
      'move',
      '--reconcile-ms',
      '500',
      '--topic-prefix',
      topics.frames.replace(/frames$/, ''),
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, CRYSTALWATCH_LOG_LEVEL: 'warn', CRYSTALWATCH_LOG_PRETTY: '0' },
    },
  );
  children.add(child);
  return child;
}

async function kill9(child: ChildProcess): Promise<void> {
  child.kill('SIGKILL');
  await waitForExit(child, { timeout: 10_000, message: 'crystalwatch ingest to die on SIGKILL' });
}

describe('ingest crash safety', () => {
  it('kill -9 of the ingest process mid-way, three times: every frame arrives exactly once', async () => {
    const topics = topicNames('crash.');
    await ensureTopics(kafka, topics, 1);
    const watch = join(dir, 'cam');
    await mkdir(watch, { recursive: true });
    const ledger = join(dir, 'ledger.jsonl');
    const total = 600;
    const images = await Promise.all(Array.from({ length: total }, (_, i) => noisePng(64, 64, i + 1)));

    let child = startIngest(watch, ledger, topics);
    const writer = (async () => {
      for (let i = 0; i < total; i += 1) {
        const name = `f${String(i).padStart(5, '0')}.png`;
        await writeFile(join(watch, `${name}.tmp`), images[i]!);
        await rename(join(watch, `${name}.tmp`), join(watch, name));
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 20)); // pacing the camera, not synchronisation
      }
    })();
    // Kill at different moments after an ack, so some kills land mid-request.
    for (const [killAt, delayMs] of [
      [120, 0],
      [260, 7],
      [400, 19],
    ] as const) {
      await waitFor(async () => (await archived(watch)) >= killAt, { timeout: 60_000, interval: 5, message: `${killAt} frames archived before kill -9` });
      // The scenario, not a synchronisation: kill 0, 7 or 19 ms after that ack.
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      await kill9(child);
      child = startIngest(watch, ledger, topics);
    }
    await writer;

    const got = await framesOn(topics.frames, total);
    expect(got).toHaveLength(total);
    expect(new Set(got.map((m) => m.frameId)).size).toBe(total);
    expect(got.map((m) => sha(m.value)).sort()).toEqual(images.map(sha).sort());
    // Every file ends in the archive once Kafka has it; the drop folder empties.
    await waitFor(async () => (await archived(watch)) >= total, { timeout: 10_000, message: `all ${total} files archived` });
    expect((await readdir(join(watch, '.archive'))).length).toBe(total);
    expect((await readdir(watch)).filter((n) => n.endsWith('.png'))).toEqual([]);
    child.kill('SIGTERM');
    await waitForExit(child, { timeout: 15_000, message: 'crystalwatch ingest to exit on SIGTERM' });
  });

  it('a crash between the Kafka ack and the ledger ack: the frame is found in Kafka, not sent again', async () => {
    const topics = topicNames('gap.');
    await ensureTopics(kafka, topics, 1);
    const watch = join(dir, 'cam');
    await mkdir(watch, { recursive: true });
    const ledgerPath = join(dir, 'ledger.jsonl');
    await writeFile(join(watch, 'a.png'), await noisePng(64, 64, 1));
    await writeFile(join(watch, 'b.png'), await noisePng(64, 64, 2));

    const first = new IngestStage({ kafka, topics, registry: new Registry(), after: 'keep', cameras: [{ camera: 'cam', watch }], ledgerPath });
    await first.start();
    await waitFor(() => first.stats.ingested >= 2, { timeout: 30_000, message: 'a.png and b.png ingested' });
    await first.close();

    // Forget the ack of b.png, as if the process died right after Kafka acknowledged it.
    const lines = (await readFile(ledgerPath, 'utf8')).trim().split('\n');
    const bSend = lines.map((l) => JSON.parse(l) as { t: string; path?: string; frameId: string }).find((r) => r.t === 'send' && r.path === 'b.png')!;
    await writeFile(ledgerPath, `${lines.filter((l) => !(l.includes('"t":"ack"') && l.includes(bSend.frameId))).join('\n')}\n`);

    await writeFile(join(watch, 'c.png'), await noisePng(64, 64, 3));
    const second = new IngestStage({ kafka, topics, registry: new Registry(), after: 'keep', cameras: [{ camera: 'cam', watch }], ledgerPath });
    await second.start();
    await waitFor(() => second.stats.ingested >= 1, { timeout: 30_000, message: 'c.png ingested' });
    const got = await framesOn(topics.frames, 3);
    await second.close();
    expect(got.map((m) => m.frameId).length).toBe(3);
    expect(new Set(got.map((m) => m.frameId)).size).toBe(3);
    expect(second.stats.ingested).toBe(1); // only c.png
    const ledger = await readFile(ledgerPath, 'utf8');
    expect(ledger).toContain(`"t":"ack","frameId":"${bSend.frameId}"`);
  });
});

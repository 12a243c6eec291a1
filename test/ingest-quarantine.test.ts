/** Every kind of bad input ends in `<watch>/.quarantine/` with its reason, a metric and one log line. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { Registry } from 'prom-client';
import { pino } from 'pino';
import type { Kafka } from 'kafkajs';
import { noisePng, startTestBus, type TestBus } from './helpers/bus.js';
import { readTopic } from './helpers/topic.js';
import { waitForQuiet } from './helpers/wait.js';
import { ensureTopics } from '../src/bus/kafka.js';
import { decodeFrameHeaders } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { IngestStage } from '../src/ingest/index.js';

let dir: string;
let kafka: Kafka;
let bus: TestBus;

beforeEach(async () => {
  bus = await startTestBus('ingest-quarantine-');
  ({ dir, kafka } = bus);
});
afterEach(async () => {
  await bus.close();
});

describe('ingest quarantine', () => {
  it('sends each kind of bad input to quarantine with its reason, and still ingests the good frame', async () => {
    const topics = topicNames('q.');
    await ensureTopics(kafka, topics, 1);
    const watch = join(dir, 'cam');
    await mkdir(watch, { recursive: true });
    const good = await noisePng(150, 150, 1);

    // Present before the start (found by the first scan): a truncated PNG left by a crashed writer.
    await writeFile(join(watch, 'truncated.png'), good.subarray(0, Math.floor(good.length / 2)));

    const logLines: string[] = [];
    const logger = pino(
      { level: 'warn' },
      {
        write: (line: string) => {
          logLines.push(line);
        },
      },
    );
    const registry = new Registry();
    const stage = new IngestStage({
      kafka,
      topics,
      registry,
      logger,
      after: 'keep',
      stallTimeoutMs: 400,
      reconcileIntervalMs: 300,
      maxFileBytes: 200_000,
      cameras: [{ camera: 'cam', watch }],
      ledgerPath: join(dir, 'ledger.jsonl'),
    });
    try {
      await stage.start();
      const expected: Record<string, string> = { 'truncated.png': 'truncated' };
      const drop = async (name: string, bytes: Buffer | string, reason: string) => {
        await writeFile(join(watch, name), bytes);
        expected[name] = reason;
      };

      await drop('empty.png', '', 'empty');
      const corrupt = Buffer.from(good);
      corrupt[80]! ^= 0xff;
      await drop('corrupt.png', corrupt, 'corrupt');
      await drop('notes.png', 'these are notes, not a picture\n', 'not-an-image');
      await drop('readme.txt', 'camera folder readme\n', 'not-an-image');
      await drop('big.png', await noisePng(1280, 960, 2), 'too-large');
      const huge = Buffer.from(good);
      huge.writeUInt32BE(100_000, 16);
      huge.writeUInt32BE(100_000, 20);
      huge.writeUInt32BE(crc32(huge.subarray(12, 29)), 29);
      await drop('huge.png', huge, 'too-large');
      await writeFile(join(watch, 'labelled.json'), '{"camera": "cam", "capturedAt": ');
      await drop('labelled.png', good, 'bad-sidecar');
      await symlink('/etc/hostname', join(watch, 'outside.png'));
      expected['outside.png'] = 'symlink';
      if (process.getuid?.() !== 0) {
        // Root reads anything, so this case only runs as an ordinary user.
        await drop('locked.png', good, 'unreadable');
        await chmod(join(watch, 'locked.png'), 0o000);
      }
      await writeFile(join(watch, 'fine.png'), await noisePng(150, 150, 3));

      const quarantine = join(watch, '.quarantine');
      const want = Object.keys(expected).length;
      // All rejected, then quiet: a file rejected twice would show up in that time.
      await waitForQuiet(() => stage.stats.rejected, { atLeast: want, quietMs: 500, timeout: 20_000, message: `${want} files quarantined` });
      expect(stage.stats.rejected).toBe(want);

      for (const [name, reason] of Object.entries(expected)) {
        const info = JSON.parse(await readFile(join(quarantine, `${name}.reason.json`), 'utf8')) as { reason: string; detail: string; camera: string };
        expect(info.reason, name).toBe(reason);
        expect(info.camera).toBe('cam');
        expect(info.detail.length, `${name} detail`).toBeGreaterThan(5);
      }
      const inQuarantine = await readdir(quarantine);
      expect(inQuarantine).toContain('labelled.json'); // the sidecar goes with its image
      // Nothing bad is left in the drop folder; the good frame stays (after=keep).
      expect((await readdir(watch)).filter((n) => !n.startsWith('.')).sort()).toEqual(['fine.png']);

      const metric = await registry.getSingleMetric('crystalwatch_frames_rejected_total')!.get();
      const byReason: Record<string, number> = {};
      for (const v of metric.values) byReason[String(v.labels.reason)] = v.value;
      const wantByReason: Record<string, number> = {};
      for (const reason of Object.values(expected)) wantByReason[reason] = (wantByReason[reason] ?? 0) + 1;
      expect(byReason).toEqual(wantByReason);
      // One warning line per rejected file, naming it and the reason.
      const warnings = logLines.map((l) => JSON.parse(l) as { file?: string; reason?: string }).filter((l) => l.reason);
      expect(warnings.map((w) => w.file).sort()).toEqual(Object.keys(expected).sort());

      // The good frame went through, and nothing else did.
      const reader = await readTopic(kafka, topics.frames, (r) => {
        const h = decodeFrameHeaders(r.headers);
        if (!h.ok) throw new Error(`frame at offset ${r.offset}: ${h.reason}`);
        return h.value['frame-id'];
      });
      const frames = await reader.quiet({ atLeast: 1, quietMs: 500, timeout: 20_000, message: 'the good frame on the topic' }).finally(() => reader.close());
      expect(frames).toHaveLength(1);
      expect(stage.stats.ingested).toBe(1);
    } finally {
      await stage.close();
    }
  });
});

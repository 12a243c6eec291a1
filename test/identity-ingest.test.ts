/**
 * Ingest's limits: one pixel limit (the config's, which classify decodes with), read from the
 * header and enforced before anything is decoded; and files opened without following a
 * symlink swapped in between the check and the read.
 */
import { lstat, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import sharp from 'sharp';
import { ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { DEFAULT_MAX_PIXELS, validateConfig } from '../src/config/index.js';
import { DEFAULT_MAX_PIXELS as CLASSIFY_MAX_PIXELS } from '../src/classify/preprocess.js';
import { headerDimensions } from '../src/ingest/image.js';
import { IngestStage } from '../src/ingest/index.js';
import { openFrameFile } from '../src/ingest/open.js';
import { judgeHead } from '../src/ingest/verdict.js';
import { noisePng, startTestBus } from './helpers/bus.js';
import { waitFor } from './helpers/wait.js';

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** A complete, valid black greyscale PNG of width × height (zero rows deflate to almost nothing), optionally padded with a text chunk. */
function blackPng(width: number, height: number, paddingBytes = 0): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth; colour type 0 (grey), compression, filter, interlace all 0
  const rows = deflateSync(Buffer.alloc((width + 1) * height), { level: 1 });
  const padding = paddingBytes > 0 ? [chunk('tEXt', Buffer.concat([Buffer.from('Comment\0'), Buffer.alloc(paddingBytes, 0x61)]))] : [];
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    ...padding,
    chunk('IDAT', rows),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

let scratch: string;
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'cw-identity-ingest-'));
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

describe('one pixel limit', () => {
  it('is the config default, and the limit classify decodes with', () => {
    expect(DEFAULT_MAX_PIXELS).toBe(CLASSIFY_MAX_PIXELS);
    expect(validateConfig({}).limits.maxPixels).toBe(DEFAULT_MAX_PIXELS);
    expect(validateConfig({ limits: { maxPixels: 1_000_000 } }).limits.maxPixels).toBe(1_000_000);
  });

  it('reads the dimensions from the first bytes of PNG, JPEG and TIFF', async () => {
    const raw = { raw: { width: 300, height: 200, channels: 1 as const } };
    const grey = Buffer.alloc(300 * 200, 90);
    const jpeg = await sharp(grey, raw)
      .withMetadata({ exif: { IFD0: { Copyright: 'x'.repeat(2000) } } })
      .jpeg()
      .toBuffer();
    const tiff = await sharp(grey, raw).tiff().toBuffer();
    expect(headerDimensions(blackPng(7000, 7000).subarray(0, 33))).toEqual({ kind: 'png', width: 7000, height: 7000 });
    expect(headerDimensions(jpeg.subarray(0, 4096))).toEqual({ kind: 'jpeg', width: 300, height: 200 });
    expect(headerDimensions(tiff)).toEqual({ kind: 'tiff', width: 300, height: 200 });
    expect(headerDimensions(jpeg.subarray(0, 10))).toBeUndefined(); // SOF not there yet
  });

  it('refuses a 7000×7000 header as too-large from its first 33 bytes, before the file is complete', () => {
    const head = blackPng(7000, 7000).subarray(0, 33);
    expect(judgeHead(head, head.subarray(-12), 33, { maxPixels: DEFAULT_MAX_PIXELS, quietMs: 0, stalled: false })).toEqual({
      do: 'reject',
      reason: 'too-large',
      detail: 'header claims 7000×7000 = 49000000 pixels; the limit is 40000000 pixels (limits.maxPixels)',
    });
  });

  it('quarantines a 7000×7000 PNG (small or padded past the peek size) with reason too-large, and ingests the good frame', async () => {
    const bus = await startTestBus('cw-identity-ingest-bus-');
    const topics = topicNames('idi.');
    await ensureTopics(bus.kafka, topics, 1);
    const watch = join(bus.dir, 'cam-1');
    await mkdir(watch, { recursive: true });
    const stage = new IngestStage({
      kafka: bus.kafka,
      topics,
      registry: new Registry(),
      after: 'keep',
      cameras: [{ camera: 'cam-1', watch }],
      ledgerPath: join(bus.dir, 'ledger.jsonl'),
    });
    try {
      await stage.start();
      const small = blackPng(7000, 7000);
      const padded = blackPng(7000, 7000, 400 * 1024);
      expect(small.length).toBeLessThan(256 * 1024);
      expect(padded.length).toBeGreaterThan(256 * 1024);
      await writeFile(join(watch, 'huge.png'), small);
      await writeFile(join(watch, 'huge-padded.png'), padded);
      await writeFile(join(watch, 'fine.png'), await noisePng(150, 150, 5));
      await waitFor(() => stage.stats.rejected === 2 && stage.stats.ingested === 1, { timeout: 30_000, message: '2 rejected and 1 ingested frame' });
      for (const name of ['huge.png', 'huge-padded.png']) {
        const info = JSON.parse(await readFile(join(watch, '.quarantine', `${name}.reason.json`), 'utf8')) as { reason: string; detail: string };
        expect(info).toMatchObject({
          reason: 'too-large',
          detail: 'header claims 7000×7000 = 49000000 pixels; the limit is 40000000 pixels (limits.maxPixels)',
        });
      }
    } finally {
      await stage.close();
      await bus.close();
    }
  }, 60_000);
});

describe('openFrameFile: no links followed', () => {
  const setup = async (name: string) => {
    const root = join(scratch, name);
    await mkdir(join(root, 'sub'), { recursive: true });
    const file = join(root, 'sub', 'frame.png');
    await writeFile(file, 'frame bytes');
    await writeFile(join(scratch, `${name}-secret.txt`), 'not for the camera topic');
    return { root, file, seen: await lstat(file), secret: join(scratch, `${name}-secret.txt`) };
  };

  it('opens the file lstat saw', async () => {
    const { root, file, seen } = await setup('plain');
    const opened = await openFrameFile(file, seen, root);
    expect(opened.ok).toBe(true);
    if (opened.ok) {
      expect(opened.size).toBe(11);
      expect((await opened.handle.readFile()).toString()).toBe('frame bytes');
      await opened.handle.close();
    }
  });

  it('refuses a symlink swapped in for the file after lstat, without reading its target', async () => {
    const { root, file, seen, secret } = await setup('swapped');
    await rm(file);
    await symlink(secret, file);
    expect(await openFrameFile(file, seen, root)).toEqual({
      ok: false,
      reason: 'symlink',
      detail: 'became a symbolic link between the check and the open (not followed); copy the file into the folder instead',
    });
  });

  it('refuses a folder on the path swapped for a link to outside the watched folder', async () => {
    const { root, seen } = await setup('parent');
    const outside = join(scratch, 'parent-outside');
    await mkdir(outside);
    await rename(join(root, 'sub', 'frame.png'), join(outside, 'frame.png')); // same inode, now outside
    await rm(join(root, 'sub'), { recursive: true });
    await symlink(outside, join(root, 'sub'));
    const opened = await openFrameFile(join(root, 'sub', 'frame.png'), seen, root);
    expect(opened).toMatchObject({ ok: false, reason: 'symlink', detail: expect.stringMatching(/outside the watched folder/) });
  });

  it('asks for another look when the file was replaced by another (a writer renaming into place)', async () => {
    const { root, file, seen } = await setup('renamed');
    await writeFile(join(root, 'sub', '.frame.png.tmp'), 'new bytes');
    await rename(join(root, 'sub', '.frame.png.tmp'), file);
    expect(await openFrameFile(file, seen, root)).toMatchObject({ ok: false, reason: 'changed' });
  });
});

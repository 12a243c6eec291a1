/**
 * The pure completeness judge of ingest (src/ingest/verdict.ts): from the head, the tail and
 * how long the file has been quiet, wait | reject | go. Every buffer is built in memory; no
 * file system.
 */
import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { judgeHead, judgeWhole, type Quiet } from '../src/ingest/verdict.js';

const MAX_PIXELS = 40_000_000;
const HEAD = 4096;
const TAIL = 64;
const fresh: Quiet = { maxPixels: MAX_PIXELS, quietMs: 0, stalled: false };
const stalled: Quiet = { maxPixels: MAX_PIXELS, quietMs: 30_000, stalled: true };
const STABLE_SIZE_MS = 1_000;

function grey(width: number, height: number): Buffer {
  const raw = Buffer.alloc(width * height);
  for (let i = 0; i < raw.length; i += 1) raw[i] = (i * 37) % 251;
  return raw;
}
const image = (format: 'png' | 'jpeg' | 'tiff') =>
  sharp(grey(96, 64), { raw: { width: 96, height: 64, channels: 1 } })
    .toFormat(format)
    .toBuffer();
const head = (bytes: Buffer) => bytes.subarray(0, HEAD);
const tail = (bytes: Buffer) => bytes.subarray(Math.max(0, bytes.length - TAIL));

/** Both judges in the order ingest runs them: the head first, the whole file when the head says go. */
function judge(bytes: Buffer, quiet: Quiet, stableSizeMs = STABLE_SIZE_MS) {
  const first = judgeHead(head(bytes), tail(bytes), bytes.length, quiet);
  if (first.do !== 'go') return first;
  return judgeWhole(bytes, tail(bytes), first.kind, { ...quiet, stableSizeMs });
}

describe('ingest completeness judge', () => {
  it('a PNG goes with IEND and waits without it while the writer is active', async () => {
    const png = await image('png');
    expect(judge(png, fresh)).toEqual({ do: 'go', kind: 'png' });
    const noIend = png.subarray(0, png.length - 12);
    expect(judgeHead(head(noIend), tail(noIend), noIend.length, fresh)).toEqual({ do: 'wait' });
    expect(judge(noIend, fresh)).toEqual({ do: 'wait' });
  });

  it('a JPEG goes with its end-of-image marker and waits without it', async () => {
    const jpeg = await image('jpeg');
    expect(judge(jpeg, fresh)).toEqual({ do: 'go', kind: 'jpeg' });
    const noEoi = jpeg.subarray(0, jpeg.length - 2);
    expect(judge(noEoi, fresh)).toEqual({ do: 'wait' });
  });

  it('a TIFF (no end marker) waits until its size has been stable for stableSizeMs, then goes', async () => {
    const tiff = await image('tiff');
    const growing = judge(tiff, { ...fresh, quietMs: 200 });
    expect(growing).toEqual({ do: 'wait', delayMs: STABLE_SIZE_MS - 200 });
    expect(judge(tiff, { ...fresh, quietMs: STABLE_SIZE_MS })).toEqual({ do: 'go', kind: 'tiff' });
  });

  it('a file cut short and unchanged past the stall timeout is rejected as truncated', async () => {
    for (const format of ['png', 'jpeg'] as const) {
      const bytes = await image(format);
      const cut = bytes.subarray(0, Math.floor(bytes.length / 2));
      const verdict = judge(cut, stalled);
      expect(verdict, format).toMatchObject({ do: 'reject', reason: 'truncated' });
      expect(verdict.do === 'reject' && verdict.detail, format).toContain('unchanged for 30000 ms');
    }
  });

  it('an empty or magic-prefix-only file waits while fresh and is rejected once stalled', () => {
    for (const bytes of [Buffer.alloc(0), Buffer.from([0x89, 0x50, 0x4e])]) {
      expect(judgeHead(bytes, bytes, bytes.length, fresh), `${bytes.length} bytes`).toEqual({ do: 'wait' });
      expect(judgeHead(bytes, bytes, bytes.length, stalled), `${bytes.length} bytes`).toEqual({
        do: 'reject',
        reason: 'not-an-image',
        detail: `only ${bytes.length} bytes, unchanged for 30000 ms, not a PNG, JPEG or TIFF header`,
      });
    }
  });

  it('a file that is not an image is rejected at once, stalled or not', () => {
    const text = Buffer.from('name,value\ncamera,cam-1\n');
    for (const quiet of [fresh, stalled]) {
      expect(judgeHead(head(text), tail(text), text.length, quiet)).toMatchObject({ do: 'reject', reason: 'not-an-image' });
    }
  });

  it('a PNG that ends with IEND but whose chunk runs past the end is corrupt, not truncated', async () => {
    const png = await image('png');
    // Signature and IHDR (33 bytes), an IDAT chunk that claims 1000 bytes and has 10, then IEND:
    // the chunk runs past the end, yet the file ends with the end marker.
    const idat = Buffer.alloc(8 + 10);
    idat.writeUInt32BE(1000, 0);
    idat.write('IDAT', 4, 'latin1');
    const damaged = Buffer.concat([png.subarray(0, 33), idat, png.subarray(png.length - 12)]);
    expect(judge(damaged, fresh)).toEqual({ do: 'wait' });
    expect(judge(damaged, stalled)).toMatchObject({ do: 'reject', reason: 'corrupt' });
  });
});

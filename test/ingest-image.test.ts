import { describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { crc32 } from 'node:zlib';
import { inspectImage, sniffKind, tailLooksComplete } from '../src/ingest/image.js';

const limits = { maxPixels: 50_000_000 };

async function noise(width: number, height: number, seed = 7): Promise<Buffer> {
  const raw = Buffer.alloc(width * height);
  let s = seed;
  for (let i = 0; i < raw.length; i += 1) {
    s = (s * 1103515245 + 12345) >>> 0;
    raw[i] = s >>> 24;
  }
  return raw;
}

/** A PNG whose IHDR claims width × height, with a valid CRC (what a hostile file looks like). */
function pngClaiming(bytes: Buffer, width: number, height: number): Buffer {
  const out = Buffer.from(bytes);
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

describe('image completeness', () => {
  it('a PNG is incomplete at every prefix and complete only with IEND', async () => {
    const png = await sharp(await noise(150, 160), { raw: { width: 150, height: 160, channels: 1 } })
      .png()
      .toBuffer();
    expect(sniffKind(png)).toBe('png');
    expect(inspectImage(png, limits)).toEqual({ state: 'complete', kind: 'png', width: 150, height: 160 });
    for (let n = 1; n < png.length; n += Math.max(1, Math.floor(png.length / 97))) {
      const result = inspectImage(png.subarray(0, n), limits);
      expect(result.state, `prefix ${n}/${png.length}`).toBe('incomplete');
    }
    expect(inspectImage(png.subarray(0, png.length - 1), limits).state).toBe('incomplete');
    expect(tailLooksComplete('png', png)).toBe(true);
    expect(tailLooksComplete('png', png.subarray(0, png.length - 1))).toBe(false);
  });

  it('a JPEG is complete only with its end-of-image marker', async () => {
    const jpeg = await sharp(await noise(1280, 960), { raw: { width: 1280, height: 960, channels: 1 } })
      .jpeg({ quality: 80 })
      .toBuffer();
    expect(inspectImage(jpeg, limits)).toEqual({ state: 'complete', kind: 'jpeg', width: 1280, height: 960 });
    for (const n of [2, 20, 300, Math.floor(jpeg.length / 2), jpeg.length - 1]) {
      expect(inspectImage(jpeg.subarray(0, n), limits).state, `prefix ${n}`).toBe('incomplete');
    }
  });

  it('a TIFF needs a stable size and reports its dimensions', async () => {
    const tiff = await sharp(await noise(64, 48), { raw: { width: 64, height: 48, channels: 1 } })
      .tiff()
      .toBuffer();
    expect(inspectImage(tiff, limits)).toMatchObject({ state: 'needs-stable-size', kind: 'tiff', width: 64, height: 48 });
  });

  it('flags corrupt PNG chunks, absurd dimensions and non-images', async () => {
    const png = await sharp(await noise(150, 150), { raw: { width: 150, height: 150, channels: 1 } })
      .png()
      .toBuffer();
    const flipped = Buffer.from(png);
    flipped[60]! ^= 0xff; // inside IDAT: its CRC no longer matches
    expect(inspectImage(flipped, limits)).toMatchObject({ state: 'invalid', reason: 'corrupt' });

    const huge = pngClaiming(png, 100_000, 100_000);
    expect(inspectImage(huge, limits)).toMatchObject({
      state: 'invalid',
      reason: 'too-large',
      detail: 'header claims 100000×100000 = 10000000000 pixels; the limit is 50000000 pixels (limits.maxPixels)',
    });
    expect(inspectImage(pngClaiming(png, 0, 150), limits)).toMatchObject({ state: 'invalid', reason: 'dimensions' });

    expect(inspectImage(Buffer.from('hello, this is a text file\n'), limits)).toMatchObject({ state: 'invalid', reason: 'not-an-image' });
    // The first bytes of a PNG signature could still become a PNG.
    expect(inspectImage(png.subarray(0, 4), limits).state).toBe('incomplete');
  });
});

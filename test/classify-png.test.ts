import { describe, expect, it } from 'vitest';
import sharp, { type PngOptions } from 'sharp';
import { deflateSync } from 'node:zlib';
import { decodePng, PngError, readPngHeader } from '../src/classify/png.js';
import { resizeGrey } from '../src/classify/resample.js';
import { cropAndResize, decodeImage, ImageDecodeError } from '../src/classify/preprocess.js';
import { renderCrop } from '../simulator/index.js';

/** Deterministic texture with edges and gradients, so every PNG filter type gets chosen somewhere. */
function texture(width: number, height: number, channels: number, seed: number): Buffer {
  const out = Buffer.alloc(width * height * channels);
  let s = seed;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      s = (s * 1103515245 + 12345) >>> 0;
      for (let c = 0; c < channels; c++) {
        const smooth = (x * (c + 1) + y * 2) & 0xff;
        out[(y * width + x) * channels + c] = (x > width / 2 ? smooth : (s >>> 16) & 0xff) ^ (c * 37);
      }
    }
  }
  return out;
}

async function png(width: number, height: number, channels: 1 | 2 | 3 | 4, options: PngOptions = {}): Promise<Buffer> {
  const image = sharp(texture(width, height, channels, width + channels), { raw: { width, height, channels } });
  // sharp writes one- and two-channel raw input as RGB unless told it is grey.
  return (channels <= 2 ? image.toColourspace('b-w') : image).png({ adaptiveFiltering: true, compressionLevel: 6, ...options }).toBuffer();
}

/** A PNG assembled by hand (CRCs are not read by the decoder, so zeros do). */
function rawPng(width: number, height: number, colourType: number, idat: Buffer, bitDepth = 8): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const head = Buffer.alloc(8);
    head.writeUInt32BE(data.length, 0);
    head.write(type, 4, 'latin1');
    return Buffer.concat([head, data, Buffer.alloc(4)]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

describe('png.ts decodes what probe cameras write, exactly as sharp does', () => {
  for (const channels of [1, 2, 3, 4] as const) {
    it(`${channels} sample(s) per pixel`, async () => {
      const bytes = await png(97, 61, channels);
      const ours = decodePng(bytes, 1e7);
      expect(ours).toBeDefined();
      const theirs = await sharp(bytes)
        .removeAlpha()
        .toColourspace(channels <= 2 ? 'b-w' : 'srgb')
        .raw()
        .toBuffer({ resolveWithObject: true });
      expect(ours!.channels).toBe(theirs.info.channels);
      expect([ours!.width, ours!.height]).toEqual([97, 61]);
      expect(ours!.pixels.equals(theirs.data)).toBe(true);
    });
  }

  it('every filter type (0–4) on simulator crops', async () => {
    for (let seed = 0; seed < 6; seed++) {
      const { png: bytes } = await renderCrop({ label: seed % 2 ? 'pg' : 'cex', seed: 500 + seed });
      const ours = decodePng(bytes, 1e7);
      const theirs = await sharp(bytes).toColourspace('b-w').raw().toBuffer();
      expect(ours!.pixels.equals(theirs)).toBe(true);
    }
  });

  it('leaves palette, 16-bit and interlaced files and other formats to sharp', async () => {
    expect(decodePng(await png(40, 30, 3, { palette: true }), 1e7)).toBeUndefined();
    expect(decodePng(await png(40, 30, 1, { progressive: true }), 1e7)).toBeUndefined();
    const sixteen = await sharp(texture(40, 30, 1, 3), { raw: { width: 40, height: 30, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer();
    expect(readPngHeader(sixteen)?.bitDepth).toBe(16);
    expect(decodePng(sixteen, 1e7)).toBeUndefined();
    const jpeg = await sharp(texture(40, 30, 3, 4), { raw: { width: 40, height: 30, channels: 3 } })
      .jpeg()
      .toBuffer();
    expect(decodePng(jpeg, 1e7)).toBeUndefined();
    // …and decodeImage still decodes them all.
    for (const bytes of [sixteen, jpeg, await png(40, 30, 3, { palette: true })]) expect((await decodeImage(bytes)).width).toBe(40);
  });

  it('refuses a header over the pixel limit before inflating anything', async () => {
    const bomb = rawPng(100_000, 100_000, 0, Buffer.from('not even zlib'));
    expect(() => decodePng(bomb, 40e6)).toThrow(expect.objectContaining({ reason: 'too-large' }));
    await expect(decodeImage(bomb, 40e6)).rejects.toMatchObject({ reason: 'too-large' });
  });

  it('leaves images over its size bound to sharp (a small file can hold a large image)', async () => {
    // 6300×6300 RGBA under 256 KiB compressed: inflating and unfiltering it here would hold the main thread.
    const big = rawPng(6300, 6300, 6, deflateSync(Buffer.alloc(6300 * (6300 * 4 + 1))));
    expect(big.length).toBeLessThan(256 * 1024);
    expect(decodePng(big, 40e6)).toBeUndefined();
    expect(decodePng(await png(500, 500, 4), 1e7)).toBeDefined();
  });

  it('stops a stream that inflates past the header size', async () => {
    // 10×10 grey needs 110 bytes; this inflates to 1 MB of zeros.
    const overlong = rawPng(10, 10, 0, deflateSync(Buffer.alloc(1 << 20)));
    let err: unknown;
    try {
      decodePng(overlong, 1e7);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PngError);
    expect((err as PngError).reason).toBe('undecodable');
  });

  it('names what is wrong with truncated and malformed files', async () => {
    const good = await png(50, 40, 1);
    const cases: [Buffer, RegExp][] = [
      [good.subarray(0, 20), /IHDR/],
      [good.subarray(0, good.length - 20), /runs past the end|truncated|inflate/],
      [rawPng(10, 10, 0, deflateSync(Buffer.alloc(50))), /inflates to 50 bytes/],
      [rawPng(2, 1, 0, deflateSync(Buffer.from([9, 1, 2]))), /unknown filter type 9/],
      [rawPng(0, 10, 0, deflateSync(Buffer.alloc(0))), /empty image/],
    ];
    for (const [bytes, message] of cases) {
      const err = await decodeImage(bytes).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ImageDecodeError);
      expect((err as ImageDecodeError).reason).toBe('undecodable');
      expect((err as Error).message).toMatch(message);
    }
  });
});

describe('resample.ts: Lanczos-3 for grey crops, close to sharp', () => {
  it('is within rounding of sharp (libvips reduce) on simulator crops of many sizes', async () => {
    let sum = 0;
    let n = 0;
    let max = 0;
    for (let seed = 0; seed < 8; seed++) {
      const { png: bytes } = await renderCrop({ label: seed % 2 ? 'pg' : 'cex', seed: 900 + seed });
      const image = await decodeImage(bytes);
      const region = { x: 0, y: 0, width: image.width, height: image.height };
      const ours = resizeGrey(image.pixels, image.width, region, 64, 64);
      const theirs = await sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: 1 } })
        .resize(64, 64, { fit: 'fill', kernel: 'lanczos3' })
        .toColourspace('b-w')
        .raw()
        .toBuffer();
      for (let i = 0; i < ours.length; i++) {
        const d = Math.abs(ours[i]! - theirs[i]!);
        sum += d;
        n++;
        max = Math.max(max, d);
      }
    }
    expect(n).toBeGreaterThan(0);
    // Measured: mean |Δ| 0.23, max 2 grey levels (libvips rounds its passes a little differently).
    expect(sum / n).toBeLessThan(0.5);
    expect(max).toBeLessThanOrEqual(3);
  });

  it('cuts a region, and a region of the input size is copied unchanged', () => {
    const width = 30;
    const pixels = Uint8Array.from({ length: width * 20 }, (_, i) => (i * 7) & 0xff);
    const region = { x: 5, y: 3, width: 8, height: 6 };
    const same = resizeGrey(pixels, width, region, 8, 6);
    for (let y = 0; y < 6; y++) for (let x = 0; x < 8; x++) expect(same[y * 8 + x]).toBe(pixels[(y + 3) * width + x + 5]);
  });

  it('is what cropAndResize uses for grey crops of a lanczos3 squash model', async () => {
    const { png: bytes } = await renderCrop({ label: 'pg', seed: 77 });
    const image = await decodeImage(bytes);
    const region = { x: 0, y: 0, width: image.width, height: image.height };
    const input = { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' } as const;
    expect((await cropAndResize(image, region, input)).equals(resizeGrey(image.pixels, image.width, region, 64, 64))).toBe(true);
  });
});

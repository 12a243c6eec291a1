import { describe, it, expect } from 'vitest';
import sharp from 'sharp';
import { channelTransform, cropAndResize, decodeImage, tensorShape, tileRegions, writeTensor, ImageDecodeError } from '../src/classify/preprocess.js';
import { judgeQuality, qualityStats } from '../src/classify/quality.js';
import type { ModelInput } from '../src/model/card.js';

/** A lossless PNG from raw RGB pixels. */
async function png(width: number, height: number, rgb: number[]): Promise<Buffer> {
  return sharp(Buffer.from(rgb), { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

/** Decode, resize to the card's input, normalise and lay out one image. */
async function tensorOf(bytes: Buffer, input: ModelInput): Promise<number[]> {
  const image = await decodeImage(bytes);
  const pixels = await cropAndResize(image, { x: 0, y: 0, width: image.width, height: image.height }, input);
  const out = new Float32Array(input.width * input.height * input.channels);
  writeTensor(pixels, input, channelTransform(input), out, 0);
  return Array.from(out);
}

// Two pixels: (10,20,30) and (200,100,50).
const twoPixels = () => png(2, 1, [10, 20, 30, 200, 100, 50]);
const base = { width: 2, height: 1, channels: 3 as const, resize: 'squash' as const };

function expectClose(actual: number[], expected: number[]) {
  expect(actual.length).toBe(expected.length);
  actual.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 4));
}

describe('normalisation and layout against hand-computed tensors', () => {
  it('unit, RGB, NHWC: pixel / 255, interleaved', async () => {
    const t = await tensorOf(await twoPixels(), { ...base, layout: 'NHWC', colorOrder: 'rgb', normalization: 'unit' });
    expectClose(t, [10 / 255, 20 / 255, 30 / 255, 200 / 255, 100 / 255, 50 / 255]);
  });

  it('tf, RGB, NCHW: pixel / 127.5 - 1, planar', async () => {
    const t = await tensorOf(await twoPixels(), { ...base, layout: 'NCHW', colorOrder: 'rgb', normalization: 'tf' });
    const f = (v: number) => v / 127.5 - 1;
    expectClose(t, [f(10), f(200), f(20), f(100), f(30), f(50)]);
  });

  it('caffe, BGR, NHWC: channels swapped, ImageNet means subtracted, no scaling (Keras)', async () => {
    const t = await tensorOf(await twoPixels(), { ...base, layout: 'NHWC', colorOrder: 'bgr', normalization: 'caffe' });
    expectClose(t, [30 - 103.939, 20 - 116.779, 10 - 123.68, 50 - 103.939, 100 - 116.779, 200 - 123.68]);
  });

  it('caffe means follow the colour when a card says RGB order', async () => {
    const t = await tensorOf(await twoPixels(), { ...base, layout: 'NHWC', colorOrder: 'rgb', normalization: 'caffe' });
    expectClose(t, [10 - 123.68, 20 - 116.779, 30 - 103.939, 200 - 123.68, 100 - 116.779, 50 - 103.939]);
  });

  it('torch, RGB, NCHW: ImageNet mean/std on [0,1] (torchvision)', async () => {
    const t = await tensorOf(await twoPixels(), { ...base, layout: 'NCHW', colorOrder: 'rgb', normalization: 'torch' });
    const r = (v: number) => (v / 255 - 0.485) / 0.229;
    const g = (v: number) => (v / 255 - 0.456) / 0.224;
    const b = (v: number) => (v / 255 - 0.406) / 0.225;
    expectClose(t, [r(10), r(200), g(20), g(100), b(30), b(50)]);
  });

  it('explicit {mean,std,scale} on a one-channel grey model', async () => {
    const grey = await png(2, 1, [40, 40, 40, 220, 220, 220]);
    const t = await tensorOf(grey, { ...base, channels: 1, layout: 'NCHW', colorOrder: 'gray', normalization: { mean: [0.5], std: [0.25], scale: 1 / 255 } });
    expectClose(t, [(40 / 255 - 0.5) / 0.25, (220 / 255 - 0.5) / 0.25]);
  });

  it('a grey file into an RGB model: R = G = B = the grey value', async () => {
    const grey = await sharp(Buffer.from([40, 220]), { raw: { width: 2, height: 1, channels: 1 } })
      .toColourspace('b-w')
      .png()
      .toBuffer();
    const image = await decodeImage(grey);
    expect(image.channels).toBe(1);
    const t = await tensorOf(grey, { ...base, layout: 'NHWC', colorOrder: 'bgr', normalization: 'unit' });
    expectClose(t, [40 / 255, 40 / 255, 40 / 255, 220 / 255, 220 / 255, 220 / 255]);
  });

  it('an RGB file into a grey model goes through luma', async () => {
    const t = await tensorOf(await twoPixels(), { ...base, channels: 1, layout: 'NHWC', colorOrder: 'gray', normalization: 'unit' });
    // BT.601-ish luma of (10,20,30) ≈ 18 and of (200,100,50) ≈ 124 (libvips b-w, ±2 levels).
    expect(t[0]! * 255).toBeGreaterThan(15);
    expect(t[0]! * 255).toBeLessThan(22);
    expect(t[1]! * 255).toBeGreaterThan(118);
    expect(t[1]! * 255).toBeLessThan(132);
  });

  it('explicit per-channel statistics in BGR order', async () => {
    const t = await tensorOf(await twoPixels(), { ...base, layout: 'NHWC', colorOrder: 'bgr', normalization: { mean: [1, 2, 3], std: [2, 4, 8], scale: 1 } });
    expectClose(t, [(30 - 1) / 2, (20 - 2) / 4, (10 - 3) / 8, (50 - 1) / 2, (100 - 2) / 4, (200 - 3) / 8]);
  });

  it('tensor shapes follow the layout', () => {
    const input: ModelInput = { layout: 'NCHW', width: 224, height: 200, channels: 3, colorOrder: 'rgb', resize: 'squash', normalization: 'unit' };
    expect(tensorShape(input, 8)).toEqual([8, 3, 200, 224]);
    expect(tensorShape({ ...input, layout: 'NHWC' }, 8)).toEqual([8, 200, 224, 3]);
  });
});

describe('resize modes', () => {
  // 4×2: left half red, right half blue.
  const halves = () => png(4, 2, [255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255, 255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255]);
  const input = (resize: ModelInput['resize']): ModelInput => ({
    layout: 'NHWC',
    width: 2,
    height: 2,
    channels: 3,
    colorOrder: 'rgb',
    resize,
    normalization: 'unit',
  });

  it('contain letterboxes: the 4×2 image fills one of two rows, the other is black padding', async () => {
    const t = await tensorOf(await halves(), input('contain'));
    const rows = [t.slice(0, 6), t.slice(6, 12)];
    const black = rows.filter((r) => r.every((v) => v === 0));
    expect(black).toHaveLength(1);
    const content = rows.find((r) => !r.every((v) => v === 0))!;
    expect(content[0]).toBeGreaterThan(0.6); // red on the left
    expect(content[5]).toBeGreaterThan(0.6); // blue on the right
  });

  it('cover fills and centre-crops: one red and one blue column, no padding', async () => {
    const t = await tensorOf(await halves(), input('cover'));
    for (const row of [0, 1]) {
      const left = t.slice(row * 6, row * 6 + 3);
      const right = t.slice(row * 6 + 3, row * 6 + 6);
      expect(left).toEqual([1, 0, 0]);
      expect(right).toEqual([0, 0, 1]);
    }
  });

  it('squash stretches: both columns kept, red left and blue right', async () => {
    const t = await tensorOf(await halves(), input('squash'));
    expect(t[0]).toBeGreaterThan(t[2]!);
    expect(t[5]).toBeGreaterThan(t[3]!);
  });
});

describe('decoding guards', () => {
  it('refuses an image above the pixel limit without decoding it', async () => {
    const big = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: { r: 0, g: 0, b: 0 } } })
      .png()
      .toBuffer();
    const err = await decodeImage(big, 1_000_000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImageDecodeError);
    expect((err as ImageDecodeError).reason).toBe('too-large');
    expect((err as Error).message).toContain('pixel limit of 1000000');
  });

  it('names undecodable and empty input', async () => {
    const bad = (await decodeImage(Buffer.from('not an image at all')).catch((e: unknown) => e)) as ImageDecodeError;
    expect(bad.reason).toBe('undecodable');
    const empty = (await decodeImage(Buffer.alloc(0)).catch((e: unknown) => e)) as ImageDecodeError;
    expect(empty.reason).toBe('empty');
    // A truncated PNG (half the bytes) is an error, not a half-black frame.
    const whole = await png(
      64,
      64,
      Array.from({ length: 64 * 64 * 3 }, (_, i) => (i * 37) % 256),
    );
    const cut = await decodeImage(whole.subarray(0, whole.length >> 1)).catch((e: unknown) => e as ImageDecodeError);
    expect(cut).toBeInstanceOf(ImageDecodeError);
  });
});

describe('tiles', () => {
  it('cover a 1280×960 frame with 224-px tiles, the last row and column moved back to the edge', () => {
    const tiles = tileRegions(1280, 960, 224, 224);
    expect(tiles).toHaveLength(6 * 5);
    expect(tiles.map((t) => t.x).filter((x, i, a) => a.indexOf(x) === i)).toEqual([0, 224, 448, 672, 896, 1056]);
    expect(tiles.map((t) => t.y).filter((y, i, a) => a.indexOf(y) === i)).toEqual([0, 224, 448, 672, 736]);
    const covered = new Uint8Array(1280 * 960);
    for (const t of tiles) for (let y = t.y; y < t.y + t.height; y++) covered.fill(1, y * 1280 + t.x, y * 1280 + t.x + t.width);
    expect(covered.every((v) => v === 1)).toBe(true);
  });

  it('overlap when the stride is smaller than the tile', () => {
    expect(tileRegions(448, 224, 224, 112).map((t) => t.x)).toEqual([0, 112, 224]);
  });
});

describe('quality gate', () => {
  const stats = async (bytes: Buffer) => qualityStats(await decodeImage(bytes));
  const noise = (w: number, h: number, seed = 7) => {
    let s = seed;
    const rand = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    return Array.from({ length: w * h * 3 }, () => Math.floor(40 + rand() * 120));
  };
  const flat = (w: number, h: number, v: number) =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r: v, g: v, b: v } } })
      .png()
      .toBuffer();

  it('refuses black, saturated and blank frames with their reason', async () => {
    expect(judgeQuality(await stats(await flat(200, 200, 3)))).toBe('black');
    expect(judgeQuality(await stats(await flat(200, 200, 255)))).toBe('saturated');
    expect(judgeQuality(await stats(await flat(200, 200, 120)))).toBe('blank');
  });

  it('refuses a badly blurred frame and passes the same frame in focus', async () => {
    // Needles and a plate on a dark field, drawn as SVG with a fixed seed.
    let s = 11;
    const r = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    let lines = '';
    for (let i = 0; i < 40; i++) {
      const x = r() * 200,
        y = r() * 200,
        a = r() * Math.PI,
        l = 20 + r() * 50;
      lines += `<line x1="${x}" y1="${y}" x2="${x + Math.cos(a) * l}" y2="${y + Math.sin(a) * l}" stroke="rgb(220,220,220)" stroke-width="${1 + r() * 2}"/>`;
    }
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="200"><rect width="100%" height="100%" fill="rgb(30,30,30)"/><ellipse cx="100" cy="100" rx="50" ry="40" fill="rgb(180,180,170)"/>${lines}</svg>`;
    const inFocus = await sharp(Buffer.from(svg)).png().toBuffer();
    const focused = await stats(inFocus);
    expect(focused.laplacianVariance).toBeGreaterThan(1000);
    expect(judgeQuality(focused)).toBeUndefined();
    const blurred = await stats(await sharp(inFocus).blur(8).png().toBuffer());
    expect(blurred.std).toBeGreaterThan(40); // still plenty of contrast: not blank...
    expect(blurred.laplacianVariance).toBeLessThan(5); // ...but no edges left
    expect(judgeQuality(blurred)).toBe('out-of-focus');
    // White noise blurred to nothing is blank, the earlier check.
    expect(
      judgeQuality(
        await stats(
          await sharp(await png(200, 200, noise(200, 200)))
            .blur(12)
            .png()
            .toBuffer(),
        ),
      ),
    ).toBe('blank');
  });
});

describe('training/inference parity', () => {
  it('gives byte-identical model input to crystalwatch train (src/model/preprocess.ts) for its card', async () => {
    const { decodeCrop } = await import('../src/model/preprocess.js');
    const { renderCrop } = await import('../simulator/index.js');
    const input: ModelInput = { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' };
    for (const [seed, label] of [
      [1, 'cex'],
      [2, 'pg'],
      [3, 'pg'],
    ] as const) {
      const { png } = await renderCrop({ label, seed });
      const training = await decodeCrop(png, 64);
      const image = await decodeImage(png);
      const ours = await cropAndResize(image, { x: 0, y: 0, width: image.width, height: image.height }, input);
      expect(Buffer.from(ours).equals(Buffer.from(training.input))).toBe(true);
    }
  });
});

describe('tiles of a full frame by one resize', () => {
  it('match per-tile resizing to within a few grey levels on a simulator frame', async () => {
    const { tilesByFrameResize } = await import('../src/classify/preprocess.js');
    const { renderFrame } = await import('../simulator/index.js');
    const { png } = await renderFrame({ seed: 3, frameIndex: 0, tSeconds: 900, pgOnsetS: 300, width: 1280, height: 960 });
    const image = await decodeImage(png, undefined, { grey: true });
    const input: ModelInput = { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' };
    const regions = tileRegions(image.width, image.height, 192, 160);
    expect(regions).toHaveLength(8 * 6);
    const fast = (await tilesByFrameResize(image, regions, 192, input))!;
    expect(fast).toHaveLength(regions.length);
    let worst = 0;
    for (const [k, region] of regions.entries()) {
      const slow = await cropAndResize(image, region, input);
      let sum = 0;
      for (let i = 0; i < slow.length; i++) sum += Math.abs(slow[i]! - fast[k]![i]!);
      worst = Math.max(worst, sum / slow.length);
    }
    // Mean |Δ| per pixel in grey levels of 255: tile origins move by up to 1/3 of a scaled
    // pixel (160 px strides at scale 1/3) on a frame full of one-pixel needles and noise.
    expect(worst).toBeLessThan(6);
  });

  it('declines tiles that are not all tile×tile (the caller then resizes per tile)', async () => {
    const { tilesByFrameResize } = await import('../src/classify/preprocess.js');
    const image = await decodeImage(
      await sharp({ create: { width: 300, height: 100, channels: 3, background: { r: 9, g: 9, b: 9 } } })
        .png()
        .toBuffer(),
    );
    const input: ModelInput = { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' };
    expect(await tilesByFrameResize(image, tileRegions(300, 100, 192, 160), 192, input)).toBeUndefined();
  });
});

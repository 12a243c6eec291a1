/**
 * The optimised preprocessing (resample.ts, quality.ts, probe-gate.ts, gates.ts) against the code
 * it replaced (test/helpers/reference-preprocess.ts): the same bytes from the resampler, the same
 * numbers from every gate statistic. The model was trained on the old outputs, so "close" is not
 * enough: one grey level of difference is a different model input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderCrop, renderFrame } from '../simulator/index.js';
import { gateStats } from '../src/classify/gates.js';
import { decodeImage, tileRegions, type DecodedImage, type Region } from '../src/classify/preprocess.js';
import { probeStats } from '../src/classify/probe-gate.js';
import { greyPlane, planeQualityStats, qualityStats } from '../src/classify/quality.js';
import { resizeGrey } from '../src/classify/resample.js';
import { setSimdEnabled, simdKernels } from '../src/classify/simd/index.js';
import {
  referenceGreyPlane,
  referencePlaneQualityStats,
  referenceProbeStats,
  referenceResizeGrey,
  type GreyPlane as ReferencePlane,
} from './helpers/reference-preprocess.js';

/** mulberry32: a small seeded generator, so every image here is the same on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Pattern = 'noise' | 'checker' | 'blobs' | 'flat' | 'bright' | 'black' | 'clipped' | 'text' | 'gradient';
const PATTERNS: Pattern[] = ['noise', 'checker', 'blobs', 'flat', 'bright', 'black', 'clipped', 'text', 'gradient'];

/** One grey level per pixel, in patterns that reach every branch: ringing past 0 and 255, flat and bright cells, axis-aligned edges. */
function greyPixels(width: number, height: number, pattern: Pattern, seed: number): Buffer {
  const rnd = random(seed);
  const out = Buffer.alloc(width * height);
  const blobs = Array.from({ length: 12 }, () => ({ x: rnd() * width, y: rnd() * height, r: 4 + rnd() * 30, v: rnd() * 255 }));
  const rects = Array.from({ length: 20 }, () => ({ x: rnd() * width, y: rnd() * height, w: 3 + rnd() * 40, h: 2 + rnd() * 8 }));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let v: number;
      switch (pattern) {
        case 'noise':
          v = rnd() * 256;
          break;
        case 'checker':
          v = (x + y) % 2 ? 255 : 0;
          break;
        case 'blobs':
          v = 60 + rnd() * 12;
          for (const b of blobs) if ((x - b.x) ** 2 + (y - b.y) ** 2 < b.r * b.r) v = b.v + rnd() * 4;
          break;
        case 'flat':
          v = 100;
          break;
        case 'bright':
          v = 200 + rnd() * 3;
          break;
        case 'black':
          v = rnd() * 3;
          break;
        case 'clipped':
          v = rnd() < 0.7 ? 255 : rnd() * 256;
          break;
        case 'text':
          v = 235;
          for (const r of rects) if (x >= r.x && x < r.x + r.w && y >= r.y && y < r.y + r.h) v = 20;
          break;
        case 'gradient':
          v = (255 * (x + y)) / (width + height);
          break;
      }
      out[y * width + x] = Math.max(0, Math.min(255, Math.floor(v)));
    }
  }
  return out;
}

/** Three channels per pixel: colour photographs, and grey stored as RGB. */
function rgbPixels(width: number, height: number, seed: number, grey: boolean): Buffer {
  const rnd = random(seed);
  const out = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const base = 40 + 150 * Math.sin(i / 97) ** 2;
    const r = Math.floor(base + rnd() * 60);
    out[3 * i] = Math.min(255, r);
    out[3 * i + 1] = grey ? Math.min(255, r) : Math.min(255, Math.floor(base * 0.8 + rnd() * 90));
    out[3 * i + 2] = grey ? Math.min(255, r) : Math.min(255, Math.floor(base * 0.5 + rnd() * 120));
  }
  return out;
}

const image = (pixels: Buffer, width: number, height: number, channels: 1 | 3 = 1): DecodedImage => ({ pixels, width, height, channels });

let cropsOnce: Promise<DecodedImage[]> | undefined;
/** Simulator crops of both classes (rendered once for the whole file). */
const simulatorCrops = () => (cropsOnce ??= renderCrops());

async function renderCrops(): Promise<DecodedImage[]> {
  const crops: DecodedImage[] = [];
  for (let seed = 0; seed < 12; seed++) {
    for (const label of ['cex', 'pg'] as const) {
      const { png } = await renderCrop({ label, seed: 4100 + seed });
      crops.push(await decodeImage(png, undefined, { grey: false }));
    }
  }
  // Sizes the simulator does not draw on its own, up to the largest resizeGrey takes.
  for (const [width, height] of [
    [65, 300],
    [512, 512],
    [333, 97],
  ] as const) {
    const { png } = await renderCrop({ label: 'pg', seed: width, width, height });
    crops.push(await decodeImage(png, undefined, { grey: false }));
  }
  return crops;
}

const frames = new Map<number, Promise<DecodedImage>>();
/** A 1280×960 simulator frame (rendered once per seed for the whole file). */
function frame(seed: number): Promise<DecodedImage> {
  let f = frames.get(seed);
  if (!f) {
    f = renderFrame({ seed, frameIndex: seed, tSeconds: 400, pgOnsetS: 100 }).then(({ png }) => decodeImage(png, undefined, { grey: false }));
    frames.set(seed, f);
  }
  return f;
}

function expectSameResize(pixels: Uint8Array, width: number, region: Region, outWidth: number, outHeight: number): void {
  const ours = resizeGrey(pixels, width, region, outWidth, outHeight);
  const reference = referenceResizeGrey(pixels, width, region, outWidth, outHeight);
  const where = `${JSON.stringify(region)} of a ${width}-wide image → ${outWidth}×${outHeight}`;
  expect(ours.length, where).toBe(reference.length);
  expect(Buffer.compare(ours, reference), where).toBe(0);
}

/**
 * A plane's fields, its samples as the bytes of float32s (the reference's type; a quick exact
 * comparison): the fast plane holds a grey file's levels as bytes, the same numbers.
 */
const planeFields = (p: Omit<ReferencePlane, 'grey'> & { grey: Float32Array | Uint8Array }) => ({
  grey: Buffer.from(Float32Array.from(p.grey).buffer).toString('base64'),
  width: p.width,
  height: p.height,
  chroma: p.chroma,
  colourfulFraction: p.colourfulFraction,
  mean: p.mean,
  std: p.std,
  saturatedFraction: p.saturatedFraction,
});

/** Every statistic of the gates, each function on its own and through gateStats, against the reference. */
function expectSameStats(img: DecodedImage, maxSide?: number): void {
  const where = `${img.width}×${img.height}×${img.channels}${maxSide ? ` at maxSide ${maxSide}` : ''}`;
  const reference = referenceGreyPlane(img, maxSide);
  const plane = greyPlane(img, maxSide);
  expect(planeFields(plane), where).toEqual(planeFields(reference));
  const refQuality = referencePlaneQualityStats(reference);
  const quality = planeQualityStats(plane);
  expect(quality, where).toEqual(refQuality);
  expect(probeStats(plane, quality), where).toEqual(referenceProbeStats(reference, refQuality));
  if (maxSide === undefined) {
    expect(qualityStats(img), where).toEqual(refQuality);
    expect(gateStats(img), where).toEqual({ quality: refQuality, probe: referenceProbeStats(reference, refQuality) });
    expect(gateStats(img, false), where).toEqual({ quality: refQuality });
  }
}

// Resizing and each statistic of a grey plane run in WebAssembly SIMD (simd/kernels.wat) where the
// runtime has it, else in JavaScript: both paths are held to the reference.
const PATHS = [
  ['in WebAssembly SIMD', true],
  ['in JavaScript (no SIMD)', false],
] as const;

describe.each(PATHS)('resizeGrey %s: the same bytes as before it was optimised', (_, simd) => {
  beforeAll(() => setSimdEnabled(simd));
  afterAll(() => setSimdEnabled(true));

  it('runs on the path it names', () => {
    expect(simdKernels() !== undefined).toBe(simd);
  });

  it('on simulator crops of both classes, to the default model input and to other sizes', async () => {
    for (const crop of await simulatorCrops()) {
      const whole = { x: 0, y: 0, width: crop.width, height: crop.height };
      for (const [w, h] of [
        [64, 64],
        [32, 32],
        [48, 80],
        [97, 61],
        [224, 224],
        [1, 1],
      ] as const) {
        expectSameResize(crop.pixels, crop.width, whole, w, h);
      }
      // A Uint8Array that is not a Buffer, and a view that does not start at its buffer's start.
      expectSameResize(new Uint8Array(crop.pixels), crop.width, whole, 64, 64);
      const shifted = Buffer.concat([Buffer.alloc(13), crop.pixels]).subarray(13);
      expectSameResize(shifted, crop.width, whole, 64, 64);
    }
  });

  it('on noise, checkerboards (ringing past 0 and 255) and other patterns of odd sizes, regions off the origin, down and up', () => {
    let seed = 1;
    for (const pattern of PATTERNS) {
      for (const [width, height] of [
        [65, 65],
        [67, 131],
        [129, 75],
        [150, 230],
        [201, 199],
        [256, 17],
        [511, 512],
        [7, 5],
      ] as const) {
        const pixels = greyPixels(width + 23, height + 9, pattern, seed++);
        for (const region of [
          { x: 0, y: 0, width, height },
          { x: 23, y: 9, width, height },
          { x: 11, y: 4, width: width - 2 > 0 ? width - 2 : width, height: Math.max(1, height - 3) },
        ]) {
          for (const [w, h] of [
            [64, 64],
            [63, 65],
            [17, 3],
            [width, height],
            [width * 2 + 1, height + 5],
            [300, 90],
          ] as const) {
            expectSameResize(pixels, width + 23, region, w, h);
          }
        }
      }
    }
  });

  it('for every source side from 1 to 520 px, down and up (the weights of each size fit 16 bits)', () => {
    const rnd = random(9);
    const line = Buffer.from(Array.from({ length: 520 }, () => (rnd() < 0.5 ? 0 : 255)));
    for (let from = 1; from <= 520; from++) {
      for (const to of [1, 2, 3, 7, 31, 64, 65, 100, 224, 513, 1024]) {
        expectSameResize(line, 520, { x: 0, y: 0, width: from, height: 1 }, to, 1);
        expectSameResize(line, 1, { x: 0, y: 0, width: 1, height: from }, 2, to);
      }
    }
  });

  it('on the tiles of 1280×960 frames, as the classifier cuts them', async () => {
    for (const seed of [3, 8]) {
      const f = await frame(seed);
      for (const region of tileRegions(f.width, f.height, 192, 112)) expectSameResize(f.pixels, f.width, region, 64, 64);
      for (const region of [
        { x: 1088, y: 768, width: 192, height: 192 },
        { x: 700, y: 13, width: 512, height: 511 },
        { x: 1, y: 900, width: 300, height: 60 },
      ]) {
        expectSameResize(f.pixels, f.width, region, 64, 64);
        expectSameResize(f.pixels, f.width, region, 160, 96);
      }
    }
  });
});

describe.each(PATHS)('gate statistics %s: the same numbers as before they were optimised', (_, simd) => {
  beforeAll(() => setSimdEnabled(simd));
  afterAll(() => setSimdEnabled(true));

  it('runs on the path it names', () => {
    expect(simdKernels() !== undefined).toBe(simd);
  });

  it('on simulator crops of both classes and sizes', async () => {
    for (const crop of await simulatorCrops()) {
      expectSameStats(crop);
      expectSameStats(crop, 64);
    }
  });

  it('on 1280×960 frames, which are strided to 320×240 samples', async () => {
    for (const seed of [3, 8, 21]) {
      const f = await frame(seed);
      expectSameStats(f);
      expectSameStats(f, 1000);
      expectSameStats(f, 97);
    }
  });

  it('on grey patterns of odd sizes: noise, flat, bright, black, clipped, text, gradients, and images too small for some statistics', () => {
    let seed = 100;
    for (const pattern of PATTERNS) {
      for (const [width, height] of [
        [1, 1],
        [3, 2],
        [5, 5],
        [13, 11],
        [65, 65],
        [150, 230],
        [321, 97],
        [641, 480],
        [1280, 960],
        [999, 7],
        // Strided to no rows, or no columns, at all.
        [1280, 3],
        [2, 1500],
      ] as const) {
        expectSameStats(image(greyPixels(width, height, pattern, seed++), width, height));
      }
    }
  });

  it('on every width from 1 to 40 px at small heights, planes 313–320 px wide taken whole (the tails and masks of the SIMD loops) and planes up to 8,200 px wide (its sums past 2³¹)', () => {
    let seed = 900;
    for (const pattern of ['noise', 'text', 'clipped'] as const) {
      for (let width = 1; width <= 40; width++) {
        for (const height of [1, 2, 3, 4, 5, 9, 17, 33]) expectSameStats(image(greyPixels(width, height, pattern, seed++), width, height));
      }
      for (let width = 313; width <= 320; width++) expectSameStats(image(greyPixels(width, 320 - (width % 5), pattern, seed++), width, 320 - (width % 5)));
    }
    // Planes far wider than MAX_SIDE, asked for whole: a 1-px checkerboard has the largest
    // Laplacian there is (|l| = 1020 everywhere), so a row's Σl² passes 2³¹ well before 8,192 px.
    for (const width of [4096, 8192, 8200]) expectSameStats(image(greyPixels(width, 3, 'checker', seed++), width, 3), 9000);
  });

  it('on colour and grey-as-RGB images, whose grey samples are not whole numbers', () => {
    let seed = 500;
    for (const [width, height] of [
      [4, 4],
      [65, 129],
      [200, 180],
      [643, 481],
      [1280, 960],
    ] as const) {
      for (const grey of [false, true]) expectSameStats(image(rgbPixels(width, height, seed++, grey), width, height, 3));
    }
  });
});

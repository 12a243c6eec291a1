/**
 * Granular "cauliflower" texture for PG agglomerates, made once per process and grain scale:
 * band-pass filtered noise (grains of about the scale's radius) plus a coarser band (florets),
 * lit from one side (the derivative along x), stored as a gray canvas with 128 = no change.
 * Drawing it rotated and scaled over an agglomerate body ("overlay" blend) is one draw call
 * where drawing every grain would be thousands.
 */
import { createCanvas, type Canvas } from '@napi-rs/canvas';
import { Rng } from './random.js';

/** Grain radii (px) the tiles are made at; a drawing scales the nearest by 0.7–1.25 (smaller scales would
 * fall below what a 3-pass box blur can band-pass at this resolution). */
export const TEXTURE_GRAIN_SCALES = [1.4, 2.2, 3.4, 5.2] as const;
export const TEXTURE_TILE_PX = 640;

const tiles = new Map<number, Canvas>();

/** One running-sum box blur along rows, wrapping at the edges (tiles must be seamless). */
function boxRows(src: Float32Array, dst: Float32Array, size: number, radius: number, line: Float32Array): void {
  const norm = 1 / (2 * radius + 1);
  for (let y = 0; y < size; y++) {
    const row = y * size;
    // The row with `radius` wrapped samples on each side, so the inner loop has no modulo.
    for (let k = 0; k < size + 2 * radius + 1; k++) line[k] = src[row + ((k - radius + size) % size)]!;
    let sum = 0;
    for (let k = 0; k < 2 * radius + 1; k++) sum += line[k]!;
    for (let x = 0; x < size; x++) {
      dst[row + x] = sum * norm;
      sum += line[x + 2 * radius + 1]! - line[x]!;
    }
  }
}

function transpose(src: Float32Array, dst: Float32Array, size: number): void {
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) dst[x * size + y] = src[y * size + x]!;
}

/** Three passes of box blur ≈ Gaussian of the given sigma, in both directions, wrapping. */
function gaussianBlur(src: Float32Array, size: number, sigma: number): Float32Array {
  // Box width w for three passes: 3 (w² − 1) / 12 = σ².
  const radius = Math.max(1, Math.round((Math.sqrt(4 * sigma * sigma + 1) - 1) / 2));
  const line = new Float32Array(size + 2 * radius + 1);
  let a = Float32Array.from(src);
  let b = new Float32Array(src.length);
  for (let direction = 0; direction < 2; direction++) {
    for (let pass = 0; pass < 3; pass++) {
      boxRows(a, b, size, radius, line);
      [a, b] = [b, a];
    }
    transpose(a, b, size);
    [a, b] = [b, a];
  }
  return a;
}

function standardise(v: Float32Array): void {
  let mean = 0;
  for (const x of v) mean += x;
  mean /= v.length;
  let sq = 0;
  for (const x of v) sq += (x - mean) * (x - mean);
  const sd = Math.sqrt(sq / v.length) || 1;
  for (let i = 0; i < v.length; i++) v[i] = (v[i]! - mean) / sd;
}

function makeTile(grainRadius: number): Canvas {
  const size = TEXTURE_TILE_PX;
  const rng = new Rng(Math.round(grainRadius * 1000) + 77);
  const noise = new Float32Array(size * size);
  for (let i = 0; i < noise.length; i++) noise[i] = rng.next() - 0.5;
  const fine = gaussianBlur(noise, size, grainRadius * 0.7);
  const fineLow = gaussianBlur(noise, size, grainRadius * 2);
  const noise2 = new Float32Array(size * size);
  for (let i = 0; i < noise2.length; i++) noise2[i] = rng.next() - 0.5;
  const coarse = gaussianBlur(noise2, size, grainRadius * 3.5);
  const coarseLow = gaussianBlur(noise2, size, grainRadius * 9);
  const height = new Float32Array(size * size);
  const grains = new Float32Array(size * size);
  const florets = new Float32Array(size * size);
  for (let i = 0; i < height.length; i++) {
    grains[i] = fine[i]! - fineLow[i]!;
    florets[i] = coarse[i]! - coarseLow[i]!;
  }
  standardise(grains);
  standardise(florets);
  // Grains are round convex bumps: keep the crests, squash the troughs into narrow dark gaps.
  for (let i = 0; i < height.length; i++) {
    const g = grains[i]! > 0 ? Math.pow(grains[i]!, 0.6) : -0.8 * Math.pow(-grains[i]!, 1.3);
    height[i] = g + 0.35 * florets[i]!;
  }
  standardise(height);

  const canvas = createCanvas(size, size);
  const ctx = canvas.getContext('2d');
  const img = ctx.createImageData(size, size);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      // Lit from −x: the slope facing the light is brighter (a simple emboss).
      const slope = height[y * size + ((x + 1) % size)]! - height[y * size + ((x + size - 1) % size)]!;
      const t = 0.8 * height[i]! - 0.6 * slope;
      const v = Math.max(0, Math.min(255, Math.round(128 + 42 * t)));
      img.data[4 * i] = v;
      img.data[4 * i + 1] = v;
      img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
  }
  ctx.putImageData(img, 0, 0);
  return canvas;
}

/** The tile nearest to this grain radius, and the scale to draw it at. */
export function grainTexture(grainRadius: number): { tile: Canvas; scale: number } {
  let best: number = TEXTURE_GRAIN_SCALES[0];
  for (const s of TEXTURE_GRAIN_SCALES) if (Math.abs(Math.log(s / grainRadius)) < Math.abs(Math.log(best / grainRadius))) best = s;
  let tile = tiles.get(best);
  if (!tile) {
    tile = makeTile(best);
    tiles.set(best, tile);
  }
  return { tile, scale: grainRadius / best };
}

/**
 * Image bytes → model tensor, as the model card says: decode (sharp, with a pixel limit so a
 * decompression bomb is refused before it is decoded), channels, resize, normalise, layout.
 *
 * An image is decoded once to 8-bit RGB; crops and tiles are cut from that buffer, so a tiled
 * 1280×960 frame is decoded one time, not once per tile.
 */
import sharp from 'sharp';
import { DEFAULT_MAX_PIXELS } from '../config/defaults.js';
import type { ModelInput, Normalization } from '../model/card.js';
import { decodePng, PngError } from './png.js';
import { RESAMPLE_MAX_PIXELS, resizeGrey } from './resample.js';

/**
 * PNGs up to this size whose pixels fit png.ts's bound (MAX_INLINE_RAW_BYTES: crops) are decoded
 * by png.ts on the calling thread (a fifth of sharp's CPU); the others (frames) by sharp on the
 * thread pool, which costs the same CPU there but keeps the main thread — where Kafka, the broker
 * and ingest run — free.
 */
export const INLINE_PNG_MAX_BYTES = 256 * 1024;

/** Largest image decoded by default: config `limits.maxPixels`, 40 Mpx (a 16 MiB PNG can hold far more when it is a bomb). */
export { DEFAULT_MAX_PIXELS };

/** ImageNet means/stds per colour as Keras (`caffe`, 0–255) and torchvision (`torch`, 0–1) use them. */
const CAFFE_MEAN = { r: 123.68, g: 116.779, b: 103.939 };
const TORCH_MEAN = { r: 0.485, g: 0.456, b: 0.406 };
const TORCH_STD = { r: 0.229, g: 0.224, b: 0.225 };

export interface DecodedImage {
  /** 8-bit pixels, row-major: grey (1 byte per pixel) for grey files, RGB (3) otherwise. */
  pixels: Buffer;
  channels: 1 | 3;
  width: number;
  height: number;
}

export class ImageDecodeError extends Error {
  constructor(
    message: string,
    /** Small fixed set, used as a metric label: `too-large`, `undecodable`, `empty`. */
    readonly reason: 'too-large' | 'undecodable' | 'empty',
  ) {
    super(message);
  }
}

const tooLarge = (maxPixels: number, detail: string) =>
  new ImageDecodeError(`image exceeds the pixel limit of ${maxPixels} pixels (${detail}); raise maxPixels if such frames are real`, 'too-large');

/**
 * Decode any image sharp reads to 8-bit pixels; refuses images above `maxPixels` from their
 * header, without decoding them. `grey: true` (for one-channel models) always gives grey. Grey files (what probe cameras write) stay one channel:
 * decoding, resizing and gating them costs a third of RGB, and the values are the same
 * (libvips' b-w of an R=G=B pixel is that value).
 */
export async function decodeImage(bytes: Buffer, maxPixels: number = DEFAULT_MAX_PIXELS, options: { grey?: boolean } = {}): Promise<DecodedImage> {
  if (bytes.length === 0) throw new ImageDecodeError('image is empty (0 bytes)', 'empty');
  if (bytes.length <= INLINE_PNG_MAX_BYTES) {
    try {
      const png = decodePng(bytes, maxPixels);
      // A colour file for a grey caller goes to sharp, whose b-w conversion training used.
      if (png && !(options.grey === true && png.channels === 3)) return png;
    } catch (err) {
      if (err instanceof PngError) throw new ImageDecodeError(err.reason === 'too-large' ? err.message : `cannot decode image (${err.message})`, err.reason);
      throw err;
    }
  }
  try {
    // A grey model needs no colour: decode straight to grey, without reading the header first.
    let grey = options.grey === true;
    if (!grey) {
      const meta = await sharp(bytes, { limitInputPixels: maxPixels }).metadata();
      if (meta.width !== undefined && meta.height !== undefined && meta.width * meta.height > maxPixels) {
        throw tooLarge(maxPixels, `${meta.width}×${meta.height} = ${meta.width * meta.height}`);
      }
      grey = meta.space === 'b-w' || meta.space === 'grey16';
    }
    const { data, info } = await sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error' })
      .removeAlpha()
      .toColourspace(grey ? 'b-w' : 'srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    const channels = grey ? 1 : 3;
    if (info.channels === channels) return { pixels: data, channels, width: info.width, height: info.height };
    // Some codecs keep extra bands; keep the first `channels` of each pixel.
    const pixels = Buffer.alloc(info.width * info.height * channels);
    for (let i = 0, j = 0; j < pixels.length; i += info.channels, j += channels) {
      for (let c = 0; c < channels; c++) pixels[j + c] = data[i + Math.min(c, info.channels - 1)]!;
    }
    return { pixels, channels, width: info.width, height: info.height };
  } catch (err) {
    if (err instanceof ImageDecodeError) throw err;
    const message = (err as Error).message;
    if (/pixel limit/i.test(message)) throw tooLarge(maxPixels, message);
    throw new ImageDecodeError(`cannot decode image (${message})`, 'undecodable');
  }
}

export interface Region {
  x: number;
  y: number;
  width: number;
  height: number;
}

/**
 * Cut `region` from a decoded image and resize it to the model's input, in the model's
 * channel count. Returns 8-bit pixels: `channels` bytes per pixel, RGB order for 3.
 */
export async function cropAndResize(image: DecodedImage, region: Region, input: ModelInput): Promise<Buffer> {
  const kernel = input.interpolation ?? 'lanczos3';
  const small = region.width * region.height <= RESAMPLE_MAX_PIXELS;
  if (
    small &&
    image.channels === 1 &&
    input.channels === 1 &&
    kernel === 'lanczos3' &&
    (input.resize === 'squash' || (region.width === input.width && region.height === input.height))
  ) {
    // Grey crops, the common case: Lanczos-3 in WebAssembly SIMD or JavaScript (resample.ts), no sharp pipeline per crop.
    return resizeGrey(image.pixels, image.width, region, input.width, input.height);
  }
  const fit = input.resize === 'squash' ? 'fill' : input.resize;
  let pipeline = sharp(image.pixels, { raw: { width: image.width, height: image.height, channels: image.channels } });
  if (region.x !== 0 || region.y !== 0 || region.width !== image.width || region.height !== image.height) {
    pipeline = pipeline.extract({ left: region.x, top: region.y, width: region.width, height: region.height });
  }
  if (region.width !== input.width || region.height !== input.height) {
    pipeline = pipeline.resize(input.width, input.height, { fit, position: 'centre', background: { r: 0, g: 0, b: 0 }, kernel });
  }
  // One channel out for grey models, grey images too: sharp would otherwise write grey as sRGB,
  // three times the bytes (and ~2 ms more on a 1280×960 frame).
  if (input.channels === 1) pipeline = pipeline.toColourspace('b-w');
  const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
  if (info.channels === input.channels) return data;
  // Grey image into an RGB model: R = G = B. (RGB into grey went through b-w above.)
  const out = Buffer.alloc(input.width * input.height * input.channels);
  for (let i = 0, j = 0; j < out.length; i += info.channels, j += input.channels) {
    for (let c = 0; c < input.channels; c++) out[j + c] = data[i + Math.min(c, info.channels - 1)]!;
  }
  return out;
}

/**
 * Model-input pixels of many same-size tiles of one frame with ONE resize: the frame is scaled
 * by input/tile and the tiles are cut from the result. Per-tile resizing costs a sharp call per
 * tile (42 for a 1280×960 frame at 192/160); this costs one. Differences from per-tile
 * resizing: the filter sees across tile edges, and tile origins round to the nearest scaled
 * pixel. Returns undefined when it does not apply (tiles not all `tile`×`tile`, or a
 * letterbox/crop resize with a non-square input), so the caller resizes per tile.
 */
export async function tilesByFrameResize(image: DecodedImage, regions: Region[], tile: number, input: ModelInput): Promise<Buffer[] | undefined> {
  if (regions.some((r) => r.width !== tile || r.height !== tile)) return undefined;
  if (input.resize !== 'squash' && input.width !== input.height) return undefined;
  const sx = input.width / tile;
  const sy = input.height / tile;
  const width = Math.max(input.width, Math.round(image.width * sx));
  const height = Math.max(input.height, Math.round(image.height * sy));
  const scaled = await cropAndResize(image, { x: 0, y: 0, width: image.width, height: image.height }, { ...input, width, height, resize: 'squash' });
  const ch = input.channels;
  const rowBytes = input.width * ch;
  return regions.map((r) => {
    const x = Math.min(width - input.width, Math.round(r.x * sx));
    const y = Math.min(height - input.height, Math.round(r.y * sy));
    const out = Buffer.alloc(input.height * rowBytes);
    for (let row = 0; row < input.height; row++) {
      const from = ((y + row) * width + x) * ch;
      scaled.copy(out, row * rowBytes, from, from + rowBytes);
    }
    return out;
  });
}

/** Per-channel `(pixel * scale - mean) / std`, in the model's channel order. */
export interface ChannelTransform {
  scale: number;
  mean: number[];
  std: number[];
  /** For each model channel, which source channel (0=R, 1=G, 2=B) to read. */
  source: number[];
}

/** What the card's colour order and normalisation mean, as numbers. */
export function channelTransform(input: Pick<ModelInput, 'channels' | 'colorOrder' | 'normalization'>): ChannelTransform {
  const colours: ('r' | 'g' | 'b')[] = input.channels === 1 ? ['r'] : input.colorOrder === 'bgr' ? ['b', 'g', 'r'] : ['r', 'g', 'b'];
  const source = input.channels === 1 ? [0] : colours.map((c) => ({ r: 0, g: 1, b: 2 })[c]);
  const n: Normalization = input.normalization;
  const per = (v: number[] | number) =>
    colours.map((_, i) => {
      const value = typeof v === 'number' ? v : v.length === 1 ? v[0] : v[i];
      if (value === undefined) throw new Error(`model input: normalization needs 1 or ${colours.length} values, got ${JSON.stringify(v)}`);
      return value;
    });
  switch (n) {
    case 'unit':
      return { scale: 1 / 255, mean: per(0), std: per(1), source };
    case 'tf':
      return { scale: 1 / 127.5, mean: per(1), std: per(1), source };
    case 'caffe':
      // Keras caffe: means per colour on 0–255, no scaling; they follow the colour, not the slot.
      return { scale: 1, mean: colours.map((c) => CAFFE_MEAN[c]), std: per(1), source };
    case 'torch':
      return { scale: 1 / 255, mean: colours.map((c) => TORCH_MEAN[c]), std: colours.map((c) => TORCH_STD[c]), source };
    default:
      return { scale: n.scale, mean: per(n.mean), std: per(n.std), source };
  }
}

/** Per model channel, the normalised value of each 8-bit level: one table read per sample. */
export function channelTables(transform: ChannelTransform): Float32Array[] {
  return transform.mean.map((m, c) => {
    const inv = 1 / transform.std[c]!;
    return Float32Array.from({ length: 256 }, (_, v) => (v * transform.scale - m) * inv);
  });
}

const tableCache = new WeakMap<ChannelTransform, Float32Array[]>();

/**
 * Write one image's 8-bit pixels (`channels` per pixel, RGB order when 3) into `out` at image
 * slot `index`, normalised and laid out as the card says.
 */
export function writeTensor(pixels: Buffer, input: ModelInput, transform: ChannelTransform, out: Float32Array, index: number): void {
  const { width, height, channels, layout } = input;
  const plane = width * height;
  const base = index * plane * channels;
  const inChannels = pixels.length / plane;
  let tables = tableCache.get(transform);
  if (!tables) {
    tables = channelTables(transform);
    tableCache.set(transform, tables);
  }
  if (layout === 'NHWC' && channels === 3 && inChannels === 3) {
    // The common case (Keras RGB/BGR models), in one pass.
    // Three channels in and out: three tables and three sources.
    const [t0, t1, t2] = tables as [Float32Array, Float32Array, Float32Array];
    const [s0, s1, s2] = transform.source as [number, number, number];
    for (let p = 0, i = 0, o = base; p < plane; p++, i += 3, o += 3) {
      out[o] = t0[pixels[i + s0]!]!;
      out[o + 1] = t1[pixels[i + s1]!]!;
      out[o + 2] = t2[pixels[i + s2]!]!;
    }
    return;
  }
  for (let c = 0; c < channels; c++) {
    const src = inChannels === 1 ? 0 : transform.source[c]!;
    const table = tables[c]!;
    if (layout === 'NCHW') {
      const o = base + c * plane;
      for (let p = 0; p < plane; p++) out[o + p] = table[pixels[p * inChannels + src]!]!;
    } else {
      for (let p = 0; p < plane; p++) out[base + p * channels + c] = table[pixels[p * inChannels + src]!]!;
    }
  }
}

/** Tensor shape for a batch of `n` images. */
export function tensorShape(input: ModelInput, n: number): number[] {
  return input.layout === 'NHWC' ? [n, input.height, input.width, input.channels] : [n, input.channels, input.height, input.width];
}

/**
 * Tiles of `tile`×`tile` every `stride` pixels; the last row/column is moved back to the
 * edge so every pixel is covered. An image smaller than a tile is one tile, the whole image.
 */
export function tileRegions(width: number, height: number, tile: number, stride: number): Region[] {
  const starts = (size: number): number[] => {
    if (size <= tile) return [0];
    const out: number[] = [];
    for (let s = 0; s + tile <= size; s += stride) out.push(s);
    if (out[out.length - 1]! + tile < size) out.push(size - tile);
    return out;
  };
  const regions: Region[] = [];
  for (const y of starts(height)) {
    for (const x of starts(width)) regions.push({ x, y, width: Math.min(tile, width), height: Math.min(tile, height) });
  }
  return regions;
}

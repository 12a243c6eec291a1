/**
 * A decoder for the small PNGs probe cameras write as crops — 8-bit grey, grey+alpha, RGB or
 * RGBA, not interlaced — without a libvips pipeline: the IDAT stream is inflated by Node's zlib
 * and unfiltered here, on the calling thread, where a thread-pool hop would cost more than the
 * work. On 2 cores it decodes a 160-px grey crop in about a quarter of sharp's CPU. Images of more
 * than `maxRawBytes` unfiltered bytes (frames) are left to sharp, which decodes them on the pool:
 * the main thread also runs Kafka and must not be held by a large image.
 *
 * Anything else (palette, 16-bit, interlaced, other formats) answers `undefined` and is left to
 * sharp. Malformed files throw `PngError`: the size of every chunk is checked against the file,
 * the inflated size against the header (so a decompression bomb stops at the expected size),
 * and the pixel count against the caller's limit before anything is inflated.
 */
import { inflateSync } from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Largest image decoded here, in unfiltered bytes (a 512×512 RGBA; a 230-px grey crop is 53 kB). */
export const MAX_INLINE_RAW_BYTES = 1 << 20;

export class PngError extends Error {
  constructor(
    message: string,
    /** `too-large` (over the pixel limit) or `undecodable`. */
    readonly reason: 'too-large' | 'undecodable',
  ) {
    super(message);
  }
}

export interface PngHeader {
  width: number;
  height: number;
  bitDepth: number;
  /** PNG colour type: 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA. */
  colourType: number;
  interlaced: boolean;
}

/** Samples per pixel of the colour types this decoder handles. */
const SAMPLES: Record<number, number | undefined> = { 0: 1, 2: 3, 4: 2, 6: 4 };

/** The header, when `bytes` is a PNG; undefined when it is not one. Throws on a truncated header. */
export function readPngHeader(bytes: Buffer): PngHeader | undefined {
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(SIGNATURE)) return undefined;
  if (bytes.length < 33 || bytes.toString('latin1', 12, 16) !== 'IHDR' || bytes.readUInt32BE(8) !== 13) {
    throw new PngError('PNG has no valid IHDR chunk', 'undecodable');
  }
  return {
    width: bytes.readUInt32BE(16),
    height: bytes.readUInt32BE(20),
    bitDepth: bytes[24]!,
    colourType: bytes[25]!,
    interlaced: bytes[28] !== 0,
  };
}

export interface PngPixels {
  /** 8-bit samples, row-major, alpha dropped: 1 per pixel for grey files, 3 (RGB) otherwise. */
  pixels: Buffer;
  channels: 1 | 3;
  width: number;
  height: number;
}

/**
 * Decode `bytes` when it is a PNG this decoder handles; `undefined` otherwise (not a PNG, a kind
 * left to sharp, or larger than `maxRawBytes` unfiltered). `maxPixels` is checked from the header,
 * before inflating.
 */
export function decodePng(bytes: Buffer, maxPixels: number, maxRawBytes = MAX_INLINE_RAW_BYTES): PngPixels | undefined {
  const header = readPngHeader(bytes);
  if (!header) return undefined;
  const samples = SAMPLES[header.colourType];
  if (header.bitDepth !== 8 || samples === undefined || header.interlaced) return undefined;
  const { width, height } = header;
  if (width === 0 || height === 0) throw new PngError(`PNG header gives an empty image (${width}×${height})`, 'undecodable');
  if (width * height > maxPixels) {
    throw new PngError(`image exceeds the pixel limit of ${maxPixels} pixels (${width}×${height} = ${width * height})`, 'too-large');
  }
  const stride = width * samples;
  const expected = (stride + 1) * height;
  if (expected > maxRawBytes) return undefined;
  const compressed = idatStream(bytes);
  let raw: Buffer;
  try {
    // One byte over the expected size: a stream that inflates to more is refused, not followed.
    raw = inflateSync(compressed, { maxOutputLength: expected + 1 });
  } catch (err) {
    throw new PngError(`PNG image data does not inflate (${(err as Error).message})`, 'undecodable');
  }
  if (raw.length !== expected) {
    throw new PngError(`PNG image data inflates to ${raw.length} bytes, ${width}×${height}×${samples} needs ${expected}`, 'undecodable');
  }
  unfilter(raw, stride, height, samples);
  const channels = samples <= 2 ? 1 : 3;
  return { pixels: pack(raw, width, height, samples, channels), channels, width, height };
}

/** The IDAT chunks' data, concatenated (one view when there is one chunk). */
function idatStream(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  let offset = 8;
  let ended = false;
  while (offset + 8 <= bytes.length) {
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    const end = offset + 12 + length;
    if (end > bytes.length) throw new PngError(`PNG chunk ${type} at byte ${offset} runs past the end of the file`, 'undecodable');
    if (type === 'IDAT') parts.push(bytes.subarray(offset + 8, offset + 8 + length));
    offset = end;
    if (type === 'IEND') {
      ended = true;
      break;
    }
  }
  if (parts.length === 0) throw new PngError('PNG has no IDAT chunk', 'undecodable');
  if (!ended) throw new PngError('PNG is truncated (no IEND chunk)', 'undecodable');
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Undo the per-row filters in place: row r's samples end up at `r * (stride + 1) + 1`. `bpp`
 * is the bytes per pixel (the distance filters look back).
 */
function unfilter(raw: Buffer, stride: number, height: number, bpp: number): void {
  for (let r = 0; r < height; r++) {
    const start = r * (stride + 1);
    const filter = raw[start]!;
    const row = start + 1;
    const prev = row - (stride + 1); // only read when r > 0
    switch (filter) {
      case 0:
        break;
      case 1:
        for (let i = bpp; i < stride; i++) raw[row + i] = (raw[row + i]! + raw[row + i - bpp]!) & 0xff;
        break;
      case 2:
        if (r > 0) for (let i = 0; i < stride; i++) raw[row + i] = (raw[row + i]! + raw[prev + i]!) & 0xff;
        break;
      case 3:
        for (let i = 0; i < stride; i++) {
          const left = i >= bpp ? raw[row + i - bpp]! : 0;
          const up = r > 0 ? raw[prev + i]! : 0;
          raw[row + i] = (raw[row + i]! + ((left + up) >> 1)) & 0xff;
        }
        break;
      case 4:
        for (let i = 0; i < stride; i++) {
          const a = i >= bpp ? raw[row + i - bpp]! : 0;
          const b = r > 0 ? raw[prev + i]! : 0;
          const c = i >= bpp && r > 0 ? raw[prev + i - bpp]! : 0;
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          raw[row + i] = (raw[row + i]! + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
        }
        break;
      default:
        throw new PngError(`PNG row ${r} has an unknown filter type ${filter}`, 'undecodable');
    }
  }
}

/**
 * The unfiltered rows as `channels` bytes per pixel, without filter bytes or alpha: packed in
 * place, towards the start of `raw` (every pixel moves to an offset at or before its own), and
 * returned as a view of it, so a decode allocates only what zlib inflates into.
 */
function pack(raw: Buffer, width: number, height: number, samples: number, channels: 1 | 3): Buffer {
  const stride = width * samples;
  if (samples === channels) {
    // Buffer#copy is a memmove: overlapping ranges are safe.
    for (let r = 0; r < height; r++) raw.copy(raw, r * stride, r * (stride + 1) + 1, (r + 1) * (stride + 1));
    return raw.subarray(0, width * height * channels);
  }
  // Grey+alpha → grey, RGBA → RGB: keep the first `channels` samples of each pixel.
  let o = 0;
  for (let r = 0; r < height; r++) {
    for (let i = r * (stride + 1) + 1, end = i + stride; i < end; i += samples) {
      for (let c = 0; c < channels; c++) raw[o++] = raw[i + c]!;
    }
  }
  return raw.subarray(0, o);
}

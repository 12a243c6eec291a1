/**
 * Crop bytes → the model's input pixels, exactly as the classify stage prepares them for a
 * card with `{ layout: NHWC, channels: 1, colorOrder: gray, resize: squash, normalization: unit }`,
 * by calling the classify stage's own functions: decode (grey files stay grey; colour ones are
 * decoded to sRGB), resize the whole crop to size×size ignoring aspect (Lanczos-3), one grey
 * channel (libvips `b-w` for colour), then pixel / 255. Training on the same code as inference
 * is what keeps accuracy from leaking away.
 */
import { DEFAULT_MAX_PIXELS } from '../config/defaults.js';
import { cropAndResize, decodeImage } from '../classify/preprocess.js';

export interface DecodedCrop {
  /** 8-bit sRGB, 3 bytes per pixel, at the crop's own size (for duplicate hashing). */
  rgb: Buffer;
  width: number;
  height: number;
  /** size×size grey pixels, 0–255, row-major. */
  input: Uint8Array;
}

export async function decodeCrop(bytes: Buffer, size: number): Promise<DecodedCrop> {
  const image = await decodeImage(bytes, DEFAULT_MAX_PIXELS);
  let rgb = image.pixels;
  if (image.channels === 1) {
    rgb = Buffer.alloc(image.width * image.height * 3);
    for (let i = 0, j = 0; i < image.pixels.length; i++, j += 3) rgb[j] = rgb[j + 1] = rgb[j + 2] = image.pixels[i]!;
  }
  const input = await cropAndResize(
    image,
    { x: 0, y: 0, width: image.width, height: image.height },
    { layout: 'NHWC', width: size, height: size, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' },
  );
  return { rgb, width: image.width, height: image.height, input: new Uint8Array(input.buffer, input.byteOffset, input.length) };
}

/** Write grey pixels into a float batch at slot `index`, scaled to [0, 1] (the card's `unit`). */
export function toUnit(pixels: Uint8Array, out: Float32Array, index: number): void {
  const base = index * pixels.length;
  for (let i = 0; i < pixels.length; i++) out[base + i] = pixels[i]! / 255;
}

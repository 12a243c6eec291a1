/**
 * Crop bytes → the model's input pixels, exactly as the classify stage prepares them for a
 * card with `{ layout: NHWC, channels: 1, colorOrder: gray, resize: squash, normalization: unit }`:
 * decode to 8-bit sRGB (alpha dropped), resize the whole crop to size×size ignoring aspect
 * (`fit: fill`, Lanczos-3), convert to one grey channel (libvips `b-w`), then pixel / 255.
 * Training on the same pipeline as inference is what keeps accuracy from leaking away.
 */
import sharp from 'sharp';
import { DEFAULT_MAX_PIXELS } from '../config/defaults.js';

export interface DecodedCrop {
  /** 8-bit sRGB, 3 bytes per pixel, at the crop's own size (for duplicate hashing). */
  rgb: Buffer;
  width: number;
  height: number;
  /** size×size grey pixels, 0–255, row-major. */
  input: Uint8Array;
}

export async function decodeCrop(bytes: Buffer, size: number): Promise<DecodedCrop> {
  const { data: rgb, info } = await sharp(bytes, { limitInputPixels: DEFAULT_MAX_PIXELS })
    .removeAlpha()
    .toColourspace('srgb')
    .raw()
    .toBuffer({ resolveWithObject: true });
  let rgb3 = rgb;
  if (info.channels !== 3) {
    rgb3 = Buffer.alloc(info.width * info.height * 3);
    for (let i = 0, j = 0; i < rgb.length; i += info.channels, j += 3) rgb3[j] = rgb3[j + 1] = rgb3[j + 2] = rgb[i]!;
  }
  let pipeline = sharp(rgb3, { raw: { width: info.width, height: info.height, channels: 3 } });
  if (info.width !== size || info.height !== size) pipeline = pipeline.resize(size, size, { fit: 'fill', kernel: 'lanczos3' });
  const { data, info: out } = await pipeline.toColourspace('b-w').raw().toBuffer({ resolveWithObject: true });
  const input = new Uint8Array(size * size);
  for (let i = 0, j = 0; j < input.length; i += out.channels, j++) input[j] = data[i]!;
  return { rgb: rgb3, width: info.width, height: info.height, input };
}

/** Write grey pixels into a float batch at slot `index`, scaled to [0, 1] (the card's `unit`). */
export function toUnit(pixels: Uint8Array, out: Float32Array, index: number): void {
  const base = index * pixels.length;
  for (let i = 0; i < pixels.length; i++) out[base + i] = pixels[i]! / 255;
}

/**
 * One image's way to the model, up to its model-input pixels: decode, the model-free gates, the
 * choice between whole image and tiles. The Classifier runs it on the main thread; for a batch of
 * crops it also hands a share of the images to the inference worker (`prepareWhole`), which runs
 * the same code, so the main thread is not the only one decoding while the worker waits for work.
 */
import type { ModelInput } from '../model/card.js';
import { gateStats, judgeFrame, type GateThresholds } from './gates.js';
import { INLINE_PNG_MAX_BYTES, ImageDecodeError, cropAndResize, decodeImage, tileRegions, type DecodedImage, type Region } from './preprocess.js';
import type { ErrorResult, UnusableResult } from './results.js';
import { readPngHeader, type PngHeader } from './png.js';

/** `auto`: tile when the image is over 2× the tile size in both dimensions; a size: tile what is larger; `off`: never. */
export type TilingOption = { tile: number; stride: number } | 'auto' | 'off';

/** Everything the per-image steps read: plain data, so it can be posted to the worker. */
export interface ImageSpec {
  input: ModelInput;
  maxPixels: number;
  gates: GateThresholds;
  tiling: TilingOption;
  tileSize: { tile: number; stride: number };
}

/** Decoded and past the gates, or the result that says why not. */
export type Judged = { image: DecodedImage } | { result: ErrorResult | UnusableResult };

export async function decodeAndJudge(bytes: Buffer, spec: ImageSpec): Promise<Judged> {
  let image: DecodedImage;
  try {
    // In colour when the file has it: "is it a probe image" looks at colour before anything is greyed.
    image = await decodeImage(bytes, spec.maxPixels, { grey: false });
  } catch (err) {
    const kind = err instanceof ImageDecodeError ? err.reason : 'undecodable';
    return { result: { predicted: 'error', pPG: null, reason: (err as Error).message, errorKind: kind } };
  }
  const verdict = judgeFrame(gateStats(image, spec.gates.probe !== false), spec.gates);
  if (verdict)
    return { result: { predicted: 'unusable', pPG: null, reason: verdict.reason, detail: verdict.detail, width: image.width, height: image.height } };
  return { image };
}

/** The model inputs an image is cut into: the whole image, or tiles. */
export function regionsFor(image: { width: number; height: number }, spec: Pick<ImageSpec, 'tiling' | 'tileSize'>): { regions: Region[]; tiled: boolean } {
  const whole = [{ x: 0, y: 0, width: image.width, height: image.height }];
  if (spec.tiling === 'off') return { regions: whole, tiled: false };
  const { tile, stride } = spec.tileSize;
  const tiled = spec.tiling === 'auto' ? image.width > 2 * tile && image.height > 2 * tile : image.width > tile || image.height > tile;
  return tiled ? { regions: tileRegions(image.width, image.height, tile, stride), tiled: true } : { regions: whole, tiled: false };
}

/**
 * Whether `prepareWhole` is meant for these bytes: crop-sized files (a PNG this size is decoded by
 * png.ts, not sharp) that are not to be tiled, as far as a PNG's header tells before decoding.
 */
export function wholeImageCandidate(bytes: Buffer, spec: Pick<ImageSpec, 'tiling' | 'tileSize'>): boolean {
  if (bytes.length === 0 || bytes.length > INLINE_PNG_MAX_BYTES) return false;
  let header: PngHeader | undefined;
  try {
    header = readPngHeader(bytes);
  } catch {
    return true; // a broken header: the worker reports it as the main thread would
  }
  return header === undefined || !regionsFor(header, spec).tiled;
}

/**
 * A whole-image input's model-input pixels, or its error/unusable result. `tiled`: the image is
 * to be tiled after all (a file whose header did not say so: a JPEG); the caller prepares it itself.
 */
export type WholeOutcome =
  { kind: 'result'; result: ErrorResult | UnusableResult } | { kind: 'ready'; width: number; height: number; pixels: Buffer } | { kind: 'tiled' };

export async function prepareWhole(bytes: Buffer, spec: ImageSpec): Promise<WholeOutcome> {
  const judged = await decodeAndJudge(bytes, spec);
  if ('result' in judged) return { kind: 'result', result: judged.result };
  const { image } = judged;
  const { regions, tiled } = regionsFor(image, spec);
  if (tiled) return { kind: 'tiled' };
  return { kind: 'ready', width: image.width, height: image.height, pixels: await cropAndResize(image, regions[0]!, spec.input) };
}

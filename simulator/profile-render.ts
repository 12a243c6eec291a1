/**
 * Crops and frames through a camera profile (profiles.ts): the scene as the default simulator
 * samples it, changed as that camera sees it, drawn, then the camera's exposure and motion
 * blur on the light, its sensor noise and tone curve, its contrast, and its file format.
 * Same options → same bytes, as everywhere in the simulator.
 */
import sharp from 'sharp';
import { cropScene, type CrystalClass } from './crop.js';
import { frameScene, type FrameTruth, FRAME_EPOCH_MS } from './frame.js';
import { mixSeed } from './random.js';
import { drawScene, toNoisyGray } from './render.js';
import { applySettingsToScene, cameraSettings, type CameraProfile, type CameraSettings } from './profiles.js';
import type { SceneSpec } from './scene.js';

export interface ProfiledImage {
  /** Encoded file bytes, as the camera writes them (PNG or JPEG; grey or RGB). */
  bytes: Buffer;
  width: number;
  height: number;
  label: CrystalClass;
  settings: CameraSettings;
}

/**
 * Exposure gain and motion blur on the light (channel 0 of the drawn RGBA canvas), before the
 * sensor adds noise: a box blur of `motionPx` along `motionAngle`, edges clamped.
 */
function exposeAndSmear(rgba: Uint8Array | Buffer, width: number, height: number, s: CameraSettings): Uint8Array {
  const n = width * height;
  const out = new Uint8Array(4 * n);
  const taps = Math.max(1, Math.round(s.motionPx));
  const dx = Math.cos(s.motionAngle);
  const dy = Math.sin(s.motionAngle);
  const offsets: [number, number][] = [];
  for (let t = 0; t < taps; t++) {
    const along = taps === 1 ? 0 : (t / (taps - 1) - 0.5) * s.motionPx;
    offsets.push([Math.round(dx * along), Math.round(dy * along)]);
  }
  const gain = s.exposure / taps;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let sum = 0;
      for (const [ox, oy] of offsets) {
        const sx = Math.min(width - 1, Math.max(0, x + ox));
        const sy = Math.min(height - 1, Math.max(0, y + oy));
        sum += rgba[4 * (sy * width + sx)]!;
      }
      const v = sum * gain;
      out[4 * (y * width + x)] = v >= 255 ? 255 : v;
    }
  }
  return out;
}

/** Draw a (profiled) scene to the camera's 8-bit grey pixels. */
export function renderProfiledPixels(scene: SceneSpec, s: CameraSettings): Buffer {
  const canvas = drawScene(scene);
  const light = exposeAndSmear(canvas.data(), scene.width, scene.height, s);
  const grey = toNoisyGray(light, scene);
  if (s.contrast !== 1) {
    const lut = new Uint8Array(256);
    for (let v = 0; v < 256; v++) lut[v] = Math.max(0, Math.min(255, Math.round(128 + s.contrast * (v - 128))));
    for (let i = 0; i < grey.length; i++) grey[i] = lut[grey[i]!]!;
  }
  return grey;
}

/** Encode grey pixels as the camera's file. */
export async function encodeCameraFile(grey: Buffer, width: number, height: number, s: CameraSettings): Promise<Buffer> {
  let pixels = grey;
  let channels: 1 | 3 = 1;
  if (s.rgb) {
    pixels = Buffer.alloc(width * height * 3);
    for (let i = 0, j = 0; i < grey.length; i++, j += 3) pixels[j] = pixels[j + 1] = pixels[j + 2] = grey[i]!;
    channels = 3;
  }
  const img = sharp(pixels, { raw: { width, height, channels } });
  if (s.format === 'jpeg') return img.jpeg({ quality: s.quality, chromaSubsampling: '4:2:0' }).toBuffer();
  return (channels === 1 ? img.toColourspace('b-w') : img).png({ compressionLevel: 1, adaptiveFiltering: false }).toBuffer();
}

export interface ProfiledCropOptions {
  label: CrystalClass;
  seed: number;
  profile: CameraProfile;
  width?: number;
  height?: number;
}

/** One crop as a camera of this profile (drawn from the crop's seed) would give it. */
export async function renderProfiledCrop(o: ProfiledCropOptions): Promise<ProfiledImage> {
  const scene = cropScene({ label: o.label, seed: o.seed, width: o.width, height: o.height });
  const settings = cameraSettings(o.profile, mixSeed(o.seed, 0xc409));
  applySettingsToScene(scene, settings, o.seed, true);
  const grey = renderProfiledPixels(scene, settings);
  return { bytes: await encodeCameraFile(grey, scene.width, scene.height, settings), width: scene.width, height: scene.height, label: o.label, settings };
}

export interface ProfiledFrameOptions {
  /** The camera (and batch): settings are fixed for a seed, particles change with frameIndex. */
  seed: number;
  frameIndex: number;
  tSeconds: number;
  pgOnsetS: number | null;
  profile: CameraProfile;
  width?: number;
  height?: number;
}

/** One full frame of a batch as a camera of this profile films it. */
export async function renderProfiledFrame(
  o: ProfiledFrameOptions,
): Promise<ProfiledImage & { truth: Pick<FrameTruth, 'label' | 'pgBoxes' | 'frameIndex' | 'capturedAt'> }> {
  const { scene, pgBoxes } = frameScene({
    seed: o.seed,
    frameIndex: o.frameIndex,
    tSeconds: o.tSeconds,
    pgOnsetS: o.pgOnsetS,
    width: o.width,
    height: o.height,
  });
  const settings = cameraSettings(o.profile, o.seed);
  applySettingsToScene(scene, settings, mixSeed(o.seed, o.frameIndex), false);
  const grey = renderProfiledPixels(scene, settings);
  const label: CrystalClass = pgBoxes.length > 0 ? 'pg' : 'cex';
  return {
    bytes: await encodeCameraFile(grey, scene.width, scene.height, settings),
    width: scene.width,
    height: scene.height,
    label,
    settings,
    // Boxes are the default camera's; magnification moves agglomerate edges, so they are approximate.
    truth: { label, pgBoxes, frameIndex: o.frameIndex, capturedAt: new Date(FRAME_EPOCH_MS + Math.round(o.tSeconds * 1000)).toISOString() },
  };
}

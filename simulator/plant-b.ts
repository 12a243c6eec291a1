/**
 * "Plant B": a camera the shipped model never saw, for showing what `crystalwatch calibrate`
 * does without real images. Its optics sit outside every range of SEEN_PROFILES and
 * UNSEEN_PROFILES at once: ~1.9× magnification with rods ~4× thicker and stubbier than the
 * default habit (beyond the seen 3.2×), a soft window (+2 px defocus) with slight motion blur,
 * a lifted tone curve (γ ≈ 0.65), 2.2× sensor noise and low contrast. Thick, bright, blurred
 * rods at this scale look plate-like to the default model: at its 0.5 threshold it calls a
 * sixth of clean 640×480 frames PG (the real-camera symptom of issue 13), while PG frames still
 * score higher than almost all clean ones — a threshold and detector fitted on this camera's
 * own clean frames can separate them; the uncalibrated defaults cannot.
 *
 * The ranges are narrow (one camera, not a family), and the camera is fixed by PLANT_B_SEED:
 * same seed, same camera settings; the frame index picks the particles.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { frameFileName } from './camera.js';
import { FRAME_EPOCH_MS } from './frame.js';
import { renderProfiledFrame } from './profile-render.js';
import { profileByName, type CameraProfile } from './profiles.js';
import { mixSeed } from './random.js';

export const PLANT_B_PROFILE: CameraProfile = {
  ...profileByName('default'),
  name: 'plant-b',
  magnification: [1.8, 2.0],
  rodHabit: [3.8, 4.2],
  defocusPx: [1.8, 2.2],
  motionPx: [2, 3],
  gamma: [0.62, 0.68],
  noise: [2.0, 2.4],
  contrast: [0.85, 0.95],
};

/**
 * The plant-B camera: its settings (and its background and illumination) are drawn from
 * PLANT_B_PROFILE with this seed. Chosen among seeds 11–22 (80 clean + 30 PG 640×480 frames
 * each, the default model) as a camera where the uncalibrated threshold fails — 16 % of clean
 * frames at P(PG) ≥ 0.5 — while the model still ranks 90 % of PG frames above every clean one;
 * the other seeds ranged from 2.5 % to 21 % false positives.
 */
export const PLANT_B_SEED = 15;

export interface PlantBBatchOptions {
  /** Frames to render. */
  count: number;
  /**
   * Which batch (its particles): any integer; frames of batch k use seed mixSeed(PLANT_B_SEED, k)
   * for their particles while the camera settings stay those of PLANT_B_SEED.
   */
  batch: number;
  /** Batch time of frame 0, seconds (the needle field builds up over the first 10 minutes). */
  startS?: number;
  /** Frame rate (frame i shows the batch at startS + i / fps). Default 2. */
  fps?: number;
  /** PG onset in batch seconds; null = a clean batch. */
  pgOnsetS?: number | null;
  width?: number;
  height?: number;
  camera?: string;
}

export interface PlantBFrame {
  bytes: Buffer;
  /** `<camera>-<yyyyMMddTHHmmssSSS>-<index>.png`, as FrameCamera names its files. */
  name: string;
  label: 'cex' | 'pg';
  capturedAt: string;
  tSeconds: number;
}

/**
 * Frames of one plant-B batch, in capture order. Every frame draws its particles from its
 * batch's seed and index, so batches never share a frame; the camera is always the same.
 */
export async function renderPlantBBatch(o: PlantBBatchOptions): Promise<PlantBFrame[]> {
  const fps = o.fps ?? 2;
  const startS = o.startS ?? 600;
  const camera = o.camera ?? 'plant-b';
  const frames: PlantBFrame[] = [];
  for (let i = 0; i < o.count; i++) {
    const tSeconds = startS + i / fps;
    // The camera (settings) comes from the profile and the seed; renderProfiledFrame draws both from
    // one seed, so the batch's particles come from frameIndex offset by the batch instead.
    const frame = await renderProfiledFrame({
      seed: PLANT_B_SEED,
      frameIndex: mixSeed(o.batch, i) >>> 8,
      tSeconds,
      pgOnsetS: o.pgOnsetS ?? null,
      profile: PLANT_B_PROFILE,
      width: o.width,
      height: o.height,
    });
    const capturedAt = new Date(FRAME_EPOCH_MS + Math.round(tSeconds * 1000));
    frames.push({ bytes: frame.bytes, name: frameFileName(camera, capturedAt, i), label: frame.label, capturedAt: capturedAt.toISOString(), tSeconds });
  }
  return frames;
}

/** Write frames to `dir` with a `.json` sidecar each (`{camera, capturedAt, label, frameIndex}`). */
export async function writePlantBFrames(dir: string, frames: PlantBFrame[], camera = 'plant-b'): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const paths: string[] = [];
  for (const [i, f] of frames.entries()) {
    await writeFile(join(dir, f.name.replace(/\.png$/, '.json')), `${JSON.stringify({ camera, capturedAt: f.capturedAt, label: f.label, frameIndex: i })}\n`);
    await writeFile(join(dir, f.name), f.bytes);
    paths.push(join(dir, f.name));
  }
  return paths;
}

/**
 * Full probe frames of a running batch. Scenario: a CEX-only slurry whose needle density builds
 * up over the first minutes; from `pgOnsetS` on, PG agglomerates nucleate and grow in number
 * and size (a few per frame, 60–250 px). The camera sees a stirred suspension, so each frame
 * shows different particles: the scenario sets the statistics, the frame seed the particles.
 */
import { CEX, ENCODING, FRAME, PG, PG_GROWTH } from './physics.js';
import { Rng, mixSeed } from './random.js';
import { agglomerateOutline, renderScenePng } from './render.js';
import { addFines, addFrontNeedles, addNeedleField, placeAgglomerate, sampleAgglomerate, sampleBase, type AgglomerateSpec, type SceneSpec } from './scene.js';
import type { CrystalClass } from './crop.js';

export interface PgBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface FrameTruth {
  camera: string;
  capturedAt: string;
  /** 'pg' when any PG agglomerate is in the frame. */
  label: CrystalClass;
  pgBoxes: PgBox[];
  frameIndex: number;
  /** Set by FrameCamera when it deliberately damaged the image file (`faults`). */
  fault?: 'truncated' | 'corrupt';
}

export interface FrameOptions {
  seed: number;
  frameIndex: number;
  /** Seconds since the batch (the camera) started. */
  tSeconds: number;
  /** When PG starts to nucleate, seconds since start; null = a clean CEX batch. */
  pgOnsetS: number | null;
  width?: number;
  height?: number;
  camera?: string;
  capturedAt?: Date;
}

/** Capture times default to a fixed epoch plus tSeconds, so frames are reproducible. */
export const FRAME_EPOCH_MS = Date.UTC(2026, 0, 1, 0, 0, 0);

const STREAM = { batch: 11, frame: 12 } as const;

/** How many PG agglomerates a frame at time t shows, and how large they have grown. */
export function pgPopulation(rng: Rng, tSeconds: number, pgOnsetS: number | null): number[] {
  if (pgOnsetS === null || tSeconds < pgOnsetS) return [];
  const ageS = tSeconds - pgOnsetS;
  const expected = PG_GROWTH.initialPerFrame + (PG_GROWTH.perFramePerMinute * ageS) / 60;
  // Once nucleated, PG is in suspension everywhere: every frame after onset shows at least one.
  const count = Math.min(PG_GROWTH.maxPerFrame, 1 + rng.poisson(Math.max(0, expected - 1)));
  const [dMin, dMax] = PG.frameDiameterPx;
  const sizes: number[] = [];
  for (let i = 0; i < count; i++) {
    // Each agglomerate nucleated at some time since onset; the older, the larger.
    const grownFor = ageS * rng.next();
    sizes.push(Math.min(dMax, Math.max(dMin, dMin + PG_GROWTH.growthPxPerS * grownFor + rng.normal(0, 8))));
  }
  return sizes;
}

/** Axis-aligned box around an agglomerate's outline (plus its rim grains), clipped to the frame. */
function boxOf(agg: AgglomerateSpec, width: number, height: number): PgBox | null {
  const { points, radii, toImage } = agglomerateOutline(agg);
  let x0 = Infinity;
  let y0 = Infinity;
  let x1 = -Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < points; i++) {
    const [x, y] = toImage((2 * Math.PI * i) / points, radii[i]!);
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x);
    y1 = Math.max(y1, y);
  }
  const pad = agg.grainRadius * 1.3 + agg.blurPx;
  const bx0 = Math.max(0, Math.floor(agg.x + x0 - pad));
  const by0 = Math.max(0, Math.floor(agg.y + y0 - pad));
  const bx1 = Math.min(width, Math.ceil(agg.x + x1 + pad));
  const by1 = Math.min(height, Math.ceil(agg.y + y1 + pad));
  if (bx1 <= bx0 || by1 <= by0) return null;
  return { x: bx0, y: by0, width: bx1 - bx0, height: by1 - by0 };
}

/** The scene of one frame and the PG boxes in it. */
export function frameScene(o: FrameOptions): { scene: SceneSpec; pgBoxes: PgBox[] } {
  const width = o.width ?? FRAME.widthPx;
  const height = o.height ?? FRAME.heightPx;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 64 || height < 64 || width > 8192 || height > 8192) {
    throw new Error(`renderFrame: size must be integers in 64..8192 px, got ${width}×${height}`);
  }
  if (!Number.isFinite(o.tSeconds) || o.tSeconds < 0) throw new Error(`renderFrame: tSeconds must be ≥ 0, got ${o.tSeconds}`);
  // The probe and the batch: background and illumination stay put from frame to frame.
  const batch = new Rng(mixSeed(o.seed, STREAM.batch));
  const batchBase = sampleBase(batch, width, height);
  const batchDensity = batch.logNormal(CEX.densityPer10kPx2.median * 0.8, 1.4);

  const rng = new Rng(mixSeed(o.seed, STREAM.frame, o.frameIndex));
  const scene = sampleBase(rng, width, height, {
    backgroundGray: batchBase.backgroundGray + rng.normal(0, 2),
    illumination: batchBase.illumination,
    gamma: batchBase.sensor.gamma,
  });
  // Needles accumulate as CEX crystallises over the first ten minutes.
  const buildUp = 0.5 + 0.5 * Math.min(1, o.tSeconds / 600);
  addNeedleField(rng, scene, batchDensity * buildUp * rng.logNormal(1, 1.15));
  addFines(rng, scene);

  const pgBoxes: PgBox[] = [];
  for (const diameter of pgPopulation(rng, o.tSeconds, o.pgOnsetS)) {
    // Centres at least a third of a diameter inside the frame, so most of each one is seen.
    const m = diameter / 3;
    const agg = sampleAgglomerate(rng, rng.uniform(m, width - m), rng.uniform(m, height - m), diameter);
    placeAgglomerate(scene, agg);
    addFrontNeedles(rng, scene, agg, rng.int(0, 2));
    const box = boxOf(agg, width, height);
    if (box) pgBoxes.push(box);
  }
  return { scene, pgBoxes };
}

/** Render one frame: 8-bit gray PNG and its ground truth. Same options → same bytes. */
export async function renderFrame(o: FrameOptions): Promise<{ png: Buffer; truth: FrameTruth }> {
  const { scene, pgBoxes } = frameScene(o);
  const png = await renderScenePng(scene, ENCODING.framePngCompressionLevel);
  const capturedAt = o.capturedAt ?? new Date(FRAME_EPOCH_MS + Math.round(o.tSeconds * 1000));
  return {
    png,
    truth: {
      camera: o.camera ?? 'cam-1',
      capturedAt: capturedAt.toISOString(),
      label: pgBoxes.length > 0 ? 'pg' : 'cex',
      pgBoxes,
      frameIndex: o.frameIndex,
    },
  };
}

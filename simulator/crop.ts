/**
 * Crops like those of the OpenCrystalData impurity set: one particle-centred patch of a probe
 * image, 130–230 px, 8-bit gray PNG. CEX crops centre on needles/bundles in a needle field; PG
 * crops centre on one agglomerate that fills 60–90 % of the crop, among needles.
 */
import { CEX, ENCODING, PG } from './physics.js';
import { Rng, mixSeed } from './random.js';
import { renderScenePng } from './render.js';
import {
  addBundle,
  addFines,
  addFrontNeedles,
  addNeedleField,
  placeAgglomerate,
  sampleAgglomerate,
  sampleBase,
  sampleCropSize,
  sampleNeedle,
  type SceneSpec,
} from './scene.js';

export type CrystalClass = 'cex' | 'pg';

export interface Crop {
  png: Buffer;
  width: number;
  height: number;
  label: CrystalClass;
}

export interface CropOptions {
  label: CrystalClass;
  seed: number;
  width?: number;
  height?: number;
}

/** Stream tags: each part of a crop draws from its own stream, so e.g. size ignores the class. */
const STREAM = { size: 1, scene: 2, fines: 3 } as const;

function checkSide(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 16 || value > 4096)) {
    throw new Error(`renderCrop: ${name} must be an integer number of pixels in 16..4096, got ${value}`);
  }
}

/** Build the scene of one crop (exported for tests and the sample grid). */
export function cropScene(o: CropOptions): SceneSpec {
  if (o.label !== 'cex' && o.label !== 'pg') throw new Error(`renderCrop: label must be "cex" or "pg", got ${JSON.stringify(o.label)}`);
  if (!Number.isFinite(o.seed)) throw new Error(`renderCrop: seed must be a finite number, got ${o.seed}`);
  checkSide('width', o.width);
  checkSide('height', o.height);
  const drawn = sampleCropSize(new Rng(mixSeed(o.seed, STREAM.size)));
  const width = o.width ?? drawn.width;
  const height = o.height ?? drawn.height;
  const rng = new Rng(mixSeed(o.seed, STREAM.scene, o.label === 'pg' ? 1 : 0));
  const scene = sampleBase(rng, width, height);
  const short = Math.min(width, height);

  // Drawn from their own stream so the rest of the crop stays as it was without them.
  addFines(new Rng(mixSeed(o.seed, STREAM.fines)), scene);
  if (o.label === 'cex') {
    const density = rng.logNormal(CEX.densityPer10kPx2.median, CEX.densityPer10kPx2.gsd);
    addNeedleField(rng, scene, density);
    if (rng.chance(CEX.matProbability)) {
      addNeedleField(rng, scene, density * rng.uniform(CEX.matDensityFactor[0], CEX.matDensityFactor[1]), {
        widthScale: CEX.matWidthScale,
        lengthScale: CEX.matLengthScale,
        nearBias: CEX.matNearBias,
      });
    }
    // The particle detector that cut the crop centred it on something: a needle or a bundle near
    // the focal plane, crossing the middle.
    if (rng.chance(0.75)) {
      const layer = rng.chance(0.5) ? scene.layers.length - 1 : scene.layers.length - 2;
      const x = width / 2 + rng.normal(0, width * 0.08);
      const y = height / 2 + rng.normal(0, height * 0.08);
      const angle = rng.uniform(0, Math.PI);
      if (rng.chance(0.5)) addBundle(rng, scene, layer, x, y, angle, rng.int(2, 6));
      else scene.layers[layer]!.needles.push(sampleNeedle(rng, scene, layer, { x, y, angle, length: short * rng.uniform(0.6, 1.6) }));
    }
  } else {
    // PG grows in a CEX slurry: the needle field is there too, often thinner.
    const density = rng.logNormal(CEX.densityPer10kPx2.median, CEX.densityPer10kPx2.gsd) * rng.uniform(0.3, 1.0);
    addNeedleField(rng, scene, density);
    const diameter = short * rng.uniform(PG.cropDiameterFraction[0], PG.cropDiameterFraction[1]);
    const agg = sampleAgglomerate(rng, width / 2 + rng.normal(0, width * 0.04), height / 2 + rng.normal(0, height * 0.04), diameter);
    placeAgglomerate(scene, agg);
    addFrontNeedles(rng, scene, agg, rng.int(PG.frontNeedles[0], PG.frontNeedles[1]));
  }
  return scene;
}

/** Render one crop. Same options → same PNG bytes. */
export async function renderCrop(o: CropOptions): Promise<Crop> {
  const scene = cropScene(o);
  const png = await renderScenePng(scene, ENCODING.cropPngCompressionLevel);
  return { png, width: scene.width, height: scene.height, label: o.label };
}

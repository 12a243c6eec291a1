/**
 * A scene is a plain description of one probe image: background, depth layers of needles,
 * PG agglomerates. Sampling (here) is separate from rasterising (render.ts), so crops and
 * full frames share the same physics and differ only in what they put where.
 */
import { BACKGROUND, CEX, CROP, DEPTH_LAYERS, PG, SENSOR, type Range } from './physics.js';
import type { Rng } from './random.js';

export interface NeedleSpec {
  /** Centre, length along the axis, width across it, axis angle (radians). */
  x: number;
  y: number;
  length: number;
  width: number;
  angle: number;
  /** Absolute gray of the bright edges and of the body. */
  edgeGray: number;
  coreGray: number;
  /** Opacity of the body (crystals are partly transparent). */
  coreAlpha: number;
  pointed: boolean;
}

export interface AgglomerateSpec {
  x: number;
  y: number;
  /** Mean radius (px) and aspect ratio (≥ 1) of the ellipse the outline follows; rotation. */
  radius: number;
  aspect: number;
  angle: number;
  lobes: { k: number; amplitude: number; phase: number }[];
  roughness: number;
  grainRadius: number;
  grainCoverage: number;
  /** 0 = faint textured disk … 1 = saturated white blob. */
  brightness: number;
  /** How strongly the granular texture shows, 0..1. */
  textureStrength: number;
  /** > 0 brighter centre, < 0 brighter rim. */
  shading: number;
  /** Direction the light comes from (radians): one side of each grain is brighter. */
  lightAngle: number;
  blurPx: number;
  /** Seed of the grain pattern. */
  seed: number;
}

export interface HazeSpec {
  x: number;
  y: number;
  radius: number;
  gray: number;
}

export interface LayerSpec {
  blurPx: number;
  needles: NeedleSpec[];
  /** Agglomerates drawn after this layer's needles (so later layers' needles cross in front). */
  agglomerates: AgglomerateSpec[];
}

export interface SceneSpec {
  width: number;
  height: number;
  backgroundGray: number;
  /** Illumination gains on a coarse (cols × rows) grid, each in (0, 1]. */
  illumination: { cols: number; rows: number; gains: number[] };
  haze: HazeSpec[];
  layers: LayerSpec[];
  /** Optical blur applies to the whole image, after the depth layers' own defocus. */
  sensor: { readNoiseSd: number; shotNoiseGain: number; noiseSeed: number; opticalBlurPx: number; gamma: number };
}

const u = (rng: Rng, r: Range): number => rng.uniform(r[0], r[1]);
const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/** Crop size, independent of the class (drawn from its own stream of the seed). */
export function sampleCropSize(rng: Rng): { width: number; height: number } {
  const side = Math.round(u(rng, CROP.sidePx));
  if (rng.chance(CROP.squareProbability)) return { width: side, height: side };
  const other = Math.round(clamp(side * u(rng, CROP.aspectRange), CROP.sidePx[0], CROP.sidePx[1]));
  return rng.chance(0.5) ? { width: side, height: other } : { width: other, height: side };
}

/** Background, illumination, empty depth layers, sensor: the part every image shares. */
export function sampleBase(
  rng: Rng,
  width: number,
  height: number,
  fixed: { backgroundGray?: number; illumination?: SceneSpec['illumination']; gamma?: number } = {},
): SceneSpec {
  const [lo, hi] = BACKGROUND.levelRange;
  const drawnGray = lo + (hi - lo) * rng.beta(BACKGROUND.levelBeta[0], BACKGROUND.levelBeta[1]);
  const backgroundGray = fixed.backgroundGray ?? drawnGray;

  // Coarse gain grid times an off-centre vignette; normalised so the brightest point is 1.
  const cells = rng.int(BACKGROUND.illuminationGridCells[0], BACKGROUND.illuminationGridCells[1]);
  const cols = cells + 1;
  const rows = Math.max(2, Math.round((cells * height) / width) + 1);
  const spread = u(rng, BACKGROUND.illuminationGainSpread);
  const vig = u(rng, BACKGROUND.vignetteStrength);
  const cx = rng.uniform(0.1, 0.9);
  const cy = rng.uniform(0.1, 0.9);
  const raw: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const dx = c / (cols - 1) - cx;
      const dy = r / (rows - 1) - cy;
      raw.push(Math.max(0.05, (1 + spread * rng.normal()) * (1 - vig * (dx * dx + dy * dy))));
    }
  }
  const top = Math.max(...raw);
  // A camera keeps its illumination from frame to frame; crops each have their own.
  const illumination = fixed.illumination ?? { cols, rows, gains: raw.map((g) => g / top) };

  const haze: HazeSpec[] = [];
  const nHaze = rng.poisson((u(rng, BACKGROUND.hazePer10kPx2) * width * height) / 10_000);
  for (let i = 0; i < nHaze; i++) {
    haze.push({
      x: rng.uniform(0, width),
      y: rng.uniform(0, height),
      radius: u(rng, BACKGROUND.hazeRadiusPx),
      gray: backgroundGray + u(rng, BACKGROUND.hazeGain),
    });
  }

  const layers: LayerSpec[] = DEPTH_LAYERS.map((layer) => ({ blurPx: u(rng, layer.blurPx), needles: [], agglomerates: [] }));

  return {
    width,
    height,
    backgroundGray,
    illumination,
    haze,
    layers,
    sensor: {
      readNoiseSd: u(rng, SENSOR.readNoiseSd),
      shotNoiseGain: u(rng, SENSOR.shotNoiseGain),
      noiseSeed: rng.int(0, 0x7fffffff),
      opticalBlurPx: u(rng, SENSOR.opticalBlurPx),
      gamma: fixed.gamma ?? u(rng, SENSOR.gamma),
    },
  };
}

/** Which depth layer a needle falls in, by the layers' shares. */
function sampleLayerIndex(rng: Rng, nearBias = 1): number {
  // nearBias > 1 moves needles toward the focal plane (a mat pressed against the window).
  return rng.weighted(DEPTH_LAYERS.map((l, i) => ({ value: i, weight: l.share * Math.pow(nearBias, i) })));
}

/** One needle's looks, given where it is; contrast falls with the layer's defocus. */
export function sampleNeedle(
  rng: Rng,
  scene: SceneSpec,
  layerIndex: number,
  at: { x: number; y: number; angle: number; length?: number; width?: number; widthScale?: number; lengthScale?: number },
): NeedleSpec {
  const L = CEX.lengthPx;
  const W = CEX.widthPx;
  let width = at.width ?? clamp(rng.logNormal(W.median * (at.widthScale ?? 1), W.gsd), W.min, W.max);
  const length = at.length ?? clamp(rng.logNormal(L.median * (at.lengthScale ?? 1), L.gsd), Math.max(L.min, width * CEX.minAspect), L.max);
  width = Math.min(width, length / CEX.minAspect);
  const contrast = u(rng, DEPTH_LAYERS[layerIndex]!.contrast);
  const bg = scene.backgroundGray;
  return {
    x: at.x,
    y: at.y,
    length,
    width,
    angle: at.angle,
    edgeGray: clamp(bg + contrast * u(rng, CEX.edgeGain), 0, 255),
    coreGray: clamp(bg + contrast * u(rng, CEX.coreGain), 0, 255),
    coreAlpha: rng.uniform(0.35, 0.9),
    pointed: rng.chance(CEX.pointedEndsProbability),
  };
}

/**
 * A field of CEX needles over the scene at `densityPer10kPx2`, some in bundles, spread over the
 * depth layers. Centres fall in a margin around the image so needles cross its edges.
 */
export function addNeedleField(
  rng: Rng,
  scene: SceneSpec,
  densityPer10kPx2: number,
  mat?: { widthScale: number; lengthScale: number; nearBias: number },
): void {
  const { width, height } = scene;
  const margin = CEX.lengthPx.median * 0.5;
  const area = (width + 2 * margin) * (height + 2 * margin);
  let remaining = rng.poisson((densityPer10kPx2 * area) / 10_000);
  while (remaining > 0) {
    const layerIndex = sampleLayerIndex(rng, mat?.nearBias);
    const x = rng.uniform(-margin, width + margin);
    const y = rng.uniform(-margin, height + margin);
    const angle = rng.uniform(0, Math.PI);
    if (!mat && rng.chance(CEX.bundleProbability)) {
      remaining -= addBundle(rng, scene, layerIndex, x, y, angle, Math.min(remaining, rng.int(CEX.bundleSize[0], CEX.bundleSize[1])));
    } else {
      scene.layers[layerIndex]!.needles.push(sampleNeedle(rng, scene, layerIndex, { x, y, angle, widthScale: mat?.widthScale, lengthScale: mat?.lengthScale }));
      remaining--;
    }
  }
}

/** Fines: short fragments of broken needles at any depth, in CEX and PG images alike. */
export function addFines(rng: Rng, scene: SceneSpec): void {
  const n = rng.poisson((u(rng, CEX.finesPer10kPx2) * scene.width * scene.height) / 10_000);
  for (let i = 0; i < n; i++) {
    const layerIndex = sampleLayerIndex(rng);
    const length = u(rng, CEX.finesLengthPx);
    scene.layers[layerIndex]!.needles.push(
      sampleNeedle(rng, scene, layerIndex, {
        x: rng.uniform(0, scene.width),
        y: rng.uniform(0, scene.height),
        angle: rng.uniform(0, Math.PI),
        length,
        width: Math.min(length / CEX.minAspect + 1, rng.uniform(0.9, 2.2)),
      }),
    );
  }
}

/** Needles grown together: near-parallel, side by side, similar lengths. Returns how many. */
export function addBundle(rng: Rng, scene: SceneSpec, layerIndex: number, x: number, y: number, angle: number, count: number): number {
  const L = CEX.lengthPx;
  const baseLength = clamp(rng.logNormal(L.median * 1.3, L.gsd), 25, L.max);
  const baseWidth = clamp(rng.logNormal(CEX.widthPx.median, CEX.widthPx.gsd), CEX.widthPx.min, 8);
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const a = angle + (rng.normal() * CEX.bundleAngleSdDeg * Math.PI) / 180;
    const w = clamp(baseWidth * rng.uniform(0.6, 1.5), CEX.widthPx.min, CEX.widthPx.max);
    const along = rng.normal() * baseLength * 0.15;
    const nx = -Math.sin(angle);
    const ny = Math.cos(angle);
    scene.layers[layerIndex]!.needles.push(
      sampleNeedle(rng, scene, layerIndex, {
        x: x + nx * offset + Math.cos(angle) * along,
        y: y + ny * offset + Math.sin(angle) * along,
        angle: a,
        length: baseLength * rng.uniform(0.6, 1.2),
        width: w,
      }),
    );
    offset += w * (1 + u(rng, CEX.bundleGapWidths)) * (rng.chance(0.5) ? 1 : -1) * (i % 2 === 0 ? 1 : -1);
  }
  return count;
}

/** A PG agglomerate of the given mean diameter at (x, y). */
export function sampleAgglomerate(rng: Rng, x: number, y: number, diameter: number): AgglomerateSpec {
  const nLobes = rng.int(2, 4);
  const lobes = [];
  for (let i = 0; i < nLobes; i++) {
    lobes.push({ k: rng.int(2, 6), amplitude: u(rng, PG.lobeAmplitude), phase: rng.uniform(0, 2 * Math.PI) });
  }
  const aspect = u(rng, PG.aspect);
  const G = PG.grainRadiusPx;
  // Grains scale a little with the agglomerate, so small young ones are not all coarse.
  const grainRadius = clamp(rng.logNormal(G.median * Math.sqrt(diameter / 180), G.gsd), G.min, G.max);
  // Blur: mostly near focus, about one in eight clearly out of focus.
  const blurPx = rng.chance(0.12) ? rng.uniform(1.8, PG.blurPx[1]) : rng.uniform(PG.blurPx[0], 1.4);
  return {
    x,
    y,
    // The mean radius of an ellipse with this aspect whose geometric-mean diameter is `diameter`.
    radius: diameter / 2,
    aspect,
    angle: rng.uniform(0, Math.PI),
    lobes,
    roughness: u(rng, PG.roughness),
    grainRadius,
    grainCoverage: u(rng, PG.grainCoverage),
    brightness: rng.beta(PG.brightnessBeta[0], PG.brightnessBeta[1]),
    textureStrength: rng.next(),
    shading: u(rng, PG.shadingStrength),
    lightAngle: rng.uniform(0, 2 * Math.PI),
    blurPx,
    seed: rng.int(0, 0x7fffffff),
  };
}

/** Put an agglomerate in the scene at the depth its blur says; needles of nearer layers cross it. */
export function placeAgglomerate(scene: SceneSpec, agg: AgglomerateSpec): void {
  // Draw it after the last layer that is more blurred than it is.
  let index = 0;
  for (let i = 0; i < scene.layers.length; i++) if (scene.layers[i]!.blurPx >= agg.blurPx) index = i;
  scene.layers[index]!.agglomerates.push({ ...agg, blurPx: Math.max(agg.blurPx, 0) });
}

/** Needles in front of an agglomerate, crossing it (the probe sees PG among CEX). */
export function addFrontNeedles(rng: Rng, scene: SceneSpec, agg: AgglomerateSpec, count: number): void {
  for (let i = 0; i < count; i++) {
    const layerIndex = rng.chance(0.5) ? scene.layers.length - 1 : scene.layers.length - 2;
    const r = agg.radius * Math.sqrt(rng.next()) * 0.8;
    const t = rng.uniform(0, 2 * Math.PI);
    scene.layers[layerIndex]!.needles.push(
      sampleNeedle(rng, scene, layerIndex, {
        x: agg.x + r * Math.cos(t),
        y: agg.y + r * Math.sin(t),
        angle: rng.uniform(0, Math.PI),
        length: agg.radius * rng.uniform(0.8, 2.6),
      }),
    );
  }
}

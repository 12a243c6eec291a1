/**
 * Every physical parameter of the synthetic in-situ probe camera, in one place.
 *
 * The probe (a PVM/EasyViewer-style immersion microscope) looks into a stirred slurry
 * through a sapphire window, lit from the probe itself. What that means for an image:
 * - the liquid and the crystals far from the window form a dark-to-mid-gray, heavily
 *   out-of-focus background, brighter where the light cone is (uneven illumination);
 * - the depth of field is shallow (tens of µm), so most crystals are blurred, a few sharp;
 * - crystals scatter light back to the probe, so edges and facets are bright on the dark liquid;
 * - the sensor adds shot noise (∝ √signal) and read noise; the images are 8-bit gray.
 *
 * Units: pixels of the crop/frame (about 1.5–2 µm per pixel for such probes), gray levels 0–255.
 * `simulator/README.md` explains where each range comes from.
 */

/** A closed range [min, max]. */
export type Range = readonly [number, number];

/** Crop size: same distribution for both classes, so size carries no class information. */
export const CROP = {
  sidePx: [130, 230] as Range,
  /** Probability that a crop is square; otherwise the other side varies by ±25 %. */
  squareProbability: 0.35,
  aspectRange: [0.8, 1.25] as Range,
};

/** Full camera frame defaults (the camera's sensor). */
export const FRAME = {
  widthPx: 1280,
  heightPx: 960,
  fps: 2,
};

/** The slurry behind the focal plane. */
export const BACKGROUND = {
  /** Mean gray of the liquid: Beta-distributed between these levels (dark to mid gray). */
  levelRange: [28, 120] as Range,
  levelBeta: [2.0, 2.6] as const,
  /**
   * Uneven illumination: a smooth multiplicative field (a coarse grid of gains, bicubically
   * upsampled) times a vignette off-centre of the image. Gains are relative to 1.
   */
  illuminationGridCells: [2, 4] as Range,
  illuminationGainSpread: [0.08, 0.3] as Range,
  vignetteStrength: [0.1, 0.45] as Range,
  /** Out-of-focus haze: large soft glows from crystals far from the window, per 100×100 px. */
  hazePer10kPx2: [0.2, 1.2] as Range,
  hazeRadiusPx: [25, 90] as Range,
  hazeGain: [6, 30] as Range,
};

/**
 * Depth of field as discrete depth layers, back to front. Each crystal is assigned a layer;
 * a layer's blur (Gaussian σ in px) is drawn once per image. `share` is the fraction of needles
 * in the layer: most are out of focus, a few sharp.
 */
export const DEPTH_LAYERS = [
  { name: 'far', share: 0.34, blurPx: [4.5, 9] as Range, contrast: [0.35, 0.7] as Range },
  { name: 'mid', share: 0.33, blurPx: [2.0, 4.0] as Range, contrast: [0.5, 0.9] as Range },
  { name: 'near', share: 0.22, blurPx: [0.9, 1.8] as Range, contrast: [0.7, 1.0] as Range },
  // In the focal plane: no defocus, only the optics' own softness (SENSOR.opticalBlurPx).
  { name: 'focus', share: 0.11, blurPx: [0, 0] as Range, contrast: [0.85, 1.0] as Range },
] as const;
export type DepthLayerName = (typeof DEPTH_LAYERS)[number]['name'];

/**
 * Cephalexin: needles and laths (high aspect ratio, monoclinic habit). Sizes are log-normal, as
 * crystal size distributions from growth with size-dependent rates are.
 */
export const CEX = {
  lengthPx: { median: 85, gsd: 1.8, min: 14, max: 700 },
  widthPx: { median: 2.6, gsd: 1.65, min: 0.9, max: 16 },
  /** Minimum aspect ratio length/width: anything stubbier is not a needle. */
  minAspect: 8,
  /** Needles per 100×100 px of image: log-normal between sparse and crowded suspensions. */
  densityPer10kPx2: { median: 10, gsd: 1.6 },
  /**
   * Some crops are dense mats of fibres: many thin, long needles, more of them near the window
   * (weights of the depth layers × nearBias^layer), on top of the usual field.
   */
  matProbability: 0.15,
  matDensityFactor: [2, 4] as Range,
  matWidthScale: 0.6,
  matLengthScale: 1.5,
  matNearBias: 1.8,
  /** Fraction of needles that grow in bundles (agglomerated needles), and bundle make-up. */
  bundleProbability: 0.35,
  bundleSize: [2, 7] as Range,
  bundleAngleSdDeg: 4,
  /** Gap between bundle members, in needle widths. */
  bundleGapWidths: [0.6, 2.5] as Range,
  /** Gray above the background of the bright edges and of the body of a needle. */
  edgeGain: [55, 170] as Range,
  coreGain: [5, 80] as Range,
  /** Fraction of needles with pointed (rather than square-cut) ends. */
  pointedEndsProbability: 0.3,
  /** Fines: broken needle fragments from attrition by the stirrer, in every image of a batch. */
  finesPer10kPx2: [1, 5] as Range,
  finesLengthPx: [5, 16] as Range,
};

/**
 * Phenylglycine: rounded/oval agglomerates of many small grains ("cauliflower"), far more
 * variable than CEX: from faint textured disks barely above the background to saturated
 * white blobs with ragged edges.
 */
export const PG = {
  /** Agglomerate diameter as a fraction of the crop's shorter side (crops are centred on it). */
  cropDiameterFraction: [0.6, 0.9] as Range,
  /**
   * Diameter in full frames: grows from the size at which the probe first resolves an
   * agglomerate to the final size. Real OpenCrystalData PG crops are cut around the
   * agglomerate at 130–230 px, so agglomerates the probe shows are about 120 px and up;
   * smaller nuclei exist but are below what the probe (and the model's tiles) resolve.
   */
  frameDiameterPx: [120, 260] as Range,
  aspect: [1.0, 1.5] as Range,
  /** Ragged outline: amplitude of low-order lobes (relative radius) and of edge roughness. */
  lobeAmplitude: [0.02, 0.12] as Range,
  roughness: [0.01, 0.06] as Range,
  /** Grain radius, log-normal: fine to coarse texture from one agglomerate to the next. */
  grainRadiusPx: { median: 2.0, gsd: 1.45, min: 1.0, max: 6.5 },
  /** Grain coverage of the agglomerate's area (several layers of grains overlap). */
  grainCoverage: [1.2, 2.6] as Range,
  /**
   * Brightness β ∈ [0, 1]: 0 = faint textured disk, 1 = saturated white blob. Beta(1.5, 1.4)
   * puts most agglomerates in the middle, with both tails present (tuned so that mean crop
   * brightness alone separates PG from CEX with ROC AUC ≈ 0.75–0.8, as on real crops).
   */
  brightnessBeta: [1.5, 1.4] as const,
  /** Gray above background of the agglomerate's body at β = 0 and β = 1. */
  bodyGain: [22, 210] as Range,
  /** Grain contrast (σ of grain gray) at β = 0 and β = 1 (saturated blobs clip). */
  grainContrast: [10, 60] as Range,
  /** Rim: agglomerates lit from the probe are often brighter at the rim or at the centre. */
  shadingStrength: [-0.35, 0.35] as Range,
  /** Blur of the agglomerate: mostly near the focal plane, sometimes clearly out of focus. */
  blurPx: [0.3, 3.0] as Range,
  /** Needles crossing in front of an agglomerate. */
  frontNeedles: [0, 4] as Range,
};

/** PG in a running batch: nucleation after the onset, then growth in number and size. */
export const PG_GROWTH = {
  /** Expected agglomerates per frame right after onset, and added per minute after it. */
  initialPerFrame: 1,
  perFramePerMinute: 1,
  maxPerFrame: 6,
  /** Diameter growth, px per second since the agglomerate nucleated: 60 → 250 px in ~5 min. */
  growthPxPerS: 0.65,
};

/** The sensor. Variance = read² + gain × signal (shot noise). */
export const SENSOR = {
  readNoiseSd: [1.2, 3.5] as Range,
  shotNoiseGain: [0.03, 0.12] as Range,
  /** Optical softness of the whole image (lens, window, pixel cross-talk), Gaussian σ px. */
  opticalBlurPx: [0.35, 0.7] as Range,
  /**
   * The camera's tone curve, out = 255 (in / 255)^γ, applied after the noise as a camera's
   * image processor does. Fixed for a camera; varied across crops so that a model trained on
   * them does not learn one particular contrast.
   */
  gamma: [0.8, 1.25] as Range,
};

/** PNG encoding: zlib level 1 keeps a 1280×960 frame fast to write; crops use the default. */
export const ENCODING = {
  framePngCompressionLevel: 1,
  cropPngCompressionLevel: 6,
};

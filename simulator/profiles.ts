/**
 * Camera profiles: the same slurry seen through other probes. The default simulator is one
 * camera (one magnification, one optics, one exposure); a plant's probe differs in every one
 * of these, and a model's "is this like what it was trained on" statistics fitted on one
 * camera refuse the others. A profile widens the domain along the axes real probes differ in:
 *
 * - magnification (crystals larger or smaller in pixels; needle density the other way round),
 * - rod habit (thicker, stubbier CEX crystals from other solvents or supersaturation),
 * - defocus (a window further from the focal plane) and motion blur (flow past a slow shutter),
 * - exposure and background level (lamp power, slurry turbidity), tone curve γ, contrast,
 * - sensor noise (gain), and the file the camera writes (PNG or JPEG, grey or RGB with R = G = B).
 *
 * Each image draws its settings from the profile's ranges (frames: once per camera, from the
 * seed), so one profile is a family of cameras. `SEEN_PROFILES` are what the shipped card's
 * out-of-distribution statistics were fitted on; `UNSEEN_PROFILES` are held out to test that
 * unseen cameras still pass (bench/trust.ts, test/trust-gates.test.ts).
 */
import type { Range } from './physics.js';
import { SENSOR } from './physics.js';
import { Rng, mixSeed } from './random.js';
import type { SceneSpec } from './scene.js';

export interface CameraProfile {
  name: string;
  /** Crystal sizes relative to the default optics (1 = the default camera). */
  magnification: Range;
  /** Needle width × this and length ÷ √this: thicker, stubbier rods. */
  rodHabit: Range;
  /** Extra defocus, Gaussian σ px, added in quadrature to every depth layer and agglomerate. */
  defocusPx: Range;
  /** Motion blur length px along one direction (0 = none). */
  motionPx: Range;
  /** Tone curve out = 255 (in/255)^γ. */
  gamma: Range;
  /** Gain on the light reaching the sensor (clips at 255). */
  exposure: Range;
  /** Mean grey of the liquid; undefined keeps the simulator's own (28–120). */
  backgroundLevel?: Range;
  /** Scale of read and shot noise σ. */
  noise: Range;
  /** Contrast about mid grey after the tone curve (1 = none). */
  contrast: Range;
  /** File the camera writes. RGB = three equal channels (many acquisition programs do this). */
  file: { format: 'png' | 'jpeg'; quality?: Range; rgb?: boolean };
}

const ONE: Range = [1, 1];
const ZERO: Range = [0, 0];

const base: CameraProfile = {
  name: 'default',
  magnification: ONE,
  rodHabit: ONE,
  defocusPx: ZERO,
  motionPx: ZERO,
  gamma: SENSOR.gamma,
  exposure: ONE,
  noise: ONE,
  contrast: ONE,
  file: { format: 'png' },
};

const profile = (name: string, o: Partial<CameraProfile>): CameraProfile => ({ ...base, ...o, name });

/** Profiles the shipped out-of-distribution statistics are fitted on. */
export const SEEN_PROFILES: readonly CameraProfile[] = [
  base,
  profile('high-mag', { magnification: [1.35, 2.4] }),
  profile('low-mag', { magnification: [0.45, 0.75] }),
  profile('rods', { rodHabit: [1.8, 3.2] }),
  profile('soft-focus', { defocusPx: [1.0, 3.2] }),
  profile('motion', { motionPx: [3, 11] }),
  profile('bright', { backgroundLevel: [85, 155], exposure: [1.05, 1.3] }),
  profile('dim', { exposure: [0.5, 0.8] }),
  profile('noisy', { noise: [1.8, 3.5] }),
  profile('tone-lift', { gamma: [0.5, 0.8] }),
  profile('tone-crush', { gamma: [1.25, 1.8] }),
  profile('contrast', { contrast: [0.6, 1.5] }),
  profile('jpeg', { file: { format: 'jpeg', quality: [55, 95] } }),
  profile('mixed', {
    magnification: [0.7, 1.5],
    rodHabit: [1, 2],
    defocusPx: [0, 1.5],
    motionPx: [0, 5],
    gamma: [0.65, 1.4],
    exposure: [0.7, 1.25],
    backgroundLevel: [40, 130],
    noise: [0.8, 2],
    contrast: [0.8, 1.3],
  }),
];

/**
 * Cameras held out of every fit: new combinations, inside the seen ranges, of what real probes
 * differ in — including the real set's brightness (mean grey 70–140) and RGB JPEG files.
 */
export const UNSEEN_PROFILES: readonly CameraProfile[] = [
  profile('unseen-bright-rods-jpeg', {
    magnification: [1.15, 1.5],
    rodHabit: [1.4, 2.2],
    backgroundLevel: [80, 130],
    exposure: [1.0, 1.2],
    gamma: [0.75, 1.0],
    file: { format: 'jpeg', quality: [70, 90], rgb: true },
  }),
  profile('unseen-soft-noisy', { defocusPx: [0.7, 1.8], noise: [1.4, 2.4], motionPx: [1.5, 5], gamma: [0.7, 0.95], backgroundLevel: [60, 120] }),
  profile('unseen-lowmag-contrast', {
    magnification: [0.6, 0.85],
    contrast: [1.15, 1.4],
    exposure: [0.8, 1.0],
    backgroundLevel: [70, 125],
    file: { format: 'png', rgb: true },
  }),
];

export const ALL_PROFILES: readonly CameraProfile[] = [...SEEN_PROFILES, ...UNSEEN_PROFILES];

export function profileByName(name: string): CameraProfile {
  const found = ALL_PROFILES.find((p) => p.name === name);
  if (!found) throw new Error(`camera profile "${name}" is not known; use one of ${ALL_PROFILES.map((p) => p.name).join(', ')}`);
  return found;
}

/** One camera's settings, drawn from a profile. */
export interface CameraSettings {
  magnification: number;
  rodHabit: number;
  defocusPx: number;
  motionPx: number;
  motionAngle: number;
  gamma: number;
  exposure: number;
  backgroundLevel?: number;
  noise: number;
  contrast: number;
  format: 'png' | 'jpeg';
  quality: number;
  rgb: boolean;
}

const draw = (rng: Rng, r: Range): number => (r[0] === r[1] ? r[0] : rng.uniform(r[0], r[1]));

/** Settings of one camera of this profile; same seed, same camera. */
export function cameraSettings(p: CameraProfile, seed: number): CameraSettings {
  const rng = new Rng(mixSeed(seed, 0xca3e7a));
  return {
    magnification: draw(rng, p.magnification),
    rodHabit: draw(rng, p.rodHabit),
    defocusPx: draw(rng, p.defocusPx),
    motionPx: draw(rng, p.motionPx),
    motionAngle: rng.uniform(0, Math.PI),
    gamma: draw(rng, p.gamma),
    exposure: draw(rng, p.exposure),
    backgroundLevel: p.backgroundLevel ? draw(rng, p.backgroundLevel) : undefined,
    noise: draw(rng, p.noise),
    contrast: draw(rng, p.contrast),
    format: p.file.format,
    quality: Math.round(draw(rng, p.file.quality ?? [90, 90])),
    rgb: p.file.rgb === true,
  };
}

/**
 * Change a scene as this camera would see it. `keepAgglomerateSize`: crops are cut around
 * their agglomerate by the particle detector whatever the magnification, so its size in the
 * crop stays; in frames everything scales.
 */
export function applySettingsToScene(scene: SceneSpec, s: CameraSettings, seed: number, keepAgglomerateSize: boolean): void {
  const rng = new Rng(mixSeed(seed, 0x5ce7e));
  const m = s.magnification;
  // At m > 1 the same area holds 1/m² as many crystals: keep each with that probability. At m < 1
  // the crystals shrink and the field looks sparser; denser slurries are a profile of their own.
  const keep = Math.min(1, 1 / (m * m));
  const quadrature = (b: number) => Math.sqrt(b * b + s.defocusPx * s.defocusPx);
  const shift = s.backgroundLevel === undefined ? 0 : s.backgroundLevel - scene.backgroundGray;
  const clampGrey = (v: number) => Math.max(0, Math.min(255, v + shift));
  for (const layer of scene.layers) {
    layer.blurPx = quadrature(layer.blurPx * m);
    layer.needles = layer.needles.filter(() => keep >= 1 || rng.chance(keep));
    for (const n of layer.needles) {
      n.width = Math.max(0.7, n.width * m * s.rodHabit);
      n.length = Math.max(n.width * 3, (n.length * m) / Math.sqrt(s.rodHabit));
      n.edgeGray = clampGrey(n.edgeGray);
      n.coreGray = clampGrey(n.coreGray);
    }
    for (const a of layer.agglomerates) {
      if (!keepAgglomerateSize) a.radius = Math.min(a.radius * m, Math.min(scene.width, scene.height) * 0.4);
      a.grainRadius = Math.max(0.8, a.grainRadius * m);
      a.blurPx = quadrature(a.blurPx * m);
    }
  }
  for (const h of scene.haze) {
    h.gray = clampGrey(h.gray);
    h.radius *= m;
  }
  scene.backgroundGray = clampGrey(scene.backgroundGray);
  scene.sensor.gamma = s.gamma;
  scene.sensor.readNoiseSd *= s.noise;
  scene.sensor.shotNoiseGain *= s.noise * s.noise;
}

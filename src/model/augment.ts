/**
 * Augmentations that keep the physics true. A crystal seen rotated by 90° or mirrored is the
 * same crystal (the probe has no preferred orientation); lighting drifts a little, focus and
 * sensor noise vary, and the particle detector's crop is a bit tighter or looser. None of
 * these turns a needle into a plate or hides a plate, so the label stays right.
 */
import { SeededRandom } from './rng.js';

export interface AugmentOptions {
  /** Probability of a random 90° rotation / flip (all 8 orientations equally likely). */
  dihedral: number;
  /** Brightness offset, ± this fraction of full scale. */
  brightness: number;
  /** Contrast factor in [1 − c, 1 + c] around the image mean. */
  contrast: number;
  /** Probability of a 3×3 Gaussian blur (defocus). */
  blur: number;
  /** Gaussian sensor noise, σ up to this (fraction of full scale). */
  noise: number;
  /** Zoom in by up to this factor (1.15 = crop 87 % of the field, rescaled). */
  zoom: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = { dihedral: 1, brightness: 0.08, contrast: 0.15, blur: 0.25, noise: 0.02, zoom: 1.15 };
/** Orientation and framing only: for fine-tuning on faint detail that blur and noise would hide. */
export const GEOMETRIC_AUGMENT: AugmentOptions = { dihedral: 1, brightness: 0, contrast: 0, blur: 0, noise: 0, zoom: 1.15 };
export const NO_AUGMENT: AugmentOptions = { dihedral: 0, brightness: 0, contrast: 0, blur: 0, noise: 0, zoom: 1 };

/**
 * Write one augmented copy of `src` (side×side grey, 0–255) into `out` at slot `index`, as
 * floats in [0, 1]. `scratch` must hold side×side floats.
 */
export function augmentInto(
  src: Uint8Array,
  side: number,
  out: Float32Array,
  index: number,
  rng: SeededRandom,
  o: AugmentOptions,
  scratch: Float32Array,
): void {
  const n = side * side;
  const base = index * n;
  // Geometry: orientation and zoom in one resampling (bilinear for zoom, exact for 90° steps).
  const orientation = rng.next() < o.dihedral ? rng.int(8) : 0;
  const transpose = (orientation & 4) !== 0;
  const flipX = (orientation & 1) !== 0;
  const flipY = (orientation & 2) !== 0;
  const zoom = o.zoom > 1 ? rng.uniform(1, o.zoom) : 1;
  const span = side / zoom;
  const offX = rng.uniform(0, side - span);
  const offY = rng.uniform(0, side - span);
  const step = span / side;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      let u = transpose ? y : x;
      let v = transpose ? x : y;
      if (flipX) u = side - 1 - u;
      if (flipY) v = side - 1 - v;
      let value: number;
      if (zoom === 1) {
        value = src[v * side + u]!;
      } else {
        const sx = offX + (u + 0.5) * step - 0.5;
        const sy = offY + (v + 0.5) * step - 0.5;
        const x0 = Math.max(0, Math.min(side - 1, Math.floor(sx)));
        const y0 = Math.max(0, Math.min(side - 1, Math.floor(sy)));
        const x1 = Math.min(side - 1, x0 + 1);
        const y1 = Math.min(side - 1, y0 + 1);
        const fx = Math.max(0, Math.min(1, sx - x0));
        const fy = Math.max(0, Math.min(1, sy - y0));
        const top = src[y0 * side + x0]! * (1 - fx) + src[y0 * side + x1]! * fx;
        const bottom = src[y1 * side + x0]! * (1 - fx) + src[y1 * side + x1]! * fx;
        value = top * (1 - fy) + bottom * fy;
      }
      scratch[y * side + x] = value / 255;
    }
  }
  if (rng.next() < o.blur) {
    // Separable [1 2 1]/4 kernel, edges clamped.
    const tmp = out.subarray(base, base + n);
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++) {
        const l = scratch[y * side + Math.max(0, x - 1)]!;
        const r = scratch[y * side + Math.min(side - 1, x + 1)]!;
        tmp[y * side + x] = (l + 2 * scratch[y * side + x]! + r) / 4;
      }
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++) {
        const t = tmp[Math.max(0, y - 1) * side + x]!;
        const b = tmp[Math.min(side - 1, y + 1) * side + x]!;
        scratch[y * side + x] = (t + 2 * tmp[y * side + x]! + b) / 4;
      }
  }
  let mean = 0;
  for (let i = 0; i < n; i++) mean += scratch[i]!;
  mean /= n;
  const contrast = 1 + rng.uniform(-o.contrast, o.contrast);
  const brightness = rng.uniform(-o.brightness, o.brightness);
  const sigma = o.noise > 0 ? rng.uniform(0, o.noise) : 0;
  for (let i = 0; i < n; i++) {
    let v = (scratch[i]! - mean) * contrast + mean + brightness;
    if (sigma > 0) v += sigma * rng.normal();
    out[base + i] = v < 0 ? 0 : v > 1 ? 1 : v;
  }
}

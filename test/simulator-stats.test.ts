/**
 * The classes must differ the way real CEX and PG crops do — by shape and texture — and not by a
 * cue a model could cheat with. Over 200 crops (fixed seeds):
 * - mean brightness alone separates them only partly (ROC AUC < 0.85; about 0.8 on real crops,
 *   where PG is often brighter, not always);
 * - crop size (width × height) carries no information (AUC within 0.4–0.6);
 * - two shape/texture statistics computed independently of the simulator — orientation coherence
 *   of the structure tensor (high for needles, low for isotropic granular agglomerates) and the
 *   contrast of a compact central body against its surround (normalised by the crop's own
 *   spread, so not a brightness cue) — combined by a logistic regression fitted on 100 crops,
 *   separate the other 100 well (AUC > 0.9).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { renderCrop, type CrystalClass } from '../simulator/index.js';

/** ROC AUC of `score` for positives vs negatives, by Mann–Whitney U (ties count one half). */
function rocAuc(positives: number[], negatives: number[]): number {
  const all = [...positives.map((v) => ({ v, pos: true })), ...negatives.map((v) => ({ v, pos: false }))].sort((a, b) => a.v - b.v);
  // Midranks for ties.
  const ranks = new Array<number>(all.length);
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j + 1 < all.length && all[j + 1]!.v === all[i]!.v) j++;
    for (let k = i; k <= j; k++) ranks[k] = (i + j) / 2 + 1;
    i = j + 1;
  }
  let rankSum = 0;
  all.forEach((item, i) => {
    if (item.pos) rankSum += ranks[i]!;
  });
  const n1 = positives.length;
  const n0 = negatives.length;
  return (rankSum - (n1 * (n1 + 1)) / 2) / (n1 * n0);
}

/**
 * Energy-weighted mean orientation coherence, sqrt((Jxx−Jyy)² + 4Jxy²) / (Jxx + Jyy), over
 * 12×12 blocks of the crop's central 60 % (where the particle the crop was cut around is).
 */
function orientationCoherence(px: Buffer, width: number, height: number): number {
  const block = 12;
  const x0 = Math.max(1, Math.floor(width * 0.2));
  const x1 = Math.min(width - 1, Math.ceil(width * 0.8));
  const y0 = Math.max(1, Math.floor(height * 0.2));
  const y1 = Math.min(height - 1, Math.ceil(height * 0.8));
  let num = 0;
  let den = 0;
  for (let by = y0; by + block <= y1; by += block) {
    for (let bx = x0; bx + block <= x1; bx += block) {
      let jxx = 0;
      let jyy = 0;
      let jxy = 0;
      for (let y = by; y < by + block; y++) {
        for (let x = bx; x < bx + block; x++) {
          const gx = px[y * width + x + 1]! - px[y * width + x - 1]!;
          const gy = px[(y + 1) * width + x]! - px[(y - 1) * width + x]!;
          jxx += gx * gx;
          jyy += gy * gy;
          jxy += gx * gy;
        }
      }
      const energy = jxx + jyy;
      if (energy === 0) continue;
      num += Math.sqrt((jxx - jyy) ** 2 + 4 * jxy * jxy);
      den += energy;
    }
  }
  return den === 0 ? 0 : num / den;
}

/**
 * Mean of a central disc (radius 0.2 × the shorter side) minus the mean of a ring near the edge
 * (0.42–0.5), over the crop's standard deviation, on a heavily blurred copy: a compact body
 * filling the centre scores high whatever its brightness.
 */
function centreSurround(px: Buffer, width: number, height: number): number {
  const side = Math.min(width, height);
  let centre = 0;
  let nCentre = 0;
  let ring = 0;
  let nRing = 0;
  let sum = 0;
  let sumSq = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const v = px[y * width + x]!;
      sum += v;
      sumSq += v * v;
      const r = Math.hypot(x - width / 2, y - height / 2) / side;
      if (r < 0.2) {
        centre += v;
        nCentre++;
      } else if (r > 0.42 && r < 0.5) {
        ring += v;
        nRing++;
      }
    }
  }
  const n = width * height;
  const sd = Math.sqrt(Math.max(0, sumSq / n - (sum / n) ** 2));
  return (centre / nCentre - ring / nRing) / (sd + 1);
}

/** Logistic regression by gradient descent on standardised features; returns a scoring function. */
function fitLogistic(rows: { x: number[]; y: number }[]): (x: number[]) => number {
  const k = rows[0]!.x.length;
  const mean = Array.from({ length: k }, (_, j) => rows.reduce((s, r) => s + r.x[j]!, 0) / rows.length);
  const sd = Array.from({ length: k }, (_, j) => Math.sqrt(rows.reduce((s, r) => s + (r.x[j]! - mean[j]!) ** 2, 0) / rows.length) || 1);
  const z = (x: number[]): number[] => x.map((v, j) => (v - mean[j]!) / sd[j]!);
  const w = new Array<number>(k).fill(0);
  let b = 0;
  for (let iteration = 0; iteration < 2000; iteration++) {
    const grad = new Array<number>(k).fill(0);
    let gradB = 0;
    for (const r of rows) {
      const x = z(r.x);
      const p = 1 / (1 + Math.exp(-(b + x.reduce((s, v, j) => s + v * w[j]!, 0))));
      for (let j = 0; j < k; j++) grad[j]! += (p - r.y) * x[j]!;
      gradB += p - r.y;
    }
    for (let j = 0; j < k; j++) w[j]! -= (0.1 * grad[j]!) / rows.length;
    b -= (0.1 * gradB) / rows.length;
  }
  return (x) => b + z(x).reduce((s, v, j) => s + v * w[j]!, 0);
}

interface CropStats {
  label: CrystalClass;
  meanBrightness: number;
  area: number;
  coherence: number;
  centreSurround: number;
}

const stats: CropStats[] = [];

beforeAll(async () => {
  for (let i = 0; i < 200; i++) {
    const label: CrystalClass = i % 2 === 0 ? 'pg' : 'cex';
    const crop = await renderCrop({ label, seed: 20_000 + i });
    const px = await sharp(crop.png).extractChannel(0).raw().toBuffer();
    const blur = (sigma: number): Promise<Buffer> =>
      sharp(px, { raw: { width: crop.width, height: crop.height, channels: 1 } })
        .blur(sigma)
        .extractChannel(0)
        .raw()
        .toBuffer();
    stats.push({
      label,
      meanBrightness: px.reduce((s, v) => s + v, 0) / px.length,
      area: crop.width * crop.height,
      // A light blur before gradients, so sensor noise does not dominate the tensor.
      coherence: orientationCoherence(await blur(1), crop.width, crop.height),
      centreSurround: centreSurround(await blur(6), crop.width, crop.height),
    });
  }
});

const of = (label: CrystalClass, key: keyof Omit<CropStats, 'label'>): number[] => stats.filter((s) => s.label === label).map((s) => s[key]);

describe('simulated crop statistics (200 crops)', () => {
  it('computes AUC the way Mann–Whitney does', () => {
    expect(rocAuc([3, 4], [1, 2])).toBe(1);
    expect(rocAuc([1, 2], [3, 4])).toBe(0);
    expect(rocAuc([1, 2], [1, 2])).toBe(0.5);
    expect(rocAuc([2, 3], [1, 2])).toBeCloseTo(0.875, 10);
  });

  it('mean brightness alone separates PG from CEX only partly (AUC < 0.85), PG brighter on average', () => {
    const auc = rocAuc(of('pg', 'meanBrightness'), of('cex', 'meanBrightness'));
    expect(auc).toBeGreaterThan(0.55);
    expect(auc).toBeLessThan(0.85);
  });

  it('crop size carries no class information (AUC within 0.4–0.6)', () => {
    const auc = rocAuc(of('pg', 'area'), of('cex', 'area'));
    expect(auc).toBeGreaterThan(0.4);
    expect(auc).toBeLessThan(0.6);
  });

  it('shape and texture separate them: a logistic model of two shape statistics, fitted on 100 crops, reaches AUC > 0.9 on the other 100', () => {
    const rows = stats.map((s) => ({ x: [s.coherence, s.centreSurround], y: s.label === 'pg' ? 1 : 0 }));
    const score = fitLogistic(rows.slice(0, 100));
    const held = rows.slice(100);
    const auc = rocAuc(
      held.filter((r) => r.y === 1).map((r) => score(r.x)),
      held.filter((r) => r.y === 0).map((r) => score(r.x)),
    );
    expect(auc).toBeGreaterThan(0.9);
    // Each statistic on its own points the expected way: needles oriented, PG a central body.
    expect(rocAuc(of('cex', 'coherence'), of('pg', 'coherence'))).toBeGreaterThan(0.75);
    expect(rocAuc(of('pg', 'centreSurround'), of('cex', 'centreSurround'))).toBeGreaterThan(0.8);
  });
});

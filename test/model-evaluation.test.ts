import { describe, expect, it } from 'vitest';
import { classificationReport, confusionAt, formatReport, pgSummary, rocCurve, thresholdSweep } from '../src/model/evaluation.js';
import { fitOodStats, oodScore } from '../src/model/ood.js';
import { groupedStratifiedSplit } from '../src/model/dataset.js';
import { dihedralExactHash, dihedralPerceptualHashes, findDuplicateGroups, perceptualDistance } from '../src/model/duplicates.js';
import { SeededRandom } from '../src/model/rng.js';

describe('classification report (PG positive)', () => {
  // 10 crops: 4 PG, 6 CEX. Scores at threshold 0.5 give TP 3, FN 1, FP 1, TN 5.
  const labels = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
  const scores = [0.9, 0.8, 0.6, 0.3, 0.7, 0.2, 0.1, 0.4, 0.05, 0.45];

  it('matches a hand-computed confusion matrix and scikit-learn style averages', () => {
    const r = classificationReport(scores, labels, 0.5);
    expect(r.confusion).toEqual({ tp: 3, fp: 1, tn: 5, fn: 1 });
    expect(r.classes.pg.precision).toBeCloseTo(3 / 4, 12);
    expect(r.classes.pg.recall).toBeCloseTo(3 / 4, 12);
    expect(r.classes.pg.f1).toBeCloseTo(3 / 4, 12);
    expect(r.classes.pg.support).toBe(4);
    expect(r.classes.cex.precision).toBeCloseTo(5 / 6, 12);
    expect(r.classes.cex.recall).toBeCloseTo(5 / 6, 12);
    expect(r.classes.cex.support).toBe(6);
    expect(r.accuracy).toBeCloseTo(0.8, 12);
    expect(r.macroAvg.f1).toBeCloseTo((0.75 + 5 / 6) / 2, 12);
    expect(r.weightedAvg.f1).toBeCloseTo((0.75 * 4 + (5 / 6) * 6) / 10, 12);
    expect(r.notes).toEqual([]);
    expect(formatReport(r)).toContain('weighted avg');
  });

  it('counts a score equal to the threshold as PG', () => {
    expect(confusionAt([0.5, 0.4999], [1, 1], 0.5)).toEqual({ tp: 1, fp: 0, tn: 0, fn: 1 });
  });

  it('gives null plus a note, never NaN, when there are no PG crops and none predicted', () => {
    const s = pgSummary([0.1, 0.2, 0.3], [0, 0, 0]);
    expect(s.precision).toBeNull();
    expect(s.recall).toBeNull();
    expect(s.f1).toBeNull();
    expect(s.auc).toBeNull();
    expect(s.accuracy).toBe(1);
    expect(s.notes.join(' ')).toMatch(/no crop was predicted PG/);
    expect(s.notes.join(' ')).toMatch(/no PG crops/);
    expect(JSON.stringify(s)).not.toMatch(/NaN/);
  });

  it('gives F1 = 0 (not null) when PG exists but nothing was predicted PG', () => {
    const s = pgSummary([0.1, 0.2, 0.3, 0.4], [1, 1, 0, 0]);
    expect(s.confusion).toEqual({ tp: 0, fp: 0, tn: 2, fn: 2 });
    expect(s.precision).toBeNull();
    expect(s.recall).toBe(0);
    expect(s.f1).toBe(0);
    // The PG crops scored lowest: perfectly inverted ranking.
    expect(s.auc).toBe(0);
  });

  it('gives recall null and precision 0 when all crops are CEX but some were called PG', () => {
    const s = pgSummary([0.9, 0.2], [0, 0]);
    expect(s.precision).toBe(0);
    expect(s.recall).toBeNull();
    expect(s.f1).toBe(0);
  });

  it('handles an empty set', () => {
    const s = pgSummary([], []);
    expect(s.accuracy).toBeNull();
    expect(s.support).toBe(0);
    expect(JSON.stringify(s)).not.toMatch(/NaN/);
  });
});

describe('ROC and AUC', () => {
  it('equals the Mann–Whitney statistic with ties counted as half', () => {
    // Positives 0.8, 0.6, 0.4; negatives 0.6, 0.2. Pairs: (0.8>0.6)1 (0.8>0.2)1 (0.6=0.6)½ (0.6>0.2)1 (0.4<0.6)0 (0.4>0.2)1 → 4.5/6.
    const { auc, points } = rocCurve([0.8, 0.6, 0.4, 0.6, 0.2], [1, 1, 1, 0, 0]);
    expect(auc).toBeCloseTo(4.5 / 6, 12);
    expect(points[0]).toMatchObject({ fpr: 0, tpr: 0 });
    expect(points[points.length - 1]).toMatchObject({ fpr: 1, tpr: 1 });
  });

  it('is 1 for perfect separation and 0 for perfectly inverted scores', () => {
    expect(rocCurve([0.9, 0.8, 0.1], [1, 1, 0]).auc).toBe(1);
    expect(rocCurve([0.1, 0.2, 0.9], [1, 1, 0]).auc).toBe(0);
  });

  it('sweeps thresholds from 0 to 1 with recall falling', () => {
    const sweep = thresholdSweep([0.9, 0.6, 0.3, 0.2], [1, 1, 0, 1], 10);
    expect(sweep).toHaveLength(11);
    expect(sweep[0]).toMatchObject({ threshold: 0, recall: 1, precision: 0.75 });
    expect(sweep[10]!.recall).toBe(0);
    expect(sweep[10]!.precision).toBeNull();
  });
});

describe('leakage guard', () => {
  const random = new SeededRandom(5);
  const image = (w: number, h: number) => Uint8Array.from({ length: w * h * 3 }, () => random.int(256));
  const rotate90 = (rgb: Uint8Array, w: number, h: number) => {
    const out = new Uint8Array(rgb.length);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) out[(x * h + (h - 1 - y)) * 3 + c] = rgb[(y * w + x) * 3 + c]!;
    return out;
  };
  const flip = (rgb: Uint8Array, w: number, h: number) => {
    const out = new Uint8Array(rgb.length);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) out[(y * w + (w - 1 - x)) * 3 + c] = rgb[(y * w + x) * 3 + c]!;
    return out;
  };

  it('hashes an image, its rotations and its mirror images alike, and other images differently', () => {
    const a = image(7, 5);
    const h = dihedralExactHash(a, 7, 5);
    expect(dihedralExactHash(rotate90(a, 7, 5), 5, 7)).toBe(h);
    expect(dihedralExactHash(flip(a, 7, 5), 7, 5)).toBe(h);
    expect(dihedralExactHash(rotate90(flip(a, 7, 5), 7, 5), 5, 7)).toBe(h);
    expect(dihedralExactHash(image(7, 5), 7, 5)).not.toBe(h);
  });

  it('finds a rotated copy by perceptual hash (distance 0) and keeps random images apart', () => {
    const side = 64;
    const smooth = (seed: number) => {
      const r = new SeededRandom(seed);
      const cx = r.uniform(10, 54),
        cy = r.uniform(10, 54),
        rad = r.uniform(8, 20);
      return Uint8Array.from({ length: side * side }, (_, i) =>
        ((i % side) - cx) ** 2 + (Math.floor(i / side) - cy) ** 2 < rad * rad ? 220 : 30 + ((i * 7) % 13),
      );
    };
    const a = smooth(1);
    const rotated = new Uint8Array(a.length);
    for (let y = 0; y < side; y++) for (let x = 0; x < side; x++) rotated[x * side + (side - 1 - y)] = a[y * side + x]!;
    expect(perceptualDistance(dihedralPerceptualHashes(a, side), dihedralPerceptualHashes(rotated, side))).toBe(0);
    expect(perceptualDistance(dihedralPerceptualHashes(a, side), dihedralPerceptualHashes(smooth(2), side))).toBeGreaterThan(4);
  });

  it('keeps every duplicate group on one side of a stratified 70/25/5 split', () => {
    // 200 crops, 100 per class; PG crops 0..29 form 10 groups of 3 (rotated copies).
    const labels = Uint8Array.from({ length: 200 }, (_, i) => (i < 100 ? 1 : 0));
    const items = Array.from({ length: 200 }, (_, i) => ({
      exactHash: i < 30 ? `g${Math.floor(i / 3)}` : `u${i}`,
      perceptual: new Uint32Array(16).fill(i),
      label: labels[i]!,
    }));
    const dup = findDuplicateGroups(items, -1);
    expect(dup.groups).toBe(10);
    expect(dup.itemsInGroups).toBe(30);
    expect(dup.exactLinks).toBe(20);
    const split = groupedStratifiedSplit(labels, dup.groupOf, [70, 25, 5], 3);
    for (let g = 0; g < 10; g++) expect(new Set([split[3 * g], split[3 * g + 1], split[3 * g + 2]]).size).toBe(1);
    const count = (label: number, s: string) => split.filter((x, i) => labels[i] === label && x === s).length;
    expect(count(0, 'train')).toBe(70);
    expect(count(0, 'valid')).toBe(25);
    expect(count(0, 'test')).toBe(5);
    // Groups of 3 move PG counts by at most 2 from the target.
    expect(Math.abs(count(1, 'train') - 70)).toBeLessThanOrEqual(2);
    expect(Math.abs(count(1, 'test') - 5)).toBeLessThanOrEqual(2);
    expect(groupedStratifiedSplit(labels, dup.groupOf, [70, 25, 5], 3)).toEqual(split);
  });
});

describe('OOD score', () => {
  it('is ~0 at a class mean, grows with distance, and the threshold sits at the 99.5th percentile of training scores', () => {
    const r = new SeededRandom(2);
    const n = 1000;
    const d = 4;
    const values = new Float32Array(n * d);
    const labels = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % 2;
      for (let k = 0; k < d; k++) values[i * d + k] = (labels[i] ? 5 : -5) + r.normal();
    }
    const stats = fitOodStats(values, labels, d, ['cex', 'pg']);
    expect(oodScore(new Float32Array(stats.classes[1]!.mean), stats)).toBeCloseTo(0, 6);
    expect(stats.threshold).toBeGreaterThan(1.5);
    expect(stats.threshold).toBeLessThan(3);
    let above = 0;
    for (let i = 0; i < n; i++) if (oodScore(values.subarray(i * d, i * d + d), stats) > stats.threshold) above++;
    expect(above).toBeLessThanOrEqual(5);
    expect(oodScore(Float32Array.from([40, -40, 40, -40]), stats)).toBeGreaterThan(10 * stats.threshold);
    expect(() => oodScore(new Float32Array(3), stats)).toThrow(/3 values .* 4/);
  });
});

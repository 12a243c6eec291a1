/**
 * The pure decisions of `crystalwatch calibrate`: the confidence bound and the threshold it
 * picks, the held-out split, the crop/frame rule, the version bump, and the detector maths
 * (Brook–Evans run lengths for any score distribution, the fitted ℓ table, alarm counts).
 */
import { describe, it, expect } from 'vitest';
import { chooseThreshold, framesForTarget, upperBound } from '../src/model/calibrate-fit.js';
import { averageRunLength, countAlarms, defaultLlr, fitDetector, llrAt, logit, observedAtoms } from '../src/model/calibrate-detector.js';
import { imageKind, splitHeldOut, type ImageFile } from '../src/model/calibrate-inputs.js';
import { bumpVersion } from '../src/model/calibrate-card.js';
import { cusumAverageRunLength, DEFAULT_CUSUM_MODEL } from '../src/alert/detector.js';
import { Rng } from '../src/model/rng.js';

describe('confidence bound and threshold', () => {
  it('Clopper–Pearson upper bound: zero events is 1 − (1 − c)^(1/n); more events, higher bound', () => {
    expect(upperBound(0, 150, 0.9)).toBeCloseTo(1 - 0.1 ** (1 / 150), 6);
    expect(upperBound(0, 50, 0.95)).toBeCloseTo(1 - 0.05 ** (1 / 50), 6);
    expect(upperBound(3, 150, 0.9)).toBeGreaterThan(upperBound(2, 150, 0.9));
    // scipy.stats.beta.ppf(0.95, 6, 95) = 0.102253 (5 of 100, one-sided 95 %).
    expect(upperBound(5, 100, 0.95)).toBeCloseTo(0.102253, 5);
    expect(framesForTarget(0.005)).toBe(460);
    expect(framesForTarget(0.02)).toBe(114);
  });

  it('puts the threshold above the clean scores it may not pass, and says whether the target is shown', () => {
    const rng = new Rng(7);
    const clean = Array.from({ length: 1000 }, () => rng.uniform(0, 0.9));
    const c = chooseThreshold(clean, 0.02);
    expect(c.established).toBe(true);
    // 1000 frames at 90 % confidence: scipy beta.ppf(0.9, k + 1, 1000 − k) is 1.89 % for k = 13, 2.007 % for k = 14.
    expect(c.fitFalsePositives).toBe(13);
    expect(c.upperBound).toBeLessThanOrEqual(0.02);
    const sorted = [...clean].sort((a, b) => b - a);
    expect(c.threshold).toBeGreaterThan(sorted[13]!);
    expect(c.threshold).toBeLessThanOrEqual(sorted[12]!);

    const few = chooseThreshold(clean.slice(0, 40), 0.005);
    expect(few).toMatchObject({ established: false, fitFalsePositives: 0, framesForTarget: 460 });
    expect(few.threshold).toBeGreaterThan(Math.max(...clean.slice(0, 40)));
    expect(few.threshold).toBeLessThan(1);
  });

  it('refuses when clean frames sit at P(PG) = 1: no threshold separates them', () => {
    expect(() => chooseThreshold([...Array(39).fill(0.1), 1], 0.01)).toThrow(
      /1 of 40 clean fitting images score P\(PG\) ≥ 0.999999: no threshold keeps them below it/,
    );
  });
});

describe('inputs', () => {
  const file = (folder: string, i: number): ImageFile => ({
    path: `${folder}/f-${String(i).padStart(3, '0')}.png`,
    folder,
    role: 'clean',
    width: 640,
    height: 480,
    sha256: '',
  });

  it('holds out the latest share of each folder, never a fitting image', () => {
    const files = [...Array.from({ length: 40 }, (_, i) => file('/a', i)), ...Array.from({ length: 8 }, (_, i) => file('/b', i))];
    const { fit, heldOut } = splitHeldOut(files.reverse(), 0.25);
    expect(heldOut.map((f) => f.path).sort()).toEqual([...Array.from({ length: 10 }, (_, i) => `/a/f-0${30 + i}.png`), '/b/f-006.png', '/b/f-007.png']);
    expect(fit).toHaveLength(36);
    expect(fit.some((f) => heldOut.includes(f))).toBe(false);
  });

  it('crops, frames and images the classify stage cannot tile (tile 192)', () => {
    const tile = { tile: 192, stride: 112 };
    expect(imageKind(230, 180, tile)).toBe('crop');
    expect(imageKind(384, 384, tile)).toBe('crop');
    expect(imageKind(385, 385, tile)).toBe('frame');
    expect(imageKind(1280, 960, tile)).toBe('frame');
    expect(imageKind(1000, 150, tile)).toBe('untileable');
  });

  it('bumps the card version', () => {
    expect(bumpVersion('1.0.0')).toBe('1.1.0');
    expect(bumpVersion('2.7.3-rc1')).toBe('2.8.0');
    expect(bumpVersion('r5')).toBe('r5.1');
  });
});

describe('detector maths', () => {
  it("Brook–Evans on a discretised default model reproduces the alert stage's run lengths", () => {
    const h = Math.log(100_000);
    const { spikeRate: e0, missRate: e1, sharpness: k } = DEFAULT_CUSUM_MODEL;
    const grid = Array.from({ length: 20_000 }, (_, j) => (j + 0.5) / 20_000);
    const atoms = (density: (p: number) => number) => {
      const raw = grid.map((p) => ({ llr: defaultLlr(p), mass: density(p) }));
      const total = raw.reduce((s, a) => s + a.mass, 0);
      return raw.map((a) => ({ llr: a.llr, mass: a.mass / total }));
    };
    const arl0 = averageRunLength(
      h,
      atoms((p) => (1 - e0) * k * (1 - p) ** (k - 1) + e0),
    );
    const arl1 = averageRunLength(
      h,
      atoms((p) => (1 - e1) * k * p ** (k - 1) + e1),
    );
    expect(arl0 / cusumAverageRunLength(h, 'cex')).toBeCloseTo(1, 2);
    expect(arl1 / cusumAverageRunLength(h, 'pg')).toBeCloseTo(1, 2);
  });

  it('no frame with evidence for PG: no false alarm ever; constant evidence: one alarm every ⌈h/ℓ⌉ frames', () => {
    expect(
      averageRunLength(10, [
        { llr: -1, mass: 0.5 },
        { llr: 0, mass: 0.5 },
      ]),
    ).toBe(Infinity);
    expect(countAlarms(10, [3], 1000, 1)).toBe(250);
    expect(countAlarms(10, [-1], 1000, 1)).toBe(0);
  });

  it('fits f0 to clean scores: clean frames give evidence against PG, PG-like scores for it, and E0[e^ℓ] = 1', () => {
    const rng = new Rng(3);
    // A camera whose clean frames score P(PG) 0.05–0.8: the default model reads the upper part as PG.
    const clean = Array.from({ length: 300 }, () => 1 / (1 + Math.exp(-rng.normal(-1, 1.2))));
    const d = fitDetector(clean);
    expect(d.threshold).toBeCloseTo(Math.log(100_000), 6);
    expect(llrAt(d.llr, 0.7)).toBeLessThan(0);
    expect(defaultLlr(0.7)).toBeGreaterThan(0);
    expect(llrAt(d.llr, 0.995)).toBeGreaterThan(4);
    // e^ℓ integrates f1 against f0: 1 when f0 is the density ℓ was built from (its own grid, midpoint rule).
    let sum = 0;
    let mass = 0;
    for (let u = -13.99; u < 14; u += 0.02) {
      const p = 1 / (1 + Math.exp(-u));
      const f0 = Math.exp(-llrAt(d.llr, p)); // e^{-ℓ} = f0/f1, weighted by f1 below
      const f1 = ((1 - 0.05) * 20 * p ** 19 + 0.05) * p * (1 - p) * 0.02;
      sum += f1; // ∫ f1 = 1
      mass += f1 * f0; // ∫ f0 = 1
    }
    expect(sum).toBeCloseTo(1, 2);
    expect(mass).toBeCloseTo(1, 1);
    // The clean frames themselves: a long run length; the observed atoms agree in kind with the model.
    expect(
      averageRunLength(
        d.threshold,
        observedAtoms(clean, (p) => llrAt(d.llr, p)),
      ),
    ).toBeGreaterThan(1e5);
    expect(d.modelArl0Frames).toBeGreaterThan(1e5);
    expect(d.modelArl1Frames).toBeLessThan(5);
    expect(logit(1)).toBeCloseTo(Math.log(999_999), 6);
  });
});

/**
 * The onset detector's clean-score model, fitted on one camera's clean frames, and its
 * false-alarm rate computed from that camera's scores.
 *
 * The alert stage's CUSUM adds ℓ(x) = ln f1(x)/f0(x) per frame (src/alert/README.md). Its
 * default f0 — P(PG) ~ Beta(1, 20) on CEX frames plus 1 % uniform spikes — is an assumption
 * about the classifier; on a camera whose clean frames score P(PG) 0.3–0.85 it turns every
 * clean frame into evidence for PG. Calibration replaces f0 by this camera's clean-score
 * density in logit P(PG): a Gaussian kernel density over the fitting frames (Silverman's
 * bandwidth), with the top 10 % (at least 5 frames) also given an exponential tail beyond the
 * 90th percentile (scale: their mean excess, the exponential's maximum-likelihood fit) — a new
 * clean frame may score above every one seen, and a kernel density alone would call that
 * nearly impossible — mixed with the same uniform spike floor ε0 so no score is impossible.
 * f1 stays the detector's PG model (Beta(κ, 1) plus misses ε1): PG images, when given, are only
 * measured on, never fitted. ℓ is tabulated on a grid of logit P(PG) — the card's
 * `detector.llr` — for the alert stage to interpolate. Because f0 is the density ℓ is built
 * from, E0[e^ℓ] = 1 and Lorden's bound h = ln ARL0 still holds under the fitted model.
 *
 * False alarms: the in-control average run length by Brook & Evans (1972) for any discrete
 * distribution of ℓ — the fitted model on a fine grid, or the held-out clean frames' own ℓ
 * values — and, as a check, a count over 100,000 frames drawn from the held-out frames. The
 * model's figure is uncertain where it matters, in the tail of a few hundred scores: it is
 * also computed under 100 bootstrap refits of f0 (ℓ kept as fitted), and the claim uses their
 * 10th percentile (plant B, 150 fitting frames: 8.9·10⁴ frames, against 4.6·10⁵ for the point
 * fit; the point fit's ℓ gave 6.4·10⁴ and 8.1·10⁵ on 400 frames each of two other clean batches).
 */
import { cusumThresholdForArl, DEFAULT_CUSUM_MODEL, logLikelihoodRatio } from '../alert/detector.js';
import { llrAt, logit, type LlrTable } from '../alert/llr-table.js';
import { Rng } from './rng.js';

export { llrAt, logit, type LlrTable };

export interface CalibratedDetector {
  kind: 'cusum';
  /** h: alarm when S ≥ h. */
  threshold: number;
  targetArlFrames: number;
  llr: LlrTable;
  cleanScoreModel: {
    kind: 'kde-logit-exponential-tail';
    frames: number;
    bandwidthLogit: number;
    tailFrom: number;
    tailShare: number;
    tailScaleLogit: number;
    spikeRate: number;
  };
  pgScoreModel: { kind: 'beta'; sharpness: number; missRate: number };
  /** ARL0 under the fitted clean-score model (frames). */
  modelArl0Frames: number;
  /** 10th percentile of ARL0 over bootstrap refits of the clean-score model: the figure claimed. */
  modelArl0Lower90Frames: number;
  /** ARL1 under the PG model (frames from onset to alarm). */
  modelArl1Frames: number;
}

/** P(PG) as the classifier rounds it, 6 decimals: logits stay within ±13.9. */
const LOGIT_RANGE = 14;
const LOGIT_STEP = 0.125;

const sigmoid = (u: number): number => 1 / (1 + Math.exp(-u));

function silverman(u: number[]): number {
  const n = u.length;
  const mean = u.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(u.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, n - 1));
  const s = [...u].sort((a, b) => a - b);
  const iqr = s[Math.floor(0.75 * (n - 1))]! - s[Math.floor(0.25 * (n - 1))]!;
  const spread = Math.min(sd, iqr > 0 ? iqr / 1.34 : sd);
  return Math.max(0.05, 0.9 * (spread || 0.25) * n ** -0.2);
}

interface Densities {
  /** log f0 and log f1 per unit logit at u. */
  logF0(u: number): number;
  logF1(u: number): number;
  tail: { from: number; share: number; scale: number };
}

const TAIL_SHARE = 0.1;
const TAIL_MIN_FRAMES = 5;

function densities(cleanLogits: number[], spikeRate: number, sharpness: number, missRate: number): Densities & { bandwidth: number } {
  const n = cleanLogits.length;
  const bandwidth = silverman(cleanLogits);
  const sorted = [...cleanLogits].sort((a, b) => a - b);
  const m = Math.min(n - 1, Math.max(TAIL_MIN_FRAMES, Math.ceil(TAIL_SHARE * n)));
  const from = sorted[n - m - 1]!;
  const scale = Math.max(bandwidth, sorted.slice(n - m).reduce((sum, u) => sum + (u - from), 0) / m);
  const share = m / n;
  const norm = 1 / (n * bandwidth * Math.sqrt(2 * Math.PI));
  return {
    bandwidth,
    tail: { from, share, scale },
    logF0(u) {
      let k = 0;
      for (const c of cleanLogits) {
        const z = (u - c) / bandwidth;
        if (z * z < 80) k += Math.exp(-0.5 * z * z);
      }
      const t = u > from ? Math.exp(-(u - from) / scale) / scale : 0;
      const x = sigmoid(u);
      // Densities per unit logit: a density per unit P(PG) times dx/du = x(1 − x).
      return Math.log((1 - spikeRate) * ((1 - share) * k * norm + share * t) + spikeRate * x * (1 - x));
    },
    logF1(u) {
      const x = sigmoid(u);
      const f1x = (1 - missRate) * sharpness * Math.exp((sharpness - 1) * Math.log(x)) + missRate;
      return Math.log(f1x * x * (1 - x));
    },
  };
}

export interface FitDetectorOptions {
  targetArlFrames?: number;
  /** Seed of the bootstrap (the same scores give the same figures). */
  seed?: number;
  spikeRate?: number;
  missRate?: number;
  sharpness?: number;
}

/** Fit f0 to the clean fitting frames' P(PG) and tabulate ℓ. */
export function fitDetector(cleanPPG: readonly number[], o: FitDetectorOptions = {}): CalibratedDetector {
  if (cleanPPG.length < 2) throw new RangeError(`fitDetector: need at least 2 clean scores, got ${cleanPPG.length}`);
  const targetArlFrames = o.targetArlFrames ?? 100_000;
  const spikeRate = o.spikeRate ?? DEFAULT_CUSUM_MODEL.spikeRate;
  const missRate = o.missRate ?? DEFAULT_CUSUM_MODEL.missRate;
  const sharpness = o.sharpness ?? DEFAULT_CUSUM_MODEL.sharpness;
  const logits = cleanPPG.map(logit);
  const d = densities(logits, spikeRate, sharpness, missRate);
  const count = Math.round((2 * LOGIT_RANGE) / LOGIT_STEP) + 1;
  const values = Array.from({ length: count }, (_, i) => {
    const u = -LOGIT_RANGE + i * LOGIT_STEP;
    return Math.round((d.logF1(u) - d.logF0(u)) * 1e4) / 1e4;
  });
  const llr: LlrTable = { logitMin: -LOGIT_RANGE, logitStep: LOGIT_STEP, values };
  const h = cusumThresholdForArl(targetArlFrames);
  // The tail decides the false-alarm rate and rests on a few frames: refit f0 on resamples, keep ℓ.
  const rng = new Rng(o.seed ?? 0xb007);
  const boot: number[] = [];
  for (let b = 0; b < BOOTSTRAPS; b++) {
    const resample = logits.map(() => logits[rng.int(0, logits.length - 1)]!);
    boot.push(averageRunLength(h, modelAtoms(llr, densities(resample, spikeRate, sharpness, missRate).logF0, 0.05)));
  }
  boot.sort((a, b) => a - b);
  const r4 = (v: number) => Math.round(v * 1e4) / 1e4;
  return {
    kind: 'cusum',
    threshold: h,
    targetArlFrames,
    llr,
    cleanScoreModel: {
      kind: 'kde-logit-exponential-tail',
      frames: cleanPPG.length,
      bandwidthLogit: r4(d.bandwidth),
      tailFrom: r4(d.tail.from),
      tailShare: r4(d.tail.share),
      tailScaleLogit: r4(d.tail.scale),
      spikeRate,
    },
    pgScoreModel: { kind: 'beta', sharpness, missRate },
    modelArl0Frames: averageRunLength(h, modelAtoms(llr, d.logF0)),
    modelArl0Lower90Frames: boot[Math.floor(0.1 * boot.length)]!,
    modelArl1Frames: averageRunLength(h, modelAtoms(llr, d.logF1)),
  };
}

const BOOTSTRAPS = 100;

/** ℓ of a fitted density on a fine logit grid, each with its probability. */
function modelAtoms(llr: LlrTable, logDensity: (u: number) => number, step = 0.02): { llr: number; mass: number }[] {
  const atoms: { llr: number; mass: number }[] = [];
  let total = 0;
  for (let u = -LOGIT_RANGE + step / 2; u < LOGIT_RANGE; u += step) {
    const mass = Math.exp(logDensity(u)) * step;
    atoms.push({ llr: llrAt(llr, sigmoid(u)), mass });
    total += mass;
  }
  for (const a of atoms) a.mass /= total;
  return atoms;
}

/** Equal-weight atoms of observed scores under an ℓ function. */
export function observedAtoms(pPG: readonly number[], llrOf: (p: number) => number): { llr: number; mass: number }[] {
  return pPG.map((p) => ({ llr: llrOf(p), mass: 1 / pPG.length }));
}

/** The alert stage's default ℓ (its f0/f1 model, src/alert/detector.ts). */
export const defaultLlr = (p: number): number => logLikelihoodRatio(p, DEFAULT_CUSUM_MODEL);

/**
 * Mean frames from S = 0 to S ≥ h for the CUSUM S ← max(0, S + ℓ) with ℓ drawn from `atoms`
 * (Brook & Evans: an atom at 0 plus `bins` cells on (0, h), (I − Q)·L = 1). Infinity when no
 * atom can raise S (no frame gives evidence for PG).
 */
export function averageRunLength(h: number, atoms: readonly { llr: number; mass: number }[], bins = 200): number {
  if (!(h > 0)) throw new RangeError(`averageRunLength: h must be > 0, got ${h}`);
  if (!atoms.some((a) => a.llr > 0 && a.mass > 0)) return Infinity;
  const n = bins + 1;
  const w = h / bins;
  // [I − Q | 1], row-major, n rows of n + 1.
  const cols = n + 1;
  const a = new Float64Array(n * cols);
  const at = (r: number, c: number): number => a[r * cols + c]!;
  for (let i = 0; i < n; i++) {
    const s = i === 0 ? 0 : (i - 0.5) * w;
    a[i * cols + i] = at(i, i) + 1;
    a[i * cols + n] = 1;
    for (const atom of atoms) {
      const next = s + atom.llr;
      if (next >= h) continue;
      const to = next <= 0 ? 0 : Math.min(bins, Math.ceil(next / w));
      a[i * cols + to] = at(i, to) - atom.mass;
    }
  }
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < n; c++) {
    let pivot = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(at(r, c)) > Math.abs(at(pivot, c))) pivot = r;
    if (pivot !== c) {
      const row = a.slice(c * cols, (c + 1) * cols);
      a.copyWithin(c * cols, pivot * cols, (pivot + 1) * cols);
      a.set(row, pivot * cols);
    }
    if (Math.abs(at(c, c)) < 1e-300) return Infinity;
    for (let r = c + 1; r < n; r++) {
      const f = at(r, c) / at(c, c);
      if (f === 0) continue;
      for (let q = c; q <= n; q++) a[r * cols + q] = at(r, q) - f * at(c, q);
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r--) {
    let sum = at(r, n);
    for (let q = r + 1; q < n; q++) sum -= at(r, q) * x[q]!;
    x[r] = sum / at(r, r);
  }
  const arl = x[0]!;
  return arl > 0 && Number.isFinite(arl) ? arl : Infinity;
}

/**
 * Alarms of the CUSUM over `frames` frames drawn (with replacement, seeded) from observed ℓ
 * values; S restarts at 0 after each alarm, as the alert stage's detector does once the alert
 * resolves.
 */
export function countAlarms(h: number, llrs: readonly number[], frames: number, seed: number): number {
  if (llrs.length === 0) return 0;
  const rng = new Rng(seed);
  let s = 0;
  let alarms = 0;
  for (let i = 0; i < frames; i++) {
    s = Math.max(0, s + llrs[rng.int(0, llrs.length - 1)]!);
    if (s >= h) {
      alarms++;
      s = 0;
    }
  }
  return alarms;
}

/** Batch-days (24 h of one camera at `fps`) per false alarm for an ARL0 in frames. */
export const batchDaysPerFalseAlarm = (arl0Frames: number, fps: number): number => arl0Frames / (fps * 86_400);

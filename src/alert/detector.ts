/**
 * Sequential onset detectors on one camera-run's stream of P(PG). The maths (likelihood
 * model, CUSUM, threshold from the ARL, k-of-n) is in src/alert/README.md.
 *
 * Unusable frames (P(PG) = null) are skipped: they neither count for nor against PG, and
 * do not age the k-of-n window.
 */
import { llrAt, llrTableProblem, type LlrTable } from './llr-table.js';

export interface CusumConfig {
  kind: 'cusum';
  /** Mean number of CEX-only frames between false alarms to aim for (ARL0). Default 100,000. */
  targetArlFrames?: number;
  /** Decision threshold h on the CUSUM statistic; overrides targetArlFrames. */
  threshold?: number;
  /** ε0: fraction of CEX frames on which the classifier spikes to an arbitrary P(PG). Default 0.01. */
  spikeRate?: number;
  /** ε1: fraction of PG-bearing frames on which it misses (arbitrary P(PG)). Default 0.05. */
  missRate?: number;
  /** κ: how sharply confident the classifier is; P(PG) ~ Beta(1,κ) on CEX, Beta(κ,1) on PG. Default 20. */
  sharpness?: number;
  /**
   * ℓ fitted on this camera's own clean scores (`crystalwatch calibrate`, the card's
   * `detector.llr`): used in place of the ε0/ε1/κ model; give its `threshold` with it.
   */
  llr?: LlrTable;
}

export interface KOfNConfig {
  kind: 'k-of-n';
  /** Alarm when at least k of the last n usable frames are PG. Default 3 of 5. */
  k?: number;
  n?: number;
  /** A frame is PG when P(PG) ≥ this. Default 0.5. */
  threshold?: number;
}

export type DetectorConfig = CusumConfig | KOfNConfig;

export interface DetectorStep {
  /** False when the frame was unusable and skipped. */
  used: boolean;
  alarm: boolean;
  /** CUSUM: S_n (nats). k-of-n: PG frames in the window. */
  statistic: number;
  /** How many of the latest usable frames make up the evidence (the CUSUM excursion, or the k-of-n window from its oldest hit). */
  evidenceFrames: number;
}

/**
 * What a detector has accumulated, as plain JSON (kept in the alert stage's state snapshots so
 * a restart resumes the statistic instead of starting from nothing).
 */
export type DetectorState = { kind: 'cusum'; s: number; excursion: number } | { kind: 'k-of-n'; ring: string; next: number; filled: number };

interface Model {
  spikeRate: number;
  missRate: number;
  sharpness: number;
}

/**
 * Per-frame log-likelihood ratio ln f1(p)/f0(p) of the two-component model
 *   f0(p) = (1−ε0)·κ(1−p)^(κ−1) + ε0      (CEX only: mostly near 0, spikes anywhere)
 *   f1(p) = (1−ε1)·κ p^(κ−1)     + ε1      (PG present: mostly near 1, misses anywhere)
 * Bounded above by ln(((1−ε1)κ+ε1)/ε0) and below by ln(ε1/((1−ε0)κ+ε0)), so one wild frame
 * can move the statistic only so far.
 */
export function logLikelihoodRatio(pPG: number, model: Model): number {
  const p = Math.min(1, Math.max(0, pPG));
  const { spikeRate: e0, missRate: e1, sharpness: k } = model;
  const f0 = (1 - e0) * k * Math.pow(1 - p, k - 1) + e0;
  const f1 = (1 - e1) * k * Math.pow(p, k - 1) + e1;
  return Math.log(f1 / f0);
}

/**
 * CUSUM threshold for a target in-control average run length: Lorden's bound
 * ARL0 ≥ e^h (valid when the increments are the true log-likelihood ratio), so h = ln ARL0.
 */
export function cusumThresholdForArl(targetArlFrames: number): number {
  if (!(targetArlFrames > 1)) throw new RangeError(`detector: targetArlFrames must be > 1 (mean CEX frames between false alarms), got ${targetArlFrames}`);
  return Math.log(targetArlFrames);
}

function check(name: string, value: number, ok: boolean, what: string): number {
  if (!ok) throw new RangeError(`detector: ${name} must be ${what}, got ${value}`);
  return value;
}

export class OnsetDetector {
  readonly kind: 'cusum' | 'k-of-n';
  /** CUSUM: h. k-of-n: k. */
  readonly threshold: number;
  /** A short human description, carried in alert evidence ("cusum h=11.51 ..."). */
  readonly description: string;
  private readonly model: Model | undefined;
  private readonly table: LlrTable | undefined;
  private readonly n: number;
  private readonly pgAt: number;
  // CUSUM state
  private s = 0;
  private excursion = 0;
  // k-of-n state: the last n decisions in a ring
  private ring: Uint8Array;
  private next = 0;
  private filled = 0;
  private hits = 0;

  constructor(config: DetectorConfig = { kind: 'cusum' }) {
    this.kind = config.kind;
    if (config.kind === 'cusum') {
      this.model = {
        spikeRate: check('spikeRate', config.spikeRate ?? 0.01, (config.spikeRate ?? 0.01) > 0 && (config.spikeRate ?? 0.01) < 1, 'in (0, 1)'),
        missRate: check('missRate', config.missRate ?? 0.05, (config.missRate ?? 0.05) > 0 && (config.missRate ?? 0.05) < 1, 'in (0, 1)'),
        sharpness: check('sharpness', config.sharpness ?? 20, (config.sharpness ?? 20) > 1, '> 1'),
      };
      this.threshold =
        config.threshold !== undefined
          ? check('threshold', config.threshold, config.threshold > 0, 'a positive number of nats')
          : cusumThresholdForArl(config.targetArlFrames ?? 100_000);
      this.n = 0;
      this.pgAt = 0.5;
      this.ring = new Uint8Array(0);
      if (config.llr) {
        const problem = llrTableProblem(config.llr);
        if (problem) throw new RangeError(`detector: llr ${problem}`);
        if (config.threshold === undefined) throw new RangeError("detector: a calibrated llr table needs its threshold (the card's detector.threshold)");
        this.table = config.llr;
      }
      this.description = this.table
        ? `cusum h=${this.threshold.toFixed(2)} llr=calibrated (${this.table.values.length} points)`
        : `cusum h=${this.threshold.toFixed(2)} eps0=${this.model.spikeRate} eps1=${this.model.missRate} kappa=${this.model.sharpness}`;
    } else {
      const k = config.k ?? 3;
      const n = config.n ?? 5;
      check('n', n, Number.isInteger(n) && n >= 1, 'a positive integer');
      check('k', k, Number.isInteger(k) && k >= 1 && k <= n, `an integer from 1 to n=${n}`);
      this.pgAt = check('threshold', config.threshold ?? 0.5, (config.threshold ?? 0.5) > 0 && (config.threshold ?? 0.5) <= 1, 'in (0, 1]');
      this.threshold = k;
      this.n = n;
      this.ring = new Uint8Array(n);
      this.description = `k-of-n k=${k} n=${n} p>=${this.pgAt}`;
    }
  }

  get statistic(): number {
    return this.kind === 'cusum' ? this.s : this.hits;
  }

  update(pPG: number | null): DetectorStep {
    if (pPG === null || !Number.isFinite(pPG)) return { used: false, alarm: false, statistic: this.statistic, evidenceFrames: 0 };
    if (this.model) {
      // S_n = max(0, S_{n-1} + llr_n): the excursion restarts whenever S touches 0.
      const next = this.s + (this.table ? llrAt(this.table, pPG) : logLikelihoodRatio(pPG, this.model!));
      if (next > 0) {
        this.s = next;
        this.excursion += 1;
      } else {
        this.s = 0;
        this.excursion = 0;
      }
      return { used: true, alarm: this.s >= this.threshold, statistic: this.s, evidenceFrames: this.excursion };
    }
    const hit = pPG >= this.pgAt ? 1 : 0;
    if (this.filled === this.n) this.hits -= this.ring[this.next]!;
    else this.filled += 1;
    this.ring[this.next] = hit;
    this.hits += hit;
    this.next = (this.next + 1) % this.n;
    return { used: true, alarm: this.hits >= this.threshold, statistic: this.hits, evidenceFrames: this.hits > 0 ? this.sinceOldestHit() : 0 };
  }

  /** True when the detector holds no evidence: its future is that of a fresh detector. */
  get atRest(): boolean {
    return this.kind === 'cusum' ? this.s === 0 : this.hits === 0;
  }

  /** Usable frames that make up the current evidence (the CUSUM excursion, or the k-of-n window from its oldest hit). */
  get evidenceFrames(): number {
    return this.kind === 'cusum' ? this.excursion : this.hits > 0 ? this.sinceOldestHit() : 0;
  }

  snapshot(): DetectorState {
    if (this.kind === 'cusum') return { kind: 'cusum', s: this.s, excursion: this.excursion };
    return { kind: 'k-of-n', ring: Array.from(this.ring).join(''), next: this.next, filled: this.filled };
  }

  /**
   * Resumes from a snapshot. Returns false (and stays as it is) when the snapshot does not fit
   * this detector: another kind, or a k-of-n window of another size (the configuration changed).
   */
  restore(state: DetectorState): boolean {
    if (state.kind !== this.kind) return false;
    if (state.kind === 'cusum') {
      if (!(Number.isFinite(state.s) && state.s >= 0 && Number.isInteger(state.excursion) && state.excursion >= 0)) return false;
      this.s = state.s;
      this.excursion = state.excursion;
      return true;
    }
    const ok =
      state.ring.length === this.n &&
      /^[01]*$/.test(state.ring) &&
      Number.isInteger(state.next) &&
      state.next >= 0 &&
      state.next < this.n &&
      Number.isInteger(state.filled) &&
      state.filled >= 0 &&
      state.filled <= this.n;
    if (!ok) return false;
    for (let i = 0; i < this.n; i += 1) this.ring[i] = state.ring.charCodeAt(i) === 49 ? 1 : 0;
    this.next = state.next;
    this.filled = state.filled;
    this.hits = this.ring.reduce((sum, bit) => sum + bit, 0);
    return true;
  }

  reset(): void {
    this.s = 0;
    this.excursion = 0;
    this.ring.fill(0);
    this.next = 0;
    this.filled = 0;
    this.hits = 0;
  }

  /** Frames from the oldest PG decision in the window to the newest frame, inclusive. */
  private sinceOldestHit(): number {
    for (let age = this.filled - 1; age >= 0; age -= 1) {
      const index = (this.next - 1 - age + this.n * 2) % this.n;
      if (this.ring[index]) return age + 1;
    }
    return 0;
  }
}

/** The default likelihood model of the CUSUM detector (see README.md). */
export const DEFAULT_CUSUM_MODEL: Readonly<Model> = { spikeRate: 0.01, missRate: 0.05, sharpness: 20 };

/**
 * Average run length of the CUSUM with threshold h when P(PG) follows the model's f0 (`'cex'`:
 * frames to a false alarm, ARL0) or f1 (`'pg'`: frames from onset to alarm, ARL1), starting from
 * S = 0. Brook & Evans (1972): S is discretised into an atom at 0 plus `bins` cells on (0, h), the
 * transition probabilities come from integrating f over the P(PG) values that move S from one
 * cell to another (ℓ is increasing in P(PG)), and the run lengths L solve (I − Q) L = 1.
 */
export function cusumAverageRunLength(h: number, hypothesis: 'cex' | 'pg', model: Model = DEFAULT_CUSUM_MODEL, bins = 200): number {
  if (!(h > 0)) throw new RangeError(`cusumAverageRunLength: h must be > 0, got ${h}`);
  const { spikeRate: e0, missRate: e1, sharpness: k } = model;
  const density = hypothesis === 'cex' ? (p: number) => (1 - e0) * k * Math.pow(1 - p, k - 1) + e0 : (p: number) => (1 - e1) * k * Math.pow(p, k - 1) + e1;
  // Midpoint rule on P(PG); the densities are smooth, so 20,000 points are plenty.
  const points = 20_000;
  const llr = new Float64Array(points);
  const mass = new Float64Array(points);
  let total = 0;
  for (let j = 0; j < points; j += 1) {
    const p = (j + 0.5) / points;
    llr[j] = logLikelihoodRatio(p, model);
    mass[j] = density(p) / points;
    total += mass[j]!;
  }
  for (let j = 0; j < points; j += 1) mass[j] = mass[j]! / total;
  const n = bins + 1; // state 0: S = 0; state i ≥ 1: S in ((i−1)w, iw], represented by its midpoint
  const w = h / bins;
  const a = Array.from({ length: n }, () => new Float64Array(n + 1)); // [I − Q | 1]
  for (let i = 0; i < n; i += 1) {
    const s = i === 0 ? 0 : (i - 0.5) * w;
    const row = a[i]!;
    row[i] = row[i]! + 1;
    row[n] = 1;
    for (let j = 0; j < points; j += 1) {
      const next = s + llr[j]!;
      if (next >= h) continue; // alarm: absorbed
      const to = next <= 0 ? 0 : Math.min(bins, Math.ceil(next / w));
      row[to] = row[to]! - mass[j]!;
    }
  }
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < n; c += 1) {
    let pivot = c;
    for (let r = c + 1; r < n; r += 1) if (Math.abs(a[r]![c]!) > Math.abs(a[pivot]![c]!)) pivot = r;
    [a[c], a[pivot]] = [a[pivot]!, a[c]!];
    for (let r = c + 1; r < n; r += 1) {
      const f = a[r]![c]! / a[c]![c]!;
      if (f === 0) continue;
      for (let q = c; q <= n; q += 1) a[r]![q]! -= f * a[c]![q]!;
    }
  }
  const x = new Float64Array(n);
  for (let r = n - 1; r >= 0; r -= 1) {
    let sum = a[r]![n]!;
    for (let q = r + 1; q < n; q += 1) sum -= a[r]![q]! * x[q]!;
    x[r] = sum / a[r]![r]!;
  }
  return x[0]!;
}

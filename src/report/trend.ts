/**
 * A P(PG) trend of any length in at most `maxPoints` points. Frames go into buckets of `width`
 * consecutive frames; when the buckets would exceed `maxPoints`, neighbours merge pairwise and
 * the width doubles. A bucket keeps its maximum (and when it happened), so a single PG spike
 * in 100,000 frames stays on the chart, and its mean, so the chart can show the baseline too.
 */

export interface TrendPoint {
  /** Capture time of the bucket's highest P(PG), ms since the epoch. */
  at: number;
  max: number;
  mean: number;
  /** Frames in the bucket. */
  frames: number;
}

interface Bucket {
  at: number;
  max: number;
  sum: number;
  n: number;
}

export class TrendDownsampler {
  private buckets: Bucket[] = [];
  /** Frames per full bucket. */
  private width = 1;

  constructor(readonly maxPoints = 2000) {
    if (!Number.isInteger(maxPoints) || maxPoints < 2) throw new RangeError(`TrendDownsampler: maxPoints must be an integer ≥ 2, got ${maxPoints}`);
  }

  add(at: number, pPG: number): void {
    const last = this.buckets[this.buckets.length - 1];
    if (last && last.n < this.width) {
      if (pPG > last.max) {
        last.max = pPG;
        last.at = at;
      }
      last.sum += pPG;
      last.n += 1;
      return;
    }
    if (this.buckets.length === this.maxPoints) this.halve();
    const tail = this.buckets[this.buckets.length - 1];
    if (tail && tail.n < this.width) {
      this.add(at, pPG);
      return;
    }
    this.buckets.push({ at, max: pPG, sum: pPG, n: 1 });
  }

  /** Frames per point now (1 until the trend is longer than `maxPoints`). */
  get framesPerPoint(): number {
    return this.width;
  }

  points(): TrendPoint[] {
    return this.buckets.map((b) => ({ at: b.at, max: b.max, mean: b.sum / b.n, frames: b.n }));
  }

  private halve(): void {
    const merged: Bucket[] = [];
    for (let i = 0; i < this.buckets.length; i += 2) {
      const a = this.buckets[i]!;
      const b = this.buckets[i + 1];
      if (!b) {
        merged.push(a);
        continue;
      }
      const top = b.max > a.max ? b : a;
      merged.push({ at: top.at, max: top.max, sum: a.sum + b.sum, n: a.n + b.n });
    }
    this.buckets = merged;
    this.width *= 2;
  }
}

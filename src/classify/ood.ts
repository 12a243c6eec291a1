/**
 * Out-of-distribution score of an embedding against the training embeddings' statistics in
 * the card (`ood`). src/model/ood.ts did not exist when this stage was written, so the
 * score is computed here: the diagonal Mahalanobis distance, normalised by the dimension,
 *   score = sqrt( (1/d) Σ_i (x_i - mean_i)² / var_i )
 * so a typical training embedding scores about 1 whatever d is, and `ood.threshold` reads
 * as "this many standard deviations away on average".
 * Accepted statistics: `{ mean: number[], var: number[] }` or `{ mean, std }`.
 */
import type { OodStats } from '../model/card.js';

export interface DiagonalStats {
  mean: Float64Array;
  invVar: Float64Array;
  threshold: number;
}

/** Read the card's `ood` block; undefined (with a reason) when it is not usable here. */
export function diagonalStats(ood: OodStats | undefined): { stats?: DiagonalStats; problem?: string } {
  if (!ood) return {};
  const mean = ood.mean;
  const variance = Array.isArray(ood.var) ? (ood.var as number[]) : Array.isArray(ood.std) ? (ood.std as number[]).map((s) => s * s) : undefined;
  if (!Array.isArray(mean) || !variance) return { problem: 'card ood needs "mean" and "var" (or "std") arrays; OOD scoring is off' };
  if (mean.length !== variance.length) return { problem: `card ood.mean has ${mean.length} values but ood.var has ${variance.length}; OOD scoring is off` };
  return {
    stats: {
      mean: Float64Array.from(mean as number[]),
      // A zero variance (a dead unit) would make every frame infinitely far: floor it.
      invVar: Float64Array.from(variance, (v) => 1 / Math.max(v, 1e-12)),
      threshold: ood.threshold,
    },
  };
}

export function oodScore(embedding: Float32Array, offset: number, stats: DiagonalStats): number {
  const d = stats.mean.length;
  let sum = 0;
  for (let i = 0; i < d; i++) {
    const diff = embedding[offset + i] - stats.mean[i];
    sum += diff * diff * stats.invVar[i];
  }
  return Math.sqrt(sum / d);
}

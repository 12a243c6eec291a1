/**
 * Out-of-distribution scoring of embeddings against the card's `ood` statistics.
 *
 * - Cards written by `crystalwatch train` carry `src/model/ood.ts`'s per-class statistics
 *   (`{ method: 'mahalanobis-diag-nearest-class', classes: [{ mean, var }], dimensions, threshold }`);
 *   the score is that module's `oodScore` (distance to the nearest class).
 * - Cards written by hand may give one `{ mean, var }` (or `{ mean, std }`) block; the score is
 *   the same RMS of per-dimension z-scores against that single distribution.
 * Both read as "this many standard deviations away on average"; above `threshold` = unusable.
 */
import type { OodStats as CardOod } from '../model/card.js';
import { oodScore as modelOodScore, type OodClassStats } from '../model/ood.js';

export interface OodScorer {
  threshold: number;
  dimensions: number;
  score(embedding: Float32Array): number;
}

function numbers(v: unknown): number[] | undefined {
  return Array.isArray(v) && v.every((x) => typeof x === 'number') ? (v as number[]) : undefined;
}

/** Build a scorer from the card's `ood` block; `problem` says why not when it cannot. */
export function oodScorer(ood: CardOod | undefined): { scorer?: OodScorer; problem?: string } {
  if (!ood) return {};
  if (Array.isArray(ood.classes)) {
    const classes = ood.classes as OodClassStats[];
    const dimensions = typeof ood.dimensions === 'number' ? ood.dimensions : numbers(classes[0]?.mean)?.length;
    if (!dimensions || classes.some((c) => numbers(c.mean)?.length !== dimensions || numbers(c.var)?.length !== dimensions)) {
      return { problem: `card ood.classes must each have mean and var arrays of ood.dimensions (${dimensions}) numbers; OOD scoring is off` };
    }
    return { scorer: { threshold: ood.threshold, dimensions, score: (e) => modelOodScore(e, { classes, dimensions }) } };
  }
  const mean = numbers(ood.mean);
  const variance = numbers(ood.var) ?? numbers(ood.std)?.map((s) => s * s);
  if (!mean || !variance) return { problem: 'card ood needs "classes" (from crystalwatch train) or "mean" and "var" (or "std") arrays; OOD scoring is off' };
  if (mean.length !== variance.length) return { problem: `card ood.mean has ${mean.length} values but ood.var has ${variance.length}; OOD scoring is off` };
  // A zero variance (a dead unit) would put every frame infinitely far: floor it.
  const classes = [{ name: 'train', mean, var: variance.map((v) => Math.max(v, 1e-12)) }];
  return { scorer: { threshold: ood.threshold, dimensions: mean.length, score: (e) => modelOodScore(e, { classes, dimensions: mean.length }) } };
}

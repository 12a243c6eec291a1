/**
 * The out-of-distribution gate of the classify stage: the card's `ood` statistics, read by
 * `src/model/ood-card.ts` (the card refuses to load when they cannot be), scored by
 * `src/model/ood.ts`'s `oodScore` — one scorer for training, evaluation and classification.
 * A score reads as "this many standard deviations from the nearest class, on average";
 * above `threshold` = `unusable` / `out-of-distribution`.
 */
import type { OodStats as CardOod } from '../model/card.js';
import { readOodStats } from '../model/ood-card.js';
import { oodScore, type OodStats } from '../model/ood.js';

export interface OodScorer {
  threshold: number;
  dimensions: number;
  stats: OodStats;
  score(embedding: Float32Array): number;
}

/** The scorer of a card's `ood` block; throws naming the field when the block cannot be scored. */
export function oodScorer(ood: CardOod, where = 'card.json'): OodScorer {
  const read = readOodStats(ood);
  if (!read.stats) throw new Error(`model card ${where}: ${read.problems.join('; ')}`);
  const stats = read.stats;
  return { threshold: stats.threshold, dimensions: stats.dimensions, stats, score: (e) => oodScore(e, stats) };
}

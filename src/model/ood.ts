/**
 * Out-of-distribution score from the model's embedding (the 64 global-average-pooled features
 * before the classifier). Training embeddings of each class are summarised by a mean and a
 * diagonal variance; an input's score is its distance to the nearest class in units of that
 * class's spread (root-mean-square of per-dimension z-scores, so it does not grow with the
 * embedding size). The card stores `threshold` = a high percentile of the training crops' own
 * scores: a crop scoring above it looks like nothing the model was trained on (a photo that is
 * not a probe image, a blank or saturated frame), and the classify stage reports it as `unusable`
 * instead of trusting P(PG).
 */

export interface OodClassStats {
  name: string;
  mean: number[];
  var: number[];
}

export interface OodStats {
  method: 'mahalanobis-diag-nearest-class';
  /** Scores above this are out of distribution. */
  threshold: number;
  /** Percentile of the training scores the threshold sits at. */
  percentile: number;
  dimensions: number;
  classes: OodClassStats[];
}

/** Variance floor, relative to the mean variance, so a dead feature does not divide by ~0. */
const VARIANCE_FLOOR = 1e-3;

/** Distance to the nearest class, in per-dimension standard deviations (RMS). ≥ 0. */
export function oodScore(embedding: Float32Array | number[], stats: Pick<OodStats, 'classes' | 'dimensions'>): number {
  if (embedding.length !== stats.dimensions) {
    throw new Error(`oodScore: embedding has ${embedding.length} values but the card's OOD statistics have ${stats.dimensions}; use the card that came with this model`);
  }
  let best = Infinity;
  for (const c of stats.classes) {
    let sum = 0;
    for (let i = 0; i < embedding.length; i++) {
      const d = embedding[i] - c.mean[i];
      sum += (d * d) / c.var[i];
    }
    best = Math.min(best, Math.sqrt(sum / embedding.length));
  }
  return best;
}

/** Fit per-class statistics to embeddings (rows of `dimensions` values) and set the threshold. */
export function fitOodStats(embeddings: Float32Array, labels: ArrayLike<number>, dimensions: number, classNames: readonly string[], percentile = 99.5): OodStats {
  const n = labels.length;
  const classes: OodClassStats[] = classNames.map((name, label) => {
    const mean = new Float64Array(dimensions);
    const sq = new Float64Array(dimensions);
    let count = 0;
    for (let r = 0; r < n; r++) {
      if (labels[r] !== label) continue;
      count++;
      for (let i = 0; i < dimensions; i++) mean[i] += embeddings[r * dimensions + i];
    }
    if (count === 0) throw new Error(`fitOodStats: no training embeddings of class ${name}`);
    for (let i = 0; i < dimensions; i++) mean[i] /= count;
    for (let r = 0; r < n; r++) {
      if (labels[r] !== label) continue;
      for (let i = 0; i < dimensions; i++) sq[i] += (embeddings[r * dimensions + i] - mean[i]) ** 2;
    }
    const variance = Array.from(sq, (s) => s / count);
    const avg = variance.reduce((a, b) => a + b, 0) / dimensions || 1;
    return { name, mean: Array.from(mean), var: variance.map((v) => Math.max(v, VARIANCE_FLOOR * avg)) };
  });
  const partial = { classes, dimensions };
  const scores = Array.from({ length: n }, (_, r) => oodScore(embeddings.subarray(r * dimensions, (r + 1) * dimensions), partial)).sort((a, b) => a - b);
  const at = Math.min(n - 1, Math.max(0, Math.ceil((percentile / 100) * n) - 1));
  return { method: 'mahalanobis-diag-nearest-class', threshold: scores[at], percentile, dimensions, classes };
}

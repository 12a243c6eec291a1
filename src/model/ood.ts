/**
 * Out-of-distribution score from the model's embedding (the global-average-pooled features
 * before the classifier). Training embeddings of each class are summarised by a mean and a
 * covariance (shrunk 1 % towards its average variance so it stays invertible, stored as its
 * Cholesky factor); an input's score is its Mahalanobis distance to the nearest class, divided
 * by √dimensions so it does not grow with the embedding size. The card stores `threshold` = a
 * high percentile of the training crops' own scores: a crop scoring above it looks like nothing
 * the model was trained on (sensor noise, a blank or saturated frame, a photo that is not a probe
 * image), and the classify stage reports it as `unusable` instead of trusting P(PG).
 *
 * Why full covariance: the features are strongly correlated; with a diagonal model pure noise
 * (which the classifier calls PG with p ≈ 1) scored inside the training range, with the full
 * covariance it scores ~1.6× the threshold.
 */

export interface OodClassStats {
  name: string;
  mean: number[];
  /** Diagonal method: per-dimension variance. */
  var?: number[];
  /** Full method: lower-triangular Cholesky factor of the covariance, row by row (d(d+1)/2 values). */
  cholesky?: number[];
}

export type OodMethod = 'mahalanobis-full-nearest-class' | 'mahalanobis-diag-nearest-class';
export const OOD_METHODS: readonly OodMethod[] = ['mahalanobis-full-nearest-class', 'mahalanobis-diag-nearest-class'];

export interface OodStats {
  method: OodMethod;
  /** Scores above this are out of distribution. */
  threshold: number;
  /** Percentile of the training scores the threshold sits at (absent on hand-written cards). */
  percentile?: number;
  dimensions: number;
  classes: OodClassStats[];
}

const rowStart = (i: number) => (i * (i + 1)) / 2;

/** Numbers in a lower-triangular Cholesky factor of a d×d covariance, row by row. */
export const choleskyLength = (d: number): number => rowStart(d);

function classDistance(embedding: ArrayLike<number>, c: OodClassStats, d: number, scratch: Float64Array): number {
  let sum = 0;
  if (c.cholesky) {
    // Solve L·y = (e − μ) by forward substitution; the squared distance is |y|².
    const L = c.cholesky;
    for (let i = 0; i < d; i++) {
      let s = embedding[i]! - c.mean[i]!;
      const r = rowStart(i);
      for (let k = 0; k < i; k++) s -= L[r + k]! * scratch[k]!;
      scratch[i] = s / L[r + i]!;
      sum += scratch[i]! * scratch[i]!;
    }
  } else {
    for (let i = 0; i < d; i++) {
      const v = embedding[i]! - c.mean[i]!;
      sum += (v * v) / c.var![i]!;
    }
  }
  return Math.sqrt(sum / d);
}

/** Distance to the nearest class, in units of that class's spread. ≥ 0. */
export function oodScore(embedding: Float32Array | number[], stats: Pick<OodStats, 'classes' | 'dimensions'>): number {
  if (embedding.length !== stats.dimensions) {
    throw new Error(
      `oodScore: embedding has ${embedding.length} values but the card's OOD statistics have ${stats.dimensions}; use the card that came with this model`,
    );
  }
  const scratch = new Float64Array(stats.dimensions);
  let best = Infinity;
  for (const c of stats.classes) best = Math.min(best, classDistance(embedding, c, stats.dimensions, scratch));
  return best;
}

/** Fit per-class statistics to embeddings (rows of `dimensions` values) and set the threshold. */
export function fitOodStats(
  embeddings: Float32Array,
  labels: ArrayLike<number>,
  dimensions: number,
  classNames: readonly string[],
  percentile = 99.5,
  shrinkage = 0.01,
): OodStats {
  const n = labels.length;
  const d = dimensions;
  const classes: OodClassStats[] = classNames.map((name, label) => {
    const rows: number[] = [];
    for (let r = 0; r < n; r++) if (labels[r] === label) rows.push(r);
    if (rows.length === 0) throw new Error(`fitOodStats: no training embeddings of class ${name}`);
    const mean = new Float64Array(d);
    for (const r of rows) for (let i = 0; i < d; i++) mean[i]! += embeddings[r * d + i]! / rows.length;
    const cov = new Float64Array(d * d);
    for (const r of rows) {
      for (let i = 0; i < d; i++) {
        const a = embeddings[r * d + i]! - mean[i]!;
        for (let j = 0; j <= i; j++) cov[i * d + j]! += (a * (embeddings[r * d + j]! - mean[j]!)) / rows.length;
      }
    }
    let trace = 0;
    for (let i = 0; i < d; i++) trace += cov[i * d + i]!;
    const floor = trace / d || 1e-6;
    for (let i = 0; i < d; i++) for (let j = 0; j <= i; j++) cov[i * d + j] = (1 - shrinkage) * cov[i * d + j]! + (i === j ? shrinkage * floor : 0);
    const L = new Array<number>(rowStart(d)).fill(0);
    for (let i = 0; i < d; i++) {
      for (let j = 0; j <= i; j++) {
        let s = cov[i * d + j]!;
        for (let k = 0; k < j; k++) s -= L[rowStart(i) + k]! * L[rowStart(j) + k]!;
        L[rowStart(i) + j] = i === j ? Math.sqrt(Math.max(s, 1e-9 * floor)) : s / L[rowStart(j) + j]!;
      }
    }
    return { name, mean: Array.from(mean), cholesky: L };
  });
  const partial = { classes, dimensions: d };
  const scores = Array.from({ length: n }, (_, r) => oodScore(embeddings.subarray(r * d, (r + 1) * d), partial)).sort((a, b) => a - b);
  const at = Math.min(n - 1, Math.max(0, Math.ceil((percentile / 100) * n) - 1));
  return { method: 'mahalanobis-full-nearest-class', threshold: scores[at]!, percentile, dimensions: d, classes };
}

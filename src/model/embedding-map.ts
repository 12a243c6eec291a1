/**
 * A 2-D picture of the embedding space: PCA (power iteration with deflation on the covariance)
 * for the axes, k-means (k-means++ seeding, fixed seed) for clusters. Two clean clusters that
 * match the two classes mean the features separate CEX from PG by themselves, not just at the
 * final threshold.
 */
import { SeededRandom } from './rng.js';

/** The two leading principal axes of n rows of d values: coordinates, explained shares, and the mean and axes (to project other vectors). */
export function pca2(
  data: Float32Array,
  n: number,
  d: number,
): { coords: Float32Array; explained: [number, number]; mean: Float64Array; components: [Float64Array, Float64Array] } {
  const mean = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let i = 0; i < d; i++) mean[i]! += data[r * d + i]! / n;
  const cov = new Float64Array(d * d);
  for (let r = 0; r < n; r++) {
    for (let i = 0; i < d; i++) {
      const a = data[r * d + i]! - mean[i]!;
      for (let j = i; j < d; j++) cov[i * d + j]! += (a * (data[r * d + j]! - mean[j]!)) / Math.max(1, n - 1);
    }
  }
  for (let i = 0; i < d; i++) for (let j = 0; j < i; j++) cov[i * d + j] = cov[j * d + i]!;
  let trace = 0;
  for (let i = 0; i < d; i++) trace += cov[i * d + i]!;
  const components: Float64Array[] = [];
  const eigen: number[] = [];
  const rng = new SeededRandom(17);
  for (let c = 0; c < 2; c++) {
    let v = Float64Array.from({ length: d }, () => rng.normal());
    let lambda = 0;
    for (let it = 0; it < 200; it++) {
      const w = new Float64Array(d);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) w[i]! += cov[i * d + j]! * v[j]!;
      const norm = Math.hypot(...w) || 1;
      lambda = norm;
      v = w.map((x) => x / norm);
    }
    components.push(v);
    eigen.push(lambda);
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) cov[i * d + j]! -= lambda * v[i]! * v[j]!;
  }
  const coords = new Float32Array(n * 2);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < 2; c++) {
      let s = 0;
      for (let i = 0; i < d; i++) s += (data[r * d + i]! - mean[i]!) * components[c]![i]!;
      coords[r * 2 + c] = s;
    }
  }
  return {
    coords,
    explained: [trace ? eigen[0]! / trace : 0, trace ? eigen[1]! / trace : 0],
    mean,
    components: [components[0]!, components[1]!],
  };
}

export function kmeans(data: Float32Array, n: number, d: number, k: number, seed = 1, iterations = 50): Int32Array {
  const rng = new SeededRandom(seed);
  const centres: Float64Array[] = [];
  const dist2 = (r: number, c: Float64Array) => {
    let s = 0;
    for (let i = 0; i < d; i++) s += (data[r * d + i]! - c[i]!) ** 2;
    return s;
  };
  centres.push(Float64Array.from(data.subarray(rng.int(n) * d, rng.int(n) * d + d)));
  while (centres.length < k) {
    const weights = Array.from({ length: n }, (_, r) => Math.min(...centres.map((c) => dist2(r, c))));
    const total = weights.reduce((a, b) => a + b, 0);
    let pick = rng.next() * total;
    let chosen = n - 1;
    for (let r = 0; r < n; r++) {
      pick -= weights[r]!;
      if (pick <= 0) {
        chosen = r;
        break;
      }
    }
    centres.push(Float64Array.from(data.subarray(chosen * d, chosen * d + d)));
  }
  const assign = new Int32Array(n);
  for (let it = 0; it < iterations; it++) {
    let changed = false;
    for (let r = 0; r < n; r++) {
      let best = 0;
      let bestD = Infinity;
      centres.forEach((c, j) => {
        const v = dist2(r, c);
        if (v < bestD) {
          bestD = v;
          best = j;
        }
      });
      if (assign[r] !== best || it === 0) changed = changed || assign[r] !== best;
      assign[r] = best;
    }
    for (let j = 0; j < k; j++) {
      const sum = new Float64Array(d);
      let count = 0;
      for (let r = 0; r < n; r++) {
        if (assign[r] !== j) continue;
        count++;
        for (let i = 0; i < d; i++) sum[i]! += data[r * d + i]!;
      }
      if (count > 0) centres[j] = sum.map((s) => s / count);
    }
    if (!changed && it > 0) break;
  }
  return assign;
}

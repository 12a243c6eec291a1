/**
 * Reading a card's `ood` block into the statistics `ood.ts` scores against, with every problem
 * named by field. The model card checks this when it is loaded, so a card whose statistics the
 * scorer cannot use is refused up front instead of running with the out-of-distribution gate
 * silently off.
 *
 * Two shapes are read:
 * - what `crystalwatch train` (and `calibrate`) write: `{ method, threshold, percentile?,
 *   dimensions, classes: [{ name, mean, cholesky }] }` (full covariance) or the same with
 *   per-dimension `var` instead of `cholesky` (`mahalanobis-diag-nearest-class`);
 * - a hand-written single distribution `{ threshold, mean, var }` (or `std`), scored as one
 *   diagonal class.
 */
import { choleskyLength, OOD_METHODS, type OodClassStats, type OodMethod, type OodStats } from './ood.js';

const isNumberArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x));

function describe(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (Array.isArray(v)) return `${v.length} values${isNumberArray(v) ? '' : ' (not all finite numbers)'}`;
  const text = JSON.stringify(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** Check one numeric array field: `problems` gets a line naming it when it is not `length` finite numbers. */
function numbers(problems: string[], field: string, v: unknown, length: number, what: string): number[] | undefined {
  if (isNumberArray(v) && v.length === length) return v;
  problems.push(`${field} must have ${length} number${length === 1 ? '' : 's'} (${what}), got ${describe(v)}`);
  return undefined;
}

function checkClass(problems: string[], raw: unknown, i: number, d: number, method: OodMethod | undefined): OodClassStats | undefined {
  const field = `ood.classes[${i}]`;
  if (raw === null || typeof raw !== 'object') {
    problems.push(`${field} must be an object { name, mean, cholesky | var }, got ${describe(raw)}`);
    return undefined;
  }
  const c = raw as Record<string, unknown>;
  const name = typeof c.name === 'string' && c.name.length > 0 ? c.name : `class ${i}`;
  const mean = numbers(problems, `${field}.mean`, c.mean, d, `ood.dimensions ${d}`);
  const full = method ? method === 'mahalanobis-full-nearest-class' : c.cholesky !== undefined;
  if (full) {
    const L = numbers(problems, `${field}.cholesky`, c.cholesky, choleskyLength(d), `lower triangle of a ${d}×${d} factor, ${d}·${d + 1}/2`);
    if (!L || !mean) return undefined;
    for (let k = 0; k < d; k++) {
      const diag = L[((k + 1) * (k + 2)) / 2 - 1]!;
      if (!(diag > 0)) {
        problems.push(`${field}.cholesky diagonal entry ${k} must be > 0 (a factor of a positive-definite covariance), got ${diag}`);
        return undefined;
      }
    }
    return { name, mean, cholesky: L };
  }
  const variance = numbers(problems, `${field}.var`, c.var, d, `per-dimension variance, ood.dimensions ${d}`);
  if (!variance || !mean) return undefined;
  const bad = variance.findIndex((v) => !(v > 0));
  if (bad >= 0) {
    problems.push(`${field}.var[${bad}] must be > 0, got ${variance[bad]}`);
    return undefined;
  }
  return { name, mean, var: variance };
}

/**
 * The statistics of a card's `ood` block, or every reason it cannot be scored. Field names in
 * problems are as a person edits the card: `ood.classes[0].cholesky must have 2080 numbers …`.
 */
export function readOodStats(ood: Record<string, unknown>): { stats: OodStats; problems: [] } | { stats?: undefined; problems: string[] } {
  const problems: string[] = [];
  const threshold = ood.threshold;
  if (typeof threshold !== 'number' || !(threshold > 0) || !Number.isFinite(threshold)) {
    problems.push(`ood.threshold must be a positive number (the score above which a frame is out of distribution), got ${describe(threshold)}`);
  }
  const percentile = typeof ood.percentile === 'number' ? ood.percentile : undefined;

  if (ood.classes === undefined) {
    // Hand-written: one distribution.
    const mean = ood.mean;
    const spread = ood.var ?? (isNumberArray(ood.std) ? ood.std.map((s) => s * s) : ood.std);
    if (!isNumberArray(mean) || mean.length === 0) {
      problems.push(`ood needs "classes" (as crystalwatch train writes it) or "mean" and "var" (or "std") arrays; ood.mean is ${describe(mean)}`);
      return { problems };
    }
    const d = mean.length;
    const variance = numbers(problems, ood.var !== undefined ? 'ood.var' : 'ood.std', spread, d, `one per ood.mean value`);
    const bad = variance?.findIndex((v) => !(v > 0)) ?? -1;
    if (variance && bad >= 0) problems.push(`${ood.var !== undefined ? 'ood.var' : 'ood.std'}[${bad}] must be > 0, got ${variance[bad]}`);
    if (problems.length || !variance) return { problems };
    return {
      stats: {
        method: 'mahalanobis-diag-nearest-class',
        threshold: threshold as number,
        percentile,
        dimensions: d,
        classes: [{ name: 'train', mean, var: variance }],
      },
      problems: [],
    };
  }

  let method: OodMethod | undefined;
  if (ood.method !== undefined) {
    if (OOD_METHODS.includes(ood.method as OodMethod)) method = ood.method as OodMethod;
    else problems.push(`ood.method must be ${OOD_METHODS.map((m) => `"${m}"`).join(' or ')}, got ${describe(ood.method)}`);
  }
  if (!Array.isArray(ood.classes) || ood.classes.length === 0) {
    problems.push(`ood.classes must be a non-empty array of { name, mean, cholesky | var }, got ${describe(ood.classes)}`);
    return { problems };
  }
  const first = (ood.classes[0] ?? {}) as { mean?: unknown };
  const d = ood.dimensions ?? (isNumberArray(first.mean) ? first.mean.length : undefined);
  if (typeof d !== 'number' || !Number.isInteger(d) || d < 1) {
    problems.push(`ood.dimensions must be a positive integer (the embedding size), got ${describe(ood.dimensions)}`);
    return { problems };
  }
  const classes = ood.classes.map((c, i) => checkClass(problems, c, i, d, method));
  if (problems.length) return { problems };
  const kinds = new Set(classes.map((c) => (c!.cholesky ? 'full' : 'diag')));
  if (kinds.size > 1) return { problems: ['ood.classes mix cholesky and var statistics; give every class the same kind (set ood.method)'] };
  const inferred: OodMethod = kinds.has('full') ? 'mahalanobis-full-nearest-class' : 'mahalanobis-diag-nearest-class';
  return {
    stats: { method: method ?? inferred, threshold: threshold as number, percentile, dimensions: d, classes: classes as OodClassStats[] },
    problems: [],
  };
}

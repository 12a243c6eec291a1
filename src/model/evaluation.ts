/**
 * Classification metrics with PG as the positive class, as scikit-learn reports them, with
 * every undefined case given a documented value instead of NaN:
 *
 * - precision = TP/(TP+FP): `null` when nothing was predicted PG (TP+FP = 0).
 * - recall    = TP/(TP+FN): `null` when there are no PG crops (TP+FN = 0).
 * - F1        = 2TP/(2TP+FP+FN) (the same value as the harmonic mean where that is defined, and
 *               0 when TP = 0 but there were errors): `null` only when TP+FP+FN = 0, i.e. there
 *               was nothing positive to find and nothing was called positive.
 * - AUC: `null` when only one class is present (the ROC curve has no meaning).
 * - accuracy: `null` only for an empty set.
 * Each `null` comes with a line in `notes` saying why.
 */

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

export interface ClassRow {
  precision: number | null;
  recall: number | null;
  f1: number | null;
  support: number;
}

export interface ClassificationReport {
  classes: { cex: ClassRow; pg: ClassRow };
  macroAvg: ClassRow;
  weightedAvg: ClassRow;
  accuracy: number | null;
  support: number;
  confusion: Confusion;
  threshold: number;
  notes: string[];
}

export function confusionAt(pPG: ArrayLike<number>, labels: ArrayLike<number>, threshold = 0.5): Confusion {
  if (pPG.length !== labels.length) throw new Error(`confusionAt: ${pPG.length} scores but ${labels.length} labels`);
  const c: Confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (let i = 0; i < labels.length; i++) {
    const predicted = pPG[i]! >= threshold;
    if (labels[i] === 1) {
      if (predicted) c.tp++;
      else c.fn++;
    } else if (predicted) c.fp++;
    else c.tn++;
  }
  return c;
}

const ratio = (num: number, den: number): number | null => (den === 0 ? null : num / den);

/** Precision/recall/F1 of one class given its own TP, FP, FN. */
function row(tp: number, fp: number, fn: number): ClassRow {
  return { precision: ratio(tp, tp + fp), recall: ratio(tp, tp + fn), f1: ratio(2 * tp, 2 * tp + fp + fn), support: tp + fn };
}

function average(rows: ClassRow[], weights: number[]): ClassRow {
  const avg = (key: 'precision' | 'recall' | 'f1'): number | null => {
    // Like scikit-learn's zero_division, but explicit: an undefined class value is left out
    // of the average (and reported in notes) rather than counted as 0.
    let sum = 0;
    let total = 0;
    rows.forEach((r, i) => {
      const v = r[key];
      if (v !== null) {
        sum += v * weights[i]!;
        total += weights[i]!;
      }
    });
    return total === 0 ? null : sum / total;
  };
  return { precision: avg('precision'), recall: avg('recall'), f1: avg('f1'), support: rows.reduce((n, r) => n + r.support, 0) };
}

export function classificationReport(pPG: ArrayLike<number>, labels: ArrayLike<number>, threshold = 0.5): ClassificationReport {
  const confusion = confusionAt(pPG, labels, threshold);
  const { tp, fp, tn, fn } = confusion;
  const pg = row(tp, fp, fn);
  const cex = row(tn, fn, fp);
  const support = tp + fp + tn + fn;
  const notes: string[] = [];
  if (tp + fp === 0) notes.push('precision(pg) is null: no crop was predicted PG');
  if (tp + fn === 0) notes.push('recall(pg) is null: the set has no PG crops');
  if (tp + fp + fn === 0) notes.push('f1(pg) is null: no PG crops and none predicted');
  if (tn + fn === 0) notes.push('precision(cex) is null: no crop was predicted CEX');
  if (tn + fp === 0) notes.push('recall(cex) is null: the set has no CEX crops');
  if (support === 0) notes.push('accuracy is null: the set is empty');
  return {
    classes: { cex, pg },
    macroAvg: average([cex, pg], [1, 1]),
    weightedAvg: average([cex, pg], [cex.support, pg.support]),
    accuracy: ratio(tp + tn, support),
    support,
    confusion,
    threshold,
    notes,
  };
}

export interface RocPoint {
  threshold: number;
  fpr: number;
  tpr: number;
}

/** ROC curve (one point per distinct score, from the strictest threshold) and its AUC. */
export function rocCurve(pPG: ArrayLike<number>, labels: ArrayLike<number>): { points: RocPoint[]; auc: number | null } {
  const order = Array.from({ length: labels.length }, (_, i) => i).sort((a, b) => pPG[b]! - pPG[a]!);
  let positives = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] === 1) positives++;
  const negatives = labels.length - positives;
  const points: RocPoint[] = [{ threshold: Infinity, fpr: 0, tpr: 0 }];
  let tp = 0;
  let fp = 0;
  let auc = 0;
  for (let k = 0; k < order.length;) {
    const score = pPG[order[k]!]!;
    let dtp = 0;
    let dfp = 0;
    // Tied scores move together: the curve goes diagonally through them (the trapezoid rule
    // then gives the Mann–Whitney AUC with ties counted as half).
    while (k < order.length && pPG[order[k]!] === score) {
      if (labels[order[k]!] === 1) dtp++;
      else dfp++;
      k++;
    }
    auc += dfp * (tp + dtp / 2);
    tp += dtp;
    fp += dfp;
    points.push({ threshold: score, fpr: negatives ? fp / negatives : 0, tpr: positives ? tp / positives : 0 });
  }
  return { points, auc: positives && negatives ? auc / (positives * negatives) : null };
}

export interface ThresholdPoint {
  threshold: number;
  precision: number | null;
  recall: number | null;
  f1: number | null;
}

/** Precision, recall and F1 of PG at evenly spaced thresholds in [0, 1]. */
export function thresholdSweep(pPG: ArrayLike<number>, labels: ArrayLike<number>, steps = 100): ThresholdPoint[] {
  const out: ThresholdPoint[] = [];
  for (let s = 0; s <= steps; s++) {
    const threshold = s / steps;
    const { tp, fp, fn } = confusionAt(pPG, labels, threshold);
    out.push({ threshold, precision: ratio(tp, tp + fp), recall: ratio(tp, tp + fn), f1: ratio(2 * tp, 2 * tp + fp + fn) });
  }
  return out;
}

/** What `evaluate --json` prints: PG-positive figures, never NaN. */
export interface PgSummary {
  accuracy: number | null;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  auc: number | null;
  support: number;
  confusion: Confusion;
  notes: string[];
}

export function pgSummary(pPG: ArrayLike<number>, labels: ArrayLike<number>, threshold = 0.5): PgSummary {
  const report = classificationReport(pPG, labels, threshold);
  const { auc } = rocCurve(pPG, labels);
  const notes = [...report.notes.filter((n) => !n.includes('(cex)'))];
  if (auc === null) notes.push('auc is null: the set holds only one class');
  return {
    accuracy: report.accuracy,
    precision: report.classes.pg.precision,
    recall: report.classes.pg.recall,
    f1: report.classes.pg.f1,
    auc,
    support: report.support,
    confusion: report.confusion,
    notes,
  };
}

/** The report as scikit-learn prints it (undefined values shown as "n/a"). */
export function formatReport(report: ClassificationReport): string {
  const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4)).padStart(10);
  const line = (name: string, r: ClassRow) => `${name.padStart(14)}${f(r.precision)}${f(r.recall)}${f(r.f1)}${String(r.support).padStart(10)}`;
  return [
    `${''.padStart(14)}${'precision'.padStart(10)}${'recall'.padStart(10)}${'f1-score'.padStart(10)}${'support'.padStart(10)}`,
    '',
    line('cex', report.classes.cex),
    line('pg', report.classes.pg),
    '',
    `${'accuracy'.padStart(14)}${''.padStart(20)}${f(report.accuracy)}${String(report.support).padStart(10)}`,
    line('macro avg', report.macroAvg),
    line('weighted avg', report.weightedAvg),
  ].join('\n');
}

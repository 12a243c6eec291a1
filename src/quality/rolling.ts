/**
 * A rolling confusion matrix for the PG-vs-CEX decision, with PG the positive class.
 *
 * The window is either the last `maxFrames` labelled frames or the frames labelled during the
 * last `maxAgeMs` (by the time each outcome was *joined*, i.e. when its label became known:
 * lab labels arrive hours late, and a window on capture time would then always be empty).
 *
 * Undefined figures are `null`, never a fake 0 or 1:
 * - precision = tp / (tp + fp)            null when nothing was predicted PG,
 * - recall    = tp / (tp + fn)            null when no frame was actually PG,
 * - F1        = 2tp / (2tp + fp + fn)     null when neither (no positives at all),
 * - accuracy  = (tp + tn) / support       null when the window is empty.
 * Unusable frames carry no prediction and never enter the matrix.
 */
import type { Label } from '../bus/messages.js';

export interface Outcome {
  actual: Label;
  predicted: Label;
  /** When the outcome became known (ms since the epoch); only the time window uses it. */
  atMs: number;
}

export interface ConfusionCounts {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface QualityFigures extends ConfusionCounts {
  precision: number | null;
  recall: number | null;
  f1: number | null;
  accuracy: number | null;
  /** Frames in the window (tp + fp + fn + tn). */
  support: number;
  /** Frames in the window that were actually PG (tp + fn). */
  positives: number;
}

export function figuresFrom(c: ConfusionCounts): QualityFigures {
  const support = c.tp + c.fp + c.fn + c.tn;
  const positives = c.tp + c.fn;
  const ratio = (num: number, den: number) => (den > 0 ? num / den : null);
  return {
    ...c,
    precision: ratio(c.tp, c.tp + c.fp),
    recall: ratio(c.tp, positives),
    f1: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
    accuracy: ratio(c.tp + c.tn, support),
    support,
    positives,
  };
}

function cell(o: Outcome): keyof ConfusionCounts {
  if (o.actual === 'pg') return o.predicted === 'pg' ? 'tp' : 'fn';
  return o.predicted === 'pg' ? 'fp' : 'tn';
}

export class RollingConfusion {
  readonly maxFrames: number | undefined;
  readonly maxAgeMs: number | undefined;
  private readonly counts: ConfusionCounts = { tp: 0, fp: 0, fn: 0, tn: 0 };
  // A queue as an array plus a head index: O(1) amortised eviction without shifting.
  private items: Outcome[] = [];
  private head = 0;

  constructor(window: { maxFrames: number } | { maxAgeMs: number }) {
    if ('maxFrames' in window) {
      if (!Number.isInteger(window.maxFrames) || window.maxFrames < 1)
        throw new RangeError(`RollingConfusion: maxFrames must be a positive integer, got ${window.maxFrames}`);
      this.maxFrames = window.maxFrames;
    } else {
      if (!(window.maxAgeMs > 0)) throw new RangeError(`RollingConfusion: maxAgeMs must be a positive number of milliseconds, got ${window.maxAgeMs}`);
      this.maxAgeMs = window.maxAgeMs;
    }
  }

  get size(): number {
    return this.items.length - this.head;
  }

  add(outcome: Outcome): void {
    this.items.push(outcome);
    this.counts[cell(outcome)] += 1;
    if (this.maxFrames !== undefined) while (this.size > this.maxFrames) this.evictOne();
    else this.expire(outcome.atMs);
  }

  /** Drops outcomes older than the time window, as of `nowMs`. Count windows ignore it. */
  expire(nowMs: number): void {
    if (this.maxAgeMs === undefined) return;
    const oldest = nowMs - this.maxAgeMs;
    while (this.size > 0 && this.items[this.head]!.atMs <= oldest) this.evictOne();
  }

  figures(nowMs?: number): QualityFigures {
    if (nowMs !== undefined) this.expire(nowMs);
    return figuresFrom(this.counts);
  }

  private evictOne(): void {
    const gone = this.items[this.head]!;
    this.head += 1;
    this.counts[cell(gone)] -= 1;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** A rolling fraction over the last `size` booleans (used for the unusable-frame ratio). */
export class RollingRatio {
  private readonly bits: Uint8Array;
  private next = 0;
  private filled = 0;
  private ones = 0;

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`RollingRatio: size must be a positive integer, got ${size}`);
    this.bits = new Uint8Array(size);
  }

  add(value: boolean): void {
    if (this.filled === this.size) this.ones -= this.bits[this.next]!;
    else this.filled += 1;
    this.bits[this.next] = value ? 1 : 0;
    this.ones += this.bits[this.next]!;
    this.next = (this.next + 1) % this.size;
  }

  /** null while nothing was added. */
  get ratio(): number | null {
    return this.filled === 0 ? null : this.ones / this.filled;
  }
}

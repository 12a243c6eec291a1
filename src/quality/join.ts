/**
 * Joins predictions with ground truth, which comes three ways:
 * 1. in the frame header (`prediction.label`): joined at once;
 * 2. on the `labels` topic by frame id (`{frameId, label}`), before or after the prediction;
 * 3. as a lab result for a time span of one camera (`{camera, from, to, label}`), hours late.
 *
 * A prediction without a label waits up to `horizonMs` (from when it arrived) for one; a label
 * that arrives first waits as long for its prediction. Both waiting rooms are bounded by
 * `maxPending`: when full, the oldest entry is dropped and reported, so memory stays flat
 * however far behind the lab runs. The first label a frame gets wins; later ones are ignored.
 */
import type { Label, LabelMessage, Prediction } from '../bus/messages.js';
import { RecentKeys } from '../bus/recent-keys.js';

export type LabelSource = 'header' | 'frame' | 'span';

export interface JoinedPrediction {
  prediction: Prediction;
  label: Label;
  source: LabelSource;
}

export type DropReason = 'horizon' | 'overflow';

export interface LabelJoinOptions {
  horizonMs: number;
  maxPending: number;
  /** Called for every prediction that leaves unlabelled. */
  onDrop?: (prediction: Prediction, reason: DropReason) => void;
}

interface Span {
  fromMs: number;
  toMs: number;
  label: Label;
  deadline: number;
}

/** Span labels kept per camera; lab results are few (one per sample), so this is generous. */
const MAX_SPANS_PER_CAMERA = 1000;

/**
 * Arrival order of a waiting room's entries, kept apart from its Map: evicting from the front of
 * a JS Map leaves holes that iteration must skip (O(n) per eviction in V8). An entry still in
 * the Map *as the same object* is live; anything else was joined meanwhile and is skipped.
 */
class ArrivalQueue<T extends { deadline: number }> {
  private items: { key: string; entry: T }[] = [];
  private head = 0;
  push(key: string, entry: T): void {
    this.items.push({ key, entry });
  }
  /** The oldest live entry of `room`, removed from the queue (not from the room). */
  popLive(room: Map<string, T>, due?: number): { key: string; entry: T } | undefined {
    while (this.head < this.items.length) {
      const first = this.items[this.head]!;
      if (room.get(first.key) !== first.entry) {
        this.head += 1;
        continue;
      }
      if (due !== undefined && first.entry.deadline > due) return undefined;
      this.head += 1;
      return first;
    }
    return undefined;
  }
  /** Drops dead entries once they outnumber the live ones, so the queue stays O(room size). */
  compact(room: Map<string, T>): void {
    const length = this.items.length - this.head;
    if (length < 1024 || length < 2 * room.size) return;
    this.items = this.items.slice(this.head).filter((i) => room.get(i.key) === i.entry);
    this.head = 0;
  }
}

export class LabelJoin {
  private readonly pending = new Map<string, { prediction: Prediction; deadline: number }>();
  private readonly pendingOrder = new ArrivalQueue<{ prediction: Prediction; deadline: number }>();
  private readonly early = new Map<string, { label: Label; deadline: number }>();
  private readonly earlyOrder = new ArrivalQueue<{ label: Label; deadline: number }>();
  private readonly spans = new Map<string, Span[]>();
  private readonly joined: RecentKeys;

  constructor(private readonly options: LabelJoinOptions) {
    if (!(options.horizonMs >= 0)) throw new RangeError(`LabelJoin: horizonMs must be >= 0, got ${options.horizonMs}`);
    if (!Number.isInteger(options.maxPending) || options.maxPending < 1)
      throw new RangeError(`LabelJoin: maxPending must be a positive integer, got ${options.maxPending}`);
    this.joined = new RecentKeys(Math.max(options.maxPending, 1024));
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** A new (deduplicated) prediction: returns its join when a label is already known, else it waits. */
  addPrediction(prediction: Prediction, nowMs: number): JoinedPrediction | null {
    this.expire(nowMs);
    if (this.joined.has(prediction.frameId) || this.pending.has(prediction.frameId)) return null;
    const found = this.labelFor(prediction, nowMs);
    if (found) {
      this.joined.add(prediction.frameId);
      return { prediction, ...found };
    }
    const waiting = { prediction, deadline: nowMs + this.options.horizonMs };
    this.pending.set(prediction.frameId, waiting);
    this.pendingOrder.push(prediction.frameId, waiting);
    while (this.pending.size > this.options.maxPending) {
      const oldest = this.pendingOrder.popLive(this.pending);
      if (!oldest) break;
      this.pending.delete(oldest.key);
      this.options.onDrop?.(oldest.entry.prediction, 'overflow');
    }
    this.pendingOrder.compact(this.pending);
    return null;
  }

  /** A label message: returns the waiting predictions it completes. */
  addLabel(message: LabelMessage, nowMs: number): JoinedPrediction[] {
    this.expire(nowMs);
    const deadline = nowMs + this.options.horizonMs;
    if ('frameId' in message) {
      if (this.joined.has(message.frameId)) return [];
      const waiting = this.pending.get(message.frameId);
      if (waiting) {
        this.pending.delete(message.frameId);
        this.joined.add(message.frameId);
        return [{ prediction: waiting.prediction, label: message.label, source: 'frame' }];
      }
      const early = { label: message.label, deadline };
      this.early.set(message.frameId, early); // a newer label replaces an older one (and its queue entry goes dead)
      this.earlyOrder.push(message.frameId, early);
      while (this.early.size > this.options.maxPending) {
        const oldest = this.earlyOrder.popLive(this.early);
        if (!oldest) break;
        this.early.delete(oldest.key);
      }
      this.earlyOrder.compact(this.early);
      return [];
    }
    const span: Span = { fromMs: Date.parse(message.from), toMs: Date.parse(message.to), label: message.label, deadline };
    if (!(span.toMs >= span.fromMs)) return [];
    const list = this.spans.get(message.camera) ?? [];
    list.push(span);
    if (list.length > MAX_SPANS_PER_CAMERA) list.shift();
    this.spans.set(message.camera, list);
    const out: JoinedPrediction[] = [];
    for (const [frameId, waiting] of this.pending) {
      if (waiting.prediction.camera !== message.camera) continue;
      const at = Date.parse(waiting.prediction.capturedAt);
      if (at >= span.fromMs && at <= span.toMs) {
        this.pending.delete(frameId);
        this.joined.add(frameId);
        out.push({ prediction: waiting.prediction, label: span.label, source: 'span' });
      }
    }
    return out;
  }

  /** Forgets what waited past the horizon; unlabelled predictions are reported through `onDrop`. */
  expire(nowMs: number): void {
    // Deadlines grow with arrival, so the expired are the oldest live entries.
    for (let due = this.pendingOrder.popLive(this.pending, nowMs); due; due = this.pendingOrder.popLive(this.pending, nowMs)) {
      this.pending.delete(due.key);
      this.options.onDrop?.(due.entry.prediction, 'horizon');
    }
    for (let due = this.earlyOrder.popLive(this.early, nowMs); due; due = this.earlyOrder.popLive(this.early, nowMs)) this.early.delete(due.key);
    this.pendingOrder.compact(this.pending);
    this.earlyOrder.compact(this.early);
    for (const [camera, list] of this.spans) {
      if (list[0]!.deadline > nowMs) continue; // appended in arrival order: nothing expired yet
      const kept = list.filter((s) => s.deadline > nowMs);
      if (kept.length === 0) this.spans.delete(camera);
      else if (kept.length !== list.length) this.spans.set(camera, kept);
    }
  }

  private labelFor(prediction: Prediction, nowMs: number): { label: Label; source: LabelSource } | null {
    if (prediction.label) return { label: prediction.label, source: 'header' };
    const early = this.early.get(prediction.frameId);
    if (early && early.deadline > nowMs) {
      this.early.delete(prediction.frameId);
      return { label: early.label, source: 'frame' };
    }
    const list = this.spans.get(prediction.camera);
    if (list) {
      const at = Date.parse(prediction.capturedAt);
      // The newest span wins when lab results overlap (a corrected result replaces the first).
      for (let i = list.length - 1; i >= 0; i -= 1) {
        const s = list[i]!;
        if (at >= s.fromMs && at <= s.toMs) return { label: s.label, source: 'span' };
      }
    }
    return null;
  }
}

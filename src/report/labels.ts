/**
 * Ground truth for a run's frames: the label that travelled with the frame (the prediction's
 * `label`), else a lab result from the `labels` topic: one for the frame, or one for a time
 * span of the camera. Bounded: at most `maxFrameLabels` per-frame results and `maxSpans` spans
 * are kept; what is dropped beyond that is counted, so the report can say its figures are partial.
 */
import type { Label, LabelMessage, Prediction } from '../bus/messages.js';

interface Span {
  from: number;
  to: number;
  label: Label;
}

export class LabelBook {
  private readonly byFrame = new Map<string, Label>();
  private readonly spans = new Map<string, Span[]>();
  private spanCount = 0;
  /** Lab results not kept because a bound was reached. */
  dropped = 0;

  constructor(
    private readonly maxFrameLabels = 200_000,
    private readonly maxSpans = 10_000,
  ) {}

  add(message: LabelMessage): void {
    if ('frameId' in message) {
      if (this.byFrame.has(message.frameId) || this.byFrame.size < this.maxFrameLabels) this.byFrame.set(message.frameId, message.label);
      else this.dropped += 1;
      return;
    }
    if (this.spanCount >= this.maxSpans) {
      this.dropped += 1;
      return;
    }
    const list = this.spans.get(message.camera) ?? [];
    list.push({ from: Date.parse(message.from), to: Date.parse(message.to), label: message.label });
    this.spans.set(message.camera, list);
    this.spanCount += 1;
  }

  /** The frame's ground truth, or undefined when nothing is known. The latest matching span wins. */
  labelFor(prediction: Pick<Prediction, 'frameId' | 'camera' | 'label'>, capturedAtMs: number): Label | undefined {
    if (prediction.label) return prediction.label;
    const own = this.byFrame.get(prediction.frameId);
    if (own) return own;
    const spans = this.spans.get(prediction.camera);
    if (!spans) return undefined;
    for (let i = spans.length - 1; i >= 0; i -= 1) {
      const s = spans[i]!;
      if (capturedAtMs >= s.from && capturedAtMs <= s.to) return s.label;
    }
    return undefined;
  }

  get size(): number {
    return this.byFrame.size + this.spanCount;
  }
}

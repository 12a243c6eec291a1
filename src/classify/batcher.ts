/**
 * Micro-batching across messages and partitions: kafkajs hands each partition's records to
 * its own `eachBatch` call; they all submit here, and one inference call takes up to
 * `maxBatchSize` images, waiting at most `maxWaitMs` for a batch to fill. Two batches may be
 * in flight, so the next batch is decoded on the main thread while the worker runs the last.
 */
import type { Classifier, ClassifyResult } from './classifier.js';

interface Pending {
  bytes: Buffer;
  resolve: (r: ClassifyResult) => void;
  reject: (e: Error) => void;
}

export class MicroBatcher {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private closed = false;

  constructor(
    private readonly classifier: Classifier,
    private readonly maxBatchSize: number,
    private readonly maxWaitMs: number,
    private readonly onBatch: (size: number) => void = () => {},
    private readonly maxInFlight = 2,
  ) {}

  classify(images: Buffer[]): Promise<ClassifyResult[]> {
    if (this.closed) return Promise.reject(new Error('classify batcher is closed'));
    const results = images.map((bytes) => new Promise<ClassifyResult>((resolve, reject) => this.queue.push({ bytes, resolve, reject })));
    this.pump();
    return Promise.all(results);
  }

  private pump(): void {
    while (this.inFlight < this.maxInFlight && this.queue.length >= this.maxBatchSize) this.flush();
    if (this.queue.length > 0 && this.inFlight < this.maxInFlight && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.queue.length > 0 && this.inFlight < this.maxInFlight) this.flush();
        else this.pump();
      }, this.maxWaitMs);
    }
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue.splice(0, this.maxBatchSize);
    if (batch.length === 0) return;
    this.inFlight++;
    this.onBatch(batch.length);
    this.classifier
      .classify(batch.map((p) => p.bytes))
      .then(
        (results) => batch.forEach((p, i) => p.resolve(results[i]!)),
        (err: Error) => batch.forEach((p) => p.reject(err)),
      )
      .finally(() => {
        this.inFlight--;
        if (!this.closed) this.pump();
      });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const err = new Error('classify batcher closed before the frame was classified');
    for (const p of this.queue.splice(0)) p.reject(err);
  }
}

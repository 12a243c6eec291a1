/**
 * Micro-batching across messages and partitions: kafkajs hands each partition's records to
 * its own `eachBatch` call; they all submit here, and one inference call takes up to
 * `maxBatchSize` images and `maxBatchBytes` of them (at least one image), waiting at most
 * `maxWaitMs` for a batch to fill. Two batches may be in flight, so the next batch is decoded on
 * the main thread while the worker runs the last: the byte bound keeps a fetch's frames from
 * going into one call, whose decoding the worker would wait for.
 *
 * The queue is bounded (`maxQueuedImages`, `maxQueuedBytes`): a submission that does not fit
 * waits, in arrival order, until enough of the queue has gone into inference calls. That wait
 * is the backpressure: its `eachBatch` does not return, so kafkajs fetches nothing more for it.
 * One submission larger than the bounds is let in alone into an empty queue, so it cannot stall.
 */
import type { Classifier, ClassifyResult } from './classifier.js';

interface Pending {
  bytes: Buffer;
  resolve: (r: ClassifyResult) => void;
  reject: (e: Error) => void;
}

interface Waiting {
  images: Buffer[];
  bytes: number;
  /** Puts the images in the queue; the submission's promise follows their results. */
  enqueue: () => void;
  reject: (e: Error) => void;
}

export interface QueueBounds {
  /** Images waiting for an inference call (default: unbounded). */
  maxQueuedImages?: number;
  /** Their bytes (default: unbounded). */
  maxQueuedBytes?: number;
  /** Image bytes in one call (default: unbounded); a call takes images while they fit, at least one. */
  maxBatchBytes?: number;
}

export class MicroBatcher {
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private readonly waiting: Waiting[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight = 0;
  private closed = false;
  private readonly maxQueuedImages: number;
  private readonly maxQueuedBytes: number;
  private readonly maxBatchBytes: number;
  /** The most the queue has held at once, for tests and the bench. */
  readonly peak = { images: 0, bytes: 0 };

  constructor(
    private readonly classifier: Pick<Classifier, 'classify'>,
    private readonly maxBatchSize: number,
    private readonly maxWaitMs: number,
    private readonly onBatch: (size: number) => void = () => {},
    private readonly maxInFlight = 2,
    bounds: QueueBounds = {},
  ) {
    this.maxQueuedImages = bounds.maxQueuedImages ?? Infinity;
    this.maxQueuedBytes = bounds.maxQueuedBytes ?? Infinity;
    this.maxBatchBytes = bounds.maxBatchBytes ?? Infinity;
    if (!(this.maxQueuedImages >= 1)) throw new RangeError(`MicroBatcher: maxQueuedImages must be at least 1, got ${bounds.maxQueuedImages}`);
    if (!(this.maxQueuedBytes >= 1)) throw new RangeError(`MicroBatcher: maxQueuedBytes must be at least 1, got ${bounds.maxQueuedBytes}`);
    if (!(this.maxBatchBytes >= 1)) throw new RangeError(`MicroBatcher: maxBatchBytes must be at least 1, got ${bounds.maxBatchBytes}`);
  }

  /** What waits for an inference call now (not counting submissions waiting for room). */
  get queued(): { images: number; bytes: number; waitingSubmissions: number } {
    return { images: this.queue.length, bytes: this.queuedBytes, waitingSubmissions: this.waiting.length };
  }

  classify(images: Buffer[]): Promise<ClassifyResult[]> {
    if (this.closed) return Promise.reject(new Error('classify batcher is closed'));
    if (images.length === 0) return Promise.resolve([]);
    const bytes = images.reduce((sum, b) => sum + b.length, 0);
    return new Promise<ClassifyResult[]>((resolve, reject) => {
      const enqueue = () => {
        const results = images.map((b) => new Promise<ClassifyResult>((ok, fail) => this.queue.push({ bytes: b, resolve: ok, reject: fail })));
        this.queuedBytes += bytes;
        this.peak.images = Math.max(this.peak.images, this.queue.length);
        this.peak.bytes = Math.max(this.peak.bytes, this.queuedBytes);
        Promise.all(results).then(resolve, reject);
      };
      if (this.waiting.length === 0 && this.fits(images.length, bytes)) {
        enqueue();
        this.pump();
      } else {
        this.waiting.push({ images, bytes, enqueue, reject });
      }
    });
  }

  private fits(images: number, bytes: number): boolean {
    if (this.queue.length === 0) return true; // alone, whatever its size
    return this.queue.length + images <= this.maxQueuedImages && this.queuedBytes + bytes <= this.maxQueuedBytes;
  }

  /** Lets waiting submissions in, oldest first, while they fit (called as a batch leaves the queue). */
  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.fits(this.waiting[0]!.images.length, this.waiting[0]!.bytes)) this.waiting.shift()!.enqueue();
  }

  private pump(): void {
    // A full call waiting (by count or by bytes) goes now; a partial one when the wait is over.
    while (this.inFlight < this.maxInFlight && (this.queue.length >= this.maxBatchSize || this.queuedBytes >= this.maxBatchBytes)) this.flush();
    if (this.queue.length > 0 && this.inFlight < this.maxInFlight && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        if (this.queue.length > 0 && this.inFlight < this.maxInFlight) this.flush();
        this.pump();
      }, this.maxWaitMs);
    }
  }

  private flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    let take = 0;
    for (let bytes = 0; take < Math.min(this.maxBatchSize, this.queue.length); take++) {
      bytes += this.queue[take]!.bytes.length;
      if (take > 0 && bytes > this.maxBatchBytes) break;
    }
    const batch = this.queue.splice(0, take);
    if (batch.length === 0) return;
    for (const p of batch) this.queuedBytes -= p.bytes.length;
    this.inFlight++;
    this.onBatch(batch.length);
    this.admitWaiting();
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
    for (const w of this.waiting.splice(0)) w.reject(err);
    for (const p of this.queue.splice(0)) p.reject(err);
  }
}

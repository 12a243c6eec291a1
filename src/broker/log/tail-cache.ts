/**
 * The newest record batches of all partitions kept in memory, up to one byte
 * budget for the whole broker, so consumers that keep up are served without a
 * file read while memory stays bounded however many partitions exist.
 * Oldest-appended batches are dropped first (a FIFO, which for logs is LRU
 * enough: consumers read the tail).
 */
export interface CachedBatch {
  size: number;
  data: Buffer | undefined;
}

export class TailCache {
  private queue: CachedBatch[] = [];
  private head = 0;
  bytes = 0;

  constructor(readonly budget: number) {}

  add(batch: CachedBatch): void {
    if (!batch.data) return;
    this.queue.push(batch);
    this.bytes += batch.size;
    while (this.bytes > this.budget && this.head < this.queue.length) {
      const oldest = this.queue[this.head++]!;
      if (oldest.data) {
        oldest.data = undefined;
        this.bytes -= oldest.size;
      }
    }
    // Compact the consumed front now and then instead of shifting on every eviction.
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  /** Forgets a batch whose log is deleted or closed. */
  drop(batch: CachedBatch): void {
    if (batch.data) {
      batch.data = undefined;
      this.bytes -= batch.size;
    }
  }
}

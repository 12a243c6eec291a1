/**
 * A set of recent keys with a fixed capacity: the oldest key is forgotten first.
 * Predictions are delivered at least once; remembering the last `capacity` frame ids
 * catches redeliveries (which arrive close to the original) in bounded memory.
 *
 * The eviction order lives in a ring of keys, not in the Set's iteration order: deleting
 * from the front of a JS Set/Map leaves holes that `values().next()` must skip, which makes
 * FIFO eviction O(n) per call in V8 (600k adds at capacity 100k took 116 s).
 */
export class RecentKeys {
  private readonly keys = new Set<string>();
  private readonly ring: (string | undefined)[];
  private next = 0;
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`RecentKeys: capacity must be a positive integer, got ${capacity}`);
    this.ring = new Array<string | undefined>(capacity);
  }
  has(key: string): boolean {
    return this.keys.has(key);
  }
  /** Adds the key; returns false when it was already there (a duplicate). */
  add(key: string): boolean {
    if (this.keys.has(key)) return false;
    const oldest = this.ring[this.next];
    if (oldest !== undefined) this.keys.delete(oldest);
    this.ring[this.next] = key;
    this.next = (this.next + 1) % this.capacity;
    this.keys.add(key);
    return true;
  }
  get size(): number {
    return this.keys.size;
  }
}

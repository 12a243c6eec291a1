/** The memory bound of ingest: bytes read from the drop folders and not yet acknowledged by Kafka. */
/** Bytes read and not yet acknowledged, shared by all cameras of a stage. */
export class ByteBudget {
  used = 0;
  private waiters = new Set<() => void>();
  constructor(
    readonly max: number,
    private readonly onChange: (used: number) => void,
  ) {}
  /** Reserves `n` bytes; refuses when that would pass `max`, unless nothing is held (one frame always fits). */
  tryReserve(n: number): boolean {
    if (this.used > 0 && this.used + n > this.max) return false;
    this.used += n;
    this.onChange(this.used);
    return true;
  }
  release(n: number): void {
    this.used = Math.max(0, this.used - n);
    this.onChange(this.used);
    for (const w of [...this.waiters]) w();
  }
  onRelease(fn: () => void): () => void {
    this.waiters.add(fn);
    return () => this.waiters.delete(fn);
  }
}

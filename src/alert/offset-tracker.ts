/**
 * Which `alerts` offsets may be committed. Records of a partition arrive in offset order and
 * finish in any order (each sink goes at its own pace); the committable offset is one past the
 * longest finished prefix, so a record that is still being delivered holds back the commit of
 * everything after it (and a restart redelivers from there).
 */
export class OffsetTracker {
  private partitions = new Map<number, Map<string, boolean>>();
  private generation = 0;

  /** Records being delivered, over all partitions. */
  get pending(): number {
    let n = 0;
    for (const records of this.partitions.values()) n += records.size;
    return n;
  }

  /** Starts tracking a record; returns its generation, or undefined when it is tracked already (redelivered). */
  track(partition: number, offset: string): number | undefined {
    let records = this.partitions.get(partition);
    if (!records) this.partitions.set(partition, (records = new Map()));
    if (records.has(offset)) return undefined;
    records.set(offset, false);
    return this.generation;
  }

  /** Marks a record finished; returns the offset to commit (the next one to read) when it moved. */
  complete(partition: number, offset: string, generation: number): string | undefined {
    if (generation !== this.generation) return undefined;
    const records = this.partitions.get(partition);
    if (!records?.has(offset)) return undefined;
    records.set(offset, true);
    let commit: string | undefined;
    for (const [pending, finished] of records) {
      if (!finished) break;
      records.delete(pending);
      commit = (BigInt(pending) + 1n).toString();
    }
    return commit;
  }

  /** Forgets everything (the group rebalanced: records come again from the committed offsets). */
  reset(): void {
    this.partitions = new Map();
    this.generation += 1;
  }
}

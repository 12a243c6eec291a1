/**
 * One partition's log: append-only segment files of record batches, stored
 * byte-for-byte as Kafka stores them (batch v2 with the base offset stamped).
 *
 *   <dir>/<baseOffset, 20 digits>.log
 *
 * Appends are written with a synchronous write before the produce is answered,
 * so an acknowledged batch is in the kernel's page cache and survives `kill -9`
 * of the broker; whether it also survives power loss is the fsync policy's job
 * (see README.md). On open, every segment is scanned and the first batch whose
 * length or CRC does not check out (a torn tail write) is truncated away, with
 * everything after it.
 */
import { fdatasync, closeSync, fdatasyncSync, ftruncateSync, fstatSync, mkdirSync, openSync, readSync, readdirSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../config/logger.js';
import { ErrorCode } from '../errors.js';
import { crc32c } from '../protocol/crc32c.js';
import type { TailCache } from './tail-cache.js';
import { ProducerSequences } from './producer-sequences.js';
import { BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD, firstOffsetAtOrAfter, readBatchInfo, stampBatch, type BatchInfo } from '../protocol/record-batch.js';

export interface PartitionLogOptions {
  dir: string;
  topic: string;
  partition: number;
  segmentBytes: number;
  /** The broker-wide cache of the newest batches, to answer fetches without a file read. */
  cache: TailCache;
  logger: Logger;
}

interface Segment {
  baseOffset: number;
  path: string;
  fd: number;
  size: number;
  maxTimestamp: number;
  dirty: boolean;
}

interface BatchEntry {
  baseOffset: number;
  lastOffset: number;
  segment: Segment;
  position: number;
  size: number;
  maxTimestamp: number;
  /** The stored bytes while the batch is in the tail cache. */
  data: Buffer | undefined;
}

export interface AppendResult {
  errorCode: number;
  baseOffset: number;
  message?: string;
  appendedBytes?: number;
  appendedRecords?: number;
}

export class PartitionLog {
  readonly topic: string;
  readonly partition: number;
  private readonly dir: string;
  private readonly options: PartitionLogOptions;
  private segments: Segment[] = [];
  private entries: BatchEntry[] = [];
  private readonly producers = new ProducerSequences();
  private listeners = new Set<() => void>();
  private closed = false;
  /** Async flushes in progress; segments are neither deleted nor closed meanwhile. */
  private syncing = 0;
  /** Next offset to assign; equals the high watermark on a single node. */
  nextOffset = 0;
  logStartOffset = 0;

  constructor(options: PartitionLogOptions) {
    this.options = options;
    this.dir = options.dir;
    this.topic = options.topic;
    this.partition = options.partition;
  }

  get sizeBytes(): number {
    let total = 0;
    for (const segment of this.segments) total += segment.size;
    return total;
  }

  /** Opens (creating if needed) and recovers the partition directory. */
  open(): void {
    mkdirSync(this.dir, { recursive: true });
    const files = readdirSync(this.dir)
      .filter((name) => /^\d{20}\.log$/.test(name))
      .sort();
    let truncatedRest = false;
    for (let i = 0; i < files.length; i++) {
      const path = join(this.dir, files[i]!);
      if (truncatedRest) {
        this.options.logger.warn({ path }, 'removing segment after a torn write');
        unlinkSync(path);
        continue;
      }
      const baseOffset = Number(files[i]!.slice(0, 20));
      const fd = openSync(path, 'r+');
      const segment: Segment = { baseOffset, path, fd, size: 0, maxTimestamp: -1, dirty: false };
      if (this.segments.length === 0) {
        this.nextOffset = baseOffset;
        this.logStartOffset = baseOffset;
      }
      truncatedRest = !this.recoverSegment(segment);
      this.segments.push(segment);
    }
    if (this.segments.length === 0) this.roll(0);
  }

  /** Scans one segment; returns false if it had to be truncated (later segments are then dropped). */
  private recoverSegment(segment: Segment): boolean {
    const fileSize = fstatSync(segment.fd).size;
    const header = Buffer.allocUnsafe(BATCH_HEADER_BYTES);
    let position = 0;
    let valid = true;
    while (position < fileSize) {
      if (fileSize - position < BATCH_HEADER_BYTES) {
        valid = false;
        break;
      }
      readSync(segment.fd, header, 0, BATCH_HEADER_BYTES, position);
      const baseOffset = Number(header.readBigInt64BE(0));
      const batchLength = header.readInt32BE(8);
      const total = batchLength + BATCH_LOG_OVERHEAD;
      if (header.readInt8(16) !== 2 || batchLength < BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD || position + total > fileSize || baseOffset !== this.nextOffset) {
        valid = false;
        break;
      }
      const bytes = Buffer.allocUnsafe(total);
      readSync(segment.fd, bytes, 0, total, position);
      if (bytes.readUInt32BE(17) !== crc32c(bytes, 21, total)) {
        valid = false;
        break;
      }
      const info = readBatchInfo(bytes);
      const entry: BatchEntry = {
        baseOffset,
        lastOffset: baseOffset + info.lastOffsetDelta,
        segment,
        position,
        size: total,
        maxTimestamp: info.maxTimestamp,
        data: undefined,
      };
      this.entries.push(entry);
      this.producers.remember(info, baseOffset);
      segment.maxTimestamp = Math.max(segment.maxTimestamp, info.maxTimestamp);
      this.nextOffset = entry.lastOffset + 1;
      position += total;
    }
    segment.size = position;
    if (!valid) {
      this.options.logger.warn(
        { topic: this.topic, partition: this.partition, path: segment.path, validBytes: position, fileBytes: fileSize },
        'truncating torn write at the end of a segment',
      );
      ftruncateSync(segment.fd, position);
      fdatasyncSync(segment.fd);
    }
    return valid;
  }

  private roll(baseOffset: number): Segment {
    const path = join(this.dir, `${String(baseOffset).padStart(20, '0')}.log`);
    const fd = openSync(path, 'a+');
    const segment: Segment = { baseOffset, path, fd, size: fstatSync(fd).size, maxTimestamp: -1, dirty: false };
    this.segments.push(segment);
    return segment;
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1]!; // open() leaves at least one
  }

  /**
   * Appends validated batches (from one Produce partition entry). Idempotent
   * producers are checked per batch: a retry of one of the last 5 batches is
   * answered with its original offset and not stored again.
   */
  append(batches: BatchInfo[]): AppendResult {
    if (this.closed) return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, baseOffset: -1, message: 'partition closed' };
    let firstOffset = -1;
    let appendedBytes = 0;
    let appendedRecords = 0;
    for (const batch of batches) {
      if (batch.producerId >= 0) {
        const check = this.producers.check(batch);
        if (check.errorCode !== ErrorCode.NONE) return check;
        if (check.baseOffset >= 0) {
          if (firstOffset < 0) firstOffset = check.baseOffset;
          continue;
        }
      }
      const baseOffset = this.nextOffset;
      stampBatch(batch.bytes, baseOffset);
      let segment = this.active;
      if (segment.size > 0 && segment.size + batch.bytes.length > this.options.segmentBytes) segment = this.roll(baseOffset);
      let written = 0;
      while (written < batch.bytes.length) written += writeSync(segment.fd, batch.bytes, written, batch.bytes.length - written, segment.size + written);
      const entry: BatchEntry = {
        baseOffset,
        lastOffset: baseOffset + batch.lastOffsetDelta,
        segment,
        position: segment.size,
        size: batch.bytes.length,
        maxTimestamp: batch.maxTimestamp,
        data: batch.bytes,
      };
      segment.size += batch.bytes.length;
      segment.dirty = true;
      segment.maxTimestamp = Math.max(segment.maxTimestamp, batch.maxTimestamp);
      this.entries.push(entry);
      this.options.cache.add(entry);
      if (batch.producerId >= 0) this.producers.remember(batch, baseOffset);
      this.nextOffset = entry.lastOffset + 1;
      appendedBytes += entry.size;
      appendedRecords += batch.recordCount;
      if (firstOffset < 0) firstOffset = baseOffset;
    }
    for (const listener of this.listeners) listener();
    return { errorCode: ErrorCode.NONE, baseOffset: firstOffset, appendedBytes, appendedRecords };
  }

  /** Index of the batch holding `offset`, or entries.length if none. */
  private findEntry(offset: number): number {
    let low = 0;
    let high = this.entries.length - 1;
    let found = this.entries.length;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      if (this.entries[mid]!.lastOffset >= offset) {
        found = mid;
        high = mid - 1;
      } else low = mid + 1;
    }
    return found;
  }

  /**
   * Batches from the one holding `offset`, up to `maxBytes` in total. With
   * `atLeastOne`, the first batch is returned whole even if bigger (KIP-74: a
   * consumer must be able to make progress past a batch bigger than its fetch size).
   */
  read(offset: number, maxBytes: number, atLeastOne = true): Buffer[] {
    const out: Buffer[] = [];
    let total = 0;
    let i = this.findEntry(offset);
    while (i < this.entries.length) {
      const first = this.entries[i]!;
      if ((out.length > 0 || !atLeastOne) && total + first.size > maxBytes) break;
      if (first.data) {
        out.push(first.data);
        total += first.size;
        i++;
        continue;
      }
      // Not cached: read a contiguous run of batches of one segment in one call.
      let j = i;
      let runBytes = 0;
      while (
        j < this.entries.length &&
        this.entries[j]!.segment === first.segment &&
        !this.entries[j]!.data &&
        ((j === i && out.length === 0 && atLeastOne) || total + runBytes + this.entries[j]!.size <= maxBytes)
      ) {
        runBytes += this.entries[j]!.size;
        j++;
      }
      if (j === i) break;
      const buffer = Buffer.allocUnsafe(runBytes);
      let got = 0;
      while (got < runBytes) {
        const n = readSync(first.segment.fd, buffer, got, runBytes - got, first.position + got);
        if (n === 0) break;
        got += n;
      }
      out.push(buffer.subarray(0, got));
      total += got;
      i = j;
    }
    return out;
  }

  /** ListOffsets by timestamp: the first offset whose record timestamp is >= `timestamp`, or -1. */
  offsetForTimestamp(timestamp: number): { offset: number; timestamp: number } {
    for (const entry of this.entries) {
      if (entry.maxTimestamp >= timestamp) {
        const bytes = entry.data ?? this.read(entry.baseOffset, entry.size)[0];
        if (!bytes) throw new Error(`partition log ${this.dir}: the batch at offset ${entry.baseOffset} could not be read back`);
        return { offset: Math.max(this.logStartOffset, firstOffsetAtOrAfter(bytes, entry.baseOffset, timestamp)), timestamp: entry.maxTimestamp };
      }
    }
    return { offset: -1, timestamp: -1 };
  }

  /** Called on every append; returns the unsubscribe function. */
  onAppend(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Deletes whole segments, oldest first, while the log is over `bytes` or a
   * segment's newest record is older than `ms`. The active segment is rolled
   * first when it alone is too old, so age retention can empty a quiet log.
   */
  applyRetention(retention: { bytes?: number; ms?: number }, now = Date.now()): number {
    let deleted = 0;
    if (this.syncing > 0 || this.closed) return 0;
    const tooOld = (segment: Segment): boolean =>
      retention.ms !== undefined && segment.size > 0 && segment.maxTimestamp >= 0 && now - segment.maxTimestamp > retention.ms;
    if (tooOld(this.active)) this.roll(this.nextOffset);
    let size = this.sizeBytes;
    while (this.segments.length > 1) {
      const oldest = this.segments[0]!;
      // As Kafka: drop the oldest segment only while the rest still holds at least `bytes`.
      const overSize = retention.bytes !== undefined && size - oldest.size >= retention.bytes;
      if (!overSize && !tooOld(oldest)) break;
      this.segments.shift();
      closeSync(oldest.fd);
      unlinkSync(oldest.path);
      size -= oldest.size;
      let drop = 0;
      while (drop < this.entries.length && this.entries[drop]!.segment === oldest) {
        this.options.cache.drop(this.entries[drop]!);
        drop++;
      }
      this.entries.splice(0, drop);
      this.logStartOffset = this.segments[0]!.baseOffset;
      deleted++;
    }
    if (deleted > 0)
      this.options.logger.info(
        { topic: this.topic, partition: this.partition, segments: deleted, logStartOffset: this.logStartOffset },
        'retention deleted segments',
      );
    return deleted;
  }

  /**
   * fdatasync, off the event loop, every segment written since the last flush
   * (fsync 'interval'). Retention skips a log while this runs so no fd is closed under it.
   */
  async flushAsync(): Promise<void> {
    const dirty = this.segments.filter((segment) => segment.dirty);
    if (dirty.length === 0) return;
    this.syncing++;
    try {
      for (const segment of dirty) {
        segment.dirty = false;
        await new Promise<void>((resolve, reject) => fdatasync(segment.fd, (err) => (err ? reject(err) : resolve())));
      }
    } finally {
      this.syncing--;
    }
  }

  /** fdatasync every segment written since the last flush, before returning (fsync 'always'). */
  flush(): void {
    for (const segment of this.segments) {
      if (segment.dirty) {
        fdatasyncSync(segment.fd);
        segment.dirty = false;
      }
    }
  }

  get flushing(): boolean {
    return this.syncing > 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.listeners) listener();
    this.listeners.clear();
    for (const segment of this.segments) {
      try {
        if (segment.dirty) fdatasyncSync(segment.fd);
        closeSync(segment.fd);
      } catch {
        /* already closed */
      }
    }
    for (const entry of this.entries) this.options.cache.drop(entry);
    this.segments = [];
    this.entries = [];
  }
}

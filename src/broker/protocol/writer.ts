/**
 * Writes Kafka protocol primitives into a list of Buffers.
 *
 * Small fields go into a scratch buffer; large byte fields (record batches
 * read from the log) are appended as their own chunk, never copied, so a fetch
 * response of 50 MiB costs a handful of `writev` segments, not a 50 MiB memcpy.
 */
/** Most responses are a few dozen bytes; start small to keep per-request garbage low. */
const INITIAL_SCRATCH = 512;
const GROWN_SCRATCH = 8192;
/** Byte fields at least this big are referenced, not copied. */
const REFERENCE_THRESHOLD = 2048;

export class Writer {
  private chunks: Buffer[] = [];
  private scratch: Buffer = Buffer.allocUnsafe(INITIAL_SCRATCH);
  private position = 0;
  private scratchStart = 0;
  private flushedLength = 0;

  get length(): number {
    return this.flushedLength + (this.position - this.scratchStart);
  }

  private ensure(bytes: number): void {
    if (this.position + bytes <= this.scratch.length) return;
    this.flushScratch();
    this.scratch = Buffer.allocUnsafe(Math.max(GROWN_SCRATCH, bytes));
    this.position = 0;
    this.scratchStart = 0;
  }

  private flushScratch(): void {
    if (this.position > this.scratchStart) {
      this.chunks.push(this.scratch.subarray(this.scratchStart, this.position));
      this.flushedLength += this.position - this.scratchStart;
    }
    this.scratchStart = this.position;
  }

  int8(value: number): this {
    this.ensure(1);
    this.position = this.scratch.writeInt8(value, this.position);
    return this;
  }

  int16(value: number): this {
    this.ensure(2);
    this.position = this.scratch.writeInt16BE(value, this.position);
    return this;
  }

  int32(value: number): this {
    this.ensure(4);
    this.position = this.scratch.writeInt32BE(value, this.position);
    return this;
  }

  int64(value: number): this {
    this.ensure(8);
    this.position = this.scratch.writeBigInt64BE(BigInt(value), this.position);
    return this;
  }

  boolean(value: boolean): this {
    return this.int8(value ? 1 : 0);
  }

  uvarint(value: number): this {
    this.ensure(5);
    let v = value >>> 0;
    while (v >= 0x80) {
      this.scratch[this.position++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.scratch[this.position++] = v;
    return this;
  }

  string(value: string | null): this {
    if (value === null) return this.int16(-1);
    const length = Buffer.byteLength(value);
    this.int16(length);
    this.ensure(length);
    this.position += this.scratch.write(value, this.position, 'utf8');
    return this;
  }

  compactString(value: string | null): this {
    if (value === null) return this.uvarint(0);
    const length = Buffer.byteLength(value);
    this.uvarint(length + 1);
    this.ensure(length);
    this.position += this.scratch.write(value, this.position, 'utf8');
    return this;
  }

  bytes(value: Buffer | null): this {
    if (value === null) return this.int32(-1);
    this.int32(value.length);
    return this.raw(value);
  }

  compactBytes(value: Buffer | null): this {
    if (value === null) return this.uvarint(0);
    this.uvarint(value.length + 1);
    return this.raw(value);
  }

  /** Appends bytes as they are; big buffers are referenced, not copied. */
  raw(value: Buffer): this {
    if (value.length >= REFERENCE_THRESHOLD) {
      this.flushScratch();
      this.chunks.push(value);
      this.flushedLength += value.length;
      return this;
    }
    this.ensure(value.length);
    value.copy(this.scratch, this.position);
    this.position += value.length;
    return this;
  }

  array<T>(items: readonly T[] | null, item: (writer: Writer, value: T) => void): this {
    if (items === null) return this.int32(-1);
    this.int32(items.length);
    for (const value of items) item(this, value);
    return this;
  }

  compactArray<T>(items: readonly T[] | null, item: (writer: Writer, value: T) => void): this {
    if (items === null) return this.uvarint(0);
    this.uvarint(items.length + 1);
    for (const value of items) item(this, value);
    return this;
  }

  /** An empty TAGGED_FIELDS section. */
  emptyTaggedFields(): this {
    return this.uvarint(0);
  }

  /** The written bytes as chunks, in order. The writer must not be used afterwards. */
  finish(): Buffer[] {
    this.flushScratch();
    return this.chunks;
  }
}

/**
 * Reads Kafka protocol primitives from one request body.
 *
 * Every read is bounds-checked: a request that lies about a length (fuzz, a
 * truncated frame, a client bug) raises `ProtocolError`, which the connection
 * turns into a closed socket for that client only.
 *
 * Grammar names follow the Kafka protocol guide: INT8..INT64, VARINT (zig-zag),
 * UNSIGNED_VARINT, STRING (int16 length), COMPACT_STRING (uvarint length + 1),
 * BYTES (int32 length), COMPACT_BYTES, ARRAY (int32 count), COMPACT_ARRAY
 * (uvarint count + 1) and TAGGED_FIELDS (flexible versions only).
 */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export class Reader {
  offset: number;

  constructor(
    readonly buffer: Buffer,
    offset = 0,
  ) {
    this.offset = offset;
  }

  get remaining(): number {
    return this.buffer.length - this.offset;
  }

  private need(bytes: number, what: string): void {
    if (bytes < 0 || this.offset + bytes > this.buffer.length) {
      throw new ProtocolError(`truncated request: ${what} needs ${bytes} bytes at offset ${this.offset}, ${this.remaining} left`);
    }
  }

  int8(): number {
    this.need(1, 'INT8');
    return this.buffer.readInt8(this.offset++);
  }

  int16(): number {
    this.need(2, 'INT16');
    const value = this.buffer.readInt16BE(this.offset);
    this.offset += 2;
    return value;
  }

  int32(): number {
    this.need(4, 'INT32');
    const value = this.buffer.readInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  /** INT64 as a JS number: offsets and timestamps stay far below 2^53. */
  int64(): number {
    this.need(8, 'INT64');
    const value = Number(this.buffer.readBigInt64BE(this.offset));
    this.offset += 8;
    return value;
  }

  boolean(): boolean {
    return this.int8() !== 0;
  }

  uvarint(): number {
    let value = 0;
    let shift = 0;
    for (;;) {
      this.need(1, 'UNSIGNED_VARINT');
      const byte = this.buffer[this.offset++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) return value;
      shift += 7;
      if (shift > 28) throw new ProtocolError(`UNSIGNED_VARINT longer than 5 bytes at offset ${this.offset}`);
    }
  }

  /** Zig-zag VARINT/VARLONG (record fields); exact up to 2^53. */
  varint(): number {
    let value = 0;
    let shift = 0;
    for (;;) {
      this.need(1, 'VARINT');
      const byte = this.buffer[this.offset++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if ((byte & 0x80) === 0) break;
      shift += 7;
      if (shift > 63) throw new ProtocolError(`VARINT longer than 10 bytes at offset ${this.offset}`);
    }
    return value % 2 === 0 ? value / 2 : -(value + 1) / 2;
  }

  nullableString(): string | null {
    const length = this.int16();
    if (length < 0) return null;
    this.need(length, 'STRING');
    const value = this.buffer.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  string(): string {
    return this.nullableString() ?? '';
  }

  compactNullableString(): string | null {
    const length = this.uvarint() - 1;
    if (length < 0) return null;
    this.need(length, 'COMPACT_STRING');
    const value = this.buffer.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  compactString(): string {
    return this.compactNullableString() ?? '';
  }

  /** BYTES as a view into the request (no copy); callers that keep it must own the request buffer. */
  nullableBytes(): Buffer | null {
    const length = this.int32();
    if (length < 0) return null;
    this.need(length, 'BYTES');
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  bytes(): Buffer {
    return this.nullableBytes() ?? Buffer.alloc(0);
  }

  compactBytes(): Buffer {
    const length = this.uvarint() - 1;
    if (length < 0) return Buffer.alloc(0);
    this.need(length, 'COMPACT_BYTES');
    const value = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  /** ARRAY; a null array (-1) reads as null. The count is checked against the bytes left so a lie cannot allocate gigabytes. */
  nullableArray<T>(item: (reader: Reader) => T): T[] | null {
    const count = this.int32();
    if (count < 0) return null;
    return this.items(count, item);
  }

  array<T>(item: (reader: Reader) => T): T[] {
    return this.nullableArray(item) ?? [];
  }

  compactNullableArray<T>(item: (reader: Reader) => T): T[] | null {
    const count = this.uvarint() - 1;
    if (count < 0) return null;
    return this.items(count, item);
  }

  compactArray<T>(item: (reader: Reader) => T): T[] {
    return this.compactNullableArray(item) ?? [];
  }

  private items<T>(count: number, item: (reader: Reader) => T): T[] {
    if (count > this.remaining) throw new ProtocolError(`array of ${count} items cannot fit in the ${this.remaining} bytes left`);
    // Grown item by item, never preallocated from the count: a lying count would cost 8 bytes per claimed item at once.
    const items: T[] = [];
    for (let i = 0; i < count; i++) items.push(item(this));
    return items;
  }

  /** TAGGED_FIELDS: we know no tags, so every one is skipped. */
  skipTaggedFields(): void {
    const count = this.uvarint();
    for (let i = 0; i < count; i++) {
      this.uvarint();
      const size = this.uvarint();
      this.need(size, 'tagged field');
      this.offset += size;
    }
  }
}

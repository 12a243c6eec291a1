/**
 * Record batch v2 (magic 2), the unit the broker stores and serves. The broker
 * keeps each batch as the bytes the producer sent and only patches the fields
 * a broker owns: baseOffset and partitionLeaderEpoch (both outside the CRC).
 *
 * RecordBatch =>
 *   baseOffset           INT64    @0   (assigned by the broker)
 *   batchLength          INT32    @8   (bytes after this field)
 *   partitionLeaderEpoch INT32    @12  (set by the broker; 0 here)
 *   magic                INT8     @16  (must be 2)
 *   crc                  UINT32   @17  (CRC-32C of everything from attributes to the end)
 *   attributes           INT16    @21  (bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control)
 *   lastOffsetDelta      INT32    @23
 *   baseTimestamp        INT64    @27
 *   maxTimestamp         INT64    @35
 *   producerId           INT64    @43
 *   producerEpoch        INT16    @51
 *   baseSequence         INT32    @53
 *   recordCount          INT32    @57
 *   records              @61      (Record => length:VARINT attributes:INT8 timestampDelta:VARLONG offsetDelta:VARINT ...)
 */
import { crc32c } from './crc32c.js';
import { Reader } from './reader.js';

export const BATCH_HEADER_BYTES = 61;
/** baseOffset + batchLength: the prefix not counted in batchLength. */
export const BATCH_LOG_OVERHEAD = 12;

export interface BatchInfo {
  /** The batch bytes (a view into the request or the log). */
  bytes: Buffer;
  lastOffsetDelta: number;
  recordCount: number;
  baseTimestamp: number;
  maxTimestamp: number;
  producerId: number;
  producerEpoch: number;
  baseSequence: number;
  attributes: number;
}

export class InvalidBatchError extends Error {
  constructor(
    message: string,
    readonly kind: 'corrupt' | 'unsupported',
  ) {
    super(message);
    this.name = 'InvalidBatchError';
  }
}

/** Reads the header fields of the batch that starts at `bytes[0]` (no CRC check). */
export function readBatchInfo(bytes: Buffer): BatchInfo {
  return {
    bytes,
    attributes: bytes.readInt16BE(21),
    lastOffsetDelta: bytes.readInt32BE(23),
    baseTimestamp: Number(bytes.readBigInt64BE(27)),
    maxTimestamp: Number(bytes.readBigInt64BE(35)),
    producerId: Number(bytes.readBigInt64BE(43)),
    producerEpoch: bytes.readInt16BE(51),
    baseSequence: bytes.readInt32BE(53),
    recordCount: bytes.readInt32BE(57),
  };
}

/**
 * Splits a Produce request's `records` field into batches and validates each:
 * magic 2, lengths that add up, and the CRC-32C. Older message formats (magic
 * 0/1) are refused: every client this broker is built for speaks v2.
 */
export function splitProducedBatches(records: Buffer): BatchInfo[] {
  const batches: BatchInfo[] = [];
  let position = 0;
  while (position < records.length) {
    if (records.length - position < BATCH_HEADER_BYTES) {
      throw new InvalidBatchError(`record batch header truncated: ${records.length - position} bytes left, a v2 header has ${BATCH_HEADER_BYTES}`, 'corrupt');
    }
    const magic = records.readInt8(position + 16);
    if (magic !== 2)
      throw new InvalidBatchError(`record batch magic ${magic} is not supported; produce with message format v2 (Kafka >= 0.11 clients)`, 'unsupported');
    const batchLength = records.readInt32BE(position + 8);
    const total = batchLength + BATCH_LOG_OVERHEAD;
    if (batchLength < BATCH_HEADER_BYTES - BATCH_LOG_OVERHEAD || position + total > records.length) {
      throw new InvalidBatchError(`record batch length ${batchLength} does not fit the ${records.length - position} bytes sent`, 'corrupt');
    }
    const bytes = records.subarray(position, position + total);
    const expected = bytes.readUInt32BE(17);
    const actual = crc32c(bytes, 21, bytes.length);
    if (expected !== actual) throw new InvalidBatchError(`record batch CRC-32C mismatch: header says ${expected}, bytes give ${actual}`, 'corrupt');
    const info = readBatchInfo(bytes);
    if (info.recordCount < 0 || info.lastOffsetDelta < 0 || info.lastOffsetDelta < info.recordCount - 1) {
      throw new InvalidBatchError(`record batch has recordCount ${info.recordCount} and lastOffsetDelta ${info.lastOffsetDelta}`, 'corrupt');
    }
    batches.push(info);
    position += total;
  }
  return batches;
}

/** Stamps the broker-owned fields in place; neither is covered by the CRC. */
export function stampBatch(bytes: Buffer, baseOffset: number, leaderEpoch = 0): void {
  bytes.writeBigInt64BE(BigInt(baseOffset), 0);
  bytes.writeInt32BE(leaderEpoch, 12);
}

/**
 * The offset of the first record with timestamp >= `target` inside an
 * uncompressed batch, or the batch base offset when the records are compressed
 * (reading them would mean decompressing; the batch is the best bound we give).
 */
export function firstOffsetAtOrAfter(bytes: Buffer, baseOffset: number, target: number): number {
  const info = readBatchInfo(bytes);
  if ((info.attributes & 0x07) !== 0) return baseOffset;
  const reader = new Reader(bytes, BATCH_HEADER_BYTES);
  try {
    for (let i = 0; i < info.recordCount; i++) {
      const length = reader.varint();
      const end = reader.offset + length;
      reader.int8();
      const timestampDelta = reader.varint();
      const offsetDelta = reader.varint();
      if (info.baseTimestamp + timestampDelta >= target) return baseOffset + offsetDelta;
      reader.offset = end;
    }
  } catch {
    return baseOffset;
  }
  return baseOffset + info.lastOffsetDelta;
}

/**
 * Produce (key 0), versions 3-7 (record batch v2 only).
 *
 * Produce Request (Version: 3-7) => transactional_id:NULLABLE_STRING acks:INT16 timeout_ms:INT32
 *   [topic_data] => name:STRING [partition_data] => index:INT32 records:RECORDS
 *
 * Produce Response (Version: 3-7) =>
 *   [responses] => name:STRING [partition_responses] => index:INT32 error_code:INT16
 *     base_offset:INT64 log_append_time_ms:INT64 log_start_offset:INT64 (v5+)
 *   throttle_time_ms:INT32
 *
 * Each batch is validated (magic 2, lengths, CRC-32C → CORRUPT_MESSAGE) and
 * stored as received with its base offset stamped. acks=0 gets no response;
 * acks=1 and acks=-1 (all) mean the same on one node: written before answering,
 * and fsync'd first when the broker runs with fsync 'always'.
 */
import { ErrorCode } from '../errors.js';
import { InvalidBatchError, splitProducedBatches } from '../protocol/record-batch.js';
import type { ApiHandler } from './types.js';

interface PartitionResult {
  index: number;
  errorCode: number;
  baseOffset: number;
  logStartOffset: number;
}

export const produce: ApiHandler = {
  key: 0,
  name: 'Produce',
  minVersion: 3,
  maxVersion: 7,
  handle({ broker, version }, request, response) {
    const transactionalId = request.nullableString();
    const acks = request.int16();
    request.int32();
    const topicData = request.array((r) => ({
      name: r.string(),
      partitions: r.array((p) => ({ index: p.int32(), records: p.nullableBytes() })),
    }));
    let flush = false;
    const results = topicData.map(({ name, partitions }) => ({
      name,
      partitions: partitions.map(({ index, records }): PartitionResult => {
        const fail = (errorCode: number, why: string): PartitionResult => {
          broker.logger.warn({ topic: name, partition: index, errorCode }, `produce refused: ${why}`);
          broker.metrics.produceErrors.inc({ error_code: String(errorCode) });
          return { index, errorCode, baseOffset: -1, logStartOffset: -1 };
        };
        if (acks !== 0 && acks !== 1 && acks !== -1) return fail(ErrorCode.INVALID_REQUIRED_ACKS, `acks must be 0, 1 or -1, got ${acks}`);
        if (transactionalId !== null) return fail(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, 'transactions are not supported by this broker');
        const log = broker.topics.partition(name, index);
        if (!log) return fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `no partition ${name}/${index}`);
        if (!records || records.length === 0) return fail(ErrorCode.CORRUPT_MESSAGE, 'empty records');
        let batches;
        try {
          batches = splitProducedBatches(records);
        } catch (err) {
          if (err instanceof InvalidBatchError)
            return fail(err.kind === 'corrupt' ? ErrorCode.CORRUPT_MESSAGE : ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, err.message);
          throw err;
        }
        for (const batch of batches) {
          if (batch.bytes.length > broker.options.messageMaxBytes) {
            return fail(
              ErrorCode.MESSAGE_TOO_LARGE,
              `batch of ${batch.bytes.length} bytes is over messageMaxBytes ${broker.options.messageMaxBytes}; send fewer or smaller records per request, or raise messageMaxBytes`,
            );
          }
          if ((batch.attributes & 0x30) !== 0) return fail(ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, 'transactional and control batches are not supported');
        }
        const result = log.append(batches);
        if (result.errorCode !== ErrorCode.NONE) return fail(result.errorCode, result.message ?? 'append refused');
        flush = true;
        if (result.appendedBytes) broker.metrics.producedBytes.inc(result.appendedBytes);
        if (result.appendedRecords) broker.metrics.producedRecords.inc(result.appendedRecords);
        return { index, errorCode: ErrorCode.NONE, baseOffset: result.baseOffset, logStartOffset: log.logStartOffset };
      }),
    }));
    if (flush && broker.options.fsync === 'always') broker.topics.flush();
    if (acks === 0) return false;
    response.array(results, (w, topic) => {
      w.string(topic.name).array(topic.partitions, (pw, p) => {
        pw.int32(p.index).int16(p.errorCode).int64(p.baseOffset).int64(-1);
        if (version >= 5) pw.int64(p.logStartOffset);
      });
    });
    response.int32(0);
  },
};

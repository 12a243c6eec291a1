/**
 * ListOffsets (key 2), versions 0-3.
 *
 * ListOffsets Request (Version: 0) => replica_id:INT32 [topics] => name:STRING
 *   [partitions] => partition_index:INT32 timestamp:INT64 max_num_offsets:INT32
 * ListOffsets Request (Version: 1) => replica_id [topics] => name [partitions] => partition_index timestamp
 * ListOffsets Request (Version: 2-3) => replica_id isolation_level:INT8 [topics] (as v1)
 *
 * ListOffsets Response (Version: 0) => [topics] => name [partitions] => partition_index error_code:INT16 [old_style_offsets:INT64]
 * ListOffsets Response (Version: 1) => [topics] => name [partitions] => partition_index error_code timestamp:INT64 offset:INT64
 * ListOffsets Response (Version: 2-3) => throttle_time_ms:INT32 [topics] (as v1)
 *
 * timestamp -1 = latest (the high watermark), -2 = earliest (log start);
 * otherwise the first offset whose record timestamp is >= timestamp, or -1.
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

const LATEST = -1;
const EARLIEST = -2;

export const listOffsets: ApiHandler = {
  key: 2,
  name: 'ListOffsets',
  minVersion: 0,
  maxVersion: 3,
  handle({ broker, version }, request, response) {
    request.int32();
    if (version >= 2) request.int8();
    const topics = request.array((r) => ({
      name: r.string(),
      partitions: r.array((p) => {
        const partition = p.int32();
        const timestamp = p.int64();
        if (version === 0) p.int32();
        return { partition, timestamp };
      }),
    }));
    if (version >= 2) response.int32(0);
    response.array(topics, (w, t) => {
      w.string(t.name).array(t.partitions, (pw, p) => {
        const log = broker.topics.partition(t.name, p.partition);
        let errorCode: number = ErrorCode.NONE;
        let offset = -1;
        let timestamp = -1;
        if (!log) errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        else if (p.timestamp === LATEST) offset = log.nextOffset;
        else if (p.timestamp === EARLIEST) offset = log.logStartOffset;
        else ({ offset, timestamp } = log.offsetForTimestamp(p.timestamp));
        pw.int32(p.partition).int16(errorCode);
        if (version === 0)
          pw.array(offset >= 0 ? [offset] : [], (x, o) => {
            x.int64(o);
          });
        else pw.int64(timestamp).int64(offset);
      });
    });
  },
};

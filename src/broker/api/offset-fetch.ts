/**
 * OffsetFetch (key 9), versions 1-5.
 *
 * OffsetFetch Request (Version: 1-5) => group_id:STRING [topics] (null = every committed topic, v2+)
 *   => name:STRING [partition_indexes:INT32]
 * OffsetFetch Response (Version: 1-5) => throttle_time_ms:INT32 (v3+)
 *   [topics] => name:STRING [partitions] => partition_index:INT32 committed_offset:INT64
 *     committed_leader_epoch:INT32 (v5+) metadata:NULLABLE_STRING error_code:INT16
 *   error_code:INT16 (v2+)
 *
 * A partition without a commit answers offset -1, as Kafka does.
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

export const offsetFetch: ApiHandler = {
  key: 9,
  name: 'OffsetFetch',
  minVersion: 1,
  maxVersion: 5,
  handle({ broker, version }, request, response) {
    const groupId = request.string();
    const requested = request.nullableArray((r) => ({ name: r.string(), partitions: r.array((p) => p.int32()) }));
    const topics = requested ?? [...broker.offsets.topicsOf(groupId)].map(([name, partitions]) => ({ name, partitions: [...partitions.keys()] }));
    if (version >= 3) response.int32(0);
    response.array(topics, (w, t) => {
      w.string(t.name).array(t.partitions, (pw, partition) => {
        const committed = broker.offsets.get(groupId, t.name, partition);
        pw.int32(partition).int64(committed?.offset ?? -1);
        if (version >= 5) pw.int32(committed?.leaderEpoch ?? -1);
        pw.string(committed?.metadata ?? '').int16(ErrorCode.NONE);
      });
    });
    if (version >= 2) response.int16(ErrorCode.NONE);
  },
};

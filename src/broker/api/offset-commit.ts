/**
 * OffsetCommit (key 8), versions 2-7.
 *
 * OffsetCommit Request (Version: 2-7) => group_id:STRING generation_id:INT32 member_id:STRING
 *   retention_time_ms:INT64 (v2-4) group_instance_id:NULLABLE_STRING (v7+)
 *   [topics] => name:STRING [partitions] => partition_index:INT32 committed_offset:INT64
 *     committed_leader_epoch:INT32 (v6+) committed_metadata:NULLABLE_STRING
 * OffsetCommit Response (Version: 2-7) => throttle_time_ms:INT32 (v3+)
 *   [topics] => name:STRING [partitions] => partition_index:INT32 error_code:INT16
 *
 * The commit is written to the offsets file before it is answered.
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

export const offsetCommit: ApiHandler = {
  key: 8,
  name: 'OffsetCommit',
  minVersion: 2,
  maxVersion: 7,
  handle({ broker, version }, request, response) {
    const groupId = request.string();
    const generationId = request.int32();
    const memberId = request.string();
    if (version <= 4) request.int64();
    if (version >= 7) request.nullableString();
    const topics = request.array((r) => ({
      name: r.string(),
      partitions: r.array((p) => {
        const partition = p.int32();
        const offset = p.int64();
        const leaderEpoch = version >= 6 ? p.int32() : -1;
        return { partition, offset, leaderEpoch, metadata: p.nullableString() ?? '' };
      }),
    }));
    const groupError = groupId ? broker.groups.validateCommit(groupId, generationId, memberId) : ErrorCode.INVALID_GROUP_ID;
    const commits: Array<{ topic: string; partition: number; offset: number; leaderEpoch: number; metadata: string }> = [];
    const results = topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => {
        let errorCode = groupError;
        if (errorCode === ErrorCode.NONE && !broker.topics.partition(t.name, p.partition)) errorCode = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION;
        if (errorCode === ErrorCode.NONE) commits.push({ topic: t.name, ...p });
        return { partition: p.partition, errorCode };
      }),
    }));
    broker.offsets.commit(groupId, commits, broker.options.fsync === 'always');
    if (version >= 3) response.int32(0);
    response.array(results, (w, t) => {
      w.string(t.name).array(t.partitions, (pw, p) => {
        pw.int32(p.partition).int16(p.errorCode);
      });
    });
  },
};

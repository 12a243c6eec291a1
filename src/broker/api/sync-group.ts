/**
 * SyncGroup (key 14), versions 0-3.
 *
 * SyncGroup Request (Version: 0-3) => group_id:STRING generation_id:INT32 member_id:STRING
 *   group_instance_id:NULLABLE_STRING (v3+) [assignments] => member_id:STRING assignment:BYTES
 * SyncGroup Response (Version: 0-3) => throttle_time_ms:INT32 (v1+) error_code:INT16 assignment:BYTES
 *
 * Followers wait until the leader's SyncGroup brings the assignments.
 */
import type { ApiHandler } from './types.js';

export const syncGroup: ApiHandler = {
  key: 14,
  name: 'SyncGroup',
  minVersion: 0,
  maxVersion: 3,
  async handle({ broker, version }, request, response) {
    const groupId = request.string();
    const generationId = request.int32();
    const memberId = request.string();
    if (version >= 3) request.nullableString();
    const assignments = request.array((r) => ({ memberId: r.string(), assignment: Buffer.from(r.bytes()) }));
    const result = await broker.groups.sync(groupId, generationId, memberId, assignments);
    if (version >= 1) response.int32(0);
    response.int16(result.errorCode).bytes(result.assignment);
  },
};

/**
 * Heartbeat (key 12), versions 0-3.
 *
 * Heartbeat Request (Version: 0-3) => group_id:STRING generation_id:INT32 member_id:STRING group_instance_id:NULLABLE_STRING (v3+)
 * Heartbeat Response (Version: 0-3) => throttle_time_ms:INT32 (v1+) error_code:INT16
 *
 * REBALANCE_IN_PROGRESS tells a member to rejoin.
 */
import type { ApiHandler } from './types.js';

export const heartbeat: ApiHandler = {
  key: 12,
  name: 'Heartbeat',
  minVersion: 0,
  maxVersion: 3,
  handle({ broker, version }, request, response) {
    const groupId = request.string();
    const generationId = request.int32();
    const memberId = request.string();
    if (version >= 3) request.nullableString();
    if (version >= 1) response.int32(0);
    response.int16(broker.groups.heartbeat(groupId, generationId, memberId));
  },
};

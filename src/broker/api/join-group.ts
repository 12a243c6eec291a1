/**
 * JoinGroup (key 11), versions 0-5.
 *
 * JoinGroup Request (Version: 0-5) => group_id:STRING session_timeout_ms:INT32
 *   rebalance_timeout_ms:INT32 (v1+) member_id:STRING group_instance_id:NULLABLE_STRING (v5+)
 *   protocol_type:STRING [protocols] => name:STRING metadata:BYTES
 *
 * JoinGroup Response (Version: 0-5) => throttle_time_ms:INT32 (v2+) error_code:INT16 generation_id:INT32
 *   protocol_name:STRING leader:STRING member_id:STRING
 *   [members] => member_id:STRING group_instance_id:NULLABLE_STRING (v5+) metadata:BYTES
 *
 * The response waits until the rebalance's join phase ends (every member has
 * rejoined, or the rebalance timeout passes). A new member gets its id at once
 * (we never answer MEMBER_ID_REQUIRED; clients accept either).
 */
import type { ApiHandler } from './types.js';

export const joinGroup: ApiHandler = {
  key: 11,
  name: 'JoinGroup',
  minVersion: 0,
  maxVersion: 5,
  async handle({ broker, version, clientId, clientHost }, request, response) {
    const groupId = request.string();
    const sessionTimeoutMs = request.int32();
    const rebalanceTimeoutMs = version >= 1 ? request.int32() : sessionTimeoutMs;
    const memberId = request.string();
    const groupInstanceId = version >= 5 ? request.nullableString() : null;
    const protocolType = request.string();
    // Metadata is copied: the request buffer is not ours to keep for the group's lifetime.
    const protocols = request.array((r) => ({ name: r.string(), metadata: Buffer.from(r.bytes()) }));
    const result = await broker.groups.join({
      groupId,
      sessionTimeoutMs,
      rebalanceTimeoutMs,
      memberId,
      groupInstanceId,
      protocolType,
      protocols,
      clientId,
      clientHost,
    });
    if (version >= 2) response.int32(0);
    response.int16(result.errorCode).int32(result.generationId).string(result.protocolName).string(result.leader).string(result.memberId);
    response.array(result.members, (w, m) => {
      w.string(m.memberId);
      if (version >= 5) w.string(m.groupInstanceId);
      w.bytes(m.metadata);
    });
  },
};

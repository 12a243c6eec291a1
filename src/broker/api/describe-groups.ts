/**
 * DescribeGroups (key 15), versions 0-2.
 *
 * DescribeGroups Request (Version: 0-2) => [groups:STRING]
 * DescribeGroups Response (Version: 0-2) => throttle_time_ms:INT32 (v1+)
 *   [groups] => error_code:INT16 group_id:STRING group_state:STRING protocol_type:STRING protocol_data:STRING
 *     [members] => member_id:STRING client_id:STRING client_host:STRING member_metadata:BYTES member_assignment:BYTES
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

export const describeGroups: ApiHandler = {
  key: 15,
  name: 'DescribeGroups',
  minVersion: 0,
  maxVersion: 2,
  handle({ broker, version }, request, response) {
    const groupIds = request.array((r) => r.string());
    if (version >= 1) response.int32(0);
    response.array(groupIds, (w, groupId) => {
      const group = broker.groups.describe(groupId);
      w.int16(ErrorCode.NONE).string(groupId).string(group.state).string(group.protocolType).string(group.protocolName);
      w.array(group.members, (mw, m) => {
        mw.string(m.memberId).string(m.clientId).string(m.clientHost).bytes(m.metadata).bytes(m.assignment);
      });
    });
  },
};

/**
 * ListGroups (key 16), versions 0-2.
 *
 * ListGroups Request (Version: 0-2) => (empty)
 * ListGroups Response (Version: 0-2) => throttle_time_ms:INT32 (v1+) error_code:INT16 [groups] => group_id:STRING protocol_type:STRING
 *
 * Groups that only have committed offsets (no live members) are listed too, with protocol type "".
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

export const listGroups: ApiHandler = {
  key: 16,
  name: 'ListGroups',
  minVersion: 0,
  maxVersion: 2,
  handle({ broker, version }, _request, response) {
    const groups = new Map<string, string>();
    for (const groupId of broker.offsets.groupIds()) groups.set(groupId, '');
    for (const group of broker.groups.groups.values()) groups.set(group.groupId, group.protocolType);
    if (version >= 1) response.int32(0);
    response.int16(ErrorCode.NONE).array([...groups], (w, [groupId, protocolType]) => {
      w.string(groupId).string(protocolType);
    });
  },
};

/**
 * LeaveGroup (key 13), versions 0-3.
 *
 * LeaveGroup Request (Version: 0-2) => group_id:STRING member_id:STRING
 * LeaveGroup Request (Version: 3) => group_id:STRING [members] => member_id:STRING group_instance_id:NULLABLE_STRING
 * LeaveGroup Response (Version: 0) => error_code:INT16
 * LeaveGroup Response (Version: 1-2) => throttle_time_ms:INT32 error_code:INT16
 * LeaveGroup Response (Version: 3) => throttle_time_ms error_code [members] => member_id group_instance_id error_code
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

export const leaveGroup: ApiHandler = {
  key: 13,
  name: 'LeaveGroup',
  minVersion: 0,
  maxVersion: 3,
  handle({ broker, version }, request, response) {
    const groupId = request.string();
    const members =
      version >= 3
        ? request.array((r) => ({ memberId: r.string(), groupInstanceId: r.nullableString() }))
        : [{ memberId: request.string(), groupInstanceId: null }];
    const results = broker.groups.leave(
      groupId,
      members.map((m) => m.memberId),
    );
    if (version >= 1) response.int32(0);
    if (version < 3) {
      response.int16(results[0]!.errorCode);
      return;
    }
    response.int16(ErrorCode.NONE).array(results, (w, r) => {
      w.string(r.memberId).string(null).int16(r.errorCode);
    });
  },
};

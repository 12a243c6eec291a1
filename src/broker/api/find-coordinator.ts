/**
 * FindCoordinator (key 10), versions 0-2. This node coordinates every group.
 *
 * FindCoordinator Request (Version: 0) => key:STRING
 * FindCoordinator Request (Version: 1-2) => key:STRING key_type:INT8 (0 group, 1 transaction)
 * FindCoordinator Response (Version: 0) => error_code:INT16 node_id:INT32 host:STRING port:INT32
 * FindCoordinator Response (Version: 1-2) => throttle_time_ms:INT32 error_code error_message:NULLABLE_STRING node_id host port
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

export const findCoordinator: ApiHandler = {
  key: 10,
  name: 'FindCoordinator',
  minVersion: 0,
  maxVersion: 2,
  handle({ broker, version }, request, response) {
    request.string();
    const keyType = version >= 1 ? request.int8() : 0;
    const supported = keyType === 0;
    if (version >= 1) response.int32(0);
    response.int16(supported ? ErrorCode.NONE : ErrorCode.COORDINATOR_NOT_AVAILABLE);
    if (version >= 1) response.string(supported ? null : 'transactions are not supported by this broker');
    response
      .int32(supported ? broker.nodeId : -1)
      .string(supported ? broker.host : '')
      .int32(supported ? broker.port : -1);
  },
};

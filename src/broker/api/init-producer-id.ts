/**
 * InitProducerId (key 22), versions 0-1: ids for idempotent producers.
 *
 * InitProducerId Request (Version: 0-1) => transactional_id:NULLABLE_STRING transaction_timeout_ms:INT32
 * InitProducerId Response (Version: 0-1) => throttle_time_ms:INT32 error_code:INT16 producer_id:INT64 producer_epoch:INT16
 *
 * Transactions are not implemented, so a transactional id is refused.
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

export const initProducerId: ApiHandler = {
  key: 22,
  name: 'InitProducerId',
  minVersion: 0,
  maxVersion: 1,
  handle({ broker }, request, response) {
    const transactionalId = request.nullableString();
    request.int32();
    if (transactionalId !== null) {
      broker.logger.warn({ transactionalId }, 'InitProducerId refused: transactions are not supported by this broker');
      response.int32(0).int16(ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED).int64(-1).int16(-1);
      return;
    }
    response.int32(0).int16(ErrorCode.NONE).int64(broker.allocateProducerId()).int16(0);
  },
};

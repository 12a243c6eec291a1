/**
 * DeleteTopics (key 20), versions 0-1.
 *
 * DeleteTopics Request (Version: 0-1) => [topic_names:STRING] timeout_ms:INT32
 * DeleteTopics Response (Version: 0) => [responses] => name:STRING error_code:INT16
 * DeleteTopics Response (Version: 1) => throttle_time_ms:INT32 [responses]
 */
import { ErrorCode } from '../errors.js';
import type { ApiHandler } from './types.js';

export const deleteTopics: ApiHandler = {
  key: 20,
  name: 'DeleteTopics',
  minVersion: 0,
  maxVersion: 1,
  async handle({ broker, version }, request, response) {
    const names = request.array((r) => r.string());
    request.int32();
    const results: Array<[string, boolean]> = [];
    for (const name of names) results.push([name, await broker.topics.delete(name)]);
    if (version >= 1) response.int32(0);
    response.array(results, (w, [name, deleted]) => {
      w.string(name).int16(deleted ? ErrorCode.NONE : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    });
  },
};

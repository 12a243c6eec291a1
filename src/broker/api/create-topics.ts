/**
 * CreateTopics (key 19), versions 0-3.
 *
 * CreateTopics Request (Version: 0-3) =>
 *   [topics] => name:STRING num_partitions:INT32 replication_factor:INT16
 *     [assignments] => partition_index:INT32 [broker_ids:INT32]
 *     [configs] => name:STRING value:NULLABLE_STRING
 *   timeout_ms:INT32 validate_only:BOOLEAN (v1+)
 *
 * CreateTopics Response (Version: 0) => [topics] => name:STRING error_code:INT16
 * CreateTopics Response (Version: 1) => [topics] => name error_code error_message:NULLABLE_STRING
 * CreateTopics Response (Version: 2-3) => throttle_time_ms:INT32 [topics] (as v1)
 *
 * Honoured configs: retention.bytes, retention.ms. cleanup.policy=compact is
 * refused (no compaction here); other configs are accepted and ignored.
 */
import { ErrorCode } from '../errors.js';
import type { RetentionConfig } from '../log/topic-store.js';
import type { ApiHandler } from './types.js';

export const createTopics: ApiHandler = {
  key: 19,
  name: 'CreateTopics',
  minVersion: 0,
  maxVersion: 3,
  handle({ broker, version }, request, response) {
    const topics = request.array((r) => ({
      name: r.string(),
      numPartitions: r.int32(),
      replicationFactor: r.int16(),
      assignments: r.array((a) => ({ partition: a.int32(), brokers: a.array((b) => b.int32()) })),
      configs: r.array((c) => ({ name: c.string(), value: c.nullableString() })),
    }));
    request.int32();
    const validateOnly = version >= 1 ? request.boolean() : false;
    const results = topics.map((t): { name: string; errorCode: number; message: string | null } => {
      const fail = (errorCode: number, message: string): { name: string; errorCode: number; message: string } => ({ name: t.name, errorCode, message });
      if (t.replicationFactor !== -1 && t.replicationFactor !== 1)
        return fail(
          ErrorCode.INVALID_REPLICATION_FACTOR,
          `replication factor ${t.replicationFactor} needs more brokers; this single-node broker accepts 1 (or -1)`,
        );
      const partitions = t.assignments.length > 0 ? t.assignments.length : t.numPartitions === -1 ? broker.options.defaultPartitions : t.numPartitions;
      const retention: RetentionConfig = {};
      for (const c of t.configs) {
        const value = c.value === null ? NaN : Number(c.value);
        if (c.name === 'retention.bytes' || c.name === 'retention.ms') {
          if (!Number.isFinite(value)) return fail(ErrorCode.INVALID_CONFIG, `${c.name} must be a number, got ${JSON.stringify(c.value)}`);
          // -1 means unlimited in Kafka.
          if (value >= 0) retention[c.name === 'retention.bytes' ? 'bytes' : 'ms'] = value;
        }
        if (c.name === 'cleanup.policy' && c.value !== 'delete')
          return fail(ErrorCode.INVALID_CONFIG, `cleanup.policy ${JSON.stringify(c.value)} is not supported; this broker only deletes by retention`);
      }
      if (validateOnly) {
        if (broker.topics.get(t.name)) return fail(ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${t.name} already exists`);
        return { name: t.name, errorCode: ErrorCode.NONE, message: null };
      }
      const created = broker.createTopic(t.name, partitions, retention);
      return { name: t.name, errorCode: created.errorCode, message: created.message };
    });
    if (version >= 2) response.int32(0);
    response.array(results, (w, r) => {
      w.string(r.name).int16(r.errorCode);
      if (version >= 1) w.string(r.message);
    });
  },
};

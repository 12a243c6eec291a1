/**
 * Metadata (key 3), versions 0-6.
 *
 * Metadata Request (Version: 0) => [topics:STRING]                       (empty = all topics)
 * Metadata Request (Version: 1-3) => [topics:STRING] (nullable; null = all)
 * Metadata Request (Version: 4-6) => [topics] allow_auto_topic_creation:BOOLEAN
 *
 * Metadata Response (Version: 6) => throttle_time_ms:INT32 (v3+)
 *   [brokers] => node_id:INT32 host:STRING port:INT32 rack:NULLABLE_STRING (v1+)
 *   cluster_id:NULLABLE_STRING (v2+) controller_id:INT32 (v1+)
 *   [topics] => error_code:INT16 name:STRING is_internal:BOOLEAN (v1+)
 *     [partitions] => error_code:INT16 partition_index:INT32 leader_id:INT32
 *       [replica_nodes:INT32] [isr_nodes:INT32] [offline_replicas:INT32] (v5+)
 *
 * Topics named in the request are auto-created (v0-3 always, v4+ when the
 * client allows it) if the broker's autoCreateTopics is on.
 */
import { ErrorCode } from '../errors.js';
import type { Topic } from '../log/topic-store.js';
import type { ApiHandler } from './types.js';

export const metadata: ApiHandler = {
  key: 3,
  name: 'Metadata',
  minVersion: 0,
  maxVersion: 6,
  handle({ broker, version }, request, response) {
    const names = request.nullableArray((r) => r.string());
    const allowAutoCreate = version >= 4 ? request.boolean() : true;
    const all = names === null || (version === 0 && names.length === 0);
    const topics: Array<{ name: string; errorCode: number; topic?: Topic }> = all
      ? [...broker.topics.topics.values()].map((topic) => ({ name: topic.name, errorCode: ErrorCode.NONE, topic }))
      : names.map((name) => ({ name, ...broker.topicForMetadata(name, allowAutoCreate) }));

    if (version >= 3) response.int32(0);
    response.array([broker.nodeId], (w, nodeId) => {
      w.int32(nodeId).string(broker.host).int32(broker.port);
      if (version >= 1) w.string(null);
    });
    if (version >= 2) response.string(broker.clusterId);
    if (version >= 1) response.int32(broker.nodeId);
    response.array(topics, (w, t) => {
      w.int16(t.errorCode).string(t.name);
      if (version >= 1) w.boolean(false);
      w.array(t.topic?.partitions ?? [], (pw, log) => {
        pw.int16(ErrorCode.NONE).int32(log.partition).int32(broker.nodeId);
        pw.array([broker.nodeId], (x, id) => {
          x.int32(id);
        });
        pw.array([broker.nodeId], (x, id) => {
          x.int32(id);
        });
        if (version >= 5) pw.array([], () => {});
      });
    });
  },
};

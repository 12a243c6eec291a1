/**
 * Fetch (key 1), versions 4-11. Sessionless: every request is a full fetch and
 * the response carries session_id 0, which KIP-227 clients read as "no session".
 *
 * Fetch Request (Version: 4-11) => replica_id:INT32 max_wait_ms:INT32 min_bytes:INT32 max_bytes:INT32
 *   isolation_level:INT8 session_id:INT32 (v7+) session_epoch:INT32 (v7+)
 *   [topics] => topic:STRING [partitions] => partition:INT32 current_leader_epoch:INT32 (v9+)
 *     fetch_offset:INT64 log_start_offset:INT64 (v5+) partition_max_bytes:INT32
 *   [forgotten_topics_data] (v7+) => topic:STRING [partitions:INT32]
 *   rack_id:STRING (v11+)
 *
 * Fetch Response (Version: 4-11) => throttle_time_ms:INT32 error_code:INT16 (v7+) session_id:INT32 (v7+)
 *   [responses] => topic:STRING [partitions] => partition_index:INT32 error_code:INT16 high_watermark:INT64
 *     last_stable_offset:INT64 log_start_offset:INT64 (v5+) [aborted_transactions] (nullable)
 *     preferred_read_replica:INT32 (v11+) records:RECORDS
 *
 * Long polling: if fewer than min_bytes are ready, the response waits up to
 * max_wait_ms for an append to any requested partition. A fetch naming no
 * partition (empty or null topic array, or topics with no partitions) is
 * answered at once, as Kafka does: there is nothing to wait for. max_bytes and
 * partition_max_bytes bound the answer, except that the first batch is always
 * sent whole (KIP-74), so an oversized record never stalls a consumer.
 */
import { ErrorCode } from '../errors.js';
import type { PartitionLog } from '../log/partition-log.js';
import type { ApiHandler } from './types.js';

interface PartitionRequest {
  partition: number;
  fetchOffset: number;
  maxBytes: number;
}
interface PartitionAnswer {
  partition: number;
  errorCode: number;
  log?: PartitionLog;
  records: Buffer[];
  bytes: number;
}

export const fetch: ApiHandler = {
  key: 1,
  name: 'Fetch',
  minVersion: 4,
  maxVersion: 11,
  async handle({ broker, version, signal }, request, response) {
    request.int32();
    const maxWaitMs = request.int32();
    const minBytes = request.int32();
    const maxBytes = request.int32();
    request.int8();
    if (version >= 7) {
      request.int32();
      request.int32();
    }
    const topics = request.array((r) => ({
      topic: r.string(),
      partitions: r.array((p): PartitionRequest => {
        const partition = p.int32();
        if (version >= 9) p.int32();
        const fetchOffset = p.int64();
        if (version >= 5) p.int64();
        return { partition, fetchOffset, maxBytes: p.int32() };
      }),
    }));
    // forgotten_topics_data and rack_id only matter to fetch sessions and follower fetching.

    const collect = (): { answers: Array<{ topic: string; partitions: PartitionAnswer[] }>; total: number; errors: boolean } => {
      let total = 0;
      let errors = false;
      const answers = topics.map(({ topic, partitions }) => ({
        topic,
        partitions: partitions.map((p): PartitionAnswer => {
          const log = broker.topics.partition(topic, p.partition);
          if (!log) {
            errors = true;
            return { partition: p.partition, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, records: [], bytes: 0 };
          }
          if (p.fetchOffset < log.logStartOffset || p.fetchOffset > log.nextOffset) {
            errors = true;
            return { partition: p.partition, errorCode: ErrorCode.OFFSET_OUT_OF_RANGE, log, records: [], bytes: 0 };
          }
          // Only the first batch of the response may exceed the limits (KIP-74); later partitions get what fits.
          const first = total === 0;
          const budget = Math.min(p.maxBytes, maxBytes - total);
          if ((!first && budget <= 0) || p.fetchOffset === log.nextOffset)
            return { partition: p.partition, errorCode: ErrorCode.NONE, log, records: [], bytes: 0 };
          const records = log.read(p.fetchOffset, budget, first);
          let bytes = 0;
          for (const chunk of records) bytes += chunk.length;
          total += bytes;
          return { partition: p.partition, errorCode: ErrorCode.NONE, log, records, bytes };
        }),
      }));
      return { answers, total, errors };
    };

    let result = collect();
    const deadline = Date.now() + maxWaitMs;
    while (!result.errors && result.total < Math.max(minBytes, 1) && !signal.aborted) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const logs: PartitionLog[] = [];
      for (const t of result.answers) for (const p of t.partitions) if (p.log) logs.push(p.log);
      if (logs.length === 0) break;
      await broker.waitForAppend(logs, left, signal);
      result = collect();
    }

    let sent = 0;
    for (const t of result.answers) for (const p of t.partitions) sent += p.bytes;
    if (sent > 0) broker.metrics.fetchedBytes.inc(sent);
    response.int32(0);
    if (version >= 7) response.int16(ErrorCode.NONE).int32(0);
    response.array(result.answers, (w, t) => {
      w.string(t.topic).array(t.partitions, (pw, p) => {
        const highWatermark = p.log ? p.log.nextOffset : -1;
        pw.int32(p.partition).int16(p.errorCode).int64(highWatermark).int64(highWatermark);
        if (version >= 5) pw.int64(p.log ? p.log.logStartOffset : -1);
        pw.int32(-1); // aborted_transactions: null, no transactions here
        if (version >= 11) pw.int32(-1);
        pw.int32(p.bytes);
        for (const chunk of p.records) pw.raw(chunk);
      });
    });
  },
};

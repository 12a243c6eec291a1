/**
 * Reads topics once, from a start point to the end they had when the read began, then stops.
 *
 * kafkajs has no `assign()`: a consumer always belongs to a group. So the read takes a fresh
 * group of its own (nothing is committed for it), fixes each partition's high watermark with the
 * admin API before it starts, and is done with a partition once it has seen the record just
 * below that mark (or kafkajs reports a batch ending there that held only control records).
 * Records produced after the start are not read: a report of a live run shows the run up to the
 * moment it was asked for. A read that makes no progress for `idleTimeoutMs` fails, naming the
 * partitions it was still waiting for, instead of hanging.
 */
import { randomUUID } from 'node:crypto';
import type { Kafka, KafkaMessage } from 'kafkajs';
import { createConsumer, DEFAULT_MAX_MESSAGE_BYTES } from '../bus/kafka.js';

export interface TopicRead {
  topic: string;
  /** Start at the first record at or after this time (ms since the epoch); default the log start. */
  fromTimestamp?: number;
  /** Checked after every record of this topic: true ends its read early (everything wanted was found). */
  done?: () => boolean;
}

export interface ReadRecord {
  topic: string;
  partition: number;
  message: KafkaMessage;
}

export interface ReadOptions {
  topics: TopicRead[];
  /** Called once per record, in offset order within a partition; a promise is awaited. */
  onRecord: (record: ReadRecord) => void | Promise<void>;
  /** Fail when no record arrives for this long while partitions are still unread. Default 30 s. */
  idleTimeoutMs?: number;
  maxMessageBytes?: number;
  /** Called after every batch with records read so far and the total to read. */
  onProgress?: (read: number, total: number) => void;
  /** Prefix of the throwaway consumer group's id. */
  groupPrefix?: string;
  /**
   * Ends the read at once: it rejects with the signal's reason. A kafkajs call still retrying (a
   * connect, a group join) is left to end by itself (its retries are bounded); its client is
   * disconnected after it.
   */
  signal?: AbortSignal;
}

export interface ReadResult {
  /** Records handed to `onRecord`. */
  records: number;
  /** Topics that did not exist (nothing was read from them). */
  missing: string[];
  /** Topics whose `done()` ended their read before the end of every partition. */
  stoppedEarly: string[];
}

interface PartitionRange {
  topic: string;
  partition: number;
  /** Next offset wanted. */
  next: bigint;
  /** High watermark when the read began: the read ends at `end - 1`. */
  end: bigint;
}

const partitionKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** How a read ends: finished (every partition read), or failed (an abort, the idle check, a handler's error). */
class ReadEnd {
  readonly promise: Promise<void>;
  /** Set once it failed: no record reaches `onRecord` after it. */
  failed = false;
  finish!: () => void;
  fail!: (err: Error) => void;
  private readonly onAbort = () => this.fail(this.signal!.reason as Error);

  constructor(private readonly signal: AbortSignal | undefined) {
    this.promise = new Promise<void>((resolve, reject) => {
      this.finish = resolve;
      this.fail = (err) => {
        this.failed = true;
        reject(err);
      };
    });
    this.promise.catch(() => undefined); // a failure before it is awaited is not unhandled
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  dispose(): void {
    this.signal?.removeEventListener('abort', this.onAbort);
  }
}

/**
 * Calls into one kafkajs client (admin or consumer), each raced with the read's end, so the read
 * ends while kafkajs still retries one of them (a connect, a group join). The client is let go
 * only once none is still in kafkajs' hands: disconnecting under a connect would leave its socket
 * open, under a group join a consumer that joins afterwards running on its own.
 */
class ClientCalls {
  private readonly pending = new Set<Promise<unknown>>();

  constructor(private readonly end: ReadEnd) {}

  run<T>(call: Promise<T>): Promise<T> {
    this.pending.add(call);
    const settled = () => this.pending.delete(call);
    void call.then(settled, settled);
    return Promise.race([call, this.end.promise]) as Promise<T>;
  }

  /** Disconnects now, or (not awaited) once the calls still pending have settled. */
  async disconnect(client: { disconnect(): Promise<void> }): Promise<void> {
    const disconnect = () => client.disconnect().catch(() => undefined);
    if (this.pending.size > 0) void Promise.allSettled([...this.pending]).then(disconnect);
    else await disconnect();
  }
}

/** Which partitions to read, from where to where; topics that do not exist are listed as missing. */
async function planRanges(kafka: Kafka, topics: TopicRead[], readEnd: ReadEnd): Promise<{ ranges: Map<string, PartitionRange>; missing: string[] }> {
  const admin = kafka.admin();
  const calls = new ClientCalls(readEnd);
  try {
    try {
      await calls.run(admin.connect());
    } catch (err) {
      if (readEnd.failed) throw err;
      throw new Error(`report: cannot connect to Kafka (${(err as Error).message}); check --brokers or KAFKA_BROKERS and that the broker is running`);
    }
    const existing = new Set(await calls.run(admin.listTopics()));
    const ranges = new Map<string, PartitionRange>();
    const missing: string[] = [];
    for (const wanted of topics) {
      if (wanted.done?.()) continue; // nothing wanted from it
      if (!existing.has(wanted.topic)) {
        missing.push(wanted.topic);
        continue;
      }
      const offsets = await calls.run(admin.fetchTopicOffsets(wanted.topic));
      const starts = wanted.fromTimestamp === undefined ? undefined : await calls.run(admin.fetchTopicOffsetsByTimestamp(wanted.topic, wanted.fromTimestamp));
      for (const p of offsets) {
        const low = BigInt(p.low);
        const end = BigInt(p.high);
        const fromTime = starts?.find((s) => s.partition === p.partition)?.offset;
        const next = fromTime === undefined ? low : BigInt(fromTime) > low ? BigInt(fromTime) : low;
        if (next < end) ranges.set(partitionKey(wanted.topic, p.partition), { topic: wanted.topic, partition: p.partition, next, end });
      }
    }
    return { ranges, missing };
  } finally {
    await calls.disconnect(admin);
  }
}

export async function readTopics(kafka: Kafka, options: ReadOptions): Promise<ReadResult> {
  options.signal?.throwIfAborted();
  const end = new ReadEnd(options.signal);
  try {
    return await readRanges(kafka, options, end);
  } finally {
    end.dispose();
  }
}

async function readRanges(kafka: Kafka, options: ReadOptions, end: ReadEnd): Promise<ReadResult> {
  const { ranges, missing } = await planRanges(kafka, options.topics, end);
  const result: ReadResult = { records: 0, missing, stoppedEarly: [] };
  if (ranges.size === 0) return result;
  let total = 0;
  for (const r of ranges.values()) total += Number(r.end - r.next);
  let read = 0;
  const open = new Set(ranges.keys());
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;

  const consumer = createConsumer(kafka, `${options.groupPrefix ?? 'crystalwatch-report'}-${randomUUID()}`, {
    maxMessageBytes: options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
  });
  const { fail, finish } = end;
  let lastProgressMs = Date.now();
  const idleCheck = setInterval(
    () => {
      if (Date.now() - lastProgressMs > idleTimeoutMs) {
        const waiting = [...open].slice(0, 5).map((k) => {
          const r = ranges.get(k)!;
          return `${r.topic}[${r.partition}] at ${r.next} of ${r.end}`;
        });
        fail(
          new Error(
            `report: no records for ${idleTimeoutMs} ms while reading ${waiting.join(', ')}${open.size > 5 ? ` and ${open.size - 5} more` : ''}; is the broker reachable and the topic readable?`,
          ),
        );
      }
    },
    Math.min(1000, idleTimeoutMs),
  );
  const close = (key: string) => {
    if (!open.delete(key)) return;
    const r = ranges.get(key)!;
    consumer.pause([{ topic: r.topic, partitions: [r.partition] }]);
    if (open.size === 0) finish();
  };
  const doneOf = new Map(options.topics.filter((t) => t.done).map((t) => [t.topic, t.done!]));
  /** Ends the topic's read when its `done()` says so; true when it did. */
  const stopTopic = (topic: string): boolean => {
    if (!doneOf.get(topic)?.()) return false;
    const unread = [...open].filter((k) => ranges.get(k)!.topic === topic);
    if (unread.length > 0 && !result.stoppedEarly.includes(topic)) result.stoppedEarly.push(topic);
    for (const k of unread) close(k);
    return true;
  };

  consumer.on(consumer.events.CRASH, ({ payload }) => fail(new Error(`report: consumer crashed: ${payload.error.message}`)));
  // Batches of control records only never reach eachBatch; their end offset still counts.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const key = partitionKey(payload.topic, payload.partition);
    const r = ranges.get(key);
    if (r && BigInt(payload.lastOffset) + 1n >= r.end) close(key);
  });

  const calls = new ClientCalls(end);
  try {
    await calls.run(consumer.connect());
    const topics = [...new Set([...ranges.values()].map((r) => r.topic))];
    await calls.run(consumer.subscribe({ topics, fromBeginning: true }));
    lastProgressMs = Date.now();
    await calls.run(
      consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch, heartbeat }) => {
          const key = partitionKey(batch.topic, batch.partition);
          const r = ranges.get(key);
          if (!r || !open.has(key)) return;
          for (const message of batch.messages) {
            const offset = BigInt(message.offset);
            // Records before the start (a fetch that ran before the seek) or seen already are skipped.
            if (offset < r.next) continue;
            if (offset >= r.end || end.failed) break;
            r.next = offset + 1n;
            try {
              await options.onRecord({ topic: batch.topic, partition: batch.partition, message });
            } catch (err) {
              // Not thrown to kafkajs, which would retry the batch: the read fails with the handler's error.
              fail(err as Error);
              return;
            }
            result.records += 1;
            read += 1;
            lastProgressMs = Date.now();
            if (stopTopic(batch.topic)) break;
          }
          options.onProgress?.(read, total);
          if (r.next >= r.end) close(key);
          await heartbeat();
        },
      }),
    );
    for (const r of ranges.values()) {
      if (r.next > 0n) consumer.seek({ topic: r.topic, partition: r.partition, offset: r.next.toString() });
    }
    await end.promise;
    return result;
  } finally {
    clearInterval(idleCheck);
    await calls.disconnect(consumer);
  }
}

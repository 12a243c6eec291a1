/**
 * The broker's state as the API handlers see it: topics and their logs,
 * committed offsets, the group coordinator, and the node's identity.
 */
import { Registry } from 'prom-client';
import { join } from 'node:path';
import type { Logger } from '../config/logger.js';
import { ErrorCode } from './errors.js';
import { GroupCoordinator } from './group/coordinator.js';
import { OffsetStore } from './group/offset-store.js';
import type { PartitionLog } from './log/partition-log.js';
import { createBrokerMetrics, type BrokerMetrics } from './metrics.js';
import { invalidTopicName, TopicStore, type RetentionConfig, type Topic } from './log/topic-store.js';

export interface CoreOptions {
  dataDir: string;
  defaultPartitions: number;
  autoCreateTopics: boolean;
  messageMaxBytes: number;
  fsync: 'always' | 'interval' | 'never';
  retention: RetentionConfig;
  segmentBytes: number;
  cacheBytes: number;
  logger: Logger;
  /** The process's registry; a private one when not given. */
  registry?: Registry;
  /** Bytes of unread requests held by the connections, for the buffered-bytes gauge. */
  bufferedBytes?: () => number;
}

export class BrokerCore {
  readonly nodeId = 0;
  readonly clusterId = 'crystalwatch-embedded';
  host = '127.0.0.1';
  port = 0;
  readonly topics: TopicStore;
  readonly offsets: OffsetStore;
  readonly groups: GroupCoordinator;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  /** Producer ids must not repeat across restarts: start from the clock (ms), then count. */
  private nextProducerId = Date.now();

  constructor(readonly options: CoreOptions) {
    this.logger = options.logger;
    this.topics = new TopicStore({
      dataDir: options.dataDir,
      segmentBytes: options.segmentBytes,
      cacheBytes: options.cacheBytes,
      retention: options.retention,
      logger: options.logger,
    });
    this.offsets = new OffsetStore(options.dataDir, options.logger);
    this.groups = new GroupCoordinator(options.logger, 100, join(options.dataDir, 'groups', 'groups.json'));
    this.metrics = createBrokerMetrics(
      options.registry ?? new Registry(),
      () => {
        let bytes = 0;
        for (const topic of this.topics.topics.values()) for (const log of topic.partitions) bytes += log.sizeBytes;
        return bytes;
      },
      options.bufferedBytes,
    );
  }

  open(): void {
    this.topics.open();
    this.offsets.open();
    this.groups.load();
    this.groups.start();
  }

  close(): void {
    this.groups.close();
    this.topics.close();
    this.offsets.close();
  }

  allocateProducerId(): number {
    return this.nextProducerId++;
  }

  /** Creates a topic, checking name and partition count; returns a Kafka error code and message. */
  createTopic(name: string, partitions: number, retention: RetentionConfig = {}): { errorCode: number; message: string | null; topic?: Topic } {
    const invalid = invalidTopicName(name);
    if (invalid) return { errorCode: ErrorCode.INVALID_TOPIC_EXCEPTION, message: invalid };
    if (this.topics.get(name)) return { errorCode: ErrorCode.TOPIC_ALREADY_EXISTS, message: `topic ${name} already exists` };
    if (!Number.isInteger(partitions) || partitions < 1 || partitions > 1000) {
      return {
        errorCode: ErrorCode.INVALID_PARTITIONS,
        message: `partition count must be 1..1000 (each partition holds open segment files), got ${partitions}`,
      };
    }
    return { errorCode: ErrorCode.NONE, message: null, topic: this.topics.create(name, partitions, retention) };
  }

  /** The topic, auto-created when allowed (Metadata requests only, as in Kafka). */
  topicForMetadata(name: string, allowAutoCreate: boolean): { errorCode: number; topic?: Topic } {
    const topic = this.topics.get(name);
    if (topic) return { errorCode: ErrorCode.NONE, topic };
    if (invalidTopicName(name)) return { errorCode: ErrorCode.INVALID_TOPIC_EXCEPTION };
    if (!allowAutoCreate || !this.options.autoCreateTopics) return { errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
    return this.createTopic(name, this.options.defaultPartitions);
  }

  /**
   * Resolves when any of `logs` gets an append, `ms` pass, or `signal` aborts.
   * With no logs it still waits `ms` on a timer: a caller looping until a
   * deadline must never get an already-resolved promise back, or its loop
   * would spin on the microtask queue and the event loop would never turn.
   */
  waitForAppend(logs: PartitionLog[], ms: number, signal: AbortSignal): Promise<void> {
    if (ms <= 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const unsubscribes: Array<() => void> = [];
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        for (const unsubscribe of unsubscribes) unsubscribe();
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done);
      for (const log of logs) unsubscribes.push(log.onAppend(done));
    });
  }
}

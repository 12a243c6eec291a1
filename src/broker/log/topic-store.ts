/**
 * All topics of the broker and their partition logs.
 *
 *   <dataDir>/topics/<topic>/topic.json        {"partitions":3,"retention":{"bytes":…,"ms":…}}
 *   <dataDir>/topics/<topic>/<partition>/…log   segments (see partition-log.ts)
 *
 * Kafka topic names are [a-zA-Z0-9._-]{1,249} and never "." or "..", so a
 * topic name is a safe directory name as it is.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../config/logger.js';
import { PartitionLog } from './partition-log.js';
import { TailCache } from './tail-cache.js';

export interface RetentionConfig {
  bytes?: number;
  ms?: number;
}

export interface Topic {
  name: string;
  partitions: PartitionLog[];
  retention: RetentionConfig;
}

export interface TopicStoreOptions {
  dataDir: string;
  segmentBytes: number;
  cacheBytes: number;
  retention: RetentionConfig;
  logger: Logger;
}

const TOPIC_NAME = /^[a-zA-Z0-9._-]{1,249}$/;

/** Why a topic name is invalid, or null when it is fine. */
export function invalidTopicName(name: string): string | null {
  if (!TOPIC_NAME.test(name)) return `topic name ${JSON.stringify(name.slice(0, 300))} must be 1-249 characters of a-z A-Z 0-9 . _ -`;
  if (name === '.' || name === '..') return `topic name ${JSON.stringify(name)} is reserved`;
  return null;
}

export class TopicStore {
  readonly topics = new Map<string, Topic>();
  private readonly root: string;
  private readonly cache: TailCache;

  constructor(private readonly options: TopicStoreOptions) {
    this.root = join(options.dataDir, 'topics');
    this.cache = new TailCache(options.cacheBytes);
  }

  open(): void {
    mkdirSync(this.root, { recursive: true });
    for (const name of readdirSync(this.root)) {
      const configPath = join(this.root, name, 'topic.json');
      if (invalidTopicName(name) || !existsSync(configPath)) continue;
      const config = JSON.parse(readFileSync(configPath, 'utf8')) as { partitions: number; retention?: RetentionConfig };
      this.load(name, config.partitions, config.retention ?? {});
    }
  }

  private load(name: string, partitionCount: number, retention: RetentionConfig): Topic {
    const partitions: PartitionLog[] = [];
    for (let partition = 0; partition < partitionCount; partition++) {
      const log = new PartitionLog({
        dir: join(this.root, name, String(partition)),
        topic: name,
        partition,
        segmentBytes: this.options.segmentBytes,
        cache: this.cache,
        logger: this.options.logger,
      });
      log.open();
      partitions.push(log);
    }
    const topic: Topic = { name, partitions, retention };
    this.topics.set(name, topic);
    return topic;
  }

  get(name: string): Topic | undefined {
    return this.topics.get(name);
  }

  partition(topic: string, partition: number): PartitionLog | undefined {
    return this.topics.get(topic)?.partitions[partition];
  }

  /** Creates a topic; the caller has checked the name and that it does not exist. */
  create(name: string, partitions: number, retention: RetentionConfig = {}): Topic {
    const dir = join(this.root, name);
    mkdirSync(dir, { recursive: true });
    const merged = { ...this.options.retention, ...retention };
    // Written to a temp file and renamed so a crash never leaves half a topic.json.
    const tmp = join(dir, 'topic.json.tmp');
    writeFileSync(tmp, JSON.stringify({ partitions, retention: merged }));
    renameSync(tmp, join(dir, 'topic.json'));
    this.options.logger.info({ topic: name, partitions }, 'topic created');
    return this.load(name, partitions, merged);
  }

  async delete(name: string): Promise<boolean> {
    const topic = this.topics.get(name);
    if (!topic) return false;
    // Closing a segment during a background fdatasync could hand its fd number to another file.
    while (topic.partitions.some((log) => log.flushing)) await new Promise((resolve) => setTimeout(resolve, 5));
    if (this.topics.get(name) !== topic) return false;
    this.topics.delete(name);
    for (const log of topic.partitions) log.close();
    rmSync(join(this.root, name), { recursive: true, force: true });
    this.options.logger.info({ topic: name }, 'topic deleted');
    return true;
  }

  applyRetention(now = Date.now()): void {
    for (const topic of this.topics.values()) {
      for (const log of topic.partitions) log.applyRetention(topic.retention, now);
    }
  }

  /** Background fsync for the 'interval' policy; resolves when every dirty segment is on disk. */
  async flushAsync(): Promise<void> {
    const pending: Array<Promise<void>> = [];
    for (const topic of this.topics.values()) for (const log of topic.partitions) pending.push(log.flushAsync());
    await Promise.all(pending);
  }

  flush(): void {
    for (const topic of this.topics.values()) for (const log of topic.partitions) log.flush();
  }

  close(): void {
    for (const topic of this.topics.values()) for (const log of topic.partitions) log.close();
    this.topics.clear();
  }
}

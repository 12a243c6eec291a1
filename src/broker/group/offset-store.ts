/**
 * Committed consumer-group offsets, durable in one append-only file:
 *
 *   <dataDir>/groups/offsets.jsonl   one JSON line per committed partition:
 *   {"g":"group","t":"topic","p":0,"o":42,"e":-1,"m":""}
 *
 * Each OffsetCommit request is one synchronous write before it is answered, so
 * a committed offset survives `kill -9`. On open the file is replayed (last
 * line wins); a torn last line is dropped and cut off. When the file holds
 * far more lines than live entries it is rewritten (temp file + rename).
 */
import { closeSync, existsSync, fdatasyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../config/logger.js';

export interface CommittedOffset {
  offset: number;
  leaderEpoch: number;
  metadata: string;
}

interface OffsetLine {
  g: string;
  t: string;
  p: number;
  o: number;
  e?: number;
  m?: string;
}

const COMPACT_MIN_LINES = 10_000;

export class OffsetStore {
  private readonly groups = new Map<string, Map<string, Map<number, CommittedOffset>>>();
  private readonly path: string;
  private fd = -1;
  private lines = 0;
  private dirty = false;

  constructor(
    dataDir: string,
    private readonly logger: Logger,
  ) {
    const dir = join(dataDir, 'groups');
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'offsets.jsonl');
  }

  open(): void {
    if (existsSync(this.path)) {
      const text = readFileSync(this.path, 'utf8');
      let goodBytes = 0;
      let position = 0;
      while (position < text.length) {
        const newline = text.indexOf('\n', position);
        if (newline < 0) break;
        const line = text.slice(position, newline);
        try {
          const entry = JSON.parse(line) as OffsetLine;
          this.set(entry.g, entry.t, entry.p, { offset: entry.o, leaderEpoch: entry.e ?? -1, metadata: entry.m ?? '' });
          this.lines++;
        } catch {
          break;
        }
        position = newline + 1;
        goodBytes = Buffer.byteLength(text.slice(0, position));
      }
      if (position < text.length) {
        this.logger.warn({ path: this.path, validBytes: goodBytes }, 'dropping a torn line at the end of the offsets file');
        const fd = openSync(this.path, 'r+');
        ftruncateSync(fd, goodBytes);
        closeSync(fd);
      }
    }
    this.fd = openSync(this.path, 'a');
    this.compactIfLarge();
  }

  private set(group: string, topic: string, partition: number, value: CommittedOffset): void {
    let topics = this.groups.get(group);
    if (!topics) {
      topics = new Map();
      this.groups.set(group, topics);
    }
    let partitions = topics.get(topic);
    if (!partitions) {
      partitions = new Map();
      topics.set(topic, partitions);
    }
    partitions.set(partition, value);
  }

  /** Stores the commits of one request with one write. */
  commit(group: string, commits: Array<{ topic: string; partition: number } & CommittedOffset>, sync: boolean): void {
    if (commits.length === 0) return;
    let text = '';
    for (const c of commits) {
      this.set(group, c.topic, c.partition, { offset: c.offset, leaderEpoch: c.leaderEpoch, metadata: c.metadata });
      const line: OffsetLine = { g: group, t: c.topic, p: c.partition, o: c.offset, e: c.leaderEpoch, m: c.metadata };
      text += JSON.stringify(line) + '\n';
    }
    writeSync(this.fd, text);
    this.lines += commits.length;
    this.dirty = true;
    if (sync) this.flush();
    this.compactIfLarge();
  }

  get(group: string, topic: string, partition: number): CommittedOffset | undefined {
    return this.groups.get(group)?.get(topic)?.get(partition);
  }

  /** Every committed partition of a group, grouped by topic. */
  topicsOf(group: string): Map<string, Map<number, CommittedOffset>> {
    return this.groups.get(group) ?? new Map();
  }

  groupIds(): string[] {
    return [...this.groups.keys()];
  }

  deleteGroup(group: string): void {
    if (!this.groups.delete(group)) return;
    this.rewrite();
  }

  private liveEntries(): number {
    let count = 0;
    for (const topics of this.groups.values()) for (const partitions of topics.values()) count += partitions.size;
    return count;
  }

  private compactIfLarge(): void {
    if (this.lines < COMPACT_MIN_LINES || this.lines < 4 * this.liveEntries()) return;
    this.rewrite();
  }

  private rewrite(): void {
    let text = '';
    let lines = 0;
    for (const [g, topics] of this.groups) {
      for (const [t, partitions] of topics) {
        for (const [p, c] of partitions) {
          text += JSON.stringify({ g, t, p, o: c.offset, e: c.leaderEpoch, m: c.metadata }) + '\n';
          lines++;
        }
      }
    }
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, text);
    const fd = openSync(tmp, 'r');
    fdatasyncSync(fd);
    closeSync(fd);
    if (this.fd >= 0) closeSync(this.fd);
    renameSync(tmp, this.path);
    this.fd = openSync(this.path, 'a');
    this.lines = lines;
    this.dirty = false;
  }

  flush(): void {
    if (this.dirty && this.fd >= 0) {
      fdatasyncSync(this.fd);
      this.dirty = false;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    this.flush();
    closeSync(this.fd);
    this.fd = -1;
  }
}

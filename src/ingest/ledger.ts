/**
 * The ingest ledger: what was sent, and what Kafka acknowledged. Append-only JSON
 * lines, fsynced before anything depends on them, so a restart (even after kill -9)
 * knows exactly which files are done.
 *
 * Two records per frame:
 *   {"t":"send", camera, path, size, mtimeMs, sha256, frameId, at}   before the produce request
 *   {"t":"ack",  frameId, partition, offset, at}                        after Kafka acknowledged it
 * A `send` without its `ack` means "may or may not be in Kafka": on start-up the stage
 * looks for those frame ids in the topic before sending anything again (see recovery.ts).
 * A torn last line (crash mid-write) is ignored.
 */
import { open, mkdir, readFile, rename, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface SendRecord {
  t: 'send';
  camera: string;
  /** Path relative to the camera's watch folder, with `/` separators. */
  path: string;
  size: number;
  mtimeMs: number;
  sha256: string;
  frameId: string;
  at: string;
}

export interface AckRecord {
  t: 'ack';
  frameId: string;
  partition: number;
  offset: string;
  at: string;
}

export type LedgerRecord = SendRecord | AckRecord;

export interface LedgerEntry extends Omit<SendRecord, 't' | 'at'> {
  acked: boolean;
  partition?: number;
  offset?: string;
}

const key = (camera: string, path: string) => `${camera}\u0000${path}`;

export class Ledger {
  private handle: FileHandle | undefined;
  private readonly byPath = new Map<string, LedgerEntry>();
  private readonly byFrameId = new Map<string, LedgerEntry>();
  /** Serialises appends so records never interleave and fsyncs are ordered. */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(readonly path: string) {}

  /** Reads existing records, compacts the file (one send + ack per live entry) and opens it for appending. */
  async open(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    let text = '';
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`ingest ledger ${this.path}: cannot read (${(err as NodeJS.ErrnoException).code}); fix its permissions or point --ledger elsewhere`);
      }
    }
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i += 1) {
      const line = lines[i];
      if (line.trim() === '') continue;
      let record: LedgerRecord;
      try {
        record = JSON.parse(line) as LedgerRecord;
      } catch {
        if (i >= lines.length - 2) continue; // torn last write from a crash: the frame was never acknowledged
        throw new Error(`ingest ledger ${this.path}: line ${i + 1} is not JSON; the file is damaged: move it aside to re-ingest everything, or fix that line`);
      }
      this.apply(record);
    }
    // Compact: rewrite the live state, so the file does not grow with every restart.
    const compacted: string[] = [];
    for (const entry of this.byPath.values()) {
      const { acked, partition, offset, ...send } = entry;
      compacted.push(JSON.stringify({ t: 'send', ...send, at: '' }));
      if (acked) compacted.push(JSON.stringify({ t: 'ack', frameId: entry.frameId, partition, offset, at: '' }));
    }
    const tmp = `${this.path}.compact-${process.pid}`;
    const handle = await open(tmp, 'w');
    await handle.writeFile(compacted.length > 0 ? `${compacted.join('\n')}\n` : '');
    await handle.sync();
    await handle.close();
    await rename(tmp, this.path);
    this.handle = await open(this.path, 'a');
    await this.handle.sync();
  }

  private apply(record: LedgerRecord): void {
    if (record.t === 'send') {
      const entry: LedgerEntry = { camera: record.camera, path: record.path, size: record.size, mtimeMs: record.mtimeMs, sha256: record.sha256, frameId: record.frameId, acked: false };
      const previous = this.byPath.get(key(record.camera, record.path));
      // The file at this path was replaced by new content: the old frame id no longer names a file here.
      if (previous && previous.frameId !== record.frameId) this.byFrameId.delete(previous.frameId);
      if (previous && previous.frameId === record.frameId && previous.acked) return; // re-send of an acked frame changes nothing
      this.byPath.set(key(record.camera, record.path), entry);
      this.byFrameId.set(record.frameId, entry);
    } else if (record.t === 'ack') {
      const entry = this.byFrameId.get(record.frameId);
      if (!entry) return;
      entry.acked = true;
      entry.partition = record.partition;
      entry.offset = record.offset;
    }
  }

  /** The entry for a file, if it was ever sent (acked or not). */
  get(camera: string, path: string): LedgerEntry | undefined {
    return this.byPath.get(key(camera, path));
  }

  byFrame(frameId: string): LedgerEntry | undefined {
    return this.byFrameId.get(frameId);
  }

  /** Entries sent but never acknowledged: in Kafka or not, recovery must find out. */
  unacknowledged(): LedgerEntry[] {
    return [...this.byPath.values()].filter((e) => !e.acked);
  }

  /** Highest acknowledged offset per partition, where recovery starts reading. */
  lastAckedOffsets(): Map<number, bigint> {
    const out = new Map<number, bigint>();
    for (const e of this.byPath.values()) {
      if (!e.acked || e.partition === undefined || e.offset === undefined) continue;
      const o = BigInt(e.offset);
      const prev = out.get(e.partition);
      if (prev === undefined || o > prev) out.set(e.partition, o);
    }
    return out;
  }

  /** Appends records and fsyncs; resolves once they are durable. */
  append(records: LedgerRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const run = async () => {
      if (this.closed || !this.handle) throw new Error(`ingest ledger ${this.path} is closed`);
      await this.handle.write(records.map((r) => `${JSON.stringify(r)}\n`).join(''));
      await this.handle.datasync();
      for (const r of records) this.apply(r);
    };
    const next = this.tail.then(run, run);
    this.tail = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.tail;
    this.closed = true;
    await this.handle?.close();
    this.handle = undefined;
  }
}

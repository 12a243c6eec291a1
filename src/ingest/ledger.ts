/**
 * The ingest ledger: what was sent, and what Kafka acknowledged. Append-only JSON
 * lines, fsynced before anything depends on them, so a restart (even after kill -9)
 * knows exactly which files are done.
 *
 * Records per frame:
 *   {"t":"send", camera, path, size, mtimeMs, sha256, frameId, at}   before the produce request (written; fsynced with the ack)
 *   {"t":"ack",  frameId, partition, offset, at}                        after Kafka acknowledged it
 * A `send` without its `ack` means "may or may not be in Kafka": on start-up the stage
 * looks for those frame ids in the topic before sending anything again (see recovery.ts).
 *   {"t":"done", camera, path}                                          the file left the folder (after move/delete)
 * A torn last line (crash mid-write) is ignored. The file is compacted at open and
 * whenever it holds several times more records than live entries, so a camera at
 * 30 frames/s with `--after move` keeps a small ledger.
 */
import { open, mkdir, readFile, rename, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { processIsAlive } from '../config/process-alive.js';

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

/** Written by compaction: what the dropped entries said about offsets, for recovery. */
export interface OffsetsRecord {
  t: 'offsets';
  partitions: Record<string, string>;
}

/** A file that left the folder (`--after move|delete`): its entry is no longer needed. */
export interface DoneRecord {
  t: 'done';
  camera: string;
  path: string;
}

export type LedgerRecord = SendRecord | AckRecord | OffsetsRecord | DoneRecord;

export interface LedgerEntry extends Omit<SendRecord, 't' | 'at'> {
  acked: boolean;
  partition?: number;
  offset?: string;
}

const key = (camera: string, path: string) => `${camera}\u0000${path}`;

interface PendingWrite {
  records: LedgerRecord[];
  /** Resolve only once the records are on disk (fsynced). */
  sync: boolean;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class Ledger {
  private handle: FileHandle | undefined;
  private readonly byPath = new Map<string, LedgerEntry>();
  private readonly byFrameId = new Map<string, LedgerEntry>();
  /** Highest acknowledged offset per partition, including entries already dropped. */
  private readonly acked = new Map<number, bigint>();
  /** Records waiting for the next write, in call order (group commit: see `write`). */
  private pending: PendingWrite[] = [];
  /** The loop writing `pending` out, while it runs. */
  private flushing: Promise<void> | undefined;
  /** The file's length after the last complete write: a failed write is cut back to it. */
  private bytesInFile = 0;
  /** Why the ledger can take no more records (its file could not be reopened after a compaction failed). */
  private broken: Error | undefined;
  private closed = false;
  private recordsInFile = 0;

  constructor(readonly path: string) {}

  /** Reads existing records, compacts the file (one send + ack per live entry) and opens it for appending. */
  async open(): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    await this.lock();
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
      const line = lines[i]!;
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
    await this.compact();
  }

  /** Rewrites the file as the live state (one send + ack per entry, plus the offsets), atomically. */
  private async compact(): Promise<void> {
    const lines: string[] = [];
    if (this.acked.size > 0) {
      lines.push(JSON.stringify({ t: 'offsets', partitions: Object.fromEntries([...this.acked].map(([p, o]) => [String(p), o.toString()])) }));
    }
    for (const entry of this.byPath.values()) {
      const { acked, partition, offset, ...send } = entry;
      lines.push(JSON.stringify({ t: 'send', ...send, at: '' }));
      if (acked) lines.push(JSON.stringify({ t: 'ack', frameId: entry.frameId, partition, offset, at: '' }));
    }
    await this.handle?.close();
    this.handle = undefined;
    const tmp = `${this.path}.compact-${process.pid}`;
    const handle = await open(tmp, 'w');
    await handle.writeFile(lines.length > 0 ? `${lines.join('\n')}\n` : '');
    await handle.sync();
    await handle.close();
    await rename(tmp, this.path);
    // The rename itself must reach the disk, or a crash could bring back the old file.
    const folder = await open(dirname(this.path), 'r');
    await folder.sync().catch(() => undefined);
    await folder.close();
    this.handle = await open(this.path, 'a');
    await this.handle.sync();
    this.recordsInFile = lines.length;
    this.bytesInFile = (await this.handle.stat()).size;
  }

  private apply(record: LedgerRecord): void {
    if (record.t === 'send') {
      const entry: LedgerEntry = {
        camera: record.camera,
        path: record.path,
        size: record.size,
        mtimeMs: record.mtimeMs,
        sha256: record.sha256,
        frameId: record.frameId,
        acked: false,
      };
      const previous = this.byPath.get(key(record.camera, record.path));
      // The file at this path was replaced by new content: the old frame id no longer names a file here.
      if (previous && previous.frameId !== record.frameId) this.byFrameId.delete(previous.frameId);
      if (previous && previous.frameId === record.frameId && previous.acked) return; // re-send of an acked frame changes nothing
      this.byPath.set(key(record.camera, record.path), entry);
      this.byFrameId.set(record.frameId, entry);
    } else if (record.t === 'ack') {
      const entry = this.byFrameId.get(record.frameId);
      if (record.offset !== undefined && record.partition !== undefined) {
        const o = BigInt(record.offset);
        const prev = this.acked.get(record.partition);
        if (prev === undefined || o > prev) this.acked.set(record.partition, o);
      }
      if (!entry) return;
      entry.acked = true;
      entry.partition = record.partition;
      entry.offset = record.offset;
    } else if (record.t === 'offsets') {
      for (const [p, o] of Object.entries(record.partitions)) {
        const prev = this.acked.get(Number(p));
        if (prev === undefined || BigInt(o) > prev) this.acked.set(Number(p), BigInt(o));
      }
    } else if (record.t === 'done') {
      const entry = this.byPath.get(key(record.camera, record.path));
      if (entry?.acked) {
        this.byPath.delete(key(record.camera, record.path));
        this.byFrameId.delete(entry.frameId);
      }
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
    return new Map(this.acked);
  }

  /** Number of files the ledger tracks (sent, not yet gone from the folder). */
  get size(): number {
    return this.byPath.size;
  }

  /** Appends records and fsyncs; resolves once they are durable. */
  append(records: LedgerRecord[]): Promise<void> {
    return this.write(records, true);
  }

  /**
   * Appends records without waiting for the disk: for `done` records, whose loss
   * only means an entry lingers until the file next leaves the folder.
   */
  note(records: LedgerRecord[]): Promise<void> {
    return this.write(records, false);
  }

  /**
   * Group commit: records asked for while a write (and its fsync) is on its way wait and go out
   * together in the next one, in call order, with one fsync if any of them asked for it. Every
   * camera's frames share this file: one write and fsync per record batch serialised the ingest of
   * eight cameras behind eight fsyncs per frame period (each slow while the broker writes frames).
   */
  private write(records: LedgerRecord[], sync: boolean): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    const unusable = this.unusable();
    if (unusable) return Promise.reject(unusable);
    return new Promise((resolve, reject) => {
      this.pending.push({ records, sync, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private unusable(): Error | undefined {
    if (this.closed || !this.handle) return this.broken ?? new Error(`ingest ledger ${this.path} is ${this.closed ? 'closed' : 'not open'}`);
    return undefined;
  }

  private async flush(): Promise<void> {
    await Promise.resolve(); // so `flushing` is assigned before this can end and clear it
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      const records = batch.flatMap((w) => w.records);
      try {
        const unusable = this.unusable();
        if (unusable) throw unusable;
        await this.appendText(
          this.handle!,
          records.map((r) => `${JSON.stringify(r)}\n`).join(''),
          batch.some((w) => w.sync),
        );
      } catch (err) {
        for (const w of batch) w.reject(err);
        continue;
      }
      for (const r of records) this.apply(r);
      this.recordsInFile += records.length;
      for (const w of batch) w.resolve();
      // Online compaction once the file is mostly history; the records above are durable whatever it does.
      if (this.recordsInFile > 10_000 && this.recordsInFile > 4 * (2 * this.byPath.size + 1)) await this.compactOrReopen();
    }
    // In the same step as the loop's last look at `pending`: a write queued after it starts a new flush.
    this.flushing = undefined;
  }

  /**
   * Writes all of `text` (FileHandle#appendFile loops over short writes), fsynced when `sync`. A
   * write or fsync that fails is cut back off the file, so the file says what the callers were
   * told: no torn line in the middle of it, no record a caller saw fail.
   */
  private async appendText(handle: FileHandle, text: string, sync: boolean): Promise<void> {
    const before = this.bytesInFile;
    try {
      await handle.appendFile(text);
      if (sync) await handle.datasync();
      this.bytesInFile = before + Buffer.byteLength(text);
    } catch (err) {
      await handle.truncate(before).catch(() => undefined);
      throw err;
    }
  }

  /** A failed compaction leaves the old file in place: append to it again, or refuse records from now on, saying why. */
  private async compactOrReopen(): Promise<void> {
    try {
      await this.compact();
    } catch (err) {
      try {
        this.handle ??= await open(this.path, 'a');
        this.bytesInFile = (await this.handle.stat()).size;
      } catch {
        this.broken = new Error(
          `ingest ledger ${this.path}: compaction failed (${(err as Error).message}) and the file cannot be reopened; restart ingest once the disk is fixed`,
          {
            cause: err,
          },
        );
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flushing;
    this.closed = true;
    await this.handle?.close();
    this.handle = undefined;
    if (this.locked) await unlink(`${this.path}.lock`).catch(() => undefined);
    this.locked = false;
  }

  private locked = false;

  /**
   * Two processes appending to one ledger would each believe the other's frames unsent.
   * A lock file holds the owner's pid; a lock left by a dead process (kill -9) is taken over.
   */
  private async lock(): Promise<void> {
    const lockPath = `${this.path}.lock`;
    for (let attempt = 0; attempt < 2; attempt += 1) {
      try {
        await writeFile(lockPath, String(process.pid), { flag: 'wx' });
        this.locked = true;
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const owner = Number((await readFile(lockPath, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processIsAlive(owner)) {
        throw new Error(
          `ingest ledger ${this.path} is in use by process ${owner}; run one ingest per ledger (give each process its own --ledger), or stop that process`,
        );
      }
      await unlink(lockPath).catch(() => undefined); // stale: its owner is gone
    }
    throw new Error(`ingest ledger ${this.path}: could not take ${lockPath}; remove it if no ingest process is running`);
  }
}

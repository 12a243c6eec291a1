/**
 * The audit trail's writer: one process appends hash-chained records to
 * `<dataDir>/audit/audit.jsonl` and keeps `audit.head` at the last durable one.
 *
 * Appends are chained in call order (seq, prev and hash are fixed when `append` is called) and
 * written by one loop: whatever queued up while the previous write was at the disk goes out as
 * one write + one fdatasync + one head update (group commit), and each promise resolves only
 * after that. A failed write or fsync stops the trail (AuditTrailFailedError).
 */
import { mkdir, open, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../config/logger.js';
import { AuditRecordError, AuditTrailClosedError, AuditTrailFailedError } from './errors.js';
import { HeadWriter, readHead, type Head } from './head.js';
import { auditDataProblem, isAuditKind, type AppendableKind, type AuditData, type AuditKind } from './kinds.js';
import { takeLock } from './lock.js';
import { AuditMirror, type MirrorOptions, type MirrorSend } from './mirror.js';
import { auditPaths, type AuditPaths } from './paths.js';
import { parseRecordLine, sealRecord, type AuditRecord } from './record.js';
import { planRecovery } from './recovery.js';
import { scanAuditFile } from './scan.js';
import { checkTrail, type AuditProblem } from './verify.js';

export interface AuditTrailOptions {
  /** The data dir; the trail lives in `<dir>/audit/`. */
  dir: string;
  /** fdatasync the records and the head before `append` resolves. Default true; false only for tests and benchmarks. */
  fsync?: boolean;
  /** Sends each durable record on (the `audit` topic: kafkaAuditMirror); retried until it succeeds. */
  mirror?: MirrorSend;
  mirrorOptions?: Omit<MirrorOptions, 'send' | 'cursorPath' | 'read' | 'logger'>;
  logger?: Logger;
  /** Clock for `at` (tests). */
  now?: () => Date;
  /** Largest record line accepted. Default 1 MiB. */
  maxRecordBytes?: number;
}

export interface ReadOptions {
  /** Records with seq greater than this; 0 (default) = from the start. */
  after?: number;
  /** At most this many, 1..10000. */
  limit: number;
}

export interface AuditPage {
  records: AuditRecord[];
  /** Pass as `after` for the next page; absent when this page reached the end. */
  next?: number;
}

interface Pending {
  record: AuditRecord;
  line: string;
  resolve: (record: AuditRecord) => void;
  reject: (err: Error) => void;
}

const MAX_BATCH_BYTES = 4 * 1024 * 1024;

export class AuditTrail {
  /** Damage found in the file at open (edited, moved, missing records); logged, left for verify. */
  readonly problemsAtOpen: readonly AuditProblem[];
  private readonly recovered: AuditRecord[] = [];
  private readonly fsync: boolean;
  private readonly logger: Logger;
  private readonly now: () => Date;
  private readonly maxRecordBytes: number;
  private head: HeadWriter | undefined;
  private mirror: AuditMirror | undefined;
  /** Chain state at the last append call (may be ahead of the disk). */
  private nextSeq: number;
  private lastHash: string;
  /** Last durable record, and where durable content ends. */
  private durable: Head;
  private durableBytes: number;
  /** Index of durable records in file order: seq and byte offset of each line. */
  private readonly seqs: number[] = [];
  private readonly offsets: number[] = [];
  private pending: Pending[] = [];
  private flushing: Promise<void> | undefined;
  private readonly reads = new Set<Promise<unknown>>();
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly paths: AuditPaths,
    private readonly handle: FileHandle,
    private readonly release: () => Promise<void>,
    options: AuditTrailOptions,
    start: { tail: Head; nextSeq: number; bytes: number; problems: AuditProblem[] },
  ) {
    this.fsync = options.fsync ?? true;
    this.logger = options.logger ?? silentLogger;
    this.now = options.now ?? (() => new Date());
    this.maxRecordBytes = options.maxRecordBytes ?? 1024 * 1024;
    this.nextSeq = start.nextSeq;
    this.lastHash = start.tail.hash;
    this.durable = start.tail;
    this.durableBytes = start.bytes;
    this.problemsAtOpen = start.problems;
  }

  /**
   * Opens (creating when absent) the trail of a data dir, takes its lock, and recovers a torn
   * tail or a head that disagrees with the file (README "Recovery") before resolving.
   */
  static async open(options: AuditTrailOptions): Promise<AuditTrail> {
    if (typeof options.dir !== 'string' || options.dir === '')
      throw new TypeError(`AuditTrail.open: dir must be the data dir (a non-empty string), got ${JSON.stringify(options.dir)}`);
    const paths = auditPaths(options.dir);
    const logger = options.logger ?? silentLogger;
    await mkdir(paths.folder, { recursive: true });
    const release = await takeLock(paths.lock, `audit trail ${paths.folder}`);
    let handle: FileHandle | undefined;
    let trail: AuditTrail | undefined;
    try {
      const headState = await readHead(paths.head);
      const scanned = (await scanAuditFile(paths.log)) ?? { lines: [], completeBytes: 0 };
      const plan = planRecovery(scanned, headState);
      const problems = checkTrail(scanned, null).problems;
      if (problems.length > 0) {
        logger.error(
          { trail: paths.log, problems: problems.slice(0, 10), total: problems.length },
          'audit trail is damaged; appending after the damage, which stays for `crystalwatch audit verify` to report',
        );
      }
      handle = await open(paths.log, 'a+');
      if (scanned.tornTail) {
        const keptAt = join(paths.recovered, `torn-after-${plan.tail.seq}-${Date.now()}.part`);
        await mkdir(paths.recovered, { recursive: true });
        await writeFile(keptAt, scanned.tornTail, { flush: true });
        await syncFolder(paths.recovered);
        await handle.truncate(scanned.completeBytes);
        await handle.sync();
        plan.recoveries[0]!.recoveredTo = keptAt;
        logger.warn(
          { trail: paths.log, bytes: scanned.tornTail.length, keptAt },
          'audit trail ended in a torn write (crash mid-append); cut it off and recorded audit.recovered',
        );
      }
      trail = new AuditTrail(paths, handle, release, options, { tail: plan.tail, nextSeq: plan.nextSeq, bytes: scanned.completeBytes, problems });
      for (const { offset, parsed } of scanned.lines) {
        if (!parsed.ok) continue;
        trail.seqs.push(parsed.record.seq);
        trail.offsets.push(offset);
      }
      // Evidence first, then the head: a crash in between repeats the recovery, never loses it.
      const recovered = plan.recoveries.map((data) => trail!.seal('audit.recovered', data, 'crystalwatch'));
      if (recovered.length > 0) {
        await trail.write(recovered);
        trail.recovered.push(...recovered.map((p) => p.record));
        for (const data of plan.recoveries) logger.warn({ trail: paths.log, ...data }, `audit trail recovered: ${data.message}`);
      }
      trail.head = await HeadWriter.open(paths.head, trail.durable);
      await trail.head.write(trail.durable, trail.fsync);
      await syncFolder(paths.folder);
      if (options.mirror) {
        trail.mirror = new AuditMirror({
          ...options.mirrorOptions,
          send: options.mirror,
          cursorPath: paths.mirrorCursor,
          read: (after, limit) => trail!.readPage(after, limit),
          logger,
        });
        await trail.mirror.start();
      }
      return trail;
    } catch (err) {
      await trail?.head?.close().catch(() => undefined);
      await handle?.close().catch(() => undefined);
      await release();
      throw err;
    }
  }

  /** `audit.recovered` records this open appended (torn tail, head mismatch). */
  get recoveredAtOpen(): readonly AuditRecord[] {
    return this.recovered;
  }

  /** The last record known durable (seq 0 and 64 zeros for an empty trail). */
  get last(): Head {
    return { ...this.durable };
  }

  /**
   * Appends one record; resolves with it once it (and audit.head) are fsynced.
   * Rejects with AuditRecordError when `data` is not valid for `kind` (nothing is written).
   */
  append<K extends AppendableKind>(kind: K, data: AuditData<K>, actor?: string): Promise<AuditRecord> {
    if (this.closing) return Promise.reject(new AuditTrailClosedError(this.paths.folder));
    if (this.failure) return Promise.reject(new AuditTrailFailedError(this.paths.folder, this.failure));
    let pending: Pending;
    try {
      if (!isAuditKind(kind) || (kind as AuditKind) === 'audit.recovered')
        throw new AuditRecordError(`audit kind must be one of the appendable kinds (alert.fired, alert.delivered, …), got ${JSON.stringify(kind)}`);
      if (actor !== undefined && (typeof actor !== 'string' || actor.length === 0 || actor.length > 256))
        throw new AuditRecordError(`audit actor must be a name of 1–256 characters, got ${JSON.stringify(actor)}`);
      const problem = auditDataProblem(kind, data);
      if (problem) throw new AuditRecordError(`audit record ${kind}: ${problem}`);
      pending = this.seal(kind, data as Record<string, unknown>, actor);
    } catch (err) {
      return Promise.reject(err);
    }
    this.pending.push(pending);
    this.flushing ??= this.flushLoop();
    return new Promise((resolve, reject) => {
      pending.resolve = resolve;
      pending.reject = reject;
    });
  }

  /** Fixes seq, prev and hash now, so the chain follows call order. */
  private seal(kind: AuditKind, data: Record<string, unknown>, actor: string | undefined): Pending {
    let sealed;
    try {
      sealed = sealRecord({ seq: this.nextSeq, at: this.now().toISOString(), kind, actor, data, prev: this.lastHash });
    } catch (err) {
      throw new AuditRecordError(`audit record ${kind}: ${(err as Error).message}`);
    }
    const bytes = Buffer.byteLength(sealed.line);
    if (bytes > this.maxRecordBytes)
      throw new AuditRecordError(
        `audit record ${kind} is ${bytes} bytes, over maxRecordBytes ${this.maxRecordBytes}; record digests or ids instead of whole payloads`,
      );
    this.nextSeq += 1;
    this.lastHash = sealed.record.hash;
    return { ...sealed, resolve: () => {}, reject: () => {} };
  }

  private async flushLoop(): Promise<void> {
    while (this.pending.length > 0) {
      let bytes = 0;
      let count = 0;
      while (count < this.pending.length && (count === 0 || bytes + this.pending[count]!.line.length <= MAX_BATCH_BYTES))
        bytes += this.pending[count++]!.line.length;
      const batch = this.pending.splice(0, count);
      try {
        await this.write(batch);
        await this.head!.write(this.durable, this.fsync);
      } catch (err) {
        this.failure = err as Error;
        const failed = new AuditTrailFailedError(this.paths.folder, err);
        this.logger.error(
          { trail: this.paths.log, err, records: batch.length + this.pending.length },
          'audit trail write failed; refusing records until reopened',
        );
        for (const p of [...batch, ...this.pending.splice(0)]) p.reject(failed);
        break;
      }
      for (const p of batch) p.resolve(p.record);
      this.mirror?.notify();
    }
    this.flushing = undefined;
  }

  /** Writes lines at the end of the file (whole, fsynced) and extends the index. */
  private async write(batch: Pick<Pending, 'record' | 'line'>[]): Promise<void> {
    const buffer = Buffer.from(batch.map((p) => p.line).join(''), 'utf8');
    for (let done = 0; done < buffer.length;) {
      const { bytesWritten } = await this.handle.write(buffer, done, buffer.length - done, null);
      done += bytesWritten;
    }
    if (this.fsync) await this.handle.datasync();
    let offset = this.durableBytes;
    for (const p of batch) {
      this.seqs.push(p.record.seq);
      this.offsets.push(offset);
      offset += Buffer.byteLength(p.line);
    }
    this.durableBytes = offset;
    const last = batch[batch.length - 1]!.record;
    this.durable = { seq: last.seq, hash: last.hash };
  }

  /** A page of durable records in file order (which is seq order in an intact trail). */
  read(options: ReadOptions): Promise<AuditPage> {
    if (this.closing) return Promise.reject(new AuditTrailClosedError(this.paths.folder));
    const after = options.after ?? 0;
    if (!Number.isSafeInteger(after) || after < 0)
      return Promise.reject(new RangeError(`audit read: after must be a seq (an integer ≥ 0), got ${JSON.stringify(options.after)}`));
    if (!Number.isSafeInteger(options.limit) || options.limit < 1 || options.limit > 10_000)
      return Promise.reject(new RangeError(`audit read: limit must be an integer 1..10000, got ${JSON.stringify(options.limit)}`));
    const reading = this.readPage(after, options.limit);
    this.reads.add(reading);
    void reading.finally(() => this.reads.delete(reading)).catch(() => undefined);
    return reading;
  }

  private async readPage(after: number, limit: number): Promise<AuditPage> {
    const count = this.seqs.length;
    let lo = 0;
    for (let hi = count; lo < hi;) {
      const mid = (lo + hi) >>> 1;
      if (this.seqs[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    if (lo >= count) return { records: [] };
    const end = Math.min(lo + limit, count);
    const from = this.offsets[lo]!;
    const to = end < count ? this.offsets[end]! : this.durableBytes;
    const buffer = Buffer.alloc(to - from);
    for (let done = 0; done < buffer.length;) {
      const { bytesRead } = await this.handle.read(buffer, done, buffer.length - done, from + done);
      if (bytesRead === 0)
        throw new Error(
          `audit trail ${this.paths.log} is shorter than its index (at byte ${from + done}); was it truncated while open? Run crystalwatch audit verify`,
        );
      done += bytesRead;
    }
    const records: AuditRecord[] = [];
    for (const text of buffer.toString('utf8').split('\n')) {
      const parsed = text === '' ? undefined : parseRecordLine(text);
      if (parsed?.ok) records.push(parsed.record);
    }
    return end < count ? { records, next: records[records.length - 1]?.seq ?? this.seqs[end - 1] } : { records };
  }

  /** Idempotent: waits for queued appends, stops the mirror (its cursor remembers the rest), releases the lock. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.flushing;
      await this.mirror?.close();
      await Promise.allSettled([...this.reads]);
      await this.head?.close().catch(() => undefined);
      await this.handle.close();
      await this.release();
    })();
    return this.closing;
  }
}

/** Makes a new or renamed entry in `folder` survive a crash (a no-op where folders cannot be opened). */
async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, 'r').catch(() => undefined);
  await handle?.sync().catch(() => undefined);
  await handle?.close();
}

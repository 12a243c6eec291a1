/**
 * One camera folder: chokidar events and a periodic scan feed a queue of files to
 * check; complete frames wait in `ready` (bounded by the shared byte budget) until
 * the sender produces them, in capture order, to `frames`.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readFile, readlink, realpath } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { CompressionTypes, type Kafka, type Producer } from 'kafkajs';
import { createProducer } from '../bus/kafka.js';
import { encodeFrameHeaders, type FrameHeaders } from '../bus/messages.js';
import type { Logger } from '../config/logger.js';
import { CONTENT_TYPES, inspectImage, sniffKind, tailLooksComplete, type ImageKind, type RejectReason } from './image.js';
import { isIgnoredName, labelFromPath, moveFile, moveIfExists, readSidecar, sidecarPathFor, toRel, unlinkIfExists, walk, writeReason } from './files.js';
import type { Ledger, LedgerEntry, SendRecord, AckRecord } from './ledger.js';
import type { IngestMetrics } from './metrics.js';
import { findFrameIds } from './recovery.js';

/** Bytes read and not yet acknowledged, shared by all cameras of a stage. */
export class ByteBudget {
  used = 0;
  private waiters = new Set<() => void>();
  constructor(readonly max: number, private readonly onChange: (used: number) => void) {}
  /** Reserves `n` bytes; refuses when that would pass `max`, unless nothing is held (one frame always fits). */
  tryReserve(n: number): boolean {
    if (this.used > 0 && this.used + n > this.max) return false;
    this.used += n;
    this.onChange(this.used);
    return true;
  }
  release(n: number): void {
    this.used = Math.max(0, this.used - n);
    this.onChange(this.used);
    for (const w of [...this.waiters]) w();
  }
  onRelease(fn: () => void): () => void {
    this.waiters.add(fn);
    return () => this.waiters.delete(fn);
  }
}

export interface CameraContext {
  kafka: Kafka;
  framesTopic: string;
  ledger: Ledger;
  budget: ByteBudget;
  metrics: IngestMetrics;
  logger: Logger;
  after: 'keep' | 'move' | 'delete';
  maxFileBytes: number;
  maxMessageBytes: number;
  maxPixels: number;
  reconcileIntervalMs: number;
  /** A file that is not complete and has not changed for this long is judged as it is (truncated, empty). */
  stallTimeoutMs: number;
  /** TIFF (no end marker) is complete once its size has not changed for this long. */
  stableSizeMs: number;
  /** A complete frame waits this long for earlier captures whose events arrive late, so frames go out in capture order. */
  reorderWindowMs: number;
  /** Resolves once start-up recovery has settled which in-flight frames Kafka already has. */
  recovered: Promise<void>;
  stats: { ingested: number; rejected: number };
  /** `archiveDir`/`quarantineDir` from the options, or undefined for `<watch>/.archive`, `<watch>/.quarantine`. */
  archiveDir?: string;
  quarantineDir?: string;
}

interface Tracker {
  size: number;
  mtimeMs: number;
  /** Last time we saw the file change (or its mtime, when first seen). */
  changedAt: number;
  timer?: NodeJS.Timeout;
}

interface ReadyFrame {
  rel: string;
  abs: string;
  bytes: Buffer;
  size: number;
  mtimeMs: number;
  sha256: string;
  frameId: string;
  capturedAt: string;
  headers: FrameHeaders;
  completedAt: number;
}

const MAX_BATCH_FRAMES = 256;
const MAX_BATCH_BYTES = 2 * 1024 * 1024;

export class CameraIngest {
  readonly watchDir: string;
  private readonly archiveDir: string;
  private readonly quarantineDir: string;
  private realWatch = '';
  private watcher: FSWatcher | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private readonly trackers = new Map<string, Tracker>();
  /** Paths waiting to be checked, in arrival order; checked one at a time so frames stay in order. */
  private readonly checkQueue = new Set<string>();
  private checking = false;
  /** Paths read and waiting to be sent or acknowledged. */
  private readonly queued = new Set<string>();
  /** Paths not read because the byte budget was full. */
  private readonly parked = new Set<string>();
  private ready: ReadyFrame[] = [];
  private wakeSender: (() => void) | undefined;
  private senderDone: Promise<void> | undefined;
  private producer: Producer | undefined;
  private closed = false;
  private scanning: Promise<void> | undefined;
  private initialScanDone = false;
  private unsubscribeBudget: (() => void) | undefined;
  private sleepers = new Set<() => void>();
  private readonly log: Logger;

  constructor(readonly camera: string, watchDir: string, readonly runId: string, private readonly ctx: CameraContext) {
    this.watchDir = resolve(watchDir);
    this.archiveDir = resolve(ctx.archiveDir ? join(ctx.archiveDir, camera) : join(this.watchDir, '.archive'));
    this.quarantineDir = resolve(ctx.quarantineDir ? join(ctx.quarantineDir, camera) : join(this.watchDir, '.quarantine'));
    this.log = ctx.logger.child({ camera });
  }

  async start(): Promise<void> {
    await mkdir(this.watchDir, { recursive: true });
    this.realWatch = await realpath(this.watchDir);
    this.unsubscribeBudget = this.ctx.budget.onRelease(() => this.unpark());
    const skip = new Set([this.archiveDir, this.quarantineDir]);
    this.watcher = watch(this.watchDir, {
      ignoreInitial: true, // the first scan below sees what is already there, in name order
      followSymlinks: false,
      depth: 8,
      awaitWriteFinish: false, // we know when PNG/JPEG are complete; no fixed quiet period
      atomic: false,
      ignored: (path: string) => {
        if (path === this.watchDir) return false;
        if (skip.has(path)) return true;
        const rel = relative(this.watchDir, path);
        return rel.split(/[\\/]/).some((part) => isIgnoredName(part));
      },
    });
    const onFile = (path: string) => this.consider(toRel(relative(this.watchDir, path)));
    this.watcher.on('raw', (_event, name, details) => {
      const watchedPath = (details as { watchedPath?: string } | undefined)?.watchedPath;
      if (watchedPath) this.onRaw(watchedPath, name);
    });
    this.watcher.on('add', onFile).on('change', onFile).on('unlink', (path) => this.forget(toRel(relative(this.watchDir, path))));
    this.watcher.on('error', (err) => this.log.error({ err }, 'folder watcher error; the periodic scan keeps ingesting'));
    await new Promise<void>((resolveReady) => this.watcher!.once('ready', () => resolveReady()));
    this.senderDone = this.sendLoop();
    await this.scan();
    this.initialScanDone = true;
    this.scanTimer = setInterval(() => { void this.scan(); }, this.ctx.reconcileIntervalMs);
    this.scanTimer.unref();
    this.log.info({ watch: this.watchDir, after: this.ctx.after }, 'watching camera folder');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.scanTimer) clearInterval(this.scanTimer);
    for (const t of this.trackers.values()) if (t.timer) clearTimeout(t.timer);
    this.unsubscribeBudget?.();
    await this.watcher?.close();
    for (const wake of [...this.sleepers]) wake();
    this.wakeSender?.();
    // A send stuck on an unreachable broker would hold close() for kafkajs's whole retry
    // budget; disconnecting fails it now. Its frames stay `send` without `ack` in the
    // ledger, and the next start looks them up in Kafka.
    const producer = this.producer;
    this.producer = undefined;
    await producer?.disconnect().catch(() => undefined);
    await this.senderDone;
    await this.scanning;
    while (this.checking) await new Promise((r) => setTimeout(r, 5));
    for (const f of this.ready) this.ctx.budget.release(f.size);
    this.ready = [];
    // The sender may have made a new producer while retrying.
    const last = this.producer as Producer | undefined;
    this.producer = undefined;
    await last?.disconnect().catch(() => undefined);
  }

  /** Periodic reconciliation: the folder against what we know, for events chokidar missed. */
  private scan(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.scanning) return this.scanning;
    this.scanning = (async () => {
      try {
        const files = await walk(this.watchDir, new Set([this.archiveDir, this.quarantineDir]));
        for (const rel of files) {
          if (this.closed) return;
          if (this.trackers.has(rel) || this.queued.has(rel) || this.checkQueue.has(rel) || this.parked.has(rel)) continue;
          const entry = this.ctx.ledger.get(this.camera, rel);
          if (entry?.acked) {
            if (this.ctx.after === 'keep') {
              const st = await lstat(join(this.watchDir, rel)).catch(() => undefined);
              if (st && st.size === entry.size && st.mtimeMs === entry.mtimeMs) continue;
            }
          } else if (this.initialScanDone) {
            this.ctx.metrics.reconciled.inc({ camera: this.camera });
            this.log.debug({ file: rel }, 'scan found a file no event reported');
          }
          this.consider(rel);
        }
      } catch (err) {
        this.log.error({ err }, 'folder scan failed; retrying at the next interval');
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  /**
   * chokidar re-reads a changed directory (with a stat per entry) at most once a
   * second and emits `add` after that, so in a busy folder its `add` events come late
   * and in bursts; frames would go out late and out of order. Its `raw` events are the
   * inotify events as they happen, in order: each one names the file, which we check
   * at once. `add`/`change` stay as a second source and the periodic scan as a third.
   */
  private onRaw(watchedPath: string, name: string | null | undefined): void {
    if (!name || this.closed) return;
    // chokidar also watches each file on its own; such a watcher names its own file.
    const abs = basename(watchedPath) === name ? watchedPath : resolve(watchedPath, name);
    {
      if (!isInside(this.watchDir, abs) || abs === this.watchDir) return;
      const rel = toRel(relative(this.watchDir, abs));
      if (rel.split('/').some((part) => isIgnoredName(part))) return;
      if (isInside(this.archiveDir, abs) || isInside(this.quarantineDir, abs)) return;
      this.consider(rel);
    }
  }

  private forget(rel: string): void {
    const t = this.trackers.get(rel);
    if (t?.timer) clearTimeout(t.timer);
    this.trackers.delete(rel);
  }

  private consider(rel: string): void {
    if (this.closed || this.queued.has(rel)) return;
    this.checkQueue.add(rel);
    if (!this.checking) void this.pump();
  }

  private unpark(): void {
    if (this.parked.size === 0) return;
    const paths = [...this.parked];
    this.parked.clear();
    for (const rel of paths) this.consider(rel);
  }

  private async pump(): Promise<void> {
    this.checking = true;
    try {
      while (!this.closed && this.checkQueue.size > 0) {
        const rel = this.checkQueue.values().next().value as string;
        this.checkQueue.delete(rel);
        try {
          await this.check(rel);
        } catch (err) {
          this.log.error({ err, file: rel }, 'checking a file failed; it will be retried by the next scan');
          this.forget(rel);
        }
      }
    } finally {
      this.checking = false;
    }
  }

  private recheckLater(rel: string, delayMs: number): void {
    const t = this.trackers.get(rel);
    if (!t || this.closed) return;
    if (t.timer) clearTimeout(t.timer);
    t.timer = setTimeout(() => { t.timer = undefined; this.consider(rel); }, delayMs);
  }

  private get pollMs(): number {
    return Math.max(20, Math.min(250, Math.floor(this.ctx.stableSizeMs / 2), Math.floor(this.ctx.stallTimeoutMs / 4)));
  }

  /** realpath of a folder, cached for a second: one lookup per folder, not per frame. */
  private readonly realFolders = new Map<string, { real: string | undefined; at: number }>();
  private async realFolder(folder: string): Promise<string | undefined> {
    const cached = this.realFolders.get(folder);
    if (cached && Date.now() - cached.at < 1_000) return cached.real;
    const real = await realpath(folder).catch(() => undefined);
    this.realFolders.set(folder, { real, at: Date.now() });
    return real;
  }

  /** Decides what a file is: not ready yet, already done, rejected, or a frame to send. */
  private async check(rel: string): Promise<void> {
    if (this.queued.has(rel)) return;
    const abs = join(this.watchDir, rel);
    let st;
    try {
      st = await lstat(abs);
    } catch (err) {
      if (isGone(err)) return this.forget(rel);
      return this.reject(rel, 'unreadable', `lstat failed: ${(err as NodeJS.ErrnoException).code}`);
    }
    if (st.isSymbolicLink()) {
      const target = await readlink(abs).catch(() => '?');
      const real = await realpath(abs).catch(() => undefined);
      const outside = real === undefined || !isInside(this.realWatch, real);
      return this.reject(rel, 'symlink', `symlink to ${target}${outside ? ', which is outside the watched folder' : ''}; copy the file into the folder instead`);
    }
    if (!st.isFile()) return this.forget(rel);
    // A parent folder replaced by a symlink after the watch started would lead outside.
    const realParent = await this.realFolder(join(abs, '..'));
    if (realParent === undefined || !isInside(this.realWatch, realParent)) {
      return this.reject(rel, 'symlink', `its folder resolves to ${realParent ?? '(unresolvable)'}, outside the watched folder`);
    }

    const entry = this.ctx.ledger.get(this.camera, rel);
    if (entry?.acked && entry.size === st.size && entry.mtimeMs === st.mtimeMs) return this.alreadyIngested(rel, entry);

    const now = Date.now();
    let tracker = this.trackers.get(rel);
    if (!tracker) {
      tracker = { size: st.size, mtimeMs: st.mtimeMs, changedAt: Math.min(now, st.mtimeMs) };
      this.trackers.set(rel, tracker);
    } else if (tracker.size !== st.size || tracker.mtimeMs !== st.mtimeMs) {
      tracker.size = st.size;
      tracker.mtimeMs = st.mtimeMs;
      tracker.changedAt = now;
    }
    const quietMs = now - tracker.changedAt;
    const stalled = quietMs >= this.ctx.stallTimeoutMs;

    if (st.size === 0) {
      if (stalled) return this.reject(rel, 'empty', `zero bytes, unchanged for ${quietMs} ms`);
      return this.recheckLater(rel, this.pollMs);
    }
    const limit = Math.min(this.ctx.maxFileBytes, this.ctx.maxMessageBytes - 64 * 1024);
    if (st.size > limit) {
      return this.reject(rel, 'too-large', `${st.size} bytes; the limit is ${limit} bytes (min of maxFileBytes ${this.ctx.maxFileBytes} and the Kafka record limit ${this.ctx.maxMessageBytes} minus headers)`);
    }

    // Peek at the magic number and the last bytes before reading the whole file.
    let head: Buffer;
    let tail: Buffer;
    let whole: Buffer | undefined;
    try {
      // Small files are read whole at once; big ones are peeked at first, so a slow
      // writer's 1 MB frame is not re-read on every change event.
      if (st.size <= 256 * 1024) {
        whole = await readFile(abs);
        head = whole.subarray(0, 16);
        tail = whole.subarray(Math.max(0, whole.length - 12));
      } else {
        [head, tail] = await peek(abs, st.size);
      }
    } catch (err) {
      if (isGone(err)) return this.forget(rel);
      return this.reject(rel, 'unreadable', `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const kind = sniffKind(head);
    if (!kind) {
      const full = inspectImage(head, { maxPixels: this.ctx.maxPixels });
      if (full.state === 'invalid') return this.reject(rel, full.reason, full.detail);
      if (stalled) return this.reject(rel, 'not-an-image', `only ${st.size} bytes, unchanged for ${quietMs} ms, not a PNG, JPEG or TIFF header`);
      return this.recheckLater(rel, this.pollMs);
    }
    if (!tailLooksComplete(kind, tail) && !stalled) return this.recheckLater(rel, this.pollMs);

    if (!this.ctx.budget.tryReserve(st.size)) {
      this.parked.add(rel); // bounded memory: stop reading until Kafka catches up
      return;
    }
    let held = st.size;
    const release = () => { if (held > 0) { this.ctx.budget.release(held); held = 0; } };
    try {
      let bytes: Buffer;
      try {
        bytes = whole ?? (await readFile(abs));
      } catch (err) {
        if (isGone(err)) return this.forget(rel);
        return this.reject(rel, 'unreadable', `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (bytes.length !== st.size) {
        // Still growing while we read it.
        tracker.changedAt = Date.now();
        return this.recheckLater(rel, this.pollMs);
      }
      const inspection = inspectImage(bytes, { maxPixels: this.ctx.maxPixels });
      let imageKind: ImageKind;
      if (inspection.state === 'invalid') return this.reject(rel, inspection.reason, inspection.detail);
      if (inspection.state === 'incomplete') {
        if (stalled) {
          // It ends like a complete image, yet a chunk/segment runs past the end: damaged, not cut short.
          if (tailLooksComplete(inspection.kind ?? kind, tail)) return this.reject(rel, 'corrupt', `${inspection.detail}, although the file ends with the end marker`);
          return this.reject(rel, 'truncated', `${inspection.detail}; unchanged for ${quietMs} ms`);
        }
        return this.recheckLater(rel, this.pollMs);
      }
      if (inspection.state === 'needs-stable-size') {
        if (quietMs < this.ctx.stableSizeMs) return this.recheckLater(rel, Math.max(10, this.ctx.stableSizeMs - quietMs));
        if (inspection.width === undefined || inspection.height === undefined) return this.reject(rel, 'corrupt', 'TIFF: no ImageWidth/ImageLength in the first directory');
        imageKind = 'tiff';
      } else {
        imageKind = inspection.kind;
      }
      const completedAt = Date.now();

      // Ground truth: sidecar first, folder names second.
      const sidecarPath = sidecarPathFor(abs);
      const sidecar = await readSidecar(sidecarPath);
      if (sidecar.state === 'invalid') {
        // A sidecar being rewritten in place may be torn for a moment; give it the stall time.
        if (Date.now() - sidecar.mtimeMs < this.ctx.stallTimeoutMs) return this.recheckLater(rel, this.pollMs);
        return this.reject(rel, 'bad-sidecar', sidecar.detail);
      }
      const capturedAt = sidecar.state === 'ok' && sidecar.sidecar.capturedAt ? new Date(sidecar.sidecar.capturedAt).toISOString() : new Date(st.mtimeMs).toISOString();
      const label = (sidecar.state === 'ok' ? sidecar.sidecar.label : undefined) ?? labelFromPath(rel);
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      if (entry?.acked && entry.sha256 === sha256) return this.alreadyIngested(rel, entry); // touched, same bytes

      const frameId = `${this.camera}-${capturedAt.replace(/[-:.]/g, '')}-${sha256.slice(0, 16)}`;
      const headers: FrameHeaders = {
        'frame-id': frameId,
        camera: this.camera,
        'captured-at': capturedAt,
        'content-type': CONTENT_TYPES[imageKind],
        'run-id': this.runId,
        'completed-at': String(completedAt),
      };
      if (label) headers.label = label;
      this.forget(rel);
      this.queued.add(rel);
      this.ready.push({ rel, abs, bytes, size: st.size, mtimeMs: st.mtimeMs, sha256, frameId, capturedAt, headers, completedAt });
      held = 0; // now owned by the ready frame; released after the ack
      this.wakeSender?.();
    } finally {
      release();
    }
  }

  private async reject(rel: string, reason: RejectReason, detail: string): Promise<void> {
    this.forget(rel);
    const abs = join(this.watchDir, rel);
    let size: number | undefined;
    try { size = (await lstat(abs)).size; } catch { /* reported below */ }
    try {
      const to = await moveFile(abs, join(this.quarantineDir, rel));
      await moveIfExists(sidecarPathFor(abs), sidecarPathFor(to));
      await writeReason(to, { reason, detail, camera: this.camera, source: abs, size, at: new Date().toISOString() });
      this.ctx.metrics.rejected.inc({ camera: this.camera, reason });
      this.ctx.stats.rejected += 1;
      this.log.warn({ file: rel, reason, detail, quarantine: to }, `frame rejected (${reason}): ${detail}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.log.error({ err, file: rel, reason, detail }, `frame rejected (${reason}) but moving it to ${this.quarantineDir} failed; fix that folder's permissions`);
    }
  }

  private async alreadyIngested(rel: string, entry: LedgerEntry): Promise<void> {
    this.forget(rel);
    if (this.ctx.after === 'keep') return;
    await this.applyAfter(join(this.watchDir, rel), rel, entry.frameId);
  }

  /** `--after`: only ever run once Kafka acknowledged the frame and the ledger says so. */
  private async applyAfter(abs: string, rel: string, frameId: string): Promise<void> {
    try {
      if (this.ctx.after === 'move') {
        const to = await moveIfExists(abs, join(this.archiveDir, rel));
        if (to) await moveIfExists(sidecarPathFor(abs), sidecarPathFor(to));
      } else if (this.ctx.after === 'delete') {
        await unlinkIfExists(abs);
        await unlinkIfExists(sidecarPathFor(abs));
      }
      // The file left the folder: the ledger can drop its entry.
      if (this.ctx.after !== 'keep') await this.ctx.ledger.note([{ t: 'done', camera: this.camera, path: rel }]).catch(() => undefined);
    } catch (err) {
      this.log.error({ err, file: rel, frameId }, `frame is in Kafka but --after ${this.ctx.after} failed; it stays in place and is not sent again`);
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      const finish = () => { clearTimeout(timer); this.sleepers.delete(finish); done(); };
      const timer = setTimeout(finish, ms);
      this.sleepers.add(finish);
    });
  }

  private async sendLoop(): Promise<void> {
    await this.ctx.recovered.catch(() => undefined);
    while (!this.closed) {
      if (this.ready.length === 0) {
        await new Promise<void>((wake) => { this.wakeSender = wake; });
        this.wakeSender = undefined;
        continue;
      }
      const batch = this.takeBatch();
      if (batch.length === 0) {
        // The earliest frame is younger than the reorder window: an event for an
        // earlier capture may still be on its way (events from sibling folders race).
        const youngest = Math.min(...this.ready.map((f) => f.completedAt));
        await this.sleep(Math.max(1, this.ctx.reorderWindowMs - (Date.now() - youngest)));
        continue;
      }
      await this.sendBatch(batch);
    }
  }

  /** Sorted by capture time; the longest prefix of frames complete for at least the reorder window. */
  private takeBatch(): ReadyFrame[] {
    this.ready.sort((a, b) => (a.capturedAt < b.capturedAt ? -1 : a.capturedAt > b.capturedAt ? 1 : a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    const batch: ReadyFrame[] = [];
    let bytes = 0;
    const now = Date.now();
    // kafkajs builds a request by growing and copying one buffer: a few MiB per request
    // is as fast per byte as it gets, a 16 MiB request is slower per byte (measured in bench/ingest.ts).
    const limit = Math.min(this.ctx.maxMessageBytes, MAX_BATCH_BYTES);
    while (this.ready.length > 0 && batch.length < MAX_BATCH_FRAMES) {
      const next = this.ready[0];
      if (now - next.completedAt < this.ctx.reorderWindowMs) break;
      const size = next.size + 1024;
      if (batch.length > 0 && bytes + size > limit) break;
      batch.push(next);
      bytes += size;
      this.ready.shift();
    }
    return batch;
  }

  private async sendBatch(batch: ReadyFrame[]): Promise<void> {
    // Frames the ledger already has acknowledged (start-up recovery found them in Kafka) are not sent again.
    let pending: ReadyFrame[] = [];
    for (const f of batch) {
      const entry = this.ctx.ledger.byFrame(f.frameId);
      if (entry?.acked && entry.camera === this.camera && entry.path === f.rel) await this.finish(f, false);
      else pending.push(f);
    }
    if (pending.length === 0) return;

    const at = new Date().toISOString();
    const sends: SendRecord[] = pending.map((f) => ({ t: 'send', camera: this.camera, path: f.rel, size: f.size, mtimeMs: f.mtimeMs, sha256: f.sha256, frameId: f.frameId, at }));
    // Written, not fsynced: it survives a killed process (the page cache does), and the
    // ack record's fsync below makes it durable too. Only a power cut between the two could
    // lose it, and then the frame may be sent twice (same frame-id; consumers de-duplicate).
    await this.ctx.ledger.note(sends);

    for (let attempt = 0; pending.length > 0 && !this.closed; attempt += 1) {
      try {
        if (attempt > 0) {
          // The failed request may have been appended before the connection broke.
          const found = await findFrameIds(this.ctx.kafka, this.ctx.framesTopic, new Set(pending.map((f) => f.frameId)), {
            after: this.ctx.ledger.lastAckedOffsets(),
            maxMessageBytes: this.ctx.maxMessageBytes,
            logger: this.log,
          });
          if (found.size > 0) {
            const acks: AckRecord[] = [...found].map(([frameId, p]) => ({ t: 'ack', frameId, partition: p.partition, offset: p.offset, at: new Date().toISOString() }));
            await this.ctx.ledger.append(acks);
            for (const f of pending.filter((p) => found.has(p.frameId))) await this.finish(f, true);
            pending = pending.filter((p) => !found.has(p.frameId));
            if (pending.length === 0) break;
          }
        }
        if (!this.producer) {
          const producer = createProducer(this.ctx.kafka);
          await producer.connect();
          this.producer = producer;
        }
        const metadata = await this.producer.send({
          topic: this.ctx.framesTopic,
          acks: -1,
          compression: CompressionTypes.None, // PNG/JPEG are compressed already
          messages: pending.map((f) => ({ key: this.camera, value: f.bytes, headers: encodeFrameHeaders(f.headers) })),
        });
        const meta = metadata.find((m) => m.topicName === this.ctx.framesTopic) ?? metadata[0];
        const base = BigInt(meta.baseOffset ?? '0');
        const ackAt = new Date().toISOString();
        await this.ctx.ledger.append(pending.map((f, i) => ({ t: 'ack', frameId: f.frameId, partition: meta.partition, offset: (base + BigInt(i)).toString(), at: ackAt })));
        for (const f of pending) await this.finish(f, true);
        pending = [];
      } catch (err) {
        if (this.closed) break;
        this.ctx.metrics.sendErrors.inc({ camera: this.camera });
        const tooLarge = /too large|MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE/i.test(`${(err as Error).message} ${(err as { type?: string }).type ?? ''}`);
        if (tooLarge && pending.length === 1) {
          const f = pending[0];
          this.queued.delete(f.rel);
          this.ctx.budget.release(f.size);
          await this.reject(f.rel, 'too-large', `Kafka refused the record of ${f.size} bytes (${(err as Error).message}); raise the topic's max.message.bytes or lower --max-bytes`);
          return;
        }
        const backoffMs = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
        this.log.warn({ err: (err as Error).message, frames: pending.length, attempt: attempt + 1, backoffMs }, 'sending frames to Kafka failed; retrying (reading of new files pauses when the memory budget is full)');
        const old = this.producer;
        this.producer = undefined;
        await old?.disconnect().catch(() => undefined);
        if (tooLarge && pending.length > 1) {
          // Split: send the first half now, return the rest to the front of the queue.
          const rest = pending.splice(Math.ceil(pending.length / 2));
          this.ready.unshift(...rest);
        }
        await this.sleep(backoffMs);
      }
    }
    // Closed with frames unsent: their `send` records stay unacknowledged, recovery sorts them out on the next start.
    for (const f of pending) { this.queued.delete(f.rel); this.ctx.budget.release(f.size); }
  }

  private async finish(f: ReadyFrame, sentNow: boolean): Promise<void> {
    if (sentNow) {
      this.ctx.metrics.ingested.inc({ camera: this.camera });
      this.ctx.metrics.latency.observe({ camera: this.camera }, (Date.now() - f.completedAt) / 1000);
      this.ctx.stats.ingested += 1;
      this.log.debug({ file: f.rel, frameId: f.frameId }, 'frame ingested');
    }
    this.ctx.budget.release(f.size);
    if (this.ctx.after !== 'keep') await this.applyAfter(f.abs, f.rel, f.frameId);
    this.queued.delete(f.rel);
  }
}

/** The file went away (or a parent is no longer a folder): nothing to do. */
function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The first 16 and last 12 bytes of a file. */
async function peek(path: string, size: number): Promise<[Buffer, Buffer]> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(Math.min(16, size));
    await handle.read(head, 0, head.length, 0);
    const tailLength = Math.min(12, size);
    const tail = Buffer.alloc(tailLength);
    await handle.read(tail, 0, tailLength, size - tailLength);
    return [head, tail];
  } finally {
    await handle.close();
  }
}


/**
 * One camera folder: chokidar events and a periodic scan feed a queue of files to
 * check; complete frames wait in the sender (sender.ts; bounded by the shared byte
 * budget) until it produces them, in capture order, to `frames`.
 */
import { lstat, mkdir, realpath, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from '../config/logger.js';
import type { RejectReason } from './image.js';
import { describeSymlink, isGone, isInside, openFrameFile, peekHandle, readHandle, RealFolders } from './open.js';
import { FolderDisposal } from './disposal.js';
import { framePathIn, readSidecar, sidecarPathFor, walk } from './files.js';
import { watchFolder, type FolderWatcher } from './watcher.js';
import { describeFrame } from './frame.js';
import { frameDigestOffThread } from '../bus/frame-id.js';
import { judgeHead, judgeWhole } from './verdict.js';
import type { CameraContext } from './context.js';
import type { LedgerEntry } from './ledger.js';
import { FrameSender, type ReadyFrame } from './sender.js';
import { HEAD_BYTES, SMALL_FILE_BYTES, type Tracker } from './tracking.js';

export { ByteBudget } from './budget.js';
export type { CameraContext } from './context.js';

export class CameraIngest {
  readonly watchDir: string;
  private readonly archiveDir: string;
  private readonly quarantineDir: string;
  private realWatch = '';
  private watcher: FolderWatcher | undefined;
  private scanTimer: NodeJS.Timeout | undefined;
  private readonly trackers = new Map<string, Tracker>();
  /** Paths waiting to be checked, in arrival order; checked one at a time so frames stay in order. */
  private readonly checkQueue = new Set<string>();
  private checking = false;
  /** Paths read and waiting to be sent or acknowledged. */
  private readonly queued = new Set<string>();
  /** Paths not read because the byte budget was full. */
  private readonly parked = new Set<string>();
  private readonly sender: FrameSender;
  private readonly disposal: FolderDisposal;
  private closed = false;
  private scanning: Promise<void> | undefined;
  private initialScanDone = false;
  private unsubscribeBudget: (() => void) | undefined;
  private readonly log: Logger;
  private readonly realFolders = new RealFolders();
  /** The archive and quarantine folders: never frames, wherever they are (framePathIn). */
  private readonly ownDirs: readonly string[];

  constructor(
    readonly camera: string,
    watchDir: string,
    readonly runId: string,
    private readonly ctx: CameraContext,
  ) {
    this.watchDir = resolve(watchDir);
    this.archiveDir = resolve(ctx.archiveDir ? join(ctx.archiveDir, camera) : join(this.watchDir, '.archive'));
    this.quarantineDir = resolve(ctx.quarantineDir ? join(ctx.quarantineDir, camera) : join(this.watchDir, '.quarantine'));
    this.ownDirs = [this.archiveDir, this.quarantineDir];
    this.log = ctx.logger.child({ camera });
    this.disposal = new FolderDisposal(camera, this.watchDir, this.archiveDir, this.quarantineDir, ctx, this.log);
    this.sender = new FrameSender(camera, ctx, this.log, {
      finished: (frame, sentNow) => this.finish(frame, sentNow),
      refused: async (frame, detail) => {
        this.queued.delete(frame.rel);
        this.ctx.budget.release(frame.size);
        await this.reject(frame.rel, 'too-large', detail);
      },
      abandoned: (frame) => {
        this.queued.delete(frame.rel);
        this.ctx.budget.release(frame.size);
      },
    });
  }

  async start(): Promise<void> {
    await mkdir(this.watchDir, { recursive: true });
    this.realWatch = await realpath(this.watchDir);
    this.unsubscribeBudget = this.ctx.budget.onRelease(() => this.unpark());
    this.watcher = await watchFolder(this.watchDir, this.ownDirs, this.ctx.reconcileIntervalMs, {
      named: (abs) => this.onNamed(abs),
      folderWatched: (abs) => void this.scanFolder(abs),
      error: (err) => this.log.error({ err }, 'folder watcher error; the periodic scan keeps ingesting'),
    });
    this.sender.start();
    await this.scan();
    this.initialScanDone = true;
    this.scanTimer = setInterval(() => {
      void this.scan();
    }, this.ctx.reconcileIntervalMs);
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
    await this.sender.stop();
    await this.scanning;
    while (this.checking) await new Promise((r) => setTimeout(r, 5));
    await this.sender.discard();
  }

  /** Periodic reconciliation: the folder against what we know, for events chokidar missed. */
  private scan(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.scanning) return this.scanning;
    this.scanning = (async () => {
      try {
        const files = await walk(this.watchDir, this.ownDirs);
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

  /** A folder that appeared after the start, now watched: what is in it already was named by no event. */
  private async scanFolder(abs: string): Promise<void> {
    try {
      for (const rel of await walk(abs, this.ownDirs)) {
        const inWatch = framePathIn(this.watchDir, this.ownDirs, join(abs, rel));
        if (inWatch !== undefined && !this.queued.has(inWatch) && !this.ctx.ledger.get(this.camera, inWatch)?.acked) this.consider(inWatch);
      }
    } catch (err) {
      this.log.warn({ err, folder: abs }, 'reading a new folder failed; the periodic scan will find its files');
    }
  }

  /**
   * An inotify event named `abs` (watcher.ts): checked at once, so frames go out as soon as
   * they are complete and in the order they arrived; the periodic scan finds what events missed.
   */
  private onNamed(abs: string): void {
    if (this.closed) return;
    const rel = framePathIn(this.watchDir, this.ownDirs, abs);
    if (rel !== undefined) this.consider(rel);
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
    t.timer = setTimeout(() => {
      t.timer = undefined;
      this.consider(rel);
    }, delayMs);
  }

  private get pollMs(): number {
    return Math.max(20, Math.min(250, Math.floor(this.ctx.stableSizeMs / 2), Math.floor(this.ctx.stallTimeoutMs / 4)));
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
    if (st.isSymbolicLink()) return this.reject(rel, 'symlink', await describeSymlink(abs, this.realWatch));
    if (st.isDirectory()) this.watcher?.watchNewFolder(abs); // a new label folder: watched now (watcher.ts)
    if (!st.isFile()) return this.forget(rel);
    // A parent folder replaced by a symlink after the watch started would lead outside.
    const realParent = await this.realFolders.get(join(abs, '..'));
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
      return this.reject(
        rel,
        'too-large',
        `${st.size} bytes; the limit is ${limit} bytes (min of maxFileBytes ${this.ctx.maxFileBytes} and the Kafka record limit ${this.ctx.maxMessageBytes} minus headers)`,
      );
    }

    // Opened without following links and checked on the descriptor (open.ts): what is read is what lstat saw.
    const opened = await openFrameFile(abs, st, this.realWatch);
    if (!opened.ok) {
      if (opened.reason === 'gone') return this.forget(rel);
      if (opened.reason === 'changed') return this.recheckLater(rel, this.pollMs);
      return this.reject(rel, opened.reason, opened.detail);
    }
    try {
      await this.checkOpened(rel, abs, st, opened.handle, tracker, entry, quietMs);
    } finally {
      await opened.handle.close().catch(() => undefined);
    }
  }

  /** The rest of check(), on the descriptor openFrameFile vetted. */
  private async checkOpened(
    rel: string,
    abs: string,
    st: { size: number; mtimeMs: number },
    handle: FileHandle,
    tracker: Tracker,
    entry: LedgerEntry | undefined,
    quietMs: number,
  ): Promise<void> {
    const stalled = quietMs >= this.ctx.stallTimeoutMs;
    // Peek at the header and the last bytes before reading the whole file: small files are read
    // whole at once; big ones are peeked at first, so a slow writer's 1 MB frame is not re-read
    // on every change event, and a header claiming too many pixels is refused unread.
    let head: Buffer;
    let tail: Buffer;
    let whole: Buffer | undefined;
    try {
      if (st.size <= SMALL_FILE_BYTES) {
        whole = await readHandle(handle, st.size);
        head = whole.subarray(0, HEAD_BYTES);
        tail = whole.subarray(Math.max(0, whole.length - 12));
      } else {
        ({ head, tail } = await peekHandle(handle, st.size, HEAD_BYTES));
      }
    } catch (err) {
      if (isGone(err)) return this.forget(rel);
      return this.reject(rel, 'unreadable', `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    const quiet = { maxPixels: this.ctx.maxPixels, quietMs, stalled };
    const first = judgeHead(head, tail, st.size, quiet);
    if (first.do === 'reject') return this.reject(rel, first.reason, first.detail);
    if (first.do === 'wait') return this.recheckLater(rel, this.pollMs);

    if (!this.ctx.budget.tryReserve(st.size)) {
      this.parked.add(rel); // bounded memory: stop reading until Kafka catches up
      return;
    }
    let held = st.size;
    const release = () => {
      if (held > 0) {
        this.ctx.budget.release(held);
        held = 0;
      }
    };
    try {
      let bytes: Buffer;
      try {
        bytes = whole ?? (await readHandle(handle, st.size));
      } catch (err) {
        if (isGone(err)) return this.forget(rel);
        return this.reject(rel, 'unreadable', `cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      if (bytes.length !== st.size) {
        // Still growing while we read it.
        tracker.changedAt = Date.now();
        return this.recheckLater(rel, this.pollMs);
      }
      const verdict = judgeWhole(bytes, tail, first.kind, { ...quiet, stableSizeMs: this.ctx.stableSizeMs });
      if (verdict.do === 'reject') return this.reject(rel, verdict.reason, verdict.detail);
      if (verdict.do === 'wait') return this.recheckLater(rel, verdict.delayMs ?? this.pollMs);
      const completedAt = Date.now();

      // Ground truth: sidecar first, folder names second.
      const sidecarPath = sidecarPathFor(abs);
      const sidecar = await readSidecar(sidecarPath);
      if (sidecar.state === 'invalid') {
        // A sidecar being rewritten in place may be torn for a moment; give it the stall time.
        if (Date.now() - sidecar.mtimeMs < this.ctx.stallTimeoutMs) return this.recheckLater(rel, this.pollMs);
        return this.reject(rel, 'bad-sidecar', sidecar.detail);
      }
      const frame = describeFrame({
        camera: this.camera,
        runId: this.ctx.runFor?.(this.camera) ?? this.runId,
        rel,
        kind: verdict.kind,
        sha256: await frameDigestOffThread(bytes), // once per frame, off the event loop
        mtimeMs: st.mtimeMs,
        completedAt,
        sidecar: sidecar.state === 'ok' ? sidecar.sidecar : undefined,
      });
      if (entry?.acked && entry.sha256 === frame.sha256) return this.alreadyIngested(rel, entry); // touched, same bytes
      this.forget(rel);
      this.queued.add(rel);
      this.sender.push({ rel, abs, bytes, size: st.size, mtimeMs: st.mtimeMs, ...frame, completedAt });
      held = 0; // now owned by the ready frame; released after the ack
    } finally {
      release();
    }
  }

  private async reject(rel: string, reason: RejectReason, detail: string): Promise<void> {
    this.forget(rel);
    await this.disposal.quarantine(rel, reason, detail);
  }

  private async alreadyIngested(rel: string, entry: LedgerEntry): Promise<void> {
    this.forget(rel);
    if (this.ctx.after === 'keep') return;
    await this.disposal.afterIngest(join(this.watchDir, rel), rel, entry.frameId);
  }

  private async finish(f: ReadyFrame, sentNow: boolean): Promise<void> {
    if (sentNow) {
      this.ctx.metrics.ingested.inc({ camera: this.camera });
      this.ctx.metrics.latency.observe({ camera: this.camera }, (Date.now() - f.completedAt) / 1000);
      this.ctx.stats.ingested += 1;
      this.log.debug({ file: f.rel, frameId: f.frameId }, 'frame ingested');
    }
    this.ctx.budget.release(f.size);
    if (this.ctx.after !== 'keep') await this.disposal.afterIngest(f.abs, f.rel, f.frameId);
    this.queued.delete(f.rel);
  }
}

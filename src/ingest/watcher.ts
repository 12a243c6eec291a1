/**
 * The chokidar watcher of one camera folder, set up so it costs little in a busy folder.
 *
 * chokidar 4 re-reads a folder on every inotify event for it: `readdir`, then an `lstat` of
 * every entry (its readdirp stream always stats), then the `ignored` test. Its 1 s throttle
 * is cleared when a read ends, and a read during which events arrived is repeated at once,
 * so a folder that receives frames all the time is re-read back to back, an `lstat` per
 * entry each time, and every file found gets an inotify watch of its own. At 8 cameras ×
 * 10 frames/s that was the biggest item of ingest's CPU profile, and the more frames waited
 * in a folder the more each read cost, so a folder that fell behind fell further behind.
 *
 * Ingest needs none of it: chokidar's `raw` events (the folder's inotify events, each
 * naming an entry) say what to check, and the periodic scan reconciles the folder with the
 * ledger. So:
 * - `ignored` refuses every entry that is not a folder of frames: no file gets a watch of
 *   its own, no `add`/`change`/`unlink` is emitted (they were a second source only);
 * - a folder is re-read at most once per `minRereadMs` (the scan interval): chokidar has no
 *   option for it, so `FolderWatcher` refuses the extra reads in `_readdirp`, the one method
 *   chokidar reads folders with (declared in its typings). Re-reads only find new sub-folders
 *   (label folders); the first read of every folder is always allowed.
 * A folder that appears is watched as soon as an event names it (`watchNewFolder`, called by
 * the check that finds a folder), not at chokidar's next re-read, and reported once its first
 * read is done and its inotify watch is set (`folderWatched`), so the caller scans it: files
 * written into it before that were named by no event, files written after it will be.
 * Should a chokidar release stop calling `_readdirp`, the override goes unused and the
 * watcher behaves as plain chokidar (correct, only costlier); test/ingest-watcher.test.ts
 * counts the reads to catch that.
 */
import { FSWatcher, type ChokidarOptions } from 'chokidar';
import type { Stats } from 'node:fs';
import { resolve } from 'node:path';
import { framePathIn } from './files.js';

export interface FolderEvents {
  /** A path inside the folder that an inotify event named (a file or a folder; may be gone already). */
  named(abs: string): void;
  /** A folder that appeared after the start is now watched: files may be in it that no event named. */
  folderWatched(abs: string): void;
  error(err: unknown): void;
}

/** Whether chokidar should leave `path` alone: anything but the watched folder and the folders of frames under it. */
export function ignoredByWatcher(watchDir: string, ownDirs: readonly string[], path: string, stats?: Stats): boolean {
  if (path === watchDir) return false;
  if (framePathIn(watchDir, ownDirs, path) === undefined) return true;
  // Without stats (chokidar asks once before it stats a path) a path may still be a folder.
  return stats !== undefined && !stats.isDirectory();
}

type ReaddirpArgs = Parameters<FSWatcher['_readdirp']>;

/** chokidar's FSWatcher that reads each folder at most once per `minRereadMs` (see the top of this file). */
export class FolderWatcher extends FSWatcher {
  private readonly lastRead = new Map<string, number>();
  private started = false;
  /** Folder reads chokidar made, and re-reads refused (for tests and logs). */
  readonly reads = { made: 0, refused: 0 };
  /** Called once per folder first read after the start, when its watch is set. */
  onFolderWatched: (path: string) => void = () => undefined;

  constructor(
    options: ChokidarOptions,
    private readonly minRereadMs: number,
  ) {
    super(options);
    this.once('ready', () => (this.started = true));
  }

  override _readdirp(root: ReaddirpArgs[0], opts?: ReaddirpArgs[1]): ReturnType<FSWatcher['_readdirp']> {
    const now = performance.now();
    const last = this.lastRead.get(root);
    if (last !== undefined && now - last < this.minRereadMs) {
      this.reads.refused += 1;
      return undefined; // chokidar's _handleRead then leaves the folder as it last read it
    }
    this.lastRead.set(root, now);
    this.reads.made += 1;
    const stream = super._readdirp(root, opts);
    if (stream && last === undefined && this.started) {
      // chokidar sets the folder's watch right after this first read ends (_handleDir), in the
      // same turn of the event loop: the next turn sees it set.
      stream.once('end', () => setImmediate(() => this.onFolderWatched(root)));
    }
    return stream;
  }

  /** Watches a folder an event named, unless chokidar already read it. */
  watchNewFolder(path: string): void {
    if (!this.lastRead.has(path) && !this.closed) this.add(path);
  }

  /** Forgets a folder that is gone, so the map stays as small as the tree. */
  forgetFolder(path: string): void {
    this.lastRead.delete(path);
  }
}

/** Starts watching; resolves once chokidar has read the folder tree. */
export async function watchFolder(watchDir: string, ownDirs: readonly string[], minRereadMs: number, events: FolderEvents): Promise<FolderWatcher> {
  const watcher = new FolderWatcher(
    {
      ignoreInitial: true, // the first scan sees what is already there, in name order
      followSymlinks: false,
      depth: 8, // label folders (`cex/`, `pg/`, `0/`, `1/`) may be nested
      awaitWriteFinish: false, // we know when PNG/JPEG are complete; no fixed quiet period
      atomic: false,
      ignored: (path: string, stats?: Stats) => ignoredByWatcher(watchDir, ownDirs, path, stats),
    },
    minRereadMs,
  );
  watcher.on('raw', (_event, name, details) => {
    const watchedPath = (details as { watchedPath?: string } | undefined)?.watchedPath;
    if (!watchedPath || !name) return;
    // Only folders are watched, and a folder's watcher names an entry in it.
    events.named(resolve(watchedPath, name));
  });
  watcher.onFolderWatched = (path) => events.folderWatched(resolve(path));
  watcher.on('unlinkDir', (path) => watcher.forgetFolder(path));
  watcher.on('error', (err) => events.error(err));
  const ready = new Promise<void>((resolveReady) => watcher.once('ready', () => resolveReady()));
  watcher.add(watchDir);
  await ready;
  return watcher;
}

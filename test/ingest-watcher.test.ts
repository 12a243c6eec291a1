/**
 * The camera folder watcher (src/ingest/watcher.ts): inotify events name every file of a busy
 * folder while chokidar reads the folder once instead of after every event, no file gets a
 * watch of its own, and a folder created later is watched as soon as an event names it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { lstatSync, mkdtempSync, rmSync, type Stats } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ignoredByWatcher, watchFolder, type FolderWatcher } from '../src/ingest/watcher.js';
import { waitFor } from './helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cw-watcher-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('ignoredByWatcher', () => {
  it('keeps the folder and its folders of frames, and refuses files, sidecars, temporary names and our own folders', () => {
    const dir = tempDir();
    const own = [join(dir, '.archive')];
    const file = { isDirectory: () => false } as Stats;
    const folder = { isDirectory: () => true } as Stats;
    expect(ignoredByWatcher(dir, own, dir)).toBe(false);
    expect(ignoredByWatcher(dir, own, join(dir, 'cex'), folder)).toBe(false);
    expect(ignoredByWatcher(dir, own, join(dir, 'cex'))).toBe(false); // no stats yet: may be a folder
    expect(ignoredByWatcher(dir, own, join(dir, 'f1.png'), file)).toBe(true);
    expect(ignoredByWatcher(dir, own, join(dir, 'f1.json'))).toBe(true);
    expect(ignoredByWatcher(dir, own, join(dir, 'f1.png.tmp'))).toBe(true);
    expect(ignoredByWatcher(dir, own, join(dir, '.archive'), folder)).toBe(true);
    expect(ignoredByWatcher(dir, own, join(tmpdir(), 'elsewhere'), folder)).toBe(true);
  });
});

describe('watchFolder', () => {
  async function start(dir: string, minRereadMs: number, onNamed?: (abs: string, watcher: FolderWatcher) => void) {
    const named = new Set<string>();
    const watched: string[] = [];
    const errors: unknown[] = [];
    const holder: { watcher?: FolderWatcher } = {};
    holder.watcher = await watchFolder(dir, [join(dir, '.archive')], minRereadMs, {
      named: (abs) => {
        named.add(abs);
        if (holder.watcher) onNamed?.(abs, holder.watcher);
      },
      folderWatched: (abs) => watched.push(abs),
      error: (err) => errors.push(err),
    });
    const w = holder.watcher;
    cleanups.push(() => w.close());
    return { watcher: w, named, watched, errors };
  }

  it('names every file of a busy folder from its events, reading the folder once and watching no file', async () => {
    const dir = tempDir();
    const { watcher, named, errors } = await start(dir, 60_000);
    const readsAtStart = watcher.reads.made;
    const count = 300;
    for (let i = 0; i < count; i += 1) {
      const name = `f${String(i).padStart(4, '0')}.png`;
      await writeFile(join(dir, `${name}.tmp`), Buffer.alloc(4096, i));
      await rename(join(dir, `${name}.tmp`), join(dir, name));
    }
    const frames = () => [...named].filter((p) => p.endsWith('.png')).length;
    await waitFor(() => frames() >= count, { timeout: 20_000, message: `events naming all ${count} frames`, detail: () => `named ${frames()}` });
    // chokidar asked to re-read the folder after its events, and was refused every time.
    expect(watcher.reads.refused).toBeGreaterThan(0);
    expect(watcher.reads.made).toBe(readsAtStart);
    // No file has a watch of its own: chokidar tracks no entry of the folder.
    expect(watcher.getWatched()[dir] ?? []).toEqual([]);
    expect(errors).toEqual([]);
  });

  it('watches a folder created later as soon as an event names it, and reports it once watched', async () => {
    const dir = tempDir();
    const { named, watched } = await start(dir, 60_000, (abs, watcher) => {
      // What the camera's check does when an event names a folder.
      if (lstatSync(abs, { throwIfNoEntry: false })?.isDirectory()) watcher.watchNewFolder(abs);
    });
    const cex = join(dir, 'cex');
    await mkdir(cex);
    await waitFor(() => watched.includes(cex), { timeout: 10_000, message: 'the new folder cex/ watched', detail: () => `watched: ${watched.join(', ')}` });
    await writeFile(join(cex, 'f1.png'), Buffer.alloc(1024));
    await waitFor(() => named.has(join(cex, 'f1.png')), { timeout: 10_000, message: 'an event naming cex/f1.png' });
    expect(watched.filter((p) => p === cex)).toHaveLength(1);
  });
});

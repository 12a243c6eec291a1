/**
 * File-system pieces of ingest: which names are frames, where ground truth comes
 * from (sidecar JSON or folder names), moving files to the archive or quarantine.
 */
import { constants } from 'node:fs';
import { lstat, mkdir, open, rename, copyFile, unlink, writeFile, readdir, type FileHandle } from 'node:fs/promises';
import { basename, dirname, extname, join, relative, sep } from 'node:path';
import { z } from 'zod';
import { Label } from '../bus/messages.js';
import { isInside } from './open.js';

/** Names a writer uses while a file is not finished, and our own folders. */
export function isIgnoredName(name: string): boolean {
  return (
    name.startsWith('.') || name.endsWith('~') || /\.(tmp|temp|part|partial|crdownload|swp|download)$/i.test(name) || /\.json$/i.test(name) // sidecars travel with their image; they are not frames
  );
}

/** `a/b/c.png` relative path with `/` separators, whatever the platform. */
export function toRel(path: string): string {
  return sep === '/' ? path : path.split(sep).join('/');
}

/**
 * Whether a path relative to a camera folder (`/`-separated) may be a frame or a folder of
 * frames: no part of it is a hidden name (`.archive/`, `.quarantine/`, the ledger), a
 * writer's temporary name or a sidecar (isIgnoredName). Any other file is a candidate, even
 * without an image extension: the check quarantines it as `not-an-image`.
 */
export function isFramePath(rel: string): boolean {
  return rel.split('/').every((part) => !isIgnoredName(part));
}

/**
 * The one test of "is this path ours", for the watcher's filter, its raw events and the
 * periodic scan: `abs` relative to `watchDir` (`/`-separated) when it may be a frame of that
 * camera, else undefined (outside the folder, the folder itself, inside one of `ownDirs`,
 * the archive and quarantine folders wherever they are, or not a frame path).
 */
export function framePathIn(watchDir: string, ownDirs: Iterable<string>, abs: string): string | undefined {
  if (abs === watchDir || !isInside(watchDir, abs)) return undefined;
  for (const dir of ownDirs) if (isInside(dir, abs)) return undefined;
  const rel = toRel(relative(watchDir, abs));
  return isFramePath(rel) ? rel : undefined;
}

export function sidecarPathFor(imagePath: string): string {
  return join(dirname(imagePath), `${basename(imagePath, extname(imagePath))}.json`);
}

/** The simulator's sidecar (DESIGN: written atomically before the image). Unknown fields are kept out. */
export const SidecarSchema = z.object({
  camera: z.string().optional(),
  capturedAt: z.string().datetime({ offset: true }).optional(),
  label: Label.optional(),
  pgBoxes: z.array(z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number() })).optional(),
  frameIndex: z.number().optional(),
});
export type Sidecar = z.infer<typeof SidecarSchema>;

export type SidecarResult = { state: 'absent' } | { state: 'ok'; sidecar: Sidecar; mtimeMs: number } | { state: 'invalid'; detail: string; mtimeMs: number };

/** A sidecar is a few hundred bytes of JSON; anything much bigger is not one. */
const MAX_SIDECAR_BYTES = 64 * 1024;

export async function readSidecar(path: string): Promise<SidecarResult> {
  let text: string;
  let mtimeMs: number;
  let handle: FileHandle | undefined;
  try {
    // Not by path: a symlink swapped in after the check would be followed (see open.ts).
    handle = await open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0) | (constants.O_NONBLOCK ?? 0));
    const st = await handle.stat();
    if (!st.isFile()) return { state: 'invalid', detail: `${basename(path)} is not a regular file`, mtimeMs: st.mtimeMs };
    mtimeMs = st.mtimeMs;
    if (st.size > MAX_SIDECAR_BYTES)
      return { state: 'invalid', detail: `sidecar ${basename(path)} is ${st.size} bytes; a sidecar is at most ${MAX_SIDECAR_BYTES}`, mtimeMs };
    text = await handle.readFile('utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { state: 'absent' };
    if (code === 'ELOOP' || code === 'EMLINK') return { state: 'invalid', detail: `sidecar ${basename(path)} is a symbolic link (not followed)`, mtimeMs: 0 };
    return { state: 'invalid', detail: `cannot read sidecar ${basename(path)} (${code})`, mtimeMs: 0 };
  } finally {
    await handle?.close().catch(() => undefined);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    return { state: 'invalid', detail: `sidecar ${basename(path)} is not JSON: ${(err as Error).message}`, mtimeMs };
  }
  const result = SidecarSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { state: 'invalid', detail: `sidecar ${basename(path)}: ${issue?.path.join('.') || '(root)'}: ${issue?.message}`, mtimeMs };
  }
  return { state: 'ok', sidecar: result.data, mtimeMs };
}

/** Ground truth from the folder layout: `cex/`/`pg/` or `0/` (CEX) / `1/` (PG); the deepest such folder wins. */
export function labelFromPath(rel: string): Label | undefined {
  const dirs = rel.split('/').slice(0, -1).reverse();
  for (const dir of dirs) {
    const d = dir.toLowerCase();
    if (d === 'cex' || d === '0') return 'cex';
    if (d === 'pg' || d === '1') return 'pg';
  }
  return undefined;
}

/** A destination that does not overwrite: `x.png`, then `x.1.png`, `x.2.png`, ... */
async function freePath(path: string): Promise<string> {
  const ext = extname(path);
  const stem = path.slice(0, path.length - ext.length);
  for (let i = 0; ; i += 1) {
    const candidate = i === 0 ? path : `${stem}.${i}${ext}`;
    try {
      await lstat(candidate);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return candidate;
      throw err;
    }
  }
}

/** Moves a file (or a symlink itself), across file systems if need be; returns where it went. */
export async function moveFile(from: string, toWanted: string): Promise<string> {
  await mkdir(dirname(toWanted), { recursive: true });
  const to = await freePath(toWanted);
  try {
    await rename(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    await copyFile(from, to);
    await unlink(from);
  }
  return to;
}

export async function moveIfExists(from: string, to: string): Promise<string | undefined> {
  try {
    return await moveFile(from, to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function unlinkIfExists(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Writes `<name>.reason.json` next to a quarantined file. */
export async function writeReason(quarantinedPath: string, reason: object): Promise<void> {
  await writeFile(`${quarantinedPath}.reason.json`, `${JSON.stringify(reason, null, 2)}\n`);
}

/**
 * Every candidate under `root` (relative paths, `framePathIn`), skipping the folders in
 * `ownDirs`. Symlinks are returned (not followed) so they can be quarantined.
 */
export async function walk(root: string, ownDirs: Iterable<string>, maxDepth = 8): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string, depth: number) => {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const entry of entries) {
      const abs = join(dir, entry.name);
      const childRel = framePathIn(root, ownDirs, abs);
      if (childRel === undefined) continue;
      if (entry.isDirectory()) {
        if (depth < maxDepth) await visit(abs, depth + 1);
      } else if (entry.isFile() || entry.isSymbolicLink()) {
        out.push(childRel);
      }
    }
  };
  await visit(root, 0);
  return out.sort();
}

/**
 * Opening a frame file without being led elsewhere. Between ingest's `lstat` (a regular
 * file, inside the watched folder) and its read, anyone who can write to the drop folder
 * can swap a symlink in; a read by path would follow it (to /etc/shadow, another camera's
 * folder, a FIFO that blocks). So the file is opened with O_NOFOLLOW and everything is
 * checked on the descriptor: a regular file, the same device and inode that lstat saw, and
 * a real path inside the watched folder (a parent folder swapped for a symlink is not
 * covered by O_NOFOLLOW, which guards the last component only).
 */
import { constants, type BigIntStats, type Stats } from 'node:fs';
import { open, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { isAbsolute, relative } from 'node:path';

export type OpenedFrame =
  | { ok: true; handle: FileHandle; size: number }
  /** `gone`: removed meanwhile; `changed`: replaced by another file (a writer's rename), check again. */
  | { ok: false; reason: 'symlink' | 'unreadable' | 'gone' | 'changed'; detail: string };

/** O_NOFOLLOW where the platform has it (not Windows, where symlinks need privileges anyway). */
const NOFOLLOW = constants.O_NOFOLLOW ?? 0;
/** A FIFO swapped in must not block the open. */
const NONBLOCK = constants.O_NONBLOCK ?? 0;

/**
 * Opens `path` for reading if it is still the regular file `seen` (from lstat) and lies inside
 * `realRoot` (the watched folder's real path). On `ok: true` the caller owns the handle.
 */
export async function openFrameFile(path: string, seen: Pick<Stats, 'dev' | 'ino'>, realRoot: string): Promise<OpenedFrame> {
  let handle: FileHandle;
  try {
    handle = await open(path, constants.O_RDONLY | NOFOLLOW | NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return { ok: false, reason: 'gone', detail: `${path} went away before it was opened` };
    // Linux says ELOOP for O_NOFOLLOW on a symlink; FreeBSD says EMLINK.
    if (code === 'ELOOP' || code === 'EMLINK')
      return {
        ok: false,
        reason: 'symlink',
        detail: 'became a symbolic link between the check and the open (not followed); copy the file into the folder instead',
      };
    return { ok: false, reason: 'unreadable', detail: `cannot open: ${code ?? (err as Error).message}` };
  }
  try {
    const verdict = await judge(handle, path, seen, realRoot);
    if (verdict.ok) return verdict;
    await handle.close();
    return verdict;
  } catch (err) {
    await handle.close();
    return { ok: false, reason: 'unreadable', detail: `cannot stat the opened file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}

async function judge(handle: FileHandle, path: string, seen: Pick<Stats, 'dev' | 'ino'>, realRoot: string): Promise<OpenedFrame> {
  const st = await handle.stat();
  if (!st.isFile()) return { ok: false, reason: 'unreadable', detail: `not a regular file when opened (${kindOf(st)})` };
  if (st.dev !== seen.dev || st.ino !== seen.ino) return { ok: false, reason: 'changed', detail: 'replaced by another file between the check and the open' };
  const real = await descriptorPath(handle, path);
  if (real === undefined || !isInside(realRoot, real)) {
    return {
      ok: false,
      reason: 'symlink',
      detail: `opened file is ${real ?? '(unresolvable)'}, outside the watched folder ${realRoot} (a folder on its path was swapped for a link)`,
    };
  }
  return { ok: true, handle, size: st.size };
}

/** Where the descriptor really points: /proc/self/fd on Linux; elsewhere the path's realpath (checked again after opening). */
async function descriptorPath(handle: FileHandle, path: string): Promise<string | undefined> {
  if (process.platform === 'linux') {
    const viaProc = await realpath(`/proc/self/fd/${handle.fd}`).catch(() => undefined);
    if (viaProc !== undefined) return viaProc;
  }
  return realpath(path).catch(() => undefined);
}

function kindOf(st: Stats | BigIntStats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The file went away (or a parent is no longer a folder): nothing to do. */
export function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Up to `headBytes` from the start and the last 12 bytes of an open file of `size` bytes. */
export async function peekHandle(handle: FileHandle, size: number, headBytes: number): Promise<{ head: Buffer; tail: Buffer }> {
  const head = Buffer.alloc(Math.min(headBytes, size));
  const { bytesRead } = await handle.read(head, 0, head.length, 0);
  const tailLength = Math.min(12, size);
  const tail = Buffer.alloc(tailLength);
  const tailRead = await handle.read(tail, 0, tailLength, size - tailLength);
  return { head: head.subarray(0, bytesRead), tail: tail.subarray(0, tailRead.bytesRead) };
}

/** The whole file from an open descriptor (at most `limit` bytes: a file that grew past it reads as `limit + 1`). */
export async function readHandle(handle: FileHandle, limit: number): Promise<Buffer> {
  const st = await handle.stat();
  const want = Math.min(st.size, limit + 1);
  const bytes = Buffer.allocUnsafe(want); // only the bytes read are returned; no need to zero 1 MB first
  let at = 0;
  while (at < want) {
    const { bytesRead } = await handle.read(bytes, at, want - at, at);
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return at === want ? bytes : bytes.subarray(0, at);
}

/** Why a symlink in the drop folder is refused, naming its target. */
export async function describeSymlink(path: string, realRoot: string): Promise<string> {
  const target = await readlink(path).catch(() => '?');
  const real = await realpath(path).catch(() => undefined);
  const outside = real === undefined || !isInside(realRoot, real);
  return `symlink to ${target}${outside ? ', which is outside the watched folder' : ''}; copy the file into the folder instead`;
}

/** realpath of folders, cached for a second: one lookup per folder, not per frame. */
export class RealFolders {
  private readonly cache = new Map<string, { real: string | undefined; at: number }>();
  async get(folder: string): Promise<string | undefined> {
    const cached = this.cache.get(folder);
    if (cached && Date.now() - cached.at < 1_000) return cached.real;
    const real = await realpath(folder).catch(() => undefined);
    this.cache.set(folder, { real, at: Date.now() });
    return real;
  }
}

/**
 * What `crystalwatch calibrate` reads: the folders of clean (and PG) images, checked before
 * any inference so a wrong folder fails in seconds with the folder named and the fix said.
 *
 * - Every image is a crop (classified whole) or a frame (tiled as the classify stage tiles it:
 *   over 2× the tile in both sides). One calibration fits one kind: a frame's P(PG) is the
 *   maximum over its tiles, so crops and frames — or frames of two sizes, with other tile
 *   counts — have different false-positive rates and cannot share a threshold.
 * - An image over 2× the tile in one side only would be squashed whole by the classify
 *   stage: it cannot be tiled, and is refused.
 * - The frame rate comes from capture times (a FrameCamera-style `.json` sidecar with
 *   `capturedAt`, or a `yyyyMMddTHHmmssSSS` stamp in the file name), else 2 frames/s.
 * - The held-out share is the last images of each folder in name order (for camera drop
 *   folders: the latest frames), never used for fitting.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, extname, join, relative, resolve } from 'node:path';
import sharp from 'sharp';

export class CalibrationInputError extends Error {
  override name = 'CalibrationInputError';
}

/** Fewest clean images calibrate fits from (issue 13: "from as few as 40"). */
export const MIN_CLEAN_IMAGES = 40;
/** Frame rate assumed when no capture times are found. */
export const DEFAULT_FPS = 2;
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.tif', '.tiff', '.webp'] as const;

export type ImageRole = 'clean' | 'pg';

export interface ImageFile {
  path: string;
  /** The --clean / --pg folder it came from (absolute). */
  folder: string;
  role: ImageRole;
  width: number;
  height: number;
  sha256: string;
  capturedAtMs?: number;
  camera?: string;
}

export interface TileSpec {
  tile: number;
  stride: number;
}

export interface CalibrationInputs {
  clean: ImageFile[];
  pg: ImageFile[];
  kind: 'crops' | 'frames';
  /** Frames: their one size. */
  frameSize?: { width: number; height: number };
  fps: { value: number; source: 'option' | 'capture times' | 'default' };
  camera?: string;
  /** sha256 over `role<TAB>relative path<TAB>content sha256` lines, sorted. */
  fileListSha256: string;
  /** Files that are not readable images (refused unless skipUnreadable). */
  unreadable: { path: string; reason: string }[];
  /** Files left out because their content is in `exclude` (fine-tuning images), with why. */
  excluded: { path: string; reason: string }[];
}

export interface ReadInputsOptions {
  clean: string[];
  pg?: string[];
  tile: TileSpec;
  fps?: number;
  camera?: string;
  skipUnreadable?: boolean;
  /** Content sha256 → why: images left out of calibration (a fine-tuning set's images). */
  exclude?: ReadonlyMap<string, string>;
  onProgress?: (done: number, total: number) => void;
}

const STAMP = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})/;

function stampMs(name: string): number | undefined {
  const m = STAMP.exec(name);
  if (!m) return undefined;
  const [y = NaN, mo = NaN, d = NaN, h = NaN, mi = NaN, s = NaN, ms = NaN] = m.slice(1).map(Number);
  const t = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  return Number.isFinite(t) ? t : undefined;
}

async function sidecar(path: string): Promise<{ capturedAtMs?: number; camera?: string }> {
  try {
    const raw = JSON.parse(await readFile(path.slice(0, -extname(path).length) + '.json', 'utf8')) as { capturedAt?: unknown; camera?: unknown };
    const t = typeof raw.capturedAt === 'string' ? Date.parse(raw.capturedAt) : NaN;
    return { capturedAtMs: Number.isFinite(t) ? t : undefined, camera: typeof raw.camera === 'string' ? raw.camera : undefined };
  } catch {
    return {};
  }
}

export async function listImages(folder: string, flag: string): Promise<string[]> {
  const dir = resolve(folder);
  let info;
  try {
    info = await stat(dir);
  } catch {
    throw new CalibrationInputError(`${flag} ${folder}: no such folder; pass a folder of the camera's images`);
  }
  if (!info.isDirectory()) throw new CalibrationInputError(`${flag} ${folder}: is a file, not a folder; pass the folder that holds the images`);
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const entry of await readdir(d, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue; // temp files of a camera still writing, .DS_Store
      const full = join(d, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile() && (IMAGE_EXTENSIONS as readonly string[]).includes(extname(entry.name).toLowerCase())) found.push(full);
    }
  };
  await walk(dir);
  if (found.length === 0) {
    throw new CalibrationInputError(
      `${flag} ${folder}: holds no images (${IMAGE_EXTENSIONS.join(', ')}, searched with sub-folders); point ${flag} at the folder with the camera's frames or crops`,
    );
  }
  return found.sort();
}

/** How the classify stage treats an image of this size with tiling `auto` (Classifier.regionsFor). */
export function imageKind(width: number, height: number, tile: TileSpec): 'crop' | 'frame' | 'untileable' {
  if (width > 2 * tile.tile && height > 2 * tile.tile) return 'frame';
  if (width > 2 * tile.tile || height > 2 * tile.tile) return 'untileable';
  return 'crop';
}

function tally(values: string[]): string {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n} × ${k}`)
    .join(', ');
}

function checkKinds(all: ImageFile[], tile: TileSpec): { kind: 'crops' | 'frames'; frameSize?: { width: number; height: number } } {
  const untileable = all.filter((f) => imageKind(f.width, f.height, tile) === 'untileable');
  const f = untileable[0];
  if (f) {
    throw new CalibrationInputError(
      `${f.folder}: ${untileable.length} image(s) cannot be tiled, e.g. ${basename(f.path)} (${f.width}×${f.height}): over 2× the ${tile.tile} px tile in one side only, so the classify stage would squash it whole; crop them to frames over ${2 * tile.tile} px in both sides, or to crops of at most ${2 * tile.tile} px`,
    );
  }
  const frames = all.filter((f) => imageKind(f.width, f.height, tile) === 'frame');
  if (frames.length > 0 && frames.length < all.length) {
    const crop = all.find((f) => imageKind(f.width, f.height, tile) === 'crop')!;
    throw new CalibrationInputError(
      `${crop.folder}: mixes crops and frames (${all.length - frames.length} crops of at most ${2 * tile.tile} px such as ${basename(crop.path)} ${crop.width}×${crop.height}, ${frames.length} frames tiled into ${tile.tile} px tiles): a frame's P(PG) is its most PG tile's, so the two have different false-positive rates; calibrate the camera's frames and a crop model's crops separately`,
    );
  }
  if (frames.length === 0) return { kind: 'crops' };
  const sizes = new Set(frames.map((f) => `${f.width}×${f.height}`));
  if (sizes.size > 1) {
    const byFolder = [...new Set(frames.map((f) => f.folder))].map(
      (folder) => `${folder}: ${tally(frames.filter((f) => f.folder === folder).map((f) => `${f.width}×${f.height}`))}`,
    );
    throw new CalibrationInputError(
      `frames of ${sizes.size} sizes (${byFolder.join('; ')}): frames with other tile counts have different false-positive rates and cannot share one threshold; calibrate each camera (one frame size) on its own`,
    );
  }
  return { kind: 'frames', frameSize: { width: frames[0]!.width, height: frames[0]!.height } };
}

/** Median spacing of capture times within each folder → frames per second. */
function fpsFromCaptureTimes(files: ImageFile[]): number | undefined {
  const gaps: number[] = [];
  for (const folder of new Set(files.map((f) => f.folder))) {
    const times = files
      .filter((f) => f.folder === folder && f.capturedAtMs !== undefined)
      .map((f) => f.capturedAtMs!)
      .sort((a, b) => a - b);
    times.forEach((t, i) => {
      const previous = times[i - 1];
      if (previous !== undefined && t > previous) gaps.push(t - previous);
    });
  }
  if (gaps.length < 3) return undefined;
  gaps.sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)]!;
  return median > 0 ? 1000 / median : undefined;
}

export async function readInputs(o: ReadInputsOptions): Promise<CalibrationInputs> {
  if (o.clean.length === 0)
    throw new CalibrationInputError(
      '--clean: give at least one folder of images known to hold no PG (a lab-confirmed clean batch, or the first minutes of a batch)',
    );
  const lists: { folder: string; role: ImageRole; paths: string[] }[] = [];
  for (const folder of o.clean) lists.push({ folder: resolve(folder), role: 'clean', paths: await listImages(folder, '--clean') });
  for (const folder of o.pg ?? []) lists.push({ folder: resolve(folder), role: 'pg', paths: await listImages(folder, '--pg') });
  const seen = new Map<string, string>();
  for (const l of lists) {
    for (const p of l.paths) {
      const other = seen.get(p);
      if (other)
        throw new CalibrationInputError(
          `${p} is in both ${other} and ${l.folder}: a clean image must not also be a PG one (or fitted twice); give folders that do not overlap`,
        );
      seen.set(p, l.folder);
    }
  }
  const total = lists.reduce((n, l) => n + l.paths.length, 0);
  const files: ImageFile[] = [];
  const unreadable: { path: string; reason: string }[] = [];
  const excluded: { path: string; reason: string }[] = [];
  let done = 0;
  for (const l of lists) {
    for (const path of l.paths) {
      const bytes = await readFile(path);
      const why = o.exclude?.get(createHash('sha256').update(bytes).digest('hex'));
      if (why !== undefined) {
        excluded.push({ path, reason: why });
        o.onProgress?.(++done, total);
        continue;
      }
      try {
        const meta = await sharp(bytes).metadata();
        if (!meta.width || !meta.height) throw new Error('no image size in the header');
        const side = await sidecar(path);
        files.push({
          path,
          folder: l.folder,
          role: l.role,
          width: meta.width,
          height: meta.height,
          sha256: createHash('sha256').update(bytes).digest('hex'),
          capturedAtMs: side.capturedAtMs ?? stampMs(basename(path)),
          camera: side.camera,
        });
      } catch (err) {
        unreadable.push({ path, reason: bytes.length === 0 ? 'empty file' : (err as Error).message });
      }
      o.onProgress?.(++done, total);
    }
  }
  if (unreadable.length > 0 && !o.skipUnreadable) throw unreadableError(unreadable);
  const clean = files.filter((f) => f.role === 'clean');
  const pg = files.filter((f) => f.role === 'pg');
  if (clean.length < MIN_CLEAN_IMAGES) {
    throw new CalibrationInputError(
      `--clean ${o.clean.join(' ')}: ${clean.length} readable image(s)${excluded.length ? ` after leaving out ${excluded.length} fine-tuning image(s)` : ''}, calibration needs at least ${MIN_CLEAN_IMAGES}; add clean frames (a few minutes of a clean batch at the camera's rate is enough)`,
    );
  }
  const kinds = checkKinds(files, o.tile);
  const fromTimes = fpsFromCaptureTimes(clean);
  const fps =
    o.fps !== undefined
      ? { value: o.fps, source: 'option' as const }
      : fromTimes !== undefined
        ? { value: fromTimes, source: 'capture times' as const }
        : { value: DEFAULT_FPS, source: 'default' as const };
  const cameras = new Set(clean.map((f) => f.camera).filter((c): c is string => c !== undefined));
  const camera = o.camera ?? (cameras.size === 1 ? [...cameras][0] : undefined);
  const lines = files.map((f) => `${f.role}\t${relative(f.folder, f.path)}\t${f.sha256}`).sort();
  const fileListSha256 = createHash('sha256').update(lines.join('\n')).digest('hex');
  return { clean, pg, ...kinds, fps, camera, fileListSha256, unreadable, excluded };
}

export function unreadableError(unreadable: { path: string; reason: string }[]): CalibrationInputError {
  const shown = unreadable
    .slice(0, 5)
    .map((u) => `${u.path} (${u.reason})`)
    .join('; ');
  return new CalibrationInputError(
    `${unreadable.length} file(s) are not readable images: ${shown}${unreadable.length > 5 ? '; …' : ''}; remove or replace them, or pass --skip-unreadable to calibrate without them (they are listed in the report)`,
  );
}

/**
 * Fit and held-out shares of the clean images: per folder, in name order, the last
 * `heldOutShare` (at least one image) is held out.
 */
export function splitHeldOut(files: ImageFile[], heldOutShare: number): { fit: ImageFile[]; heldOut: ImageFile[] } {
  const fit: ImageFile[] = [];
  const heldOut: ImageFile[] = [];
  for (const folder of new Set(files.map((f) => f.folder))) {
    const mine = files.filter((f) => f.folder === folder).sort((a, b) => (a.path < b.path ? -1 : 1));
    const n = Math.max(1, Math.round(mine.length * heldOutShare));
    fit.push(...mine.slice(0, mine.length - n));
    heldOut.push(...mine.slice(mine.length - n));
  }
  return { fit, heldOut };
}

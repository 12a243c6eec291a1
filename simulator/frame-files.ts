/**
 * How a camera names and writes its frames: `<camera>-<yyyyMMddTHHmmssSSS>-<index>.png`, each
 * file through a hidden temp file and a rename. Apart from camera.ts (no renderer, no canvas), so
 * the benches' camera-writer child loads only this.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** `yyyyMMddTHHmmssSSS` in UTC. */
export function frameTimestamp(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}${p(d.getUTCMilliseconds(), 3)}`;
}

export function frameFileName(camera: string, capturedAt: Date, index: number): string {
  return `${camera}-${frameTimestamp(capturedAt)}-${String(index).padStart(6, '0')}.png`;
}

/** Writes `name` in `dir` as camera software should: a hidden temp file, then a rename. */
export async function writeAtomic(dir: string, name: string, data: Buffer | string): Promise<void> {
  const tmp = join(dir, `.${name}.tmp`);
  await writeFile(tmp, data);
  await rename(tmp, join(dir, name));
}

/**
 * Where crystalwatch's own files are (package.json, models/, dashboards/, src/web/static/),
 * from the source tree (src/) or the build (dist/src/), whatever the working directory.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'crystalwatch';
const HERE = dirname(fileURLToPath(import.meta.url));
let cached: string | undefined;

/**
 * The nearest folder at or above `from` (default: this file's folder) holding a package.json
 * named "crystalwatch". Throws when there is none: a guess (the working directory) would
 * load another folder's model or page without a word.
 */
export function packageRoot(from: string = HERE): string {
  if (from === HERE && cached) return cached;
  let dir = from;
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate) && isOurs(candidate)) {
      if (from === HERE) cached = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(
        `crystalwatch: cannot find the package root: no package.json named "${PACKAGE_NAME}" in ${from} or any folder above it; run crystalwatch from its installed package or a checkout, or give the paths (model folder, staticDir) explicitly`,
      );
    }
    dir = parent;
  }
}

function isOurs(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown }).name === PACKAGE_NAME;
  } catch {
    return false; // unreadable or not JSON: not ours; keep walking up
  }
}

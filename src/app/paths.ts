import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (where package.json, models/ and dashboards/ live), from src/ or dist/src/. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('crystalwatch: cannot find the package root (no package.json above the code)');
    dir = parent;
  }
  return dir;
}

/**
 * A model folder from the config: relative to `base` when it exists there, else
 * relative to the package (so `models/default` works from any working directory).
 */
export function resolveModelDir(base: string, model: string): string {
  const fromBase = path.resolve(base, model);
  if (existsSync(fromBase) || path.isAbsolute(model)) return fromBase;
  return path.resolve(packageRoot(), model);
}

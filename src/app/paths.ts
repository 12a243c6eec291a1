import { existsSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../config/paths.js';

/**
 * A model folder from the config: relative to `base` when it exists there, else
 * relative to the package (so `models/default` works from any working directory).
 */
export function resolveModelDir(base: string, model: string): string {
  const fromBase = path.resolve(base, model);
  if (existsSync(fromBase) || path.isAbsolute(model)) return fromBase;
  return path.resolve(packageRoot(), model);
}

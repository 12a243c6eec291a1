/**
 * Labelled crop datasets on disk, in the layouts users bring: `cex/` + `pg/`
 * (OpenCrystalData) or `0/` (CEX) + `1/` (PG, the positive class), optionally split into
 * `train/ valid/ test/`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CrystalClass } from './crop.js';
import { RenderPool, defaultWorkerCount } from './pool.js';
import { Rng, mixSeed } from './random.js';

export type DatasetLayout = 'opencrystaldata' | 'binary';
export type SplitName = 'train' | 'valid' | 'test';

export interface DatasetOptions {
  out: string;
  count: number;
  seed?: number;
  layout?: DatasetLayout;
  /** Fractions (any positive scale, e.g. [70, 25, 5]) for train/valid/test; null = no split. */
  split?: [number, number, number] | null;
  onProgress?: (done: number, total: number) => void;
  /** Worker threads rendering crops (0 = this thread). Default: up to 4 cores for 32+ crops. */
  workers?: number;
}

export interface DatasetFile {
  path: string;
  label: CrystalClass;
  split?: SplitName;
}

const SPLITS: SplitName[] = ['train', 'valid', 'test'];

export function classFolder(label: CrystalClass, layout: DatasetLayout): string {
  if (layout === 'binary') return label === 'pg' ? '1' : '0';
  return label;
}

/** Parse "70/25/5" (or "0.7,0.25,0.05") into three non-negative numbers with a positive sum. */
export function parseSplit(text: string): [number, number, number] {
  const parts = text.split(/[/,:]/).map((p) => Number(p.trim()));
  if (parts.length !== 3 || parts.some((p) => !Number.isFinite(p) || p < 0) || parts[0]! + parts[1]! + parts[2]! <= 0) {
    throw new Error(`--split must be three non-negative numbers train/valid/test like 70/25/5, got "${text}"`);
  }
  return [parts[0]!, parts[1]!, parts[2]!];
}

/**
 * Assign each item of one class to a split: shuffled with the seed, then cut by the fractions
 * (largest-remainder rounding, so the counts add up exactly).
 */
function assignSplits(indices: number[], split: [number, number, number], rng: Rng): Map<number, SplitName> {
  const total = split[0] + split[1] + split[2];
  const exact = split.map((s) => (s / total) * indices.length);
  const counts = exact.map(Math.floor);
  const order = exact.map((e, i) => ({ i, rem: e - Math.floor(e) })).sort((a, b) => b.rem - a.rem || a.i - b.i);
  for (let k = 0; counts[0]! + counts[1]! + counts[2]! < indices.length; k++) counts[order[k % 3]!.i]!++;
  const shuffled = rng.shuffle([...indices]);
  const result = new Map<number, SplitName>();
  let at = 0;
  for (let s = 0; s < 3; s++) for (let j = 0; j < counts[s]!; j++) result.set(shuffled[at++]!, SPLITS[s]!);
  return result;
}

/** Label of item i: PG on even indices, so an odd count has one more PG than CEX. */
export function datasetLabel(index: number): CrystalClass {
  return index % 2 === 0 ? 'pg' : 'cex';
}

/**
 * Write `count` crops, half of each class (the odd one PG). Same options → same bytes.
 * Returns every file with its label (and split), paths relative to `out`.
 */
export async function generateDataset(o: DatasetOptions): Promise<{ files: DatasetFile[] }> {
  if (!Number.isInteger(o.count) || o.count < 1) throw new Error(`generateDataset: count must be a positive integer, got ${o.count}`);
  const layout = o.layout ?? 'opencrystaldata';
  if (layout !== 'opencrystaldata' && layout !== 'binary')
    throw new Error(`generateDataset: layout must be "opencrystaldata" or "binary", got "${String(layout)}"`);
  const seed = o.seed ?? 0;
  const split = o.split ?? null;

  const splitOf = new Map<number, SplitName>();
  if (split) {
    const rng = new Rng(mixSeed(seed, 0x5b11));
    for (const label of ['cex', 'pg'] as const) {
      const indices = Array.from({ length: o.count }, (_, i) => i).filter((i) => datasetLabel(i) === label);
      for (const [i, s] of assignSplits(indices, split, rng)) splitOf.set(i, s);
    }
  }

  // Every class folder (of every split) exists, even when a small split gets no crop of a class.
  const dirs = new Set<string>();
  for (const s of split ? SPLITS : [null])
    for (const label of ['cex', 'pg'] as const) dirs.add(s ? join(s, classFolder(label, layout)) : classFolder(label, layout));
  const files: DatasetFile[] = [];
  for (let i = 0; i < o.count; i++) {
    const label = datasetLabel(i);
    const s = splitOf.get(i);
    const dir = s ? join(s, classFolder(label, layout)) : classFolder(label, layout);
    dirs.add(dir);
    files.push({ path: join(dir, `${label}-${String(i).padStart(6, '0')}.png`), label, ...(s ? { split: s } : {}) });
  }
  for (const dir of dirs) await mkdir(join(o.out, dir), { recursive: true });

  // Drawing is synchronous (Skia on the thread that draws): worker threads add cores. A few
  // crops in flight per thread keep drawing, PNG encoding (libuv pool) and writing overlapped.
  const pool = new RenderPool(o.workers ?? (o.count >= 32 ? defaultWorkerCount() : 0));
  let done = 0;
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      const crop = await pool.crop({ label: files[i]!.label, seed: mixSeed(seed, i) });
      await writeFile(join(o.out, files[i]!.path), crop.png);
      done++;
      o.onProgress?.(done, files.length);
    }
  };
  try {
    await Promise.all(Array.from({ length: 2 * Math.max(1, pool.threads) + 2 }, lane));
  } finally {
    await pool.close();
  }
  return { files };
}

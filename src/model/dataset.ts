/**
 * Labelled crop folders as users have them, read into memory at the model's input size.
 *
 * Layouts (folder names case-insensitive):
 * - `cex/` + `pg/` (OpenCrystalData)
 * - `0/` (CEX) + `1/` (PG, the positive class)
 * - `train/` `valid/` (or `val/`, `validation/`) `test/`, each holding one of the above.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';
import { decodeCrop } from './preprocess.js';
import { dihedralExactHash, dihedralPerceptualHashes, findDuplicateGroups, type DuplicateGroups } from './duplicates.js';
import { SeededRandom } from './rng.js';

export type SplitName = 'train' | 'valid' | 'test';
/** 0 = CEX, 1 = PG. */
export type Label = 0 | 1;
export const CLASS_NAMES = ['cex', 'pg'] as const;

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.gif']);
const CLASS_FOLDERS: Record<string, Label> = { cex: 0, pg: 1, '0': 0, '1': 1 };
const SPLIT_FOLDERS: Record<string, SplitName> = { train: 'train', valid: 'valid', val: 'valid', validation: 'valid', test: 'test' };

export interface DatasetEntry {
  /** Path relative to the dataset root (reports name files this way). */
  path: string;
  label: Label;
  /** The split the folders gave, if any. */
  split?: SplitName;
}

async function subfolders(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) out.set(entry.name.toLowerCase(), join(dir, entry.name));
  }
  return out;
}

async function imagesIn(dir: string): Promise<string[]> {
  const files: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && IMAGE_EXTENSIONS.has(extname(entry.name).toLowerCase())) files.push(join(entry.parentPath, entry.name));
  }
  return files.sort();
}

async function classEntries(root: string, dir: string, split?: SplitName): Promise<DatasetEntry[]> {
  const folders = await subfolders(dir);
  const found = [...folders.keys()].filter((name) => name in CLASS_FOLDERS);
  const hasNamed = found.includes('cex') || found.includes('pg');
  const hasNumbered = found.includes('0') || found.includes('1');
  if (hasNamed && hasNumbered) {
    throw new Error(`dataset ${dir}: holds both cex/pg and 0/1 class folders (${found.join(', ')}); keep one layout`);
  }
  if (found.length < 2) {
    throw new Error(
      `dataset ${dir}: needs class folders cex/ + pg/ or 0/ (CEX) + 1/ (PG)${split ? '' : ', or train/ valid/ test/ splits of them'}; found ${folders.size ? [...folders.keys()].join(', ') : 'no folders'}`,
    );
  }
  const entries: DatasetEntry[] = [];
  for (const name of found) {
    for (const file of await imagesIn(folders.get(name)!))
      entries.push({ path: relative(root, file), label: CLASS_FOLDERS[name]!, ...(split ? { split } : {}) });
  }
  return entries;
}

/** List every labelled image under `root`, with the split its folders give (if any). */
export async function discoverDataset(root: string): Promise<{ entries: DatasetEntry[]; layout: string; presplit: boolean }> {
  const info = await stat(root).catch(() => undefined);
  if (!info?.isDirectory())
    throw new Error(`dataset ${root}: not a folder; pass --data with a folder holding cex/ + pg/ or 0/ + 1/ (optionally inside train/ valid/ test/)`);
  const folders = await subfolders(root);
  const splits = [...folders.keys()].filter((name) => name in SPLIT_FOLDERS);
  let entries: DatasetEntry[] = [];
  let presplit = false;
  if (splits.length > 0) {
    presplit = true;
    for (const name of splits) entries.push(...(await classEntries(root, folders.get(name)!, SPLIT_FOLDERS[name])));
  } else {
    entries = await classEntries(root, root);
  }
  if (entries.length === 0) throw new Error(`dataset ${root}: no images (${[...IMAGE_EXTENSIONS].join(', ')}) in the class folders`);
  const named = entries.some((e) => /(^|[\\/])(cex|pg)[\\/]/i.test(e.path));
  const layout = `${named ? 'cex/pg' : '0/1'}${presplit ? ` in ${splits.join('/')}` : ''}`;
  return { entries, layout, presplit };
}

export interface LoadedDataset {
  root: string;
  layout: string;
  inputSize: number;
  entries: DatasetEntry[];
  /** entries.length × size × size grey pixels, 0–255. */
  pixels: Uint8Array;
  labels: Uint8Array;
  /** Per entry: which split it ended up in. */
  splitOf: SplitName[];
  duplicates: DuplicateGroups;
  /** Duplicate groups whose members the given folders put in different splits. */
  groupsAcrossGivenSplits: number;
  /** Files that could not be decoded, skipped with a warning. */
  unreadable: { path: string; reason: string }[];
}

export interface LoadOptions {
  inputSize: number;
  seed: number;
  /** Train/valid/test fractions used when the folders give no split. */
  split?: [number, number, number];
  /** Largest perceptual Hamming distance counted as a near copy; -1 turns near-copy search off. */
  nearBits?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Pixel i of entry k is pixels[k * size * size + i]. */
export async function loadDataset(root: string, options: LoadOptions): Promise<LoadedDataset> {
  const { entries: listed, layout, presplit } = await discoverDataset(root);
  const size = options.inputSize;
  const plane = size * size;
  const decoded: ({ input: Uint8Array; exactHash: string; perceptual: Uint32Array } | undefined)[] = new Array(listed.length);
  const unreadable: { path: string; reason: string }[] = [];
  let next = 0;
  let done = 0;
  // sharp decodes on libuv's thread pool: a few files in flight keep both cores busy.
  const worker = async () => {
    while (next < listed.length) {
      const k = next++;
      try {
        const crop = await decodeCrop(await readFile(join(root, listed[k]!.path)), size);
        decoded[k] = {
          input: crop.input,
          exactHash: dihedralExactHash(crop.rgb, crop.width, crop.height),
          perceptual: dihedralPerceptualHashes(crop.input, size),
        };
      } catch (err) {
        unreadable.push({ path: listed[k]!.path, reason: (err as Error).message });
      }
      options.onProgress?.(++done, listed.length);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));

  const keep = listed.map((_, k) => k).filter((k) => decoded[k] !== undefined);
  const entries = keep.map((k) => listed[k]!);
  const pixels = new Uint8Array(entries.length * plane);
  const labels = new Uint8Array(entries.length);
  keep.forEach((k, i) => {
    pixels.set(decoded[k]!.input, i * plane);
    labels[i] = listed[k]!.label;
  });
  const duplicates = findDuplicateGroups(
    keep.map((k) => ({ exactHash: decoded[k]!.exactHash, perceptual: decoded[k]!.perceptual, label: listed[k]!.label })),
    options.nearBits ?? 4,
  );

  let splitOf: SplitName[];
  let groupsAcrossGivenSplits = 0;
  if (presplit) {
    splitOf = entries.map((e) => e.split!);
    const seen = new Map<number, SplitName>();
    const crossing = new Set<number>();
    entries.forEach((_, i) => {
      const g = duplicates.groupOf[i]!;
      const s = seen.get(g);
      if (s === undefined) seen.set(g, splitOf[i]!);
      else if (s !== splitOf[i]) crossing.add(g);
    });
    groupsAcrossGivenSplits = crossing.size;
  } else {
    splitOf = groupedStratifiedSplit(labels, duplicates.groupOf, options.split ?? [70, 25, 5], options.seed);
  }
  return { root, layout, inputSize: size, entries, pixels, labels, splitOf, duplicates, groupsAcrossGivenSplits, unreadable };
}

/**
 * Stratified, seeded split that never cuts a duplicate group: per class, groups are shuffled
 * and dealt to the split furthest below its target share of that class's images.
 */
export function groupedStratifiedSplit(labels: Uint8Array, groupOf: Int32Array, fractions: [number, number, number], seed: number): SplitName[] {
  const names: SplitName[] = ['train', 'valid', 'test'];
  const total = fractions[0] + fractions[1] + fractions[2];
  if (!(total > 0) || fractions.some((f) => f < 0)) throw new Error(`split fractions must be non-negative with a positive sum, got ${fractions.join('/')}`);
  const rng = new SeededRandom(seed);
  const splitOf: SplitName[] = new Array(labels.length);
  for (const label of [0, 1]) {
    const members = new Map<number, number[]>();
    for (let i = 0; i < labels.length; i++) {
      if (labels[i] !== label) continue;
      const g = groupOf[i]!;
      if (!members.has(g)) members.set(g, []);
      members.get(g)!.push(i);
    }
    const groups = rng.shuffle([...members.values()]);
    const count = groups.reduce((n, g) => n + g.length, 0);
    const filled = [0, 0, 0];
    for (const group of groups) {
      // Deficit relative to target; ties go to the earlier split.
      let best = 0;
      let bestDeficit = -Infinity;
      for (let s = 0; s < 3; s++) {
        if (fractions[s] === 0) continue;
        const deficit = (fractions[s]! / total) * count - filled[s]!;
        if (deficit > bestDeficit + 1e-9) {
          bestDeficit = deficit;
          best = s;
        }
      }
      filled[best]! += group.length;
      for (const i of group) splitOf[i] = names[best]!;
    }
  }
  return splitOf;
}

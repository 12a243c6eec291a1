/**
 * Writing the calibrated model folder: the parent's weights copied unchanged, and a card that
 * is the parent's with a bumped version, the camera's threshold, OOD statistics and detector
 * clean-score model, and a `calibration` section saying where all of it came from. A folder
 * `loadModelCard` reads like any other, so predict, classify, run and demo use it as is.
 */
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { CalibrationInputError } from './calibrate-inputs.js';
import { loadModelCard, type ModelCard } from './card.js';
import type { CalibratedDetector } from './calibrate-detector.js';
import type { OodStats } from './ood.js';

export interface ParentModel {
  dir: string;
  card: ModelCard;
  /** card.json as written (unknown fields kept). */
  raw: Record<string, unknown>;
  sha256: string;
}

export async function readParent(modelDir: string): Promise<ParentModel> {
  const { card, dir } = await loadModelCard(modelDir);
  const bytes = await readFile(join(dir, 'card.json'));
  return { dir, card, raw: JSON.parse(bytes.toString('utf8')) as Record<string, unknown>, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/**
 * Refuse an out folder that is the model's own or already holds files: calibrate never
 * overwrites a model. `parentSubfolder`: the model is `<out>/<parentSubfolder>` (a fine-tuned
 * model written there by calibrate --fine-tune), the one entry the folder may hold.
 */
export async function checkOutDir(out: string, parentDir: string, parentSubfolder?: string): Promise<string> {
  const dir = resolve(out);
  const inside = parentSubfolder !== undefined && parentDir === join(dir, parentSubfolder);
  if (!inside && (dir === parentDir || parentDir.startsWith(dir + sep)))
    throw new CalibrationInputError(
      `--out ${out}: is (or contains) the model folder ${parentDir}; calibrate writes a new model folder next to it, e.g. --out ${parentDir}-cam-1`,
    );
  try {
    const entries = (await readdir(dir)).filter((e) => !inside || e !== parentSubfolder);
    if (entries.length > 0)
      throw new CalibrationInputError(
        `--out ${out}: the folder exists and is not empty (${entries.length} entries); calibrate never overwrites a model: choose a new folder or empty this one`,
      );
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return dir;
}

/** Semver minor + 1 ("1.0.0" → "1.1.0"); anything else gets ".1" appended. */
export function bumpVersion(version: string): string {
  const m = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  return m ? `${m[1]}.${Number(m[2]) + 1}.0` : `${version}.1`;
}

/** The weights files a card names, relative to its folder (TF.js: model.json and its weight shards). */
async function weightFiles(parent: ParentModel): Promise<string[]> {
  const { card } = parent;
  const files = new Set<string>([card.file, card.files?.onnx, card.files?.tfjs].filter((f): f is string => typeof f === 'string'));
  for (const f of [...files]) {
    if (!f.endsWith('.json')) continue;
    try {
      const manifest = JSON.parse(await readFile(join(parent.dir, f), 'utf8')) as { weightsManifest?: { paths?: string[] }[] };
      for (const group of manifest.weightsManifest ?? []) for (const p of group.paths ?? []) files.add(join(dirname(f), p));
    } catch {
      // Not a TF.js model.json: copied as a file.
    }
  }
  return [...files];
}

export interface CalibrationSection {
  status: 'calibrated';
  camera?: string;
  calibratedAt: string;
  note: string;
  provenance: Record<string, unknown>;
}

/** JSON for the card: Infinity (no false alarm possible from the scores) as null. */
const finite = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'number' && !Number.isFinite(x) ? null : x)));

/** Copy the parent's weights into the new folder, unchanged. */
export async function copyWeights(parent: ParentModel, outDir: string): Promise<string[]> {
  await mkdir(outDir, { recursive: true });
  const copied: string[] = [];
  for (const f of await weightFiles(parent)) {
    const to = join(outDir, f);
    await mkdir(dirname(to), { recursive: true });
    await copyFile(join(parent.dir, f), to);
    copied.push(relative(outDir, to));
  }
  return copied;
}

/** Write `<outDir>/card.json`: the parent's card with the camera's fits, then load it back as production would. */
export async function writeCalibratedCard(o: {
  parent: ParentModel;
  outDir: string;
  threshold: number;
  /** Absent for a model without an embedding output (no statistics to fit). */
  ood?: OodStats;
  detector: CalibratedDetector;
  calibration: CalibrationSection;
}): Promise<{ cardPath: string; version: string }> {
  const version = bumpVersion(o.parent.card.version);
  const card = {
    ...o.parent.raw,
    version,
    threshold: o.threshold,
    ...(o.ood ? { ood: o.ood } : {}),
    calibration: finite(o.calibration),
    detector: finite(o.detector),
  };
  const cardPath = join(o.outDir, 'card.json');
  await writeFile(cardPath, `${JSON.stringify(card, null, 2)}\n`);
  // The folder must load as any model does; a card this writes that does not is a bug, not a user error.
  await loadModelCard(o.outDir);
  return { cardPath, version };
}

/**
 * Refit a model card's out-of-distribution statistics on the simulator's camera profiles: the
 * uncalibrated default a camera starts with, before `crystalwatch calibrate` fits its own.
 *
 *   npm run build && node dist/simulator/refit-default.js [--model models/default] \
 *     [--crops 240] [--frames 4] [--percentile 99.9] [--seed 20261201]
 *
 * Embeddings come from `Classifier.embed` — the same decode, gates, tiling and preprocessing
 * the classify stage runs — over crops and over the tiles of full frames of every profile in
 * SEEN_PROFILES (never UNSEEN_PROFILES: they test that unseen cameras pass). Each embedding is
 * put in the class the model gives it (P(PG) ≥ the card's threshold), since the score is the
 * distance to the nearest class. The card keeps its weights; its `ood` block, its
 * `calibration` and `provenance.oodFit` are rewritten.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Classifier } from '../src/classify/classifier.js';
import { fitOodStats, type OodStats } from '../src/model/ood.js';
import { SEEN_PROFILES, type CameraProfile } from './profiles.js';
import { renderProfiledCrop, renderProfiledFrame } from './profile-render.js';
import { mixSeed } from './random.js';

export interface RefitOptions {
  model: string;
  /** Crops per profile (half CEX, half PG). */
  crops?: number;
  /** 1280×960 frames per profile (half with PG after onset), each cut into the classifier's tiles. */
  frames?: number;
  percentile?: number;
  seed?: number;
  profiles?: readonly CameraProfile[];
  /**
   * How tiled frames are run, for the fit and then by the classify stage (recorded in
   * `ood.frameInference`). Default `tiles`: on an unseen camera (plant B) feature-map inference
   * calls several times more clean frames PG before calibration (src/classify/README.md).
   */
  frameInference?: 'tiles' | 'feature-map';
  progress?: (line: string) => void;
}

export const UNCALIBRATED_NOTE =
  "out-of-distribution statistics fitted on simulator camera profiles (magnification, rod habit, defocus, motion blur, exposure, tone curve, contrast, noise, PNG/JPEG), not on this camera; permissive by design. Run crystalwatch calibrate on this camera's clean frames to fit its own.";

export async function refitOnProfiles(o: RefitOptions): Promise<{ stats: OodStats; crops: number; tiles: number; refused: number }> {
  const crops = o.crops ?? 240;
  const frames = o.frames ?? 4;
  const seed = o.seed ?? 20261201;
  const profiles = o.profiles ?? SEEN_PROFILES;
  const progress = o.progress ?? (() => {});
  // New statistics, fitted on the path the classify stage will then run.
  const wanted = o.frameInference ?? 'tiles';
  const classifier = await Classifier.load(o.model, { maxBatchSize: 64, frameInference: wanted === 'tiles' ? 'tiles' : 'prefer-feature-map' });
  const { frameInference } = classifier.info;
  const rows: Float32Array[] = [];
  const labels: number[] = [];
  let cropCount = 0;
  let tileCount = 0;
  let refused = 0;
  try {
    const threshold = classifier.card.threshold;
    for (const [p, profile] of profiles.entries()) {
      const images: { bytes: Buffer; frame: boolean }[] = [];
      for (let i = 0; i < crops; i++) {
        const crop = await renderProfiledCrop({ label: i % 2 ? 'pg' : 'cex', seed: mixSeed(seed, p, i), profile });
        images.push({ bytes: crop.bytes, frame: false });
      }
      for (let i = 0; i < frames; i++) {
        const frame = await renderProfiledFrame({
          seed: mixSeed(seed, p, 0xf, i),
          frameIndex: i,
          tSeconds: 120 + 60 * i,
          pgOnsetS: i % 2 ? 60 : null,
          profile,
        });
        images.push({ bytes: frame.bytes, frame: true });
      }
      for (let start = 0; start < images.length; start += 32) {
        const group = images.slice(start, start + 32);
        const out = await classifier.embed(group.map((g) => g.bytes));
        out.forEach((inputs, k) => {
          if (!inputs) return void refused++;
          if (group[k]!.frame) tileCount += inputs.length;
          else cropCount++;
          for (const { embedding, pPG } of inputs) {
            rows.push(embedding);
            labels.push(pPG >= threshold ? 1 : 0);
          }
        });
      }
      progress(`${profile.name}: ${rows.length} embeddings so far`);
    }
  } finally {
    await classifier.close();
  }
  const d = rows[0]!.length;
  const flat = new Float32Array(rows.length * d);
  rows.forEach((r, i) => flat.set(r, i * d));
  const stats = { ...fitOodStats(flat, Uint8Array.from(labels), d, ['cex', 'pg'], o.percentile ?? 99.9), frameInference };
  return { stats, crops: cropCount, tiles: tileCount, refused };
}

/** Write the refitted statistics into `<model>/card.json`, marked uncalibrated. */
export async function writeUncalibratedCard(
  model: string,
  fit: Awaited<ReturnType<typeof refitOnProfiles>>,
  o: RefitOptions & { command: string },
): Promise<void> {
  const path = join(model, 'card.json');
  const raw = JSON.parse(await readFile(path, 'utf8'));
  raw.ood = fit.stats;
  raw.calibration = { status: 'uncalibrated', note: UNCALIBRATED_NOTE };
  raw.provenance = {
    ...raw.provenance,
    oodFit: {
      profiles: (o.profiles ?? SEEN_PROFILES).map((p) => p.name),
      crops: fit.crops,
      tiles: fit.tiles,
      refusedByGates: fit.refused,
      seed: o.seed ?? 20261201,
      percentile: fit.stats.percentile,
      threshold: fit.stats.threshold,
      command: o.command,
      fittedAt: new Date().toISOString(),
    },
  };
  await writeFile(path, `${JSON.stringify(raw, null, 2)}\n`);
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number, got "${process.argv[i + 1]}"`);
  return v;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const i = process.argv.indexOf('--model');
  const modelArg = i >= 0 ? process.argv[i + 1] : 'models/default';
  if (modelArg === undefined) throw new Error('--model needs a model folder, e.g. --model models/default');
  const model = resolve(modelArg);
  const j = process.argv.indexOf('--frame-inference');
  const frameInference = j >= 0 ? process.argv[j + 1] : 'tiles';
  if (frameInference !== 'tiles' && frameInference !== 'feature-map')
    throw new Error(`--frame-inference must be tiles or feature-map, got "${frameInference}"`);
  const options = {
    model,
    crops: arg('--crops', 240),
    frames: arg('--frames', 4),
    percentile: arg('--percentile', 99.9),
    seed: arg('--seed', 20261201),
    frameInference,
  } as const;
  const command = `node dist/simulator/refit-default.js ${process.argv.slice(2).join(' ')}`.trim();
  const fit = await refitOnProfiles({ ...options, progress: (line) => process.stderr.write(`refit: ${line}\n`) });
  await writeUncalibratedCard(model, fit, { ...options, command });
  process.stderr.write(
    `refit: ${fit.crops} crops + ${fit.tiles} tiles (${fit.refused} images refused by the gates); threshold ${fit.stats.threshold.toFixed(4)} at the ${fit.stats.percentile}th percentile; wrote ${join(model, 'card.json')}\n`,
  );
}

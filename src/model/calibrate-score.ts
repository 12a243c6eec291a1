/**
 * Scoring the calibration images once, through the classify stage's own `Classifier`: the
 * same decode, model-free gates, tiling and preprocessing as production, and from it the
 * embedding and P(PG) of every model input (one per crop, one per tile of a frame). Every
 * figure before and after calibration is computed from these, so the model runs once per
 * image: the frame's P(PG) is its most PG input's, its out-of-distribution score the mean over
 * its inputs, exactly as `Classifier.classify` folds them.
 */
import { readFile } from 'node:fs/promises';
import { Classifier, type ClassifyResult } from '../classify/classifier.js';
import type { BackendChoice } from '../classify/backends/index.js';
import type { Outcome } from './calibrate-figures.js';
import type { ImageFile } from './calibrate-inputs.js';
import { oodScore, type OodStats } from './ood.js';

export interface InputScore {
  embedding: Float32Array;
  pPG: number;
}

export interface ScoredImage {
  file: ImageFile;
  /** P(PG) of an image the model judged (passed the gates); absent when refused or unreadable. */
  pPG?: number;
  /** Model inputs (one for a crop, the tiles of a frame), when the model has an embedding output. */
  inputs?: InputScore[];
  /** Refused by a model-free gate (not-probe, black, blank, out-of-focus …). */
  refused?: { reason: string; detail?: string };
  /** Could not be decoded. */
  error?: string;
}

export async function scoreImages(
  classifier: Classifier,
  files: readonly ImageFile[],
  o: { batchImages?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<ScoredImage[]> {
  const batch = o.batchImages ?? 8;
  const out: ScoredImage[] = [];
  const withEmbedding = classifier.card.output.embeddingName !== undefined;
  for (let start = 0; start < files.length; start += batch) {
    const group = files.slice(start, start + batch);
    const bytes = await Promise.all(group.map((f) => readFile(f.path)));
    // A model without an embedding output (an ONNX export that has only P(PG)) still gets a threshold and a detector.
    const embedded = withEmbedding ? await classifier.embed(bytes) : bytes.map(() => undefined);
    // embed() drops refused and undecodable images without saying why; classify says (the gates run before any inference).
    const missing = embedded.flatMap((e, k) => (e ? [] : [k]));
    const why = missing.length ? await classifier.classify(missing.map((k) => bytes[k]!)) : [];
    group.forEach((file, k) => {
      const inputs = embedded[k];
      if (inputs) return void out.push({ file, inputs, pPG: imagePPG(inputs) });
      const r = why[missing.indexOf(k)]!;
      if (r.predicted === 'cex' || r.predicted === 'pg') out.push({ file, pPG: r.pPG });
      else if (r.predicted === 'error') out.push({ file, error: r.reason });
      else out.push({ file, refused: { reason: String(r.reason ?? r.predicted), detail: r.detail } });
    });
    o.onProgress?.(Math.min(start + batch, files.length), files.length);
  }
  return out;
}

/** A frame is as PG as its most PG tile (Classifier.classify). */
export const imagePPG = (inputs: readonly InputScore[]): number => inputs.reduce((best, i) => Math.max(best, i.pPG), 0);

/** Mean over the inputs of their out-of-distribution score (Classifier.classify: one odd tile does not void a frame). */
export function imageOodScore(inputs: readonly InputScore[], stats: Pick<OodStats, 'classes' | 'dimensions'>): number {
  let sum = 0;
  for (const i of inputs) sum += oodScore(i.embedding, stats);
  return sum / inputs.length;
}

/** P(PG) and OOD scores under two cards' statistics of every judged image, for the report's charts. */
export function imageRows(
  images: readonly ScoredImage[],
  before?: OodStats,
  after?: OodStats,
): { pPG: number; oodBefore: number | null; oodAfter: number | null }[] {
  return images.flatMap((s) =>
    s.pPG === undefined
      ? []
      : [
          {
            pPG: s.pPG,
            oodBefore: before && s.inputs ? imageOodScore(s.inputs, before) : null,
            oodAfter: after && s.inputs ? imageOodScore(s.inputs, after) : null,
          },
        ],
  );
}

/** The verdict of one scored image under a card's threshold and OOD statistics, as classify would give it. */
export function verdict(
  s: ScoredImage,
  threshold: number,
  ood?: OodStats,
): { verdict: 'cex' | 'pg' | 'out-of-distribution' | 'refused' | 'error'; pPG: number | null } {
  if (s.pPG === undefined) return { verdict: s.error ? 'error' : 'refused', pPG: null };
  if (ood && s.inputs && imageOodScore(s.inputs, ood) > ood.threshold) return { verdict: 'out-of-distribution', pPG: null };
  return { verdict: s.pPG >= threshold ? 'pg' : 'cex', pPG: s.pPG };
}

/** One classify result as the figures count it. */
export function outcomeOf(r: ClassifyResult): Outcome {
  if (r.predicted === 'cex' || r.predicted === 'pg') return { verdict: r.predicted, pPG: r.pPG };
  if (r.predicted === 'unusable') return { verdict: r.reason === 'out-of-distribution' ? 'out-of-distribution' : 'refused', pPG: null };
  return { verdict: 'error', pPG: null };
}

export function checkTileCounts(scored: ScoredImage[], kind: 'crops' | 'frames'): number {
  const counts = new Set(scored.flatMap((s) => (s.inputs ? [s.inputs.length] : [])));
  if (kind === 'crops' && (counts.size > 1 || !counts.has(1)))
    throw new Error(`calibrate: crops gave ${[...counts].join('/')} model inputs each; expected one (classify tiles them): a bug, please report it`);
  if (kind === 'frames' && counts.size > 1) throw new Error(`calibrate: frames of one size gave ${[...counts].join(' and ')} tiles: a bug, please report it`);
  return [...counts][0] ?? 0;
}

export async function classifyWith(
  modelDir: string,
  files: readonly Pick<ImageFile, 'path'>[],
  backend: BackendChoice | undefined,
  progress: (done: number, total: number) => void,
): Promise<Outcome[]> {
  const classifier = await Classifier.load(modelDir, { backend, maxBatchSize: 64 });
  const out: Outcome[] = [];
  try {
    for (let i = 0; i < files.length; i += 8) {
      const group = files.slice(i, i + 8);
      const results = await classifier.classify(await Promise.all(group.map((f) => readFile(f.path))));
      out.push(...results.map(outcomeOf));
      progress(Math.min(i + 8, files.length), files.length);
    }
  } finally {
    await classifier.close();
  }
  return out;
}

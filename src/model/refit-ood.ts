/**
 * Recompute a trained model's OOD statistics (card.ood) from the training split of its data,
 * without retraining: for cards written before the statistics changed, or to widen the
 * "known" distribution with more crops of the same kind.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadModelCard, modelFile } from './card.js';
import { CLASS_NAMES, loadDataset } from './dataset.js';
import { fitOodStats, type OodStats } from './ood.js';
import { onnxPredictor, predictAll } from './predictor.js';

export async function refitOod(modelDir: string, dataDir: string, progress: (line: string, final: boolean) => void = () => {}): Promise<OodStats> {
  const { card, dir } = await loadModelCard(modelDir);
  const onnxPath = modelFile(card, dir, 'onnx');
  if (!onnxPath) throw new Error(`refit OOD: ${join(modelDir, 'card.json')} lists no ONNX file; run \`crystalwatch export --model ${modelDir}\` first`);
  const provenance = (card.provenance ?? {}) as { splitSeed?: number; seed?: number };
  const splitSeed = provenance.splitSeed ?? provenance.seed ?? 1;
  const data = await loadDataset(dataDir, {
    inputSize: card.input.width,
    seed: splitSeed,
    onProgress: (done, total) => {
      if (done === total || done % 500 === 0) progress(`reading ${done}/${total} crops`, done === total);
    },
  });
  const trainIdx = data.splitOf.flatMap((s, i) => (s === 'train' ? [i] : []));
  const predictor = await onnxPredictor(onnxPath);
  try {
    const pred = await predictAll(predictor, data.pixels, trainIdx, card.input.width);
    if (!pred.embedding) throw new Error(`refit OOD: ${onnxPath} has no embedding output (${card.output.embeddingName ?? 'embedding'})`);
    const stats = fitOodStats(
      pred.embedding,
      trainIdx.map((i) => data.labels[i]!),
      pred.dimensions,
      CLASS_NAMES,
    );
    const cardPath = join(dir, 'card.json');
    const raw = JSON.parse(await readFile(cardPath, 'utf8'));
    raw.ood = stats;
    await writeFile(cardPath, `${JSON.stringify(raw, null, 2)}\n`);
    progress(`OOD statistics refitted on ${trainIdx.length} training crops (split seed ${splitSeed}): threshold ${stats.threshold.toFixed(3)}`, true);
    return stats;
  } finally {
    await predictor.close();
  }
}

/**
 * `crystalwatch evaluate`: score a trained model on a labelled crop folder and write the report.
 * The ONNX file runs through onnxruntime-node when the card lists one (what production runs);
 * otherwise the TF.js model does.
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadModelCard, modelFile, type ModelCard } from './card.js';
import { loadDataset, type SplitName } from './dataset.js';
import { onnxPredictor, predictAll, tfjsPredictor, type Predictor } from './predictor.js';
import { writeReport, type EpochRecord } from './report.js';
import { loadTf } from './tf.js';
import { loadLayersModel } from './io.js';
import { oodScore, type OodStats } from './ood.js';
import type { PgSummary } from './evaluation.js';

export interface EvaluateOptions {
  model: string;
  data: string;
  report: string;
  /** Which split of a split dataset to score; default: all crops. */
  split?: SplitName | 'all';
  /** `onnx` (default when present) or `tfjs`. */
  engine?: 'onnx' | 'tfjs';
  progress?: (line: string, final: boolean) => void;
}

export interface EvaluateResult {
  summary: PgSummary;
  reportDir: string;
  engine: 'onnx' | 'tfjs';
  crops: number;
  /** Crops whose OOD score is above the card's threshold. */
  outOfDistribution: number | null;
}

/** Refuse cards whose preprocessing this evaluator does not reproduce (it feeds grey unit-scaled squashed crops). */
function checkSupported(card: ModelCard, where: string): void {
  const i = card.input;
  if (
    i.channels !== 1 ||
    i.layout !== 'NHWC' ||
    i.resize !== 'squash' ||
    i.normalization !== 'unit' ||
    i.width !== i.height ||
    card.output.kind !== 'sigmoid'
  ) {
    throw new Error(
      `evaluate: ${where} describes input ${JSON.stringify(i)} / output ${card.output.kind}; this evaluator handles models from \`crystalwatch train\` (NHWC grey, square, squash, unit, sigmoid). Score other models with \`crystalwatch predict\`.`,
    );
  }
}

export async function evaluate(options: EvaluateOptions): Promise<EvaluateResult> {
  const progress = options.progress ?? (() => {});
  const { card, dir } = await loadModelCard(options.model);
  checkSupported(card, join(options.model, 'card.json'));
  const side = card.input.width;
  const onnxPath = modelFile(card, dir, 'onnx');
  const tfjsPath = modelFile(card, dir, 'tfjs');
  const engine = options.engine ?? (onnxPath ? 'onnx' : 'tfjs');
  let predictor: Predictor;
  if (engine === 'onnx') {
    if (!onnxPath) throw new Error(`evaluate: ${join(options.model, 'card.json')} lists no ONNX file; use --engine tfjs or run \`crystalwatch export\``);
    predictor = await onnxPredictor(onnxPath);
  } else {
    if (!tfjsPath) throw new Error(`evaluate: ${join(options.model, 'card.json')} lists no TF.js model.json; use --engine onnx`);
    const { tf } = await loadTf();
    predictor = tfjsPredictor(tf, await loadLayersModel(tf, tfjsPath));
  }
  try {
    const data = await loadDataset(options.data, {
      inputSize: side,
      seed: 0,
      nearBits: -1,
      onProgress: (done, total) => {
        if (done === total || done % 250 === 0) progress(`reading ${done}/${total} crops`, done === total);
      },
    });
    const indices = data.splitOf.flatMap((s, i) => (options.split && options.split !== 'all' && s !== options.split ? [] : [i]));
    if (indices.length === 0) throw new Error(`evaluate: no crops in split "${options.split}" of ${options.data}`);
    progress(`scoring ${indices.length} crops with ${engine}`, true);
    const pred = await predictAll(predictor, data.pixels, indices, side);
    const labels = Uint8Array.from(indices, (i) => data.labels[i]!);
    let history: EpochRecord[] | null = null;
    try {
      history = JSON.parse(await readFile(join(dir, 'history.json'), 'utf8')) as EpochRecord[];
    } catch {
      history = null;
    }
    let outOfDistribution: number | null = null;
    if (pred.embedding && card.ood && (card.ood as unknown as OodStats).classes) {
      const stats = card.ood as unknown as OodStats;
      outOfDistribution = 0;
      for (let r = 0; r < indices.length; r++) {
        if (oodScore(pred.embedding.subarray(r * pred.dimensions, (r + 1) * pred.dimensions), stats) > stats.threshold) outOfDistribution++;
      }
    }
    const reportDir = resolve(options.report);
    const { summary } = await writeReport(reportDir, {
      title: `${card.name}: evaluation`,
      subject: { model: dir, data: resolve(options.data), split: options.split ?? 'all', crops: indices.length, engine },
      pPG: pred.pPG,
      labels,
      threshold: card.threshold,
      embedding: pred.embedding ? { values: pred.embedding, dimensions: pred.dimensions } : null,
      history,
      extra: {
        outOfDistribution: { crops: outOfDistribution, threshold: card.ood?.threshold ?? null },
        dataset: { layout: data.layout, crops: data.entries.length, unreadable: data.unreadable.length },
      },
    });
    return { summary, reportDir, engine, crops: indices.length, outOfDistribution };
  } finally {
    await predictor.close();
  }
}

/**
 * The card.json `crystalwatch train` writes next to the model: how classify feeds it (input,
 * output, threshold, tiling), its OOD statistics, what it is (architecture) and how it came to
 * be (provenance, held-out metrics). Also the one thing read back from a parent model's card
 * when training continues from it (`--init`).
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ARCHITECTURE_NAME, type ModelCost } from './architecture.js';
import { DEFAULT_TILING, TilingSchema, type ModelCardInput, type Tiling } from './card.js';
import type { SplitName } from './dataset.js';
import type { PgSummary } from './evaluation.js';
import { TFJS_MODEL_FILE } from './io.js';
import type { OodStats } from './ood.js';
import { ONNX_INPUT, ONNX_OUTPUT_EMBEDDING, ONNX_OUTPUT_PG, type OnnxExportInfo } from './onnx-export.js';
import type { TrainingData } from './train-data.js';
import type { FitResult } from './train-fit.js';
import type { TrainSettings } from './train-settings.js';

/** What a parent model folder's card.json says that a model trained from it keeps. */
export interface ParentCard {
  /** The parent's split seed (or its training seed, for cards written before splitSeed). */
  splitSeed?: number;
  tiling?: Tiling;
}

/** The parent card's split seed and tiling; `{}` when the folder has no readable card. */
export async function readParentCard(dir: string): Promise<ParentCard> {
  try {
    const raw = JSON.parse(await readFile(join(dir, 'card.json'), 'utf8')) as { provenance?: { splitSeed?: number; seed?: number }; tiling?: unknown };
    const tiling = TilingSchema.safeParse(raw.tiling);
    return { splitSeed: raw.provenance?.splitSeed ?? raw.provenance?.seed, ...(tiling.success ? { tiling: tiling.data } : {}) };
  } catch {
    // No card next to the weights: the caller's seed and the default tiling it is.
    return {};
  }
}

export interface CardSources {
  /** The options as the user gave them (paths and command line are recorded as given). */
  options: { data: string; out: string; name?: string; command?: string; init?: string };
  settings: TrainSettings;
  splitSeed: number;
  training: TrainingData;
  fit: FitResult;
  backend: string;
  cost: ModelCost;
  onnx: OnnxExportInfo;
  ood: OodStats;
  test: PgSummary;
  testSplit: SplitName;
  /** The parent's tiling when training from one (`--init`), else undefined. */
  parentTiling: Tiling | undefined;
}

export function buildCard(sources: CardSources): ModelCardInput {
  return {
    name: sources.options.name ?? ARCHITECTURE_NAME,
    version: '1.0.0',
    format: 'onnx',
    file: 'model.onnx',
    files: { onnx: 'model.onnx', tfjs: TFJS_MODEL_FILE },
    input: {
      layout: 'NHWC',
      width: sources.settings.inputSize,
      height: sources.settings.inputSize,
      channels: 1,
      colorOrder: 'gray',
      resize: 'squash',
      normalization: 'unit',
      name: ONNX_INPUT,
    },
    output: { kind: 'sigmoid', name: ONNX_OUTPUT_PG, embeddingName: ONNX_OUTPUT_EMBEDDING },
    threshold: 0.5,
    classNames: ['cex', 'pg'],
    // Tiling is how classify cuts a whole frame, not something training learns: a model trained
    // from a parent keeps the parent's (an operator may have tuned it for the plant's optics);
    // a new model gets DEFAULT_TILING, whose figures are documented where the card schema lives.
    tiling: { ...(sources.parentTiling ?? DEFAULT_TILING) },
    ood: { ...sources.ood },
    architecture: architectureSection(sources),
    provenance: provenanceSection(sources),
    metrics: cardMetrics(sources.test, sources.fit.best.f1),
  };
}

/** Held-out figures under `test_*` (undefined ones left out) and the selected epoch's validation F1. */
export function cardMetrics(test: PgSummary, bestValidF1: number): Record<string, number> {
  const metrics: Record<string, number> = {};
  const put = (key: string, v: number | null) => {
    if (v !== null) metrics[key] = v;
  };
  put('test_f1', test.f1);
  put('test_precision', test.precision);
  put('test_recall', test.recall);
  put('test_accuracy', test.accuracy);
  put('test_auc', test.auc);
  metrics.test_support = test.support;
  // -1 is the selector's "no epoch scored yet".
  put('valid_f1', bestValidF1 < 0 ? null : bestValidF1);
  return metrics;
}

function architectureSection({ settings, cost, onnx }: CardSources): ModelCardInput['architecture'] {
  const { inputSize, width, dropout, norm } = settings;
  return {
    name: ARCHITECTURE_NAME,
    description:
      `Residual CNN on a ${inputSize}×${inputSize} grey crop: conv3x3/2 1→${width}, conv3x3/2 ${width}→${2 * width}, residual block ${2 * width}, conv3x3/2 ${2 * width}→${4 * width}, residual block ${4 * width}, ` +
      `global average pool (${4 * width}-d embedding), dropout ${dropout}, dense ${4 * width}→1 sigmoid. ` +
      (norm === 'batch' ? 'BatchNorm after each convolution.' : 'No BatchNorm: convolutions with bias, residual branches zero-initialised (Fixup).'),
    parameters: cost.parameters,
    flopsPerImage: cost.flopsPerImage,
    macsPerImage: cost.macsPerImage,
    inputSize,
    width,
    normalization: norm,
    onnx: { opset: onnx.opset, irVersion: onnx.irVersion, input: onnx.input, outputs: onnx.outputs },
  };
}

function provenanceSection({ options, settings, splitSeed, training, fit, backend, testSplit }: CardSources): ModelCardInput['provenance'] {
  const { epochs, batchSize, lr, seed, inputSize, width, dropout, augment } = settings;
  const { data, splits, splitCounts } = training;
  return {
    data: resolve(options.data),
    seed,
    splitSeed,
    epochs: fit.history.length,
    command:
      options.command ??
      `crystalwatch train --data ${options.data} --out ${options.out} --epochs ${epochs} --batch-size ${batchSize} --lr ${lr} --seed ${seed} --input-size ${inputSize} --width ${width} --dropout ${dropout}`,
    trainedAt: new Date().toISOString(),
    epochsPlanned: epochs,
    bestEpoch: fit.best.epoch,
    batchSize,
    learningRate: lr,
    dropout,
    augment,
    backend,
    trainingSeconds: Math.round(fit.trainSeconds),
    imagesPerSecond: Math.round(fit.imagesSeen / fit.trainSeconds),
    layout: data.layout,
    splits: splitCounts,
    leakageGuard: { groups: data.duplicates.groups, cropsInGroups: data.duplicates.itemsInGroups },
    testSplit,
    ...(Object.keys(splits.carved).length ? { carvedFromTrain: splits.carved } : {}),
    ...(options.init ? { initialisedFrom: resolve(options.init) } : {}),
  };
}

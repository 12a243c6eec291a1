/**
 * `crystalwatch train`: read a labelled crop folder, split it without leakage, train CrystalNet
 * with augmentation and early stopping on the validation F1 of PG, and write everything the
 * classify stage and a reviewer need: TF.js model, ONNX export, card.json, report.
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadTf, type TfBackendName, type TfRuntime } from './tf.js';
import { ARCHITECTURE_NAME } from './architecture.js';
import { CLASS_NAMES, type SplitName } from './dataset.js';
import type { AugmentOptions } from './augment.js';
import { fitOodStats } from './ood.js';
import { saveLayersModel } from './io.js';
import { exportOnnx, type OnnxExportInfo } from './onnx-export.js';
import { predictAll, tfjsPredictor, type Prediction, type Predictor } from './predictor.js';
import { writeReport, type EpochRecord } from './report.js';
import type { PgSummary } from './evaluation.js';
import { parseModelCard, type Tiling } from './card.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { resolveSettings, type TrainSettings } from './train-settings.js';
import { loadTrainingData, type TrainingData } from './train-data.js';
import { buildStartModel, fit, type FitResult, type StartModel } from './train-fit.js';
import { buildCard, readParentCard } from './train-card.js';
import { f4, type Progress } from './train-progress.js';

export interface TrainOptions {
  data: string;
  out: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /**
   * Seed of the train/valid/test split. Default: the --init model's split seed (so continuing
   * training never moves a crop it has trained on into the test split), else `seed`.
   */
  splitSeed?: number;
  inputSize?: number;
  /** Epochs without a better validation F1 before stopping. */
  patience?: number;
  split?: [number, number, number];
  augment?: AugmentOptions | false;
  norm?: 'batch' | 'none';
  /** Dropout rate before the classifier (default 0.3). */
  dropout?: number;
  /** Channels of the first stage (then ×2, ×4); 8 (default) or 16. */
  width?: number;
  /** Start from the weights of a model folder written by `train` (same --width/--input-size). */
  init?: string;
  /** Force a TF.js backend (default: best available). */
  backend?: TfBackendName;
  /** The command line, recorded in the card. */
  command?: string;
  name?: string;
  /** Progress lines and bars (stderr in the CLI). */
  progress?: (line: string, final: boolean) => void;
  logger?: Logger;
}

export interface TrainResult {
  out: string;
  epochsRun: number;
  bestEpoch: number;
  history: EpochRecord[];
  trainSeconds: number;
  imagesPerSecond: number;
  test: { split: SplitName; f1: number | null; accuracy: number | null; precision: number | null; recall: number | null; auc: number | null; support: number };
  onnx: OnnxExportInfo;
  files: Record<string, number>;
  backend: string;
}

/** The held-out split the report and the card's `test_*` metrics are on. */
const TEST_SPLIT: SplitName = 'test';

export async function train(options: TrainOptions): Promise<TrainResult> {
  const log = options.logger ?? silentLogger;
  const progress: Progress = options.progress ?? (() => {});
  const settings = resolveSettings(options);
  const out = resolve(options.out);
  await mkdir(out, { recursive: true });
  const parent = options.init ? await readParentCard(options.init) : {};
  const splitSeed = options.splitSeed ?? parent.splitSeed ?? settings.seed;
  const t0 = performance.now();
  const training = await loadTrainingData({
    root: options.data,
    inputSize: settings.inputSize,
    splitSeed,
    split: options.split,
    ...(splitSeed !== settings.seed ? { splitSeedFrom: options.splitSeed === undefined ? `--init ${options.init}` : '--split-seed' } : {}),
    progress,
    logger: log,
  });
  const runtime = await loadTf(options.backend);
  const { tf } = runtime;
  progress(`TF.js backend: ${runtime.backend} (${runtime.device})${runtime.skipped.length ? `; not available: ${runtime.skipped.join('; ')}` : ''}`, true);
  tf.engine().startScope();
  try {
    const start = await buildStartModel(tf, settings, options.init, progress);
    const predictor = tfjsPredictor(tf, start.model);
    const fitted = await fit({ tf, start, predictor, settings, data: training.data, splits: training.splits, progress });
    const result = await writeOutputs({
      options,
      out,
      settings,
      splitSeed,
      training,
      runtime,
      start,
      predictor,
      fitted,
      parentTiling: parent.tiling,
      progress,
    });
    log.info({ out, seconds: (performance.now() - t0) / 1000 }, 'training finished');
    return result;
  } finally {
    tf.engine().endScope();
    tf.disposeVariables();
  }
}

interface Trained {
  options: TrainOptions;
  out: string;
  settings: TrainSettings;
  splitSeed: number;
  training: TrainingData;
  runtime: TfRuntime;
  start: StartModel;
  predictor: Predictor;
  fitted: FitResult;
  parentTiling: Tiling | undefined;
  progress: Progress;
}

/**
 * Everything classify and a reviewer need from the selected epoch: the TF.js model, its ONNX
 * export, the held-out report, history.json and card.json (with OOD statistics from the
 * un-augmented training crops' embeddings).
 */
async function writeOutputs(trained: Trained): Promise<TrainResult> {
  const { out, settings, training, runtime, start, predictor, fitted, progress } = trained;
  const { data, splits } = training;
  const { tf } = runtime;
  const trainPred = await predictAll(predictor, data.pixels, splits.train, settings.inputSize);
  const ood = fitOodStats(
    trainPred.embedding!,
    splits.train.map((i) => data.labels[i]!),
    trainPred.dimensions,
    CLASS_NAMES,
    99.5,
  );
  const testPred = await predictAll(predictor, data.pixels, splits.test, settings.inputSize);
  await saveLayersModel(tf, start.model, out);
  const onnx = await exportOnnx(start.model, join(out, 'model.onnx'), {
    producerVersion: tf.version_layers,
    docString: `${ARCHITECTURE_NAME} trained by crystalwatch train`,
  });
  const summary = await writeTestReport(trained, testPred);
  await writeFile(join(out, 'history.json'), JSON.stringify(fitted.history, null, 2));
  const card = buildCard({ ...trained, backend: runtime.backend, cost: start.cost, fit: fitted, onnx, ood, test: summary, testSplit: TEST_SPLIT });
  parseModelCard(card, join(out, 'card.json'));
  await writeFile(join(out, 'card.json'), JSON.stringify(card, null, 2) + '\n');
  const files: Record<string, number> = {};
  for (const f of ['model.json', 'weights.bin', 'model.onnx', 'card.json']) files[f] = (await stat(join(out, f))).size;
  progress(
    `held-out ${TEST_SPLIT} (${splits.test.length} crops): F1(PG) ${f4(summary.f1)} precision ${f4(summary.precision)} recall ${f4(summary.recall)} accuracy ${f4(summary.accuracy)} AUC ${f4(summary.auc)}; wrote ${out}`,
    true,
  );
  return {
    out,
    epochsRun: fitted.history.length,
    bestEpoch: fitted.best.epoch,
    history: fitted.history,
    trainSeconds: fitted.trainSeconds,
    imagesPerSecond: fitted.imagesSeen / fitted.trainSeconds,
    test: {
      split: TEST_SPLIT,
      f1: summary.f1,
      accuracy: summary.accuracy,
      precision: summary.precision,
      recall: summary.recall,
      auc: summary.auc,
      support: summary.support,
    },
    onnx,
    files,
    backend: runtime.backend,
  };
}

/** report/ (report.json, report.md, charts) on the held-out split; returns its PG summary. */
async function writeTestReport({ options, out, training, runtime, fitted }: Trained, testPred: Prediction): Promise<PgSummary> {
  const { data, splits, splitCounts } = training;
  const { duplicates } = data;
  const { summary } = await writeReport(join(out, 'report'), {
    title: `${options.name ?? ARCHITECTURE_NAME}: held-out ${TEST_SPLIT} split`,
    subject: { model: out, data: resolve(options.data), split: TEST_SPLIT, crops: splits.test.length, backend: runtime.backend },
    pPG: testPred.pPG,
    labels: Uint8Array.from(splits.test, (i) => data.labels[i]!),
    threshold: 0.5,
    embedding: testPred.embedding ? { values: testPred.embedding, dimensions: testPred.dimensions } : null,
    history: fitted.history,
    extra: {
      dataset: { layout: data.layout, crops: data.entries.length, splits: splitCounts, unreadable: data.unreadable.length },
      leakageGuard: {
        groups: duplicates.groups,
        cropsInGroups: duplicates.itemsInGroups,
        exactLinks: duplicates.exactLinks,
        nearLinks: duplicates.nearLinks,
        groupsAcrossGivenSplits: data.groupsAcrossGivenSplits,
      },
      training: {
        epochsRun: fitted.history.length,
        bestEpoch: fitted.best.epoch,
        seconds: fitted.trainSeconds,
        imagesPerSecond: fitted.imagesSeen / fitted.trainSeconds,
        backend: runtime.backend,
      },
    },
  });
  return summary;
}

/**
 * `crystalwatch train`: read a labelled crop folder, split it without leakage, train CrystalNet
 * with augmentation and early stopping on the validation F1 of PG, and write everything the
 * classify stage and a reviewer need: TF.js model, ONNX export, card.json, report.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadTf, type TfBackendName } from './tf.js';
import { ARCHITECTURE_NAME, buildModel, modelCost } from './architecture.js';
import { loadDataset, CLASS_NAMES, type SplitName } from './dataset.js';
import { chooseSplits } from './splits.js';
import { augmentInto, DEFAULT_AUGMENT, NO_AUGMENT, type AugmentOptions } from './augment.js';
import { SeededRandom } from './rng.js';
import { confusionAt } from './evaluation.js';
import { fitOodStats } from './ood.js';
import { loadLayersModel, saveLayersModel, TFJS_MODEL_FILE } from './io.js';
import { exportOnnx, ONNX_INPUT, ONNX_OUTPUT_EMBEDDING, ONNX_OUTPUT_PG, type OnnxExportInfo } from './onnx-export.js';
import { predictAll, tfjsPredictor } from './predictor.js';
import { writeReport, type EpochRecord } from './report.js';
import { parseModelCard, type ModelCardInput } from './card.js';
import { silentLogger, type Logger } from '../config/logger.js';

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

function bar(done: number, total: number, width = 24): string {
  const filled = Math.round((done / Math.max(total, 1)) * width);
  return `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? (done >= total ? '=' : '>') : ''}${' '.repeat(width - filled)}]`;
}

const f4 = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));

export async function train(options: TrainOptions): Promise<TrainResult> {
  const log = options.logger ?? silentLogger;
  const progress = options.progress ?? (() => {});
  const epochs = options.epochs ?? 20;
  const batchSize = options.batchSize ?? 32;
  const lr = options.lr ?? 2e-3;
  const seed = options.seed ?? 1;
  const inputSize = options.inputSize ?? 64;
  const patience = options.patience ?? 6;
  const augment = options.augment === false ? NO_AUGMENT : (options.augment ?? DEFAULT_AUGMENT);
  const norm = options.norm ?? 'batch';
  const width = options.width ?? 8;
  const dropout = options.dropout ?? 0.3;
  for (const [name, value, ok] of [
    ['--epochs', epochs, Number.isInteger(epochs) && epochs >= 1],
    ['--batch-size', batchSize, Number.isInteger(batchSize) && batchSize >= 1],
    ['--lr', lr, lr > 0 && lr < 1],
    ['--input-size', inputSize, Number.isInteger(inputSize) && inputSize >= 32 && inputSize % 32 === 0],
    ['--width', width, Number.isInteger(width) && width >= 1],
    ['--dropout', dropout, dropout >= 0 && dropout < 1],
  ] as const) {
    if (!ok) throw new Error(`train: ${name} got ${value}; use a positive integer (epochs, batch size), a learning rate in (0, 1), or an input size that is a multiple of 32 (≥ 32)`);
  }
  const out = resolve(options.out);
  await mkdir(out, { recursive: true });
  let splitSeed = options.splitSeed ?? seed;
  if (options.splitSeed === undefined && options.init) {
    try {
      const initCard = JSON.parse(await readFile(join(options.init, 'card.json'), 'utf8')) as { provenance?: { splitSeed?: number; seed?: number } };
      splitSeed = initCard.provenance?.splitSeed ?? initCard.provenance?.seed ?? seed;
    } catch {
      // No card next to the weights: the caller's seed it is.
    }
  }

  // 1. Data.
  const t0 = performance.now();
  const data = await loadDataset(options.data, {
    inputSize,
    seed: splitSeed,
    split: options.split,
    onProgress: (done, total) => {
      if (done === total || done % 250 === 0) progress(`reading ${done}/${total} crops ${bar(done, total)}`, done === total);
    },
  });
  // The epoch is chosen on `valid`, the report is on `test`: never the same crops, never training crops.
  const presplit = data.entries.some((e) => e.split !== undefined);
  const splits = chooseSplits(data, options.split, splitSeed, presplit);
  const trainIdx = splits.train;
  const validIdx = splits.valid;
  const testIdx = splits.test;
  const testSplit: SplitName = 'test';
  if (trainIdx.length === 0) throw new Error(`train: the training split of ${options.data} is empty (${data.entries.length} crops); give more crops or a train/ folder`);
  const count = (idx: number[]) => ({ total: idx.length, pg: idx.filter((i) => data.labels[i] === 1).length, cex: idx.filter((i) => data.labels[i] === 0).length });
  const splitCounts = { train: count(trainIdx), valid: count(validIdx), test: count(testIdx) };
  for (const [name, n] of Object.entries(splits.carved)) {
    progress(`no ${name}/ folder: ${n} crops of train/ set aside as the ${name} split (stratified, duplicate groups kept whole, split seed ${splitSeed})`, true);
  }
  const dupLine = `leakage guard: ${data.duplicates.groups} duplicate groups (${data.duplicates.itemsInGroups} crops; ${data.duplicates.exactLinks} exact rotation/flip copies, ${data.duplicates.nearLinks} near copies)${data.groupsAcrossGivenSplits ? `, ${data.groupsAcrossGivenSplits} of them span the given train/valid/test folders — the test score may be optimistic` : ', each kept within one split'}`;
  progress(`data: ${data.entries.length} crops (${data.layout}), train ${splitCounts.train.total} / valid ${splitCounts.valid.total} / test ${splitCounts.test.total}${data.unreadable.length ? `, ${data.unreadable.length} unreadable skipped` : ''}`, true);
  progress(dupLine, true);
  if (splitSeed !== seed) progress(`split seed ${splitSeed} (from ${options.splitSeed === undefined ? `--init ${options.init}` : '--split-seed'})`, true);
  for (const u of data.unreadable.slice(0, 5)) log.warn({ file: u.path, reason: u.reason }, 'skipped unreadable crop');

  // 2. Model.
  const runtime = await loadTf(options.backend);
  const { tf } = runtime;
  progress(`TF.js backend: ${runtime.backend} (${runtime.device})${runtime.skipped.length ? `; not available: ${runtime.skipped.join('; ')}` : ''}`, true);
  tf.engine().startScope();
  try {
    const model = buildModel(tf, { inputSize, seed, norm, width, dropout });
    if (options.init) {
      const start = await loadLayersModel(tf, options.init);
      const from = start.getWeights();
      const to = model.getWeights();
      const mismatch = from.length !== to.length || from.some((w, i) => w.shape.join('x') !== to[i]!.shape.join('x'));
      if (mismatch) {
        throw new Error(
          `train: --init ${options.init} has a different architecture (${from.length} weight tensors, first ${from[0]?.shape.join('x')}) from --width ${width} --input-size ${inputSize}${norm === 'none' ? ' --no-batch-norm' : ''} (${to.length}, first ${to[0]?.shape.join('x')}); pass the same options it was trained with`,
        );
      }
      model.setWeights(from);
      start.dispose();
      progress(`initialised from ${options.init}`, true);
    }
    const optimizer = tf.train.adam(lr);
    model.compile({ optimizer, loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    const cost = modelCost(model);
    progress(`model: ${ARCHITECTURE_NAME}, ${cost.parameters} parameters, ${(cost.flopsPerImage / 1e6).toFixed(1)} MFLOPs/image, input ${inputSize}×${inputSize}×1`, true);

    // 3. Training loop.
    const plane = inputSize * inputSize;
    const rng = new SeededRandom(seed + 101);
    const batch = new Float32Array(batchSize * plane);
    const targets = new Float32Array(batchSize);
    const scratch = new Float32Array(plane);
    const history: EpochRecord[] = [];
    let best = { f1: -1, loss: Infinity, epoch: 0, weights: null as Float32Array[] | null };
    let sinceBest = 0;
    let trainSeconds = 0;
    let imagesSeen = 0;
    const predictor = tfjsPredictor(tf, model);

    for (let epoch = 1; epoch <= epochs; epoch++) {
      // Cosine decay to 5 % of the starting rate over the planned epochs.
      const rate = lr * (0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * (epoch - 1)) / epochs)));
      (optimizer as unknown as { learningRate: number }).learningRate = rate;
      const order = rng.shuffle([...trainIdx]);
      const steps = Math.ceil(order.length / batchSize);
      const epochStart = performance.now();
      let lossSum = 0;
      let accSum = 0;
      let seen = 0;
      for (let step = 0; step < steps; step++) {
        const members = order.slice(step * batchSize, (step + 1) * batchSize);
        const n = members.length;
        members.forEach((idx, b) => {
          augmentInto(data.pixels.subarray(idx * plane, (idx + 1) * plane), inputSize, batch, b, rng, augment, scratch);
          targets[b] = data.labels[idx]!;
        });
        const x = tf.tensor4d(batch.subarray(0, n * plane), [n, inputSize, inputSize, 1]);
        const y = tf.tensor2d(targets.subarray(0, n), [n, 1]);
        const [loss, acc] = (await model.trainOnBatch(x, y)) as [number, number]; // compiled with one metric: [loss, accuracy]
        x.dispose();
        y.dispose();
        lossSum += loss * n;
        accSum += acc * n;
        seen += n;
        const elapsed = (performance.now() - epochStart) / 1000;
        if (step === steps - 1 || step % 5 === 0) {
          progress(`epoch ${epoch}/${epochs} ${bar(step + 1, steps)} ${step + 1}/${steps} loss ${(lossSum / seen).toFixed(4)} acc ${(accSum / seen).toFixed(4)} ${(seen / Math.max(elapsed, 1e-3)).toFixed(0)} img/s`, false);
        }
      }
      const seconds = (performance.now() - epochStart) / 1000;
      trainSeconds += seconds;
      imagesSeen += seen;

      const val = await predictAll(predictor, data.pixels, validIdx, inputSize);
      const valLabels = validIdx.map((i) => data.labels[i]!);
      const c = confusionAt(val.pPG, valLabels, 0.5);
      const valF1 = c.tp + c.fp + c.fn === 0 ? null : (2 * c.tp) / (2 * c.tp + c.fp + c.fn);
      let valLoss = 0;
      val.pPG.forEach((p, k) => {
        const q = Math.min(1 - 1e-7, Math.max(1e-7, p));
        valLoss -= valLabels[k] === 1 ? Math.log(q) : Math.log(1 - q);
      });
      valLoss /= Math.max(1, valLabels.length);
      const valAccuracy = valLabels.length ? (c.tp + c.tn) / valLabels.length : null;
      const record: EpochRecord = { epoch, loss: lossSum / seen, accuracy: accSum / seen, valLoss, valAccuracy, valF1, learningRate: rate, seconds };
      history.push(record);
      const f1 = valF1 ?? 0;
      const improved = f1 > best.f1 + 1e-9 || (Math.abs(f1 - best.f1) <= 1e-9 && valLoss < best.loss);
      if (improved) {
        best = { f1, loss: valLoss, epoch, weights: model.getWeights().map((w) => w.dataSync().slice() as Float32Array) };
        sinceBest = 0;
      } else {
        sinceBest++;
      }
      progress(
        `epoch ${epoch}/${epochs} loss ${record.loss.toFixed(4)} acc ${record.accuracy.toFixed(4)} | val loss ${valLoss.toFixed(4)} acc ${f4(valAccuracy)} F1(PG) ${f4(valF1)}${improved ? ' *best' : ''} | ${seconds.toFixed(0)} s, ${(seen / seconds).toFixed(0)} img/s`,
        true,
      );
      if (sinceBest >= patience) {
        progress(`early stop: no better validation F1 for ${patience} epochs; keeping epoch ${best.epoch}`, true);
        break;
      }
    }
    if (best.weights) {
      const shapes = model.getWeights().map((w) => w.shape);
      model.setWeights(best.weights.map((values, i) => tf.tensor(values, shapes[i])));
    }

    // 4. OOD statistics from the (un-augmented) training crops' embeddings.
    const trainPred = await predictAll(predictor, data.pixels, trainIdx, inputSize);
    const ood = fitOodStats(trainPred.embedding!, trainIdx.map((i) => data.labels[i]!), trainPred.dimensions, CLASS_NAMES, 99.5);

    // 5. Held-out evaluation.
    const testPred = await predictAll(predictor, data.pixels, testIdx, inputSize);
    const testLabels = Uint8Array.from(testIdx, (i) => data.labels[i]!);

    // 6. Files.
    await saveLayersModel(tf, model, out);
    const onnxInfo = await exportOnnx(model, join(out, 'model.onnx'), { producerVersion: tf.version_layers, docString: `${ARCHITECTURE_NAME} trained by crystalwatch train` });
    const reportDir = join(out, 'report');
    const { summary } = await writeReport(reportDir, {
      title: `${options.name ?? ARCHITECTURE_NAME}: held-out ${testSplit} split`,
      subject: { model: out, data: resolve(options.data), split: testSplit, crops: testIdx.length, backend: runtime.backend },
      pPG: testPred.pPG,
      labels: testLabels,
      threshold: 0.5,
      embedding: testPred.embedding ? { values: testPred.embedding, dimensions: testPred.dimensions } : null,
      history,
      extra: {
        dataset: { layout: data.layout, crops: data.entries.length, splits: splitCounts, unreadable: data.unreadable.length },
        leakageGuard: { groups: data.duplicates.groups, cropsInGroups: data.duplicates.itemsInGroups, exactLinks: data.duplicates.exactLinks, nearLinks: data.duplicates.nearLinks, groupsAcrossGivenSplits: data.groupsAcrossGivenSplits },
        training: { epochsRun: history.length, bestEpoch: best.epoch, seconds: trainSeconds, imagesPerSecond: imagesSeen / trainSeconds, backend: runtime.backend },
      },
    });
    await writeFile(join(out, 'history.json'), JSON.stringify(history, null, 2));

    const metrics: Record<string, number> = {};
    const put = (key: string, v: number | null) => {
      if (v !== null) metrics[key] = v;
    };
    put('test_f1', summary.f1);
    put('test_precision', summary.precision);
    put('test_recall', summary.recall);
    put('test_accuracy', summary.accuracy);
    put('test_auc', summary.auc);
    metrics.test_support = summary.support;
    put('valid_f1', best.f1 < 0 ? null : best.f1);
    const card: ModelCardInput = {
      name: options.name ?? ARCHITECTURE_NAME,
      version: '1.0.0',
      format: 'onnx',
      file: 'model.onnx',
      files: { onnx: 'model.onnx', tfjs: TFJS_MODEL_FILE },
      input: { layout: 'NHWC', width: inputSize, height: inputSize, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit', name: ONNX_INPUT },
      output: { kind: 'sigmoid', name: ONNX_OUTPUT_PG, embeddingName: ONNX_OUTPUT_EMBEDDING },
      threshold: 0.5,
      classNames: ['cex', 'pg'],
      // Whole frames: 192 px tiles (the size of a typical crop) every 112 px. The overlap matters:
      // on simulator frames, stride 160 found PG in 68 % of PG-bearing frames (agglomerates cut by
      // tile edges), stride 112 in 93 %, for 1 CEX frame in 150 called PG and ~25 % more CPU.
      tiling: { tile: 192, stride: 112 },
      ood: { ...ood },
      architecture: {
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
        onnx: { opset: onnxInfo.opset, irVersion: onnxInfo.irVersion, input: onnxInfo.input, outputs: onnxInfo.outputs },
      },
      provenance: {
        data: resolve(options.data),
        seed,
        splitSeed,
        epochs: history.length,
        command: options.command ?? `crystalwatch train --data ${options.data} --out ${options.out} --epochs ${epochs} --batch-size ${batchSize} --lr ${lr} --seed ${seed} --input-size ${inputSize} --width ${width} --dropout ${dropout}`,
        trainedAt: new Date().toISOString(),
        epochsPlanned: epochs,
        bestEpoch: best.epoch,
        batchSize,
        learningRate: lr,
        dropout,
        augment,
        backend: runtime.backend,
        trainingSeconds: Math.round(trainSeconds),
        imagesPerSecond: Math.round(imagesSeen / trainSeconds),
        layout: data.layout,
        splits: splitCounts,
        leakageGuard: { groups: data.duplicates.groups, cropsInGroups: data.duplicates.itemsInGroups },
        testSplit,
        ...(Object.keys(splits.carved).length ? { carvedFromTrain: splits.carved } : {}),
        ...(options.init ? { initialisedFrom: resolve(options.init) } : {}),
      },
      metrics,
    };
    parseModelCard(card, join(out, 'card.json'));
    await writeFile(join(out, 'card.json'), JSON.stringify(card, null, 2) + '\n');

    const files: Record<string, number> = {};
    for (const f of ['model.json', 'weights.bin', 'model.onnx', 'card.json']) files[f] = (await stat(join(out, f))).size;
    progress(
      `held-out ${testSplit} (${testIdx.length} crops): F1(PG) ${f4(summary.f1)} precision ${f4(summary.precision)} recall ${f4(summary.recall)} accuracy ${f4(summary.accuracy)} AUC ${f4(summary.auc)}; wrote ${out}`,
      true,
    );
    log.info({ out, seconds: (performance.now() - t0) / 1000 }, 'training finished');
    return {
      out,
      epochsRun: history.length,
      bestEpoch: best.epoch,
      history,
      trainSeconds,
      imagesPerSecond: imagesSeen / trainSeconds,
      test: { split: testSplit, f1: summary.f1, accuracy: summary.accuracy, precision: summary.precision, recall: summary.recall, auc: summary.auc, support: summary.support },
      onnx: onnxInfo,
      files,
      backend: runtime.backend,
    };
  } finally {
    tf.engine().endScope();
    tf.disposeVariables();
  }
}

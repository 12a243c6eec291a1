/**
 * `crystalwatch train | evaluate | export | calibrate`: the model's life cycle from a labelled
 * crop folder to the files the classify stage loads, and its commissioning on a camera.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { join, resolve } from 'node:path';
import { readFile, writeFile } from 'node:fs/promises';
import { DEFAULT_AUGMENT, GEOMETRIC_AUGMENT, type AugmentOptions } from './augment.js';

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

function positiveNumber(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got "${value}"`);
    return n;
  };
}

function rate(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0 || n >= 1) throw new InvalidArgumentError(`${name} must be a rate between 0 and 1 such as 0.01, got "${value}"`);
    return n;
  };
}

function parseSplit(value: string): [number, number, number] {
  const [train, valid, test, ...rest] = value.split(/[/,:]/).map((p) => Number(p.trim()));
  const parts = [train, valid, test];
  if (
    rest.length > 0 ||
    train === undefined ||
    valid === undefined ||
    test === undefined ||
    parts.some((p) => !Number.isFinite(p) || p! < 0) ||
    train + valid + test <= 0
  ) {
    throw new InvalidArgumentError(`--split must be three non-negative numbers train/valid/test like 70/25/5, got "${value}"`);
  }
  return [train, valid, test];
}

function augmentFor(level: string): AugmentOptions | false {
  if (level === 'full') return DEFAULT_AUGMENT;
  if (level === 'geometric') return GEOMETRIC_AUGMENT;
  if (level === 'none') return false;
  throw new Error(`--augment-level must be full, geometric or none, got "${level}"`);
}

/** Progress on stderr: a redrawn line on a terminal, whole lines otherwise (CI logs). */
function stderrProgress(): (line: string, final: boolean) => void {
  const tty = process.stderr.isTTY;
  let last = 0;
  return (line, final) => {
    if (tty) {
      process.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    } else if (final || Date.now() - last > 10_000) {
      last = Date.now();
      process.stderr.write(`${line}\n`);
    }
  };
}

export function registerModelCommands(program: Command): void {
  program
    .command('train')
    .description('Train the CEX/PG classifier on a labelled crop folder; writes TF.js + ONNX model, card.json and the held-out report')
    .requiredOption('--data <dir>', 'crops in cex/ + pg/ or 0/ + 1/ folders, optionally inside train/ valid/ test/')
    .requiredOption('--out <dir>', 'folder for model.json, weights.bin, model.onnx, card.json and report/')
    .option('--epochs <n>', 'most epochs (early stopping on validation F1 of PG may stop sooner)', positiveInt('--epochs'), 20)
    .option('--batch-size <n>', 'crops per step', positiveInt('--batch-size'), 32)
    .option('--lr <rate>', 'Adam learning rate at the start (cosine decay to 5 %)', positiveNumber('--lr'), 2e-3)
    .option('--seed <n>', 'seed for split, initialisation, shuffling and augmentation', (v) => Number.parseInt(v, 10), 1)
    .option('--split-seed <n>', "seed of the train/valid/test split (default: the --init model's, else --seed)", (v) => Number.parseInt(v, 10))
    .option('--input-size <px>', 'model input side in pixels (multiple of 32)', positiveInt('--input-size'), 64)
    .option('--width <n>', 'channels of the first stage, doubled twice (8: 6 MFLOPs/image; 16: 24 MFLOPs/image)', positiveInt('--width'), 8)
    .option('--dropout <rate>', 'dropout before the classifier, in [0, 1)', (v) => Number(v), 0.3)
    .option('--patience <n>', 'epochs without a better validation F1 before stopping', positiveInt('--patience'), 6)
    .option('--split <t/v/t>', 'train/valid/test shares when the folders give none', parseSplit, [70, 25, 5] as [number, number, number])
    .option('--augment-level <level>', 'full (flips, rotations, zoom, lighting, blur, noise), geometric (flips, rotations, zoom) or none', 'full')
    .option('--no-batch-norm', 'no BatchNorm: Fixup residuals (≈1.6× faster steps on wasm, but needs more of them)')
    .option('--init <dir>', 'start from the weights of a model folder written by train (same --width and --input-size)')
    .option('--backend <name>', 'force a TF.js backend: tensorflow-gpu, tensorflow, wasm or cpu (default: best available)')
    .option('--name <name>', 'model name in the card', 'crystalnet-r2')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (o) => {
      const { train } = await import('./train.js');
      const command = `crystalwatch ${process.argv.slice(2).join(' ')}`;
      const result = await train({
        data: o.data,
        out: o.out,
        epochs: o.epochs,
        batchSize: o.batchSize,
        lr: o.lr,
        seed: o.seed,
        splitSeed: o.splitSeed,
        inputSize: o.inputSize,
        width: o.width,
        dropout: o.dropout,
        patience: o.patience,
        split: o.split,
        augment: augmentFor(o.augmentLevel),
        norm: o.batchNorm === false ? 'none' : 'batch',
        backend: o.backend,
        init: o.init,
        name: o.name,
        command,
        progress: stderrProgress(),
      });
      if (o.json) process.stdout.write(`${JSON.stringify({ ...result, history: result.history }, null, 2)}\n`);
    });

  program
    .command('evaluate')
    .description('Score a model on a labelled crop folder: classification report, confusion matrix, ROC/AUC, threshold and embedding charts')
    .requiredOption('--model <dir>', 'model folder with card.json (from crystalwatch train)')
    .requiredOption('--data <dir>', 'labelled crops (cex/ + pg/ or 0/ + 1/, optionally split)')
    .requiredOption('--report <dir>', 'folder for report.md, report.json and the PNG charts')
    .option('--split <name>', 'score only this split of a split dataset: train, valid, test or all', 'all')
    .option('--engine <name>', 'onnx (onnxruntime-node, default when the card lists an ONNX file) or tfjs')
    .option('--json', 'print {accuracy, precision, recall, f1, auc, support, confusion} for PG on stdout (undefined values are null, see notes)')
    .action(async (o) => {
      if (!['train', 'valid', 'test', 'all'].includes(o.split)) throw new Error(`--split must be train, valid, test or all, got "${o.split}"`);
      if (o.engine !== undefined && o.engine !== 'onnx' && o.engine !== 'tfjs') throw new Error(`--engine must be onnx or tfjs, got "${o.engine}"`);
      const { evaluate } = await import('./evaluate.js');
      const result = await evaluate({ model: o.model, data: o.data, report: o.report, split: o.split, engine: o.engine, progress: stderrProgress() });
      const s = result.summary;
      if (o.json) {
        process.stdout.write(
          `${JSON.stringify({ accuracy: s.accuracy, precision: s.precision, recall: s.recall, f1: s.f1, auc: s.auc, support: s.support, confusion: s.confusion, notes: s.notes })}\n`,
        );
      } else {
        const f = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
        process.stdout.write(
          `PG: F1 ${f(s.f1)}  precision ${f(s.precision)}  recall ${f(s.recall)}  accuracy ${f(s.accuracy)}  AUC ${f(s.auc)}  support ${s.support}  (TP ${s.confusion.tp} FP ${s.confusion.fp} TN ${s.confusion.tn} FN ${s.confusion.fn})\n` +
            `${result.outOfDistribution !== null ? `out of distribution: ${result.outOfDistribution} crops\n` : ''}report: ${join(result.reportDir, 'report.md')}\n`,
        );
      }
    });

  program
    .command('export')
    .description('Export a trained TF.js model (model.json) to ONNX (opset 17, IR 8) and record it in card.json')
    .requiredOption('--model <dir>', 'model folder with model.json (and card.json, updated when present)')
    .option('--format <format>', 'output format (only onnx)', 'onnx')
    .option('--out <file>', 'ONNX file to write (default: <model>/model.onnx)')
    .option('--refit-ood <data>', 'also recompute card.ood from the training split of this crop folder (the split seed in the card)')
    .option('--json', 'print the export summary as JSON')
    .action(async (o) => {
      if (o.format !== 'onnx') throw new Error(`--format must be onnx, got "${o.format}"`);
      const [{ loadTf }, { loadLayersModel }, { exportOnnx }] = await Promise.all([import('./tf.js'), import('./io.js'), import('./onnx-export.js')]);
      const { tf } = await loadTf();
      const model = await loadLayersModel(tf, o.model);
      const outFile = resolve(o.out ?? join(o.model, 'model.onnx'));
      const info = await exportOnnx(model, outFile, { producerVersion: tf.version_layers });
      // Keep the card pointing at the file when it sits in the model folder.
      const cardPath = join(o.model, 'card.json');
      try {
        const card = JSON.parse(await readFile(cardPath, 'utf8'));
        if (resolve(o.model, 'model.onnx') === outFile) {
          card.files = { ...(card.files ?? {}), onnx: 'model.onnx' };
          await writeFile(cardPath, `${JSON.stringify(card, null, 2)}\n`);
        }
      } catch {
        // No card: the ONNX file stands alone.
      }
      let oodThreshold: number | undefined;
      if (o.refitOod) {
        const { refitOod } = await import('./refit-ood.js');
        oodThreshold = (await refitOod(o.model, o.refitOod, stderrProgress())).threshold;
      }
      if (o.json) process.stdout.write(`${JSON.stringify({ file: outFile, ...info, ...(oodThreshold !== undefined ? { oodThreshold } : {}) })}\n`);
      else
        process.stdout.write(
          `wrote ${outFile} (${info.bytes} bytes, opset ${info.opset}, IR ${info.irVersion}; input ${info.input.name} ${JSON.stringify(info.input.shape)} ${info.input.layout}; outputs ${info.outputs.map((x) => `${x.name} ${JSON.stringify(x.shape)}`).join(', ')})\n`,
        );
    });

  program
    .command('calibrate')
    .description(
      "Commission a model on one camera: fit the out-of-distribution gate, the operating threshold and the onset detector's clean-score model on the camera's own clean images; writes a new model folder and a report",
    )
    .requiredOption('--model <dir>', 'model folder to start from (card.json and weights), e.g. models/default')
    .requiredOption('--clean <dirs...>', 'folders of frames or crops known to hold no PG (a lab-confirmed clean batch, or the first minutes of a batch)')
    .option('--pg <dirs...>', 'folders of PG-bearing frames or crops (lab-labelled): only measured on, for recall and detection delay')
    .requiredOption('--out <dir>', 'new model folder to write (must not exist or be empty)')
    .option(
      '--max-false-positive-rate <rate>',
      'per-frame false-positive target (default 0.005: the spike rate the onset detector absorbs within its false-alarm budget)',
      rate('--max-false-positive-rate'),
    )
    .option('--fps <n>', "the camera's frame rate (default: from capture times in sidecars or file names, else 2)", positiveNumber('--fps'))
    .option('--camera <id>', 'camera id for the card (default: from the sidecars)')
    .option('--skip-unreadable', 'calibrate without files that are not readable images (listed in the report) instead of stopping')
    .addOption(
      new Option(
        '--frame-inference <path>',
        "how tiled frames run with the new card: tiles (each tile through the whole model) or feature-map (the trunk once per frame, about a third less CPU; its figures on this camera are in the report) (default: the model's)",
      ).choices(['tiles', 'feature-map']),
    )
    .option(
      '--fine-tune <dir>',
      'first continue training the model on labelled images of this camera (cex/ + pg/ or 0/ + 1/; a fifth held out as the test split, at least 20 of each class), then calibrate the fine-tuned model',
    )
    .option('--fine-tune-epochs <n>', 'epochs of fine-tuning (the best on the validation split is kept)', positiveInt('--fine-tune-epochs'), 3)
    .option('--fine-tune-lr <rate>', 'Adam learning rate of fine-tuning at the start (cosine decay)', rate('--fine-tune-lr'), 1e-4)
    .option('--exclude-fine-tune-images', 'leave calibration images that are also fine-tuning images (same content) out, instead of stopping')
    .option('--json', 'print the result (targets, figures before and after, what could not be established) as JSON on stdout')
    .addHelpText(
      'after',
      `
Examples:
  crystalwatch calibrate --model models/default --clean drop/cam-1/clean-batch --out models/cam-1
  crystalwatch calibrate --model models/default --clean clean-a clean-b --pg lab-pg --out models/cam-1 --max-false-positive-rate 0.01

  crystalwatch calibrate --model models/default --fine-tune lab/labelled --clean clean-a --pg lab-pg --out models/cam-1

The latest quarter of each clean folder (in name order) is held out and never fitted on; the
figures reported as held-out are measured on it with the new card, loaded as production loads it.
With --fine-tune, the model's figures are on the labelled folder's held-out test split only, and
the calibration folders must share no image with the labelled folder.`,
    )
    .action(async (o) => {
      const { runCalibrateCommand } = await import('./calibrate-cli.js');
      await runCalibrateCommand(o);
    });
}

/**
 * The `crystalwatch calibrate` command's face: a progress bar on stderr, the summary (or
 * `--json`) on stdout. The work is calibrate.ts.
 */
import { calibrate, type CalibrateOptions, type CalibrateResult } from './calibrate.js';
import { claimOf } from './calibrate-report.js';
import { cardFineTune } from './calibrate-finetune-report.js';

/** The command's flags: the library's options it exposes, and two of its own. */
export interface CalibrateCommandOptions extends Pick<
  CalibrateOptions,
  'model' | 'clean' | 'pg' | 'out' | 'maxFalsePositiveRate' | 'fps' | 'camera' | 'skipUnreadable' | 'frameInference'
> {
  /** Labelled images of this camera to fine-tune on first (cex/ + pg/ or 0/ + 1/). */
  fineTune?: string;
  fineTuneEpochs?: number;
  fineTuneLr?: number;
  excludeFineTuneImages?: boolean;
  json?: boolean;
}

/** `[#####·····] 120/200 scoring images`: redrawn on a terminal, a line every 10 s otherwise (CI logs). */
export function progressBar(stream: NodeJS.WriteStream = process.stderr): (phase: string, done: number, total: number) => void {
  let last = 0;
  let lastPhase = '';
  return (phase, done, total) => {
    const width = 24;
    const filled = total > 0 ? Math.round((Math.min(done, total) / total) * width) : 0;
    const line = `calibrate: [${'#'.repeat(filled)}${'·'.repeat(width - filled)}] ${Math.min(done, Math.round(total))}/${Math.round(total)} ${phase}`;
    const final = done >= total;
    if (stream.isTTY) {
      stream.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
    } else if (final || phase !== lastPhase || Date.now() - last > 10_000) {
      last = Date.now();
      stream.write(`${line}\n`);
    }
    lastPhase = phase;
  };
}

/** train's lines during --fine-tune, prefixed, with the same convention: redrawn on a terminal, kept lines and one every 10 s otherwise. */
export function lineProgress(stream: NodeJS.WriteStream = process.stderr): (line: string, final: boolean) => void {
  let last = 0;
  return (line, final) => {
    const text = `calibrate: fine-tune: ${line}`;
    if (stream.isTTY) stream.write(`\r\x1b[2K${text}${final ? '\n' : ''}`);
    else if (final || Date.now() - last > 10_000) {
      last = Date.now();
      stream.write(`${text}\n`);
    }
  };
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : `${(v * 100).toFixed(v > 0 && v < 0.01 ? 2 : 1)} %`);

function summary(r: CalibrateResult): string {
  const { before: b, after: a } = r.report;
  const ft = r.report.fineTune;
  const f4 = (v: number | null) => (v === null ? 'n/a' : v.toFixed(4));
  const lines = [
    `calibrated ${r.report.model.calibrated.name}@${r.version} → ${r.outDir}`,
    ...(ft
      ? [
          `  fine-tuned from ${ft.parent.name}@${ft.parent.version} on ${ft.folder}: ${ft.epochs.run} epochs at lr ${ft.learningRate}; on its ${ft.heldOut.images} held-out test crops F1(PG) ${f4(ft.heldOut.parent.f1)} (parent) → ${f4(ft.heldOut.fineTuned.f1)} (fine-tuned, threshold 0.5) → ${f4(ft.heldOut.calibrated?.f1 ?? null)} (calibrated)`,
        ]
      : []),
    `  threshold ${b.threshold} → ${a.threshold}; held-out clean false-positive rate ${pct(b.heldOut.rate)} → ${pct(a.heldOut.rate)} (${a.heldOut.images} images not used for fitting; ≤ ${pct(a.heldOut.upperBound95)} at 95 %)`,
    a.pgImages && b.pgImages
      ? `  PG recall ${pct(b.pgImages.rate)} → ${pct(a.pgImages.rate)} (${a.pgImages.images} PG images)`
      : '  PG recall: unknown (no --pg images)',
    `  detector: ${b.detector.falseAlarmsPer100kFrames} → ${a.detector.falseAlarmsPer100kFrames} false alarms per 100,000 held-out-like clean frames; ${claimOf(a.detector)}`,
    `  out-of-distribution threshold ${b.oodThreshold?.toFixed(4) ?? 'none'} → ${a.oodThreshold?.toFixed(4) ?? 'none'}; held-out clean refused as out-of-distribution ${b.heldOut.outOfDistribution} → ${a.heldOut.outOfDistribution}`,
    `  could not: ${r.report.couldNot.length} item(s), see ${r.outDir}/report.md`,
    ...r.report.couldNot.slice(0, 3).map((c) => `    - ${c}`),
    `use it: crystalwatch predict --model ${r.outDir} <files>   (or classify.model in the config)`,
  ];
  return `${lines.join('\n')}\n`;
}

export async function runCalibrateCommand(o: CalibrateCommandOptions): Promise<void> {
  const options: CalibrateOptions = {
    model: o.model,
    clean: o.clean,
    pg: o.pg,
    out: o.out,
    maxFalsePositiveRate: o.maxFalsePositiveRate,
    fps: o.fps,
    camera: o.camera,
    skipUnreadable: o.skipUnreadable,
    frameInference: o.frameInference,
    command: `crystalwatch ${process.argv.slice(2).join(' ')}`,
    progress: progressBar(),
  };
  let result: CalibrateResult;
  if (o.fineTune !== undefined) {
    const { calibrateWithFineTune } = await import('./calibrate-finetune.js');
    result = await calibrateWithFineTune({
      ...options,
      fineTuneWith: { data: o.fineTune, epochs: o.fineTuneEpochs, lr: o.fineTuneLr, excludeOverlap: o.excludeFineTuneImages, log: lineProgress() },
    });
  } else {
    result = await calibrate(options);
  }
  if (o.json) {
    const { report } = result;
    const map = report.embeddingMap;
    const doc = {
      outDir: result.outDir,
      card: result.cardPath,
      version: result.version,
      reportFiles: result.reportFiles,
      targets: report.targets,
      before: report.before,
      after: report.after,
      detector: { claim: report.detector.claim },
      // The figures on the fine-tuning set's held-out test split; the file names per split are in report.json.
      fineTune: report.fineTune ? cardFineTune(report.fineTune) : null,
      embeddingMap: map ? { picture: map.picture, simulator: map.simulator, panels: map.panels.map(({ points: _p, ...panel }) => panel) } : null,
      couldNot: report.couldNot,
    };
    process.stdout.write(`${JSON.stringify(doc, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))}\n`);
  } else {
    process.stdout.write(summary(result));
  }
}

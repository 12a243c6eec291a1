/**
 * Writing the calibration report into the new model folder: `report.json` (the
 * CalibrationReport), `report.md` for a person, and the PNG charts of calibrate-charts.ts.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderPng } from './charts.js';
import { embeddingMapSpec, evidenceSpec, falseAlarmsSpec, oodSpec, scoresSpec, thresholdCurveSpec, type ChartSet } from './calibrate-charts.js';
import { gapLine, MAX_POINTS_PER_SET } from './calibrate-embedding.js';
import { fineTuneMarkdown } from './calibrate-finetune-report.js';
import { defaultLlr, llrAt, type CalibratedDetector } from './calibrate-detector.js';
import { thresholdCurve } from './calibrate-fit.js';
import type { CardFigures, SetFigures } from './calibrate-figures.js';
import type { CalibrationReport } from './calibrate-report.js';

export interface ReportImages {
  /** Judged images of each set: P(PG) and the OOD score under the parent's and the calibrated statistics. */
  sets: { name: ChartSet['name']; rows: { pPG: number; oodBefore: number | null; oodAfter: number | null }[] }[];
  detector: CalibratedDetector;
}

const pct = (v: number | null | undefined) => (v === null || v === undefined ? 'n/a' : `${(v * 100).toFixed(v > 0 && v < 0.01 ? 2 : 1)} %`);
const num = (v: number) => (Number.isFinite(v) ? v.toLocaleString('en-US') : 'never (no frame gives evidence for PG)');

function setRow(label: string, b: SetFigures | null, a: SetFigures | null, rateName: string): string[] {
  if (!b || !a) return [`| ${label} | not given | not given |`];
  const cell = (s: SetFigures) =>
    `${pct(s.rate)} (${s.pg}/${s.usable} judged; ${s.outOfDistribution} out-of-distribution, ${s.refusedByGates} refused by the gates)`;
  return [`| ${label}: ${rateName} | ${cell(b)} | ${cell(a)} |`];
}

function oodLine(r: CalibrationReport): string {
  const a = r.ood.after;
  if (!a) return 'not fitted: the model has no embedding output.';
  const bound = `${a.outOfFold.images >= 1000 ? '99.9th percentile' : 'largest'} of ${a.outOfFold.images} out-of-fold image scores (median ${a.outOfFold.median}) × 1.1 = ${a.cameraBound}`;
  return `classes ${a.classes.join(', ')} (was ${r.ood.before.classes.join(', ') || 'none'}); the camera's class from ${a.modelInputs} model inputs, shrinkage ${a.shrinkage}; threshold ${a.threshold}: ${a.thresholdFrom === 'parent' ? `the parent card's, larger than this camera's own bound (${bound}), so PG frames of this camera are not refused for looking unlike its clean ones` : `this camera's own bound, the ${bound}`}.`;
}

function markdown(r: CalibrationReport, charts: string[]): string {
  const b: CardFigures = r.before;
  const a: CardFigures = r.after;
  const lines = [
    `# ${r.title}`,
    '',
    `Calibrated ${r.calibratedAt}${r.command ? ` by \`${r.command}\`` : ''}.`,
    `Parent: ${r.model.parent.name}@${r.model.parent.version} (${r.model.parent.calibration}; card sha256 ${r.model.parent.cardSha256.slice(0, 16)}…) in ${r.model.parent.dir}${r.fineTune ? `, fine-tuned from ${r.fineTune.parent.name}@${r.fineTune.parent.version} in ${r.fineTune.parent.dir}` : ''}.`,
    `Calibrated model: ${r.model.calibrated.name}@${r.model.calibrated.version} in ${r.model.calibrated.dir} — use it with \`--model ${r.model.calibrated.dir}\` (predict, classify, run, demo) or \`classify.model\` in the config.`,
    '',
    '## Images',
    '',
    `- ${r.inputs.kind === 'frames' ? `Frames ${r.inputs.frameSize?.width}×${r.inputs.frameSize?.height}, ${r.inputs.modelInputsPerImage} tiles each (as the classify stage tiles them)` : 'Crops, each classified whole'}; ${r.inputs.fps.value} frames/s (${r.inputs.fps.source}).`,
    `- Clean: ${r.inputs.clean.images} images in ${r.inputs.clean.folders.join(', ')}; ${r.inputs.clean.fit} for fitting, the latest ${r.inputs.clean.heldOut} of each folder held out (never fitted on).${Object.keys(r.inputs.clean.refusedByGates).length ? ` Refused by the model-free gates: ${JSON.stringify(r.inputs.clean.refusedByGates)}.` : ''}`,
    r.inputs.pg ? `- PG: ${r.inputs.pg.images} images in ${r.inputs.pg.folders.join(', ')} (only measured on, never fitted).` : '- PG: none given.',
    ...r.inputs.skippedUnreadable
      .slice(0, 1)
      .map((u) => `- Skipped as unreadable (--skip-unreadable): ${r.inputs.skippedUnreadable.length}, e.g. ${u.path} (${u.reason}).`),
    `- File list sha256: ${r.inputs.fileListSha256}.`,
    '',
    '## Before and after',
    '',
    ...(r.fineTune
      ? [
          `"Before" is the fine-tuned model with the card fine-tuning wrote (threshold 0.5, out-of-distribution statistics of its training crops, in \`${r.fineTune.fineTunedModel}\`); the model it was fine-tuned from is compared on the held-out crops under *Fine-tuning*.`,
          '',
        ]
      : []),
    '| | before (parent card) | after (calibrated card) |',
    '| --- | --- | --- |',
    `| operating threshold on P(PG) | ${b.threshold} | ${a.threshold} |`,
    ...setRow(`held-out clean (${a.heldOut.images})`, b.heldOut, a.heldOut, 'false-positive rate'),
    `| held-out clean: 95 % upper bound on the rate | ${pct(b.heldOut.upperBound95)} | ${pct(a.heldOut.upperBound95)} |`,
    ...setRow(`fitting clean (${a.fit.images}, in-sample)`, b.fit, a.fit, 'false-positive rate'),
    ...setRow(`PG (${a.pgImages?.images ?? 0})`, b.pgImages, a.pgImages, 'recall'),
    `| out-of-distribution threshold | ${b.oodThreshold === null ? 'none' : b.oodThreshold.toFixed(4)} | ${a.oodThreshold === null ? 'none (no embedding)' : a.oodThreshold.toFixed(4)} |`,
    `| detector: mean clean frames between false alarms | ${num(b.detector.arl0Frames)} | ${num(a.detector.arl0Frames)} |`,
    `| detector: false alarms in 100,000 frames drawn from the held-out clean scores | ${b.detector.falseAlarmsPer100kFrames} | ${a.detector.falseAlarmsPer100kFrames} |`,
    `| detector: batch-days per false alarm at ${a.detector.fps} frames/s | ${num(b.detector.batchDaysPerFalseAlarm)} | ${num(a.detector.batchDaysPerFalseAlarm)} |`,
    `| detector: delay, PG frames from onset to alarm (${a.detector.delaySource}) | ${num(b.detector.delayFrames)} | ${num(a.detector.delayFrames)} |`,
    '',
    `**Target:** per-frame false-positive rate ≤ ${pct(r.targets.maxFalsePositiveRate)} (${r.targets.source === 'stated' ? 'stated with --max-false-positive-rate' : "default: the spike rate the onset detector's clean model absorbs above P(PG) 0.5"}), ${r.targets.established ? `established on ${r.threshold.fitFrames} fitting frames at ${r.targets.confidence * 100} % confidence` : `not established (needs ${r.targets.framesForTarget} fitting frames)`}. The threshold leaves ${r.threshold.fitFalsePositives} of ${r.threshold.fitFrames} fitting frames at or above it.`,
    '',
    `**Detector:** ${r.detector.claim}; computed from this camera's clean scores: the clean-score model fitted on ${r.detector.cleanScoreModel.frames} frames (${r.detector.modelArl0Frames.toPrecision(3)} frames between false alarms at the point fit, ${r.detector.modelArl0Lower90Frames.toPrecision(3)} at the 10th percentile of 100 bootstrap refits) and the held-out frames' own scores; the smaller is claimed. h = ${r.detector.threshold.toFixed(2)} nats (target ${r.detector.targetArlFrames.toLocaleString('en-US')} frames between false alarms).`,
    '',
    `**Out-of-distribution gate:** ${oodLine(r)} The model-free probe gate runs first, unchanged.`,
    '',
    ...(r.fineTune ? fineTuneMarkdown(r.fineTune) : []),
    ...embeddingMarkdown(r),
    '## What this calibration could not do',
    '',
    ...r.couldNot.map((c) => `- ${c}`),
    '',
    '## Charts',
    '',
    ...charts.filter((c) => c !== r.embeddingMap?.picture).map((c) => `![${c}](${c})`),
    '',
  ];
  return lines.join('\n');
}

function embeddingMarkdown(r: CalibrationReport): string[] {
  const m = r.embeddingMap;
  if (!m) return [];
  return [
    '## Embedding map',
    '',
    `![embedding map](${m.picture})`,
    '',
    `The model's embedding (the features before the classifier) of every model input, projected on its two principal axes: the simulator's default camera — what the model was trained for — rendered at calibrate time (${m.simulator.crops.cex} CEX + ${m.simulator.crops.pg} PG crops, ${m.simulator.renderer}, seeds from ${m.simulator.seed}), beside this camera's clean${r.inputs.pg ? ' and PG' : ''} ${r.inputs.kind === 'frames' ? 'tiles' : 'crops'} (at most ${MAX_POINTS_PER_SET} points per set, evenly spaced)${r.inputs.kind === 'frames' ? ": a frame's every tile is a point, so most points of a PG frame are tiles without PG" : ''}. Coordinates in report.json (\`embeddingMap.panels[].points\`).`,
    '',
    ...m.panels.map(
      (p) =>
        `- ${p.model}: ${p.note}. PC 1 and 2 explain ${(p.explained[0] * 100).toFixed(1)} % and ${(p.explained[1] * 100).toFixed(1)} % of the variance; ${gapLine(p)}.`,
    ),
    '',
  ];
}

/** Chart series per card: P(PG), evidence and OOD score of every image that card judges. */
function chartSets(images: ReportImages, r: CalibrationReport) {
  const make = (side: 'before' | 'after') =>
    images.sets.map((s) => {
      const limit = side === 'before' ? r.before.oodThreshold : r.after.oodThreshold;
      const ood = (x: (typeof s.rows)[number]) => (side === 'before' ? x.oodBefore : x.oodAfter);
      const p = s.rows.filter((x) => limit === null || ood(x) === null || ood(x)! <= limit).map((x) => x.pPG);
      return {
        pPG: { name: s.name, values: p },
        evidence: { name: s.name, values: p.map((x) => (side === 'before' ? defaultLlr(x) : llrAt(images.detector.llr, x))) },
        ood: { name: s.name, values: s.rows.flatMap((x) => (ood(x) === null ? [] : [ood(x)!])) },
      };
    });
  return { before: make('before'), after: make('after') };
}

export async function writeCalibrationReport(outDir: string, r: CalibrationReport, images: ReportImages): Promise<string[]> {
  const sets = chartSets(images, r);
  const values = (name: ChartSet['name']) => images.sets.find((s) => s.name === name)?.rows.map((x) => x.pPG) ?? [];
  const charts: [string, Parameters<typeof renderPng>[0]][] = [
    [
      'scores.png',
      scoresSpec(
        sets.before.map((s) => s.pPG),
        sets.after.map((s) => s.pPG),
        { before: r.before.threshold, after: r.after.threshold },
      ),
    ],
    [
      'threshold-curve.png',
      thresholdCurveSpec(thresholdCurve(values('clean (fitting)'), values('clean (held out)'), values('PG')), {
        before: r.before.threshold,
        after: r.after.threshold,
      }),
    ],
    [
      'evidence.png',
      evidenceSpec(
        sets.before.map((s) => s.evidence),
        sets.after.map((s) => s.evidence),
      ),
    ],
    [
      'false-alarms.png',
      falseAlarmsSpec(
        [
          { name: 'before (default detector)', arl0Frames: r.before.detector.arl0Frames },
          { name: 'after (calibrated)', arl0Frames: r.after.detector.arl0Frames },
        ],
        r.after.detector.fps,
      ),
    ],
    ...(r.after.oodThreshold === null
      ? []
      : [
          [
            'ood.png',
            oodSpec(
              sets.before.map((s) => s.ood),
              sets.after.map((s) => s.ood),
              { before: r.before.oodThreshold, after: r.after.oodThreshold },
            ),
          ] as [string, Parameters<typeof renderPng>[0]],
        ]),
  ];
  if (r.embeddingMap) charts.push([r.embeddingMap.picture, embeddingMapSpec(r.embeddingMap.panels)]);
  const written: string[] = [];
  for (const [name, spec] of charts) {
    await renderPng(spec, join(outDir, name));
    written.push(name);
  }
  const json = JSON.stringify({ ...r, charts: written }, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v), 2);
  await writeFile(join(outDir, 'report.json'), `${json}\n`);
  await writeFile(join(outDir, 'report.md'), markdown(r, written));
  return ['report.json', 'report.md', ...written];
}

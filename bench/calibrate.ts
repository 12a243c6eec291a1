/**
 * Commissioning on a camera the shipped model never saw (simulator plant B, seed PLANT_B_SEED):
 * the default model before and after `crystalwatch calibrate` on 200 clean frames, measured on
 * images calibration never saw — an independent clean batch, PG batches from onset on, and
 * pictures that are not probe images.
 *
 *   node dist/bench/calibrate.js [--quick] [--fine-tune-only]
 *
 * Figures (`.before` = the model folder as given, `.after` = the folder calibrate wrote):
 * `calibrate.plant_b.false_positive_rate` (clean frames judged PG, per frame),
 * `calibrate.plant_b.pg_recall` (PG-bearing frames judged PG), `calibrate.plant_b.
 * detector_false_alarms_per_100k_frames` (CUSUM over 100,000 frames drawn from the clean
 * batch's scores; before: the alert stage's default clean-score model; after: the card's
 * `detector` model), `calibrate.plant_b.detector_delay_pg_frames` (PG-bearing frames from
 * onset to alarm, mean over the PG batches), `calibrate.nonprobe_refused_ratio[.<kind>]`
 * (noise, black, blank and other non-probe pictures refused, by either gate), and what the
 * command itself reported (`calibrate.report.*`). Uses $CRYSTALWATCH_BENCH_MODEL or models/default.
 *
 * `calibrate.fine_tune.*`: `calibrate --fine-tune` on labelled plant-B crops (cex/ + pg/), then
 * calibration on other plant-B crops: F1, precision and recall of PG on the fine-tuning set's
 * held-out test split for the parent model (`.parent`), the fine-tuned model at 0.5
 * (`.fine_tuned`) and the calibrated card (`.calibrated`), and the embedding map's distance of
 * the plant's clean centroid from the simulator CEX one (`embedding_gap_*`, in simulator CEX
 * RMS radii) before and after fine-tuning. `--fine-tune-only` measures only these.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Classifier, type ClassifyResult } from '../src/classify/index.js';
import { defaultModelDir } from '../src/classify/command.js';
import { calibrate } from '../src/model/calibrate.js';
import { calibrateWithFineTune } from '../src/model/calibrate-finetune.js';
import { renderProfiledCrop } from '../simulator/profile-render.js';
import { mixSeed } from '../simulator/random.js';
import { countAlarms, defaultLlr, llrAt, type CalibratedDetector } from '../src/model/calibrate-detector.js';
import { cusumThresholdForArl } from '../src/alert/detector.js';
import { nonProbeSet, NON_PROBE_KINDS } from '../simulator/nonprobe.js';
import { PLANT_B_PROFILE, PLANT_B_SEED, renderPlantBBatch, writePlantBFrames, type PlantBFrame } from '../simulator/plant-b.js';

type Figures = Record<string, number | string>;
const r4 = (v: number) => Math.round(v * 1e4) / 1e4;
const SIZE = { width: 640, height: 480 };

async function classifyAll(modelDir: string, images: Buffer[]): Promise<ClassifyResult[]> {
  const classifier = await Classifier.load(modelDir, { maxBatchSize: 64 });
  try {
    const out: ClassifyResult[] = [];
    for (let i = 0; i < images.length; i += 16) out.push(...(await classifier.classify(images.slice(i, i + 16))));
    return out;
  } finally {
    await classifier.close();
  }
}

const judged = (r: ClassifyResult): r is ClassifyResult & { pPG: number } => r.predicted === 'cex' || r.predicted === 'pg';

/** Frames from onset to the first alarm of a CUSUM over the batch in order (Infinity: never). */
function delay(results: ClassifyResult[], h: number, llr: (p: number) => number): number {
  let s = 0;
  for (const [i, r] of results.entries()) {
    if (!judged(r)) continue;
    s = Math.max(0, s + llr(r.pPG));
    if (s >= h) return i + 1;
  }
  return Infinity;
}

interface Side {
  model: string;
  h: number;
  llr: (p: number) => number;
}

async function measure(
  side: Side,
  clean: PlantBFrame[],
  pgBatches: PlantBFrame[][],
  nonProbe: { kind: string; bytes: Buffer }[],
  out: Figures,
  suffix: string,
): Promise<void> {
  const cleanResults = await classifyAll(
    side.model,
    clean.map((f) => f.bytes),
  );
  const usable = cleanResults.filter(judged);
  out[`calibrate.plant_b.false_positive_rate.${suffix}`] = r4(usable.filter((r) => r.predicted === 'pg').length / Math.max(1, usable.length));
  out[`calibrate.plant_b.clean_refused_ratio.${suffix}`] = r4(1 - usable.length / cleanResults.length);
  out[`calibrate.plant_b.detector_false_alarms_per_100k_frames.${suffix}`] = countAlarms(
    side.h,
    usable.map((r) => side.llr(r.pPG)),
    100_000,
    0xbe7c,
  );
  let detected = 0;
  let pgFrames = 0;
  const delays: number[] = [];
  for (const batch of pgBatches) {
    const results = await classifyAll(
      side.model,
      batch.map((f) => f.bytes),
    );
    results.forEach((r, i) => {
      if (batch[i]?.label !== 'pg') return;
      pgFrames++;
      if (r.predicted === 'pg') detected++;
    });
    delays.push(delay(results, side.h, side.llr));
  }
  out[`calibrate.plant_b.pg_recall.${suffix}`] = r4(detected / Math.max(1, pgFrames));
  const finite = delays.filter(Number.isFinite);
  out[`calibrate.plant_b.detector_delay_pg_frames.${suffix}`] = finite.length ? r4(finite.reduce((a, b) => a + b, 0) / finite.length) : 'never';
  out[`calibrate.plant_b.detector_delay_pg_frames.${suffix}.per_batch`] = delays.map((d) => (Number.isFinite(d) ? d : 'never')).join(' ');
  const np = await classifyAll(
    side.model,
    nonProbe.map((p) => p.bytes),
  );
  const refused = (rs: ClassifyResult[]) => rs.filter((r) => !judged(r)).length / Math.max(1, rs.length);
  out[`calibrate.nonprobe_refused_ratio.${suffix}`] = r4(refused(np));
  for (const kind of NON_PROBE_KINDS) out[`calibrate.nonprobe_refused_ratio.${kind}.${suffix}`] = r4(refused(np.filter((_, i) => nonProbe[i]?.kind === kind)));
  const oodRefused = np.filter((r) => r.predicted === 'unusable' && r.reason === 'out-of-distribution').length;
  out[`calibrate.nonprobe_refused_by_ood.${suffix}`] = oodRefused;
}

async function writeCrops(folder: string, label: 'cex' | 'pg', count: number, seed: number): Promise<void> {
  await mkdir(folder, { recursive: true });
  for (let i = 0; i < count; i++) {
    const crop = await renderProfiledCrop({ label, seed: mixSeed(seed, i), profile: PLANT_B_PROFILE });
    await writeFile(join(folder, `${label}-${String(i).padStart(4, '0')}.png`), crop.bytes);
  }
}

/** `calibrate --fine-tune` on labelled plant-B crops: figures on its held-out test split only. */
async function fineTuneFigures(model: string, dir: string, q: boolean): Promise<Figures> {
  const perClass = q ? 110 : 200;
  process.stderr.write('bench calibrate: rendering plant-B crops for --fine-tune…\n');
  const labelled = join(dir, 'ft-labelled');
  await writeCrops(join(labelled, 'cex'), 'cex', perClass, 0xf7c0);
  await writeCrops(join(labelled, 'pg'), 'pg', perClass, 0xf7c1);
  await writeCrops(join(dir, 'ft-clean'), 'cex', q ? 60 : 120, 0xf7c2);
  await writeCrops(join(dir, 'ft-pg'), 'pg', q ? 20 : 40, 0xf7c3);
  process.stderr.write('bench calibrate: crystalwatch calibrate --fine-tune…\n');
  const t0 = performance.now();
  const result = await calibrateWithFineTune({
    model,
    clean: [join(dir, 'ft-clean')],
    pg: [join(dir, 'ft-pg')],
    out: join(dir, 'ft-calibrated'),
    fineTuneWith: { data: labelled, epochs: q ? 2 : 3 },
  });
  const ft = result.fineTune;
  const h = ft.heldOut;
  const out: Figures = {
    'calibrate.fine_tune.seconds': r4((performance.now() - t0) / 1000),
    'calibrate.fine_tune.training_seconds': ft.trainingSeconds,
    'calibrate.fine_tune.labelled_crops_per_class': perClass,
    'calibrate.fine_tune.test_crops': h.images,
    'calibrate.fine_tune.epochs': ft.epochs.run,
    'calibrate.fine_tune.learning_rate': ft.learningRate,
    'calibrate.fine_tune.calibrated_threshold': result.report.after.threshold,
    'calibrate.fine_tune.held_out_out_of_distribution.calibrated': h.calibrated?.outOfDistribution ?? 'n/a',
  };
  const sides = { parent: h.parent, fine_tuned: h.fineTuned, calibrated: h.calibrated };
  for (const [name, s] of Object.entries(sides)) {
    for (const metric of ['f1', 'precision', 'recall'] as const) out[`calibrate.fine_tune.held_out_${metric}.${name}`] = s?.[metric] ?? 'n/a';
  }
  const panels = result.report.embeddingMap?.panels ?? [];
  out['calibrate.fine_tune.embedding_gap_clean_to_sim_cex.before'] = panels[0]?.gap['plant clean']?.toSimulatorCex ?? 'n/a';
  out['calibrate.fine_tune.embedding_gap_clean_to_sim_cex.after'] = panels[1]?.gap['plant clean']?.toSimulatorCex ?? 'n/a';
  return out;
}

export async function bench(options: { quick: boolean; fineTuneOnly?: boolean }): Promise<Figures> {
  const q = options.quick;
  const out: Figures = { 'calibrate.machine.cpus': availableParallelism(), 'calibrate.machine.load_avg_1m_at_start': r4(loadavg()[0] ?? NaN) };
  const model = process.env.CRYSTALWATCH_BENCH_MODEL ?? defaultModelDir();
  const dir = await mkdtemp(join(tmpdir(), 'cw-bench-calibrate-'));
  try {
    if (options.fineTuneOnly) {
      Object.assign(out, await fineTuneFigures(model, dir, q));
      out['calibrate.machine.load_avg_1m_at_end'] = r4(loadavg()[0] ?? NaN);
      return out;
    }
    process.stderr.write('bench calibrate: rendering plant-B frames…\n');
    const calibration = await renderPlantBBatch({ count: 200, batch: 1, ...SIZE, fps: 2, startS: 600 });
    const clean = await renderPlantBBatch({ count: q ? 100 : 400, batch: 11, ...SIZE, fps: 2, startS: 900 });
    const pgBatches = await Promise.all(
      Array.from({ length: q ? 2 : 4 }, (_, b) => renderPlantBBatch({ count: q ? 30 : 40, batch: 21 + b, ...SIZE, fps: 2, startS: 360, pgOnsetS: 360 })),
    );
    const nonProbe = await nonProbeSet({ seed: 0xca1b, perKind: q ? 6 : 20 });
    Object.assign(out, {
      'calibrate.plant_b.profile': PLANT_B_PROFILE.name,
      'calibrate.plant_b.seed': PLANT_B_SEED,
      'calibrate.plant_b.frame_size': `${SIZE.width}x${SIZE.height}`,
      'calibrate.plant_b.calibration_clean_frames': calibration.length,
      'calibrate.plant_b.eval_clean_frames': clean.length,
      'calibrate.plant_b.eval_pg_batches': pgBatches.length,
      'calibrate.plant_b.eval_pg_frames_per_batch': pgBatches[0]?.length ?? 0,
      'calibrate.nonprobe_images': nonProbe.length,
    });
    await writePlantBFrames(join(dir, 'clean'), calibration);

    process.stderr.write('bench calibrate: crystalwatch calibrate…\n');
    const t0 = performance.now();
    const result = await calibrate({ model, clean: [join(dir, 'clean')], out: join(dir, 'calibrated') });
    out['calibrate.seconds'] = r4((performance.now() - t0) / 1000);
    const r = result.report;
    out['calibrate.plant_b.threshold.before'] = r.before.threshold;
    out['calibrate.plant_b.threshold.after'] = r.after.threshold;
    out['calibrate.plant_b.ood_threshold.before'] = r4(r.before.oodThreshold ?? 0);
    out['calibrate.plant_b.ood_threshold.after'] = r4(r.after.oodThreshold ?? 0);
    out['calibrate.report.held_out_false_positive_rate.before'] = r.before.heldOut.rate ?? 'n/a';
    out['calibrate.report.held_out_false_positive_rate.after'] = r.after.heldOut.rate ?? 'n/a';
    out['calibrate.report.claim'] = r.detector.claim;
    out['calibrate.report.could_not'] = r.couldNot.length;

    const card = JSON.parse(await readFile(join(result.outDir, 'card.json'), 'utf8')) as { detector: CalibratedDetector };
    const before: Side = { model, h: cusumThresholdForArl(100_000), llr: defaultLlr };
    const after: Side = { model: result.outDir, h: card.detector.threshold, llr: (p) => llrAt(card.detector.llr, p) };
    process.stderr.write('bench calibrate: before…\n');
    await measure(before, clean, pgBatches, nonProbe, out, 'before');
    process.stderr.write('bench calibrate: after…\n');
    await measure(after, clean, pgBatches, nonProbe, out, 'after');
    Object.assign(out, await fineTuneFigures(model, dir, q));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  out['calibrate.machine.load_avg_1m_at_end'] = r4(loadavg()[0] ?? NaN);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  bench({ quick: process.argv.includes('--quick'), fineTuneOnly: process.argv.includes('--fine-tune-only') }).then(
    (r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`),
    (err: Error) => {
      process.stderr.write(`bench calibrate: ${err.stack ?? err.message}\n`);
      process.exitCode = 1;
    },
  );
}

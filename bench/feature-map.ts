/**
 * Feature-map inference vs per-tile inference on 1280×960 simulator frames (CEX and PG) with
 * the shipped model: throughput, CPU and engine time per frame of each path, and how far the
 * answers move — frame and tile class flips, per-tile |ΔP(PG)|, and the frame OOD score (mean
 * tile score) difference.
 *
 *   node dist/bench/feature-map.js [--quick]
 *
 * `CRYSTALWATCH_BENCH_MODEL` measures another model folder. Frames are rendered before the clock
 * starts (the simulator costs more per frame than the classifier does).
 */
import { availableParallelism, cpus, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Classifier } from '../src/classify/index.js';
import { defaultModelDir } from '../src/classify/command.js';
import { renderFrame } from '../simulator/index.js';

type Figures = Record<string, number | string>;

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
const r3 = (v: number) => Math.round(v * 1000) / 1000;
const r6 = (v: number) => Math.round(v * 1e6) / 1e6;

/** Half clean CEX frames, half frames after PG onset, each its own seed; with the simulator's truth. */
async function frames(count: number): Promise<{ png: Buffer; label: 'cex' | 'pg' }[]> {
  const out: { png: Buffer; label: 'cex' | 'pg' }[] = [];
  for (let i = 0; i < count; i++) {
    const pg = i % 2 === 1;
    const frame = await renderFrame({ seed: 500 + i, frameIndex: i, tSeconds: 600 + 10 * i, pgOnsetS: pg ? 300 : null, width: 1280, height: 960 });
    out.push({ png: frame.png, label: frame.truth.label });
  }
  return out;
}

interface Totals {
  frames: number;
  seconds: number;
  cpuMs: number;
}

/** One pass, one frame per call (a quiet camera): wall time and process CPU (all threads: main, worker, sharp). */
async function pass(classifier: Classifier, images: Buffer[], totals: Totals): Promise<void> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const image of images) await classifier.classify([image]);
  totals.seconds += (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  totals.cpuMs += (cpu.user + cpu.system) / 1000;
  totals.frames += images.length;
}

export async function bench(options: { quick: boolean }): Promise<Figures> {
  const modelDir = process.env.CRYSTALWATCH_BENCH_MODEL ?? defaultModelDir();
  const images = await frames(options.quick ? 16 : 64);
  const out: Figures = {
    'classify.feature_map.machine': `${availableParallelism()} cores, ${cpus()[0]?.model ?? 'cpu'}`,
    'classify.feature_map.load_average_1m': r3(loadavg()[0]!),
  };
  const engine = { featureMap: [] as number[], tiles: [] as number[] };
  const featureMap = await Classifier.load(modelDir, { backend: 'onnx', frameInference: 'feature-map', onInference: (s) => engine.featureMap.push(s) });
  const tiles = await Classifier.load(modelDir, { backend: 'onnx', frameInference: 'tiles', onInference: (s) => engine.tiles.push(s) });
  try {
    out['classify.feature_map.model'] = featureMap.info.model;
    const key = `classify.onnx.${featureMap.info.device}.frames_1280x960`;
    const pngs = images.map((i) => i.png);
    // Warm-up (first runs allocate), then the paths take turns, so load from elsewhere falls on both alike.
    await featureMap.classify([pngs[0]!]);
    await tiles.classify([pngs[0]!]);
    engine.featureMap.length = 0;
    engine.tiles.length = 0;
    const totals = { featureMap: { frames: 0, seconds: 0, cpuMs: 0 }, tiles: { frames: 0, seconds: 0, cpuMs: 0 } };
    for (let round = 0; round < 2; round++) {
      await pass(featureMap, pngs, totals.featureMap);
      await pass(tiles, pngs, totals.tiles);
    }
    for (const [name, t, seconds] of [
      ['feature_map', totals.featureMap, engine.featureMap],
      ['tiles', totals.tiles, engine.tiles],
    ] as const) {
      out[`${key}.${name}.frames_per_s`] = r3(t.frames / t.seconds);
      out[`${key}.${name}.cpu_ms_per_frame`] = r3(t.cpuMs / t.frames);
      out[`${key}.${name}.engine_ms_per_frame`] = r3((seconds.reduce((a, b) => a + b, 0) * 1000) / t.frames);
    }

    // Agreement: per-tile P(PG) from embed() (the same path as classify, before the OOD gate),
    // frame class = the max tile's; the OOD score as classify reports it (mean tile score).
    const diffs: number[] = [];
    const oodDiffs: number[] = [];
    let frameFlips = 0;
    let tileFlips = 0;
    let oodVerdictFlips = 0;
    let framesCompared = 0;
    const correct = { featureMap: 0, tiles: 0 };
    const threshold = featureMap.card.threshold;
    for (const { png: image, label } of images) {
      const [a] = await featureMap.embed([image]);
      const [b] = await tiles.embed([image]);
      if (!a || !b || a.length !== b.length) continue; // refused by a model-free gate: neither path runs
      framesCompared += 1;
      let bestA = 0;
      let bestB = 0;
      a.forEach((tile, t) => {
        const other = b[t]!.pPG;
        diffs.push(Math.abs(tile.pPG - other));
        if (tile.pPG >= threshold !== other >= threshold) tileFlips += 1;
        bestA = Math.max(bestA, tile.pPG);
        bestB = Math.max(bestB, other);
      });
      if (bestA >= threshold !== bestB >= threshold) frameFlips += 1;
      if (bestA >= threshold === (label === 'pg')) correct.featureMap += 1;
      if (bestB >= threshold === (label === 'pg')) correct.tiles += 1;
      const [ra] = await featureMap.classify([image]);
      const [rb] = await tiles.classify([image]);
      if (ra?.ood !== undefined && rb?.ood !== undefined) oodDiffs.push(Math.abs(ra.ood - rb.ood));
      if ((ra?.reason === 'out-of-distribution') !== (rb?.reason === 'out-of-distribution')) oodVerdictFlips += 1;
    }
    diffs.sort((x, y) => x - y);
    oodDiffs.sort((x, y) => x - y);
    out['classify.feature_map.frames_compared'] = framesCompared;
    out['classify.feature_map.frame_class_flips'] = frameFlips;
    out['classify.feature_map.tiles_compared'] = diffs.length;
    out['classify.feature_map.tile_class_flips'] = tileFlips;
    // Against the simulator's truth (max tile vs the frame's label), before the OOD gate.
    out['classify.feature_map.frames_correct.feature_map'] = correct.featureMap;
    out['classify.feature_map.frames_correct.tiles'] = correct.tiles;
    out['classify.feature_map.tile_ppg_abs_diff.p50'] = r6(percentile(diffs, 50));
    out['classify.feature_map.tile_ppg_abs_diff.p99'] = r6(percentile(diffs, 99));
    out['classify.feature_map.tile_ppg_abs_diff.max'] = r6(diffs[diffs.length - 1] ?? Number.NaN);
    if (oodDiffs.length > 0) {
      out['classify.feature_map.ood_score_abs_diff.p50'] = r6(percentile(oodDiffs, 50));
      out['classify.feature_map.ood_score_abs_diff.p99'] = r6(percentile(oodDiffs, 99));
      // With the card's statistics as they are: frames one path calls out-of-distribution and the other not.
      out['classify.feature_map.ood_verdict_flips'] = oodVerdictFlips;
    }
  } finally {
    await featureMap.close();
    await tiles.close();
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  bench({ quick })
    .then((r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`))
    .catch((err) => {
      console.error(`bench feature-map: ${(err as Error).message}`);
      process.exitCode = 1;
    });
}

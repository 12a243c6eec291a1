/**
 * The two trust gates on the shipped model: how many non-probe pictures they refuse, how many
 * probe frames of unseen cameras (simulator profiles no statistics were fitted on) they let
 * through, and what the model-free gate costs per frame.
 *
 *   node dist/bench/trust.js [--quick]
 *
 * Figures: `trust_nonprobe_refused_ratio` (target ≥ 0.99) and `.<kind>`,
 * `trust_unseen_camera_accepted_ratio` (target ≥ 0.95) and `.<profile>`, the same for held-out
 * seeds of the seen profiles, the reasons given, and `trust_gate_ms.*` (CPU per image of
 * the model-free gate, median; budget ≈ 1 ms for a 1280×960 frame). Uses
 * $CRYSTALWATCH_BENCH_MODEL or models/default.
 */
import { availableParallelism, loadavg } from 'node:os';
import { pathToFileURL } from 'node:url';
import { Classifier, type ClassifyResult } from '../src/classify/index.js';
import { defaultModelDir } from '../src/classify/command.js';
import { decodeImage } from '../src/classify/preprocess.js';
import { DEFAULT_GATES, gateStats, judgeFrame } from '../src/classify/gates.js';
import { nonProbeSet, NON_PROBE_KINDS } from '../simulator/nonprobe.js';
import { SEEN_PROFILES, UNSEEN_PROFILES, type CameraProfile } from '../simulator/profiles.js';
import { renderProfiledCrop, renderProfiledFrame } from '../simulator/profile-render.js';
import { mixSeed } from '../simulator/random.js';

type Figures = Record<string, number | string>;
const r4 = (v: number) => Math.round(v * 1e4) / 1e4;

async function classifyAll(classifier: Classifier, images: Buffer[]): Promise<ClassifyResult[]> {
  const out: ClassifyResult[] = [];
  for (let i = 0; i < images.length; i += 16) out.push(...(await classifier.classify(images.slice(i, i + 16))));
  return out;
}

function tally(results: ClassifyResult[]): string {
  const counts = new Map<string, number>();
  for (const r of results) counts.set(String(r.reason ?? r.predicted), (counts.get(String(r.reason ?? r.predicted)) ?? 0) + 1);
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
}

/** Probe crops and frames of one profile, from seeds no fit used. */
async function probeImages(
  profile: CameraProfile,
  seed: number,
  crops: number,
  frames: number,
): Promise<{ bytes: Buffer; label: 'cex' | 'pg'; frame: boolean }[]> {
  const out: { bytes: Buffer; label: 'cex' | 'pg'; frame: boolean }[] = [];
  for (let i = 0; i < crops; i++) {
    const c = await renderProfiledCrop({ label: i % 2 ? 'pg' : 'cex', seed: mixSeed(seed, i), profile });
    out.push({ bytes: c.bytes, label: c.label, frame: false });
  }
  for (let i = 0; i < frames; i++) {
    const f = await renderProfiledFrame({ seed: mixSeed(seed, 0xf, i), frameIndex: i, tSeconds: 200 + 40 * i, pgOnsetS: i % 2 ? 60 : null, profile });
    out.push({ bytes: f.bytes, label: f.label, frame: true });
  }
  return out;
}

async function cameraFigures(
  classifier: Classifier,
  profiles: readonly CameraProfile[],
  prefix: string,
  seed: number,
  crops: number,
  frames: number,
  out: Figures,
): Promise<void> {
  let accepted = 0;
  let total = 0;
  let right = 0;
  const refused: ClassifyResult[] = [];
  for (const [p, profile] of profiles.entries()) {
    const images = await probeImages(profile, mixSeed(seed, p), crops, frames);
    const results = await classifyAll(
      classifier,
      images.map((i) => i.bytes),
    );
    let ok = 0;
    results.forEach((r, k) => {
      if (r.predicted === 'cex' || r.predicted === 'pg') {
        ok++;
        if (r.predicted === images[k]!.label) right++;
      } else refused.push(r);
    });
    out[`${prefix}.${profile.name}`] = r4(ok / results.length);
    accepted += ok;
    total += results.length;
  }
  out[prefix] = r4(accepted / total);
  out[`${prefix}.images`] = total;
  out[`${prefix}.refused_reasons`] = tally(refused) || 'none';
  out[`${prefix.replace('_accepted_ratio', '')}_accuracy_of_accepted`] = r4(right / Math.max(1, accepted));
}

/** Median CPU milliseconds of the model-free gate (statistics + verdict) on one decoded image. */
async function gateMs(bytes: Buffer, reps: number): Promise<number> {
  const image = await decodeImage(bytes, undefined, { grey: false });
  for (let i = 0; i < 20; i++) judgeFrame(gateStats(image), DEFAULT_GATES);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.cpuUsage();
    judgeFrame(gateStats(image), DEFAULT_GATES);
    const t = process.cpuUsage(t0);
    times.push((t.user + t.system) / 1000);
  }
  times.sort((a, b) => a - b);
  return Math.round(times[Math.floor(times.length / 2)]! * 1000) / 1000;
}

export async function bench(options: { quick: boolean }): Promise<Figures> {
  const q = options.quick;
  const out: Figures = { 'trust.machine.cpus': availableParallelism(), 'trust.machine.load_avg_1m_at_start': Math.round(loadavg()[0]! * 100) / 100 };
  const model = process.env.CRYSTALWATCH_BENCH_MODEL ?? defaultModelDir();
  const classifier = await Classifier.load(model, { maxBatchSize: 32 });
  try {
    out['trust.model'] = `${classifier.info.model} (${classifier.card.calibration?.status ?? 'no calibration status'})`;
    process.stderr.write('bench trust: non-probe pictures…\n');
    const perKind = q ? 8 : 40;
    const pictures = await nonProbeSet({ seed: 0x7e57, perKind });
    const results = await classifyAll(
      classifier,
      pictures.map((p) => p.bytes),
    );
    const refused = results.filter((r) => r.predicted === 'unusable' || r.predicted === 'error').length;
    out.trust_nonprobe_refused_ratio = r4(refused / results.length);
    out['trust_nonprobe_refused_ratio.images'] = results.length;
    for (const kind of NON_PROBE_KINDS) {
      const mine = results.filter((_, i) => pictures[i]!.kind === kind);
      out[`trust_nonprobe_refused_ratio.${kind}`] = r4(mine.filter((r) => r.predicted === 'unusable').length / mine.length);
    }
    out['trust_nonprobe.reasons'] = tally(results);
    const passed = results.flatMap((r, i) =>
      r.predicted === 'cex' || r.predicted === 'pg' ? [`${pictures[i]!.kind} ${pictures[i]!.width}x${pictures[i]!.height}`] : [],
    );
    out['trust_nonprobe.passed'] = passed.join('; ') || 'none';

    process.stderr.write('bench trust: unseen cameras…\n');
    await cameraFigures(classifier, UNSEEN_PROFILES, 'trust_unseen_camera_accepted_ratio', 0x05ee, q ? 30 : 120, q ? 2 : 8, out);
    process.stderr.write('bench trust: seen profiles, new seeds…\n');
    await cameraFigures(classifier, SEEN_PROFILES, 'trust_seen_camera_accepted_ratio', 0x5ee1, q ? 10 : 40, 1, out);
  } finally {
    await classifier.close();
  }

  process.stderr.write('bench trust: gate cost…\n');
  const reps = q ? 100 : 500;
  const greyFrame = (await renderProfiledFrame({ seed: 1, frameIndex: 0, tSeconds: 300, pgOnsetS: null, profile: SEEN_PROFILES[0]! })).bytes;
  const rgbFrame = (await renderProfiledFrame({ seed: 1, frameIndex: 0, tSeconds: 300, pgOnsetS: null, profile: UNSEEN_PROFILES[0]! })).bytes;
  const crop = (await renderProfiledCrop({ label: 'pg', seed: 3, profile: SEEN_PROFILES[0]! })).bytes;
  out['trust_gate_ms.frame_1280x960_grey'] = await gateMs(greyFrame, reps);
  out['trust_gate_ms.frame_1280x960_rgb'] = await gateMs(rgbFrame, reps);
  out['trust_gate_ms.crop'] = await gateMs(crop, reps);
  // Decoding in colour (to see colour before greying) costs a header read; grey files stay one channel.
  const decodeMs = async (grey: boolean) => {
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) await decodeImage(greyFrame, undefined, { grey });
    return Math.round(((performance.now() - t0) / 20) * 100) / 100;
  };
  out['trust_decode_ms.frame_grey_file.colour_aware'] = await decodeMs(false);
  out['trust_decode_ms.frame_grey_file.grey_only'] = await decodeMs(true);
  out['trust.machine.load_avg_1m_at_end'] = Math.round(loadavg()[0]! * 100) / 100;
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await bench({ quick: process.argv.includes('--quick') });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

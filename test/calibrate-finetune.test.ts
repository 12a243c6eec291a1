/**
 * `crystalwatch calibrate --fine-tune`: a labelled set too small to hold out a test split is
 * refused with the folder, the counts and the fix; calibration images shared with the
 * labelled set are refused; a small fine-tune (plant-B crops, 2 epochs) through the real
 * command writes a model folder that loads in the real `crystalwatch predict`, whose figures
 * come only from the held-out split (file names disjoint from the training ones recorded), with
 * the provenance in the card and the embedding map in the report.
 * Fixtures: plant-B crops from the simulator, seeded. Needs `npm run build` (the CLI and the
 * classifier's worker thread run from dist/).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { calibrateWithFineTune } from '../src/model/calibrate-finetune.js';
import { CalibrationInputError } from '../src/model/calibrate-inputs.js';
import { checkCalibrationOverlap, MIN_TEST_PER_CLASS, readFineTuneSet } from '../src/model/calibrate-finetune-data.js';
import { readInputs } from '../src/model/calibrate-inputs.js';
import type { FineTuneSection } from '../src/model/calibrate-finetune-report.js';
import type { CalibrationReport } from '../src/model/calibrate-report.js';
import { renderProfiledCrop } from '../simulator/profile-render.js';
import { PLANT_B_PROFILE } from '../simulator/plant-b.js';
import { mixSeed } from '../simulator/random.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin/crystalwatch.js');
const MODEL = join(ROOT, 'models/default');
const run = promisify(execFile);
const sha = async (path: string) =>
  createHash('sha256')
    .update(await readFile(path))
    .digest('hex');

let dir: string;
/** 110 CEX + 110 PG plant-B crops in cex/ + pg/: a 60/20/20 split holds out about 22 of each. */
let labelled: string;
/** 12 + 12 crops in 0/ + 1/: about 2 of each held out. */
let small: string;
let clean: string;
let pg: string;
/** The clean crops and a copy of one labelled crop. */
let mixed: string;

async function writeCrops(folder: string, label: 'cex' | 'pg', count: number, seed: number): Promise<void> {
  await mkdir(folder, { recursive: true });
  for (let i = 0; i < count; i++) {
    const crop = await renderProfiledCrop({ label, seed: mixSeed(seed, i), profile: PLANT_B_PROFILE });
    await writeFile(join(folder, `${label}-${String(i).padStart(3, '0')}.png`), crop.bytes);
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cw-calibrate-ft-'));
  labelled = join(dir, 'labelled');
  small = join(dir, 'small');
  clean = join(dir, 'clean');
  pg = join(dir, 'pg');
  await writeCrops(join(labelled, 'cex'), 'cex', 110, 71);
  await writeCrops(join(labelled, 'pg'), 'pg', 110, 72);
  await writeCrops(join(small, '0'), 'cex', 12, 73);
  await writeCrops(join(small, '1'), 'pg', 12, 74);
  await writeCrops(clean, 'cex', 44, 75);
  await writeCrops(pg, 'pg', 16, 76);
  mixed = join(dir, 'clean-mixed');
  await mkdir(mixed);
  for (const f of await readdir(clean)) await copyFile(join(clean, f), join(mixed, f));
  await copyFile(join(labelled, 'cex', 'cex-003.png'), join(mixed, 'copy-of-a-labelled-crop.png'));
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );

describe('calibrate --fine-tune refuses', () => {
  it('a labelled set too small to hold out a test split, naming the folder, the counts and the fix', async () => {
    const out = join(dir, 'out-small');
    const err = await refusal(calibrateWithFineTune({ model: MODEL, clean: [clean], out, fineTuneWith: { data: small } }));
    expect(err).toBeInstanceOf(CalibrationInputError);
    const message = (err as Error).message;
    expect(message).toContain(`--fine-tune ${small}: too few labelled images to hold out a test split: 12 CEX and 12 PG (0/1)`);
    expect(message).toMatch(/leave \d CEX and \d PG in the held-out test split/);
    expect(message).toContain(`at least ${MIN_TEST_PER_CLASS} of each class there`);
    expect(message).toContain('at least 100 of each class');
    // Refused before any training: nothing written.
    await expect(stat(out)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('calibration images that are also fine-tuning images', async () => {
    const err = await refusal(calibrateWithFineTune({ model: MODEL, clean: [mixed], out: join(dir, 'out-mixed'), fineTuneWith: { data: labelled } }));
    expect(err).toBeInstanceOf(CalibrationInputError);
    expect((err as Error).message).toMatch(
      new RegExp(
        `^--clean ${mixed}: 1 image\\(s\\) are also in the fine-tuning set .* copy-of-a-labelled-crop.png = cex/cex-003.png \\((train|valid|test) split\\)`,
      ),
    );
    expect((err as Error).message).toContain('--exclude-fine-tune-images');
  }, 30_000);

  it('or, with --exclude-fine-tune-images, leaves them out of calibration and says which', async () => {
    const set = await readFineTuneSet(labelled, { inputSize: 64, splitSeed: 1 });
    const { excluded } = await checkCalibrationOverlap(set, [{ flag: '--clean', folder: mixed }], true);
    const split = set.files.find((f) => f.path === 'cex/cex-003.png')!.split;
    const reason = `also fine-tuning image cex/cex-003.png (${split} split)`;
    expect([...excluded.values()]).toEqual([reason]);
    const inputs = await readInputs({ clean: [mixed], tile: { tile: 192, stride: 112 }, exclude: excluded });
    expect(inputs.clean).toHaveLength(44);
    expect(inputs.excluded).toEqual([{ path: join(mixed, 'copy-of-a-labelled-crop.png'), reason }]);
  }, 30_000);
});

describe('crystalwatch calibrate --fine-tune (the command)', () => {
  let out: string;
  let json: { fineTune: FineTuneSection | null };
  let report: CalibrationReport & { fineTune: FineTuneSection; embeddingMap: NonNullable<CalibrationReport['embeddingMap']> };
  let card: { version: string; calibration: { status: string; fineTune: FineTuneSection; provenance: { parentCardSha256: string } } };

  beforeAll(async () => {
    out = join(dir, 'model-ft');
    const args = ['calibrate', '--model', MODEL, '--fine-tune', labelled, '--fine-tune-epochs', '2', '--clean', clean, '--pg', pg, '--out', out, '--json'];
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: 150_000, maxBuffer: 1 << 24 });
    // Progress on stderr with the calibrate convention, train's epochs among it.
    expect(stderr).toMatch(/calibrate: \[[#·]+\] 2\/2 fine-tuning \(epochs\)/);
    expect(stderr).toMatch(/calibrate: fine-tune: epoch 2\/2 loss/);
    json = JSON.parse(stdout);
    report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8'));
    card = JSON.parse(await readFile(join(out, 'card.json'), 'utf8'));
  }, 160_000);

  it('reports fine-tune figures on the held-out split only: its file names are disjoint from the training ones', async () => {
    const ft = report.fineTune;
    const { train, valid, test } = ft.files!;
    const all = [...(await readdir(join(labelled, 'cex'))).map((f) => `cex/${f}`), ...(await readdir(join(labelled, 'pg'))).map((f) => `pg/${f}`)];
    expect([...train, ...valid, ...test].sort()).toEqual(all.sort());
    const trained = new Set([...train, ...valid]);
    expect(test.filter((f) => trained.has(f))).toEqual([]);
    expect(new Set(test).size).toBe(test.length);
    const testCex = test.filter((f) => f.startsWith('cex/')).length;
    const testPg = test.length - testCex;
    expect(testCex).toBeGreaterThanOrEqual(MIN_TEST_PER_CLASS);
    expect(testPg).toBeGreaterThanOrEqual(MIN_TEST_PER_CLASS);
    expect(ft.fileCounts.test).toEqual({ cex: testCex, pg: testPg });
    // Every figure counts exactly the held-out crops: the parent, the fine-tuned model, the calibrated card.
    expect(ft.heldOut.images).toBe(test.length);
    expect(ft.heldOut.parent.images).toBe(test.length);
    expect(ft.heldOut.fineTuned.support).toBe(test.length);
    const calibrated = ft.heldOut.calibrated!;
    expect(calibrated.images).toBe(test.length);
    const c = calibrated.confusion;
    expect(c.tp + c.fn + c.fp + c.tn + calibrated.outOfDistribution + calibrated.refusedByGates).toBe(test.length);
    expect(ft.epochs).toMatchObject({ planned: 2, run: 2 });
    expect(ft.learningRate).toBe(1e-4);
    // No calibration image is a fine-tuning image.
    const labelledShas = new Set(await Promise.all(all.map((f) => sha(join(labelled, f)))));
    for (const folder of [clean, pg]) for (const f of await readdir(folder)) expect(labelledShas.has(await sha(join(folder, f))), f).toBe(false);
    const md = await readFile(join(out, 'report.md'), 'utf8');
    expect(md).toContain('## Fine-tuning');
    expect(md).toContain(`Figures on the held-out test split only (${test.length} images`);
    // --json carries the section, without the file lists.
    expect(json.fineTune).toMatchObject({ folder: labelled, heldOut: { images: test.length }, epochs: { planned: 2 } });
    expect(json.fineTune!.files).toBeUndefined();
  });

  it("records the fine-tuning in the card's calibration.fineTune provenance", async () => {
    expect(card.version).toBe('1.1.0');
    expect(card.calibration.status).toBe('calibrated');
    const ft = card.calibration.fineTune;
    expect(ft).toMatchObject({
      folder: labelled,
      layout: 'cex/pg',
      fileCounts: { train: report.fineTune.fileCounts.train, valid: report.fineTune.fileCounts.valid, test: report.fineTune.fileCounts.test },
      epochs: { planned: 2, run: 2 },
      learningRate: 1e-4,
      parent: { name: 'crystalwatch-default', version: '1.0.0', cardSha256: await sha(join(MODEL, 'card.json')) },
      heldOut: { split: 'test', images: report.fineTune.heldOut.images, calibrated: { f1: report.fineTune.heldOut.calibrated!.f1 } },
    });
    expect(ft.fileListSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(ft.files).toBeUndefined();
    // Fine-tuned weights (TF.js and ONNX) differ from the parent's; the fine-tuned model before calibration stays in fine-tune/.
    for (const f of ['model.onnx', 'weights.bin']) expect(await sha(join(out, f)), f).not.toBe(await sha(join(MODEL, f)));
    expect(await sha(join(out, 'model.onnx'))).toBe(await sha(join(out, 'fine-tune', 'model.onnx')));
    const inner = JSON.parse(await readFile(join(out, 'fine-tune', 'card.json'), 'utf8'));
    expect(inner.provenance.fineTunedFrom.cardSha256).toBe(ft.parent.cardSha256);
    expect(card.calibration.provenance.parentCardSha256).toBe(await sha(join(out, 'fine-tune', 'card.json')));
  });

  it('writes the embedding map: the picture, referenced from report.md, and its points in report.json', async () => {
    const map = report.embeddingMap;
    expect((await stat(join(out, map.picture))).size).toBeGreaterThan(5_000);
    expect(await readFile(join(out, 'report.md'), 'utf8')).toContain(`![embedding map](${map.picture})`);
    expect(map.simulator).toMatchObject({ crops: { cex: 32, pg: 32 } });
    expect(map.panels.map((p) => p.model)).toEqual(['before fine-tuning: crystalwatch-default@1.0.0', 'fine-tuned and calibrated: crystalwatch-default@1.1.0']);
    for (const panel of map.panels) {
      const sets = new Set(panel.points.map((p) => p.set));
      expect([...sets].sort()).toEqual(['plant PG', 'plant clean', 'simulator CEX', 'simulator PG']);
      for (const p of panel.points) expect(Number.isFinite(p.x) && Number.isFinite(p.y)).toBe(true);
      expect(panel.gap['plant clean']!.toSimulatorCex).toBeGreaterThan(0);
    }
    // The calibrated panel shows the OOD class centres before (the fine-tuned card) and after (the camera's clean class).
    const centres = map.panels[1]!.centres.map((c) => `${c.card}:${c.name}`);
    expect(centres).toEqual(expect.arrayContaining(['before:cex', 'before:pg', 'after:camera-clean']));
  });

  it('loads in the real crystalwatch predict', async () => {
    const crop = join(clean, (await readdir(clean)).sort().at(-1)!);
    const { stdout, stderr } = await run(process.execPath, [CLI, 'predict', '--model', out, '--json', crop], { cwd: ROOT, timeout: 60_000 });
    expect(stderr).toContain('crystalwatch-default@1.1.0');
    const line = JSON.parse(stdout.trim().split('\n')[0]!);
    expect(['cex', 'pg', 'unusable']).toContain(line.predicted);
  });
});

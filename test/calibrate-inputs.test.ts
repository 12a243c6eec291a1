/**
 * What `crystalwatch calibrate` says about inputs it cannot use — each error names the folder
 * (or file) and the fix — and that it works from 40 clean images and then says what it could
 * not establish. Fixtures: plant-B crops and small frames from the simulator, seeded.
 * Needs `npm run build` (the classifier's worker thread and the CLI run from dist/).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { calibrate } from '../src/model/calibrate.js';
import { CalibrationInputError } from '../src/model/calibrate-inputs.js';
import { loadModelCard } from '../src/model/card.js';
import { renderProfiledCrop, renderProfiledFrame } from '../simulator/profile-render.js';
import { PLANT_B_PROFILE, PLANT_B_SEED } from '../simulator/plant-b.js';
import { mixSeed } from '../simulator/random.js';

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin/crystalwatch.js');
const MODEL = join(ROOT, 'models/default');
const run = promisify(execFile);

let dir: string;
/** 45 clean plant-B crops. */
let crops: string;

async function writeCrops(folder: string, count: number, seed: number): Promise<void> {
  await mkdir(folder, { recursive: true });
  for (let i = 0; i < count; i++) {
    const crop = await renderProfiledCrop({ label: 'cex', seed: mixSeed(seed, i), profile: PLANT_B_PROFILE });
    await writeFile(join(folder, `crop-${String(i).padStart(3, '0')}.png`), crop.bytes);
  }
}

async function copyOf(name: string, count = 45): Promise<string> {
  const folder = join(dir, name);
  await mkdir(folder, { recursive: true });
  for (const f of (await readdir(crops)).sort().slice(0, count)) await copyFile(join(crops, f), join(folder, f));
  return folder;
}

const grey = (width: number, height: number, level: number) =>
  sharp(Buffer.alloc(width * height, level), { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();

const out = (name: string) => join(dir, 'out', name);

async function refusal(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => undefined,
    (e: Error) => e,
  );
  expect(err, 'calibrate should have refused').toBeInstanceOf(CalibrationInputError);
  return (err as Error).message;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cw-calibrate-in-'));
  crops = join(dir, 'crops');
  await writeCrops(crops, 45, PLANT_B_SEED);
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('calibrate refuses inputs it cannot use, naming the folder and the fix', () => {
  it('an empty folder, a missing one, and too few images', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    expect(await refusal(calibrate({ model: MODEL, clean: [empty], out: out('a') }))).toMatch(
      new RegExp(`--clean ${empty}: holds no images .*point --clean at the folder`),
    );
    expect(await refusal(calibrate({ model: MODEL, clean: [join(dir, 'nowhere')], out: out('a') }))).toMatch(/--clean .*nowhere: no such folder/);
    const few = await copyOf('few', 39);
    expect(await refusal(calibrate({ model: MODEL, clean: [few], out: out('a') }))).toMatch(
      new RegExp(`--clean ${few}: 39 readable image\\(s\\), calibration needs at least 40; add clean frames`),
    );
  });

  it('files that are not readable images, before or after decoding starts', async () => {
    const garbage = await copyOf('garbage');
    await writeFile(join(garbage, 'broken.png'), Buffer.from('not a png at all'));
    expect(await refusal(calibrate({ model: MODEL, clean: [garbage], out: out('b') }))).toMatch(
      /1 file\(s\) are not readable images: .*broken\.png .*remove or replace them, or pass --skip-unreadable/,
    );
    const skipped = await calibrate({ model: MODEL, clean: [garbage], out: out('b2'), skipUnreadable: true });
    expect(skipped.report.inputs.skippedUnreadable.map((u) => u.path)).toEqual([join(garbage, 'broken.png')]);
    expect(skipped.report.inputs.clean.images).toBe(45);

    // A truncated PNG: its header reads, its pixels do not.
    const truncated = await copyOf('truncated');
    const whole = await grey(200, 180, 90);
    await writeFile(join(truncated, 'cut.png'), whole.subarray(0, Math.floor(whole.length * 0.6)));
    expect(await refusal(calibrate({ model: MODEL, clean: [truncated], out: out('c') }))).toMatch(/not readable images: .*cut\.png/);
  });

  it('sizes that cannot share a threshold or cannot be tiled', async () => {
    const mixed = await copyOf('mixed');
    const frame = await renderProfiledFrame({
      seed: PLANT_B_SEED,
      frameIndex: 1,
      tSeconds: 600,
      pgOnsetS: null,
      profile: PLANT_B_PROFILE,
      width: 400,
      height: 400,
    });
    await writeFile(join(mixed, 'frame.png'), frame.bytes);
    expect(await refusal(calibrate({ model: MODEL, clean: [mixed], out: out('d') }))).toMatch(
      new RegExp(`${mixed}: mixes crops and frames \\(45 crops .*1 frames.*calibrate the camera's frames and a crop model's crops separately`),
    );

    const sizes = join(dir, 'sizes');
    await mkdir(sizes);
    for (let i = 0; i < 40; i++) {
      const f = await renderProfiledFrame({
        seed: PLANT_B_SEED,
        frameIndex: i,
        tSeconds: 600,
        pgOnsetS: null,
        profile: PLANT_B_PROFILE,
        width: i < 30 ? 400 : 416,
        height: 400,
      });
      await writeFile(join(sizes, `f-${String(i).padStart(2, '0')}.png`), f.bytes);
    }
    expect(await refusal(calibrate({ model: MODEL, clean: [sizes], out: out('e') }))).toMatch(
      /frames of 2 sizes \(.*30 × 400×400, 10 × 416×400\).*calibrate each camera \(one frame size\) on its own/,
    );

    const strip = await copyOf('strip');
    await writeFile(join(strip, 'strip.png'), await grey(1000, 150, 60));
    expect(await refusal(calibrate({ model: MODEL, clean: [strip], out: out('f') }))).toMatch(
      /1 image\(s\) cannot be tiled, e\.g\. strip\.png \(1000×150\).*would squash it whole/,
    );
  });

  it('a stated target too strict for the images given, and an out folder that holds files', async () => {
    const message = await refusal(calibrate({ model: MODEL, clean: [crops], out: out('g'), maxFalsePositiveRate: 0.001 }));
    expect(message).toMatch(
      /--max-false-positive-rate 0\.001: too few clean images to establish it: it needs at least 2302 usable fitting images .*got 34 in .*state a rate of at least 0\.065/,
    );
    const taken = out('taken');
    await mkdir(taken, { recursive: true });
    await writeFile(join(taken, 'card.json'), '{}');
    expect(await refusal(calibrate({ model: MODEL, clean: [crops], out: taken }))).toMatch(
      /--out .*taken: the folder exists and is not empty .*calibrate never overwrites a model/,
    );
    expect(await refusal(calibrate({ model: MODEL, clean: [crops], out: MODEL }))).toMatch(/is \(or contains\) the model folder/);
  });
});

describe('calibrate from few images', () => {
  it('works from 40 clean crops and says what it could not establish', async () => {
    const forty = await copyOf('forty', 40);
    const result = await calibrate({ model: MODEL, clean: [forty], out: out('forty') });
    const r = result.report;
    expect(r.inputs).toMatchObject({ kind: 'crops', modelInputsPerImage: 1, fps: { value: 2, source: 'default' } });
    expect(r.inputs.clean).toMatchObject({ images: 40, fit: 30, heldOut: 10 });
    expect(r.targets).toMatchObject({ source: 'default', established: false });
    const said = r.couldNot.join('\n');
    expect(said).toContain('No PG images given: recall on this camera is unknown');
    expect(said).toMatch(/needs at least \d+ usable clean fitting images to be shown at 90 % confidence; with 30/);
    expect(said).toMatch(/so few held-out images show only that the rate is ≤/);
    expect(said).toContain('No capture times in sidecars or file names: the false-alarm figures assume 2 frames/s');
    expect(r.after.detector.delaySource).toBe('pg model');
    const { card } = await loadModelCard(result.outDir);
    expect(card.calibration?.status).toBe('calibrated');
  });
});

describe('crystalwatch calibrate (the command)', () => {
  it('exits 1 with the message for an empty folder, and for a --fine-tune folder without class folders', async () => {
    const empty = join(dir, 'empty-cli');
    await mkdir(empty);
    const failed = await run(process.execPath, [CLI, 'calibrate', '--model', MODEL, '--clean', empty, '--out', out('cli')], {
      cwd: ROOT,
      timeout: 60_000,
    }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed?.code).toBe(1);
    expect(failed?.stderr).toContain(`--clean ${empty}: holds no images`);
    const fine = await run(process.execPath, [CLI, 'calibrate', '--model', MODEL, '--clean', crops, '--out', out('cli-ft'), '--fine-tune', crops], {
      cwd: ROOT,
      timeout: 60_000,
    }).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(fine?.code).toBe(1);
    expect(fine?.stderr).toContain(`--fine-tune ${crops}: needs class folders cex/ + pg/ or 0/ (CEX) + 1/ (PG)`);
  });
});

/**
 * Simulator frames and the camera: the batch scenario (no PG before onset, PG after it, growing),
 * the drop-folder contract ingest relies on (names, sidecar truth, atomic or slow writes,
 * damaged files on request), lifecycle.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { FrameCamera, frameFileName, renderFrame, type FrameTruth } from '../simulator/index.js';
import { waitFor } from './helpers/wait.js';

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cw-sim-frames-'));
  temps.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

const small = { width: 480, height: 360 };

describe('renderFrame', () => {
  it('is reproducible: same seed and index, same bytes and truth', async () => {
    const a = await renderFrame({ seed: 5, frameIndex: 12, tSeconds: 30, pgOnsetS: 10, ...small });
    const b = await renderFrame({ seed: 5, frameIndex: 12, tSeconds: 30, pgOnsetS: 10, ...small });
    expect(a.png.equals(b.png)).toBe(true);
    expect(a.truth).toEqual(b.truth);
    const meta = await sharp(a.png).metadata();
    expect([meta.width, meta.height, meta.channels, meta.depth]).toEqual([480, 360, 1, 'uchar']);
  });

  it('defaults to 1280×960', async () => {
    const { png, truth } = await renderFrame({ seed: 1, frameIndex: 0, tSeconds: 0, pgOnsetS: null });
    const meta = await sharp(png).metadata();
    expect([meta.width, meta.height]).toEqual([1280, 960]);
    expect(truth).toMatchObject({ camera: 'cam-1', label: 'cex', pgBoxes: [], frameIndex: 0, capturedAt: '2026-01-01T00:00:00.000Z' });
  });

  it('shows no PG before the onset and PG in every frame after it, growing in number and size', async () => {
    const onset = 120;
    const truthAt = async (t: number): Promise<FrameTruth> => (await renderFrame({ seed: 9, frameIndex: t, tSeconds: t, pgOnsetS: onset, ...small })).truth;
    for (const t of [0, 30, 60, 90, 119]) {
      const truth = await truthAt(t);
      expect(truth.label).toBe('cex');
      expect(truth.pgBoxes).toEqual([]);
    }
    const early: FrameTruth[] = [];
    const late: FrameTruth[] = [];
    for (let k = 0; k < 6; k++) early.push(await truthAt(onset + k));
    for (let k = 0; k < 6; k++) late.push(await truthAt(onset + 600 + k));
    for (const truth of [...early, ...late]) {
      expect(truth.label).toBe('pg');
      expect(truth.pgBoxes.length).toBeGreaterThan(0);
      for (const box of truth.pgBoxes) {
        expect(box.x).toBeGreaterThanOrEqual(0);
        expect(box.y).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width).toBeLessThanOrEqual(small.width);
        expect(box.y + box.height).toBeLessThanOrEqual(small.height);
      }
    }
    const meanCount = (ts: FrameTruth[]): number => ts.reduce((s, t) => s + t.pgBoxes.length, 0) / ts.length;
    const meanSide = (ts: FrameTruth[]): number => {
      const boxes = ts.flatMap((t) => t.pgBoxes);
      return boxes.reduce((s, b) => s + Math.sqrt(b.width * b.height), 0) / boxes.length;
    };
    expect(meanCount(late)).toBeGreaterThan(meanCount(early));
    expect(meanSide(late)).toBeGreaterThan(meanSide(early) * 1.5);
    // Just after nucleation, agglomerates are as small as the probe resolves: 120 px plus their rim.
    expect(meanSide(early)).toBeLessThan(170);
  });

  it('draws each PG agglomerate inside its truth box and changes nothing far outside', async () => {
    // Same seed and index with and without PG: the needles, background and noise are identical,
    // so the pixels that differ are the agglomerates (and needles crossing in front of them).
    const pg = await renderFrame({ seed: 2, frameIndex: 3, tSeconds: 400, pgOnsetS: 100, ...small });
    const clean = await renderFrame({ seed: 2, frameIndex: 3, tSeconds: 400, pgOnsetS: null, ...small });
    expect(pg.truth.pgBoxes.length).toBeGreaterThan(0);
    const a = await sharp(pg.png).extractChannel(0).raw().toBuffer();
    const b = await sharp(clean.png).extractChannel(0).raw().toBuffer();
    let inside = 0;
    let insideChanged = 0;
    let outside = 0;
    let outsideChanged = 0;
    for (let y = 0; y < small.height; y++) {
      for (let x = 0; x < small.width; x++) {
        const i = y * small.width + x;
        const changed = Math.abs(a[i]! - b[i]!) > 12;
        const inBox = pg.truth.pgBoxes.some((box) => x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height);
        if (inBox) {
          inside++;
          if (changed) insideChanged++;
        } else {
          outside++;
          if (changed) outsideChanged++;
        }
      }
    }
    expect(insideChanged / inside).toBeGreaterThan(0.3);
    expect(outsideChanged / outside).toBeLessThan(0.03);
  });
});

const NAME = /^cam-7-\d{8}T\d{9}-\d{6}\.png$/;

describe('FrameCamera', () => {
  it('writes durationS × fps frames with sidecars holding the truth, atomically', async () => {
    const out = await tempDir();
    const seen: { path: string; truth: FrameTruth }[] = [];
    // Order in which final names appear: ingest needs the sidecar before the image.
    const appeared: string[] = [];
    const watcher = watch(out, (_event, name) => {
      if (name && !name.startsWith('.') && !appeared.includes(name)) appeared.push(name);
    });
    const camera = new FrameCamera({
      out,
      camera: 'cam-7',
      fps: 4,
      durationS: 2,
      ...small,
      pgOnsetS: 1,
      seed: 11,
      realTime: false,
      startAt: new Date('2026-03-04T05:06:07.008Z'),
      onFrame: (path, truth) => seen.push({ path, truth }),
    });
    await camera.start();
    await camera.done();
    await camera.close();
    await camera.close();
    // fs.watch reports asynchronously: wait until it has seen every file the camera left.
    const left = (await readdir(out)).filter((f) => !f.startsWith('.'));
    await waitFor(() => left.every((f) => appeared.includes(f)), {
      timeout: 5_000,
      message: 'fs.watch to report every file written',
      detail: () => `seen ${appeared.join(', ')}`,
    });
    watcher.close();
    expect(camera.framesWritten).toBe(8);
    const pngsSeen = appeared.filter((n) => n.endsWith('.png'));
    expect(pngsSeen).toHaveLength(8);
    for (const png of pngsSeen) expect(appeared.indexOf(png.replace(/\.png$/, '.json'))).toBeLessThan(appeared.indexOf(png));
    const files = (await readdir(out)).sort();
    expect(files.filter((f) => f.startsWith('.'))).toEqual([]);
    const pngs = files.filter((f) => f.endsWith('.png'));
    expect(pngs).toHaveLength(8);
    expect(pngs[0]).toBe('cam-7-20260304T050607008-000000.png');
    expect(pngs[1]).toBe(frameFileName('cam-7', new Date('2026-03-04T05:06:07.258Z'), 1));
    for (const [i, name] of pngs.entries()) {
      expect(name).toMatch(NAME);
      const truth = JSON.parse(await readFile(join(out, name.replace(/\.png$/, '.json')), 'utf8')) as FrameTruth;
      expect(truth).toEqual(seen[i]!.truth);
      expect(truth.frameIndex).toBe(i);
      expect(truth.camera).toBe('cam-7');
      // fps 4, onset at 1 s: frames 0–3 are before it.
      expect(truth.label).toBe(i < 4 ? 'cex' : 'pg');
      expect((await sharp(join(out, name)).metadata()).width).toBe(480);
    }
  });

  it('damages the requested fraction of images so they do not decode, and says so in the sidecar', async () => {
    const out = await tempDir();
    const camera = new FrameCamera({ out, camera: 'cam-7', fps: 10, durationS: 0.6, ...small, seed: 3, faults: 1, realTime: false });
    await camera.start();
    await camera.done();
    await camera.close();
    const pngs = (await readdir(out)).filter((f) => f.endsWith('.png'));
    expect(pngs).toHaveLength(6);
    const faults = new Set<string>();
    for (const name of pngs) {
      const truth = JSON.parse(await readFile(join(out, name.replace(/\.png$/, '.json')), 'utf8')) as FrameTruth;
      expect(truth.fault === 'truncated' || truth.fault === 'corrupt').toBe(true);
      faults.add(truth.fault!);
      await expect(sharp(join(out, name)).raw().toBuffer()).rejects.toThrow();
    }
    expect(faults.size).toBe(2);
  });

  it('writes slowly in place: the file grows before it is complete', async () => {
    const out = await tempDir();
    const sizes: number[] = [];
    const camera = new FrameCamera({ out, camera: 'cam-7', fps: 1, durationS: 1, ...small, seed: 4, write: 'slow', realTime: false });
    await camera.start();
    const name = 'cam-7-';
    // Sample the image file while it is being written.
    for (let k = 0; k < 400 && camera.framesWritten === 0; k++) {
      const png = (await readdir(out)).find((f) => f.startsWith(name) && f.endsWith('.png'));
      if (png) sizes.push((await stat(join(out, png))).size);
      await new Promise((r) => setTimeout(r, 5)); // the sampling period, not synchronisation
    }
    await camera.done();
    await camera.close();
    const png = (await readdir(out)).find((f) => f.endsWith('.png'))!;
    const full = (await stat(join(out, png))).size;
    expect(sizes.some((s) => s < full)).toBe(true);
    expect((await sharp(join(out, png)).metadata()).width).toBe(480);
  });

  it('runs in real time until close() when no duration is given', async () => {
    const out = await tempDir();
    const camera = new FrameCamera({ out, fps: 20, width: 160, height: 120, seed: 1 });
    await camera.start();
    await waitFor(() => camera.framesWritten >= 3, { timeout: 10_000, message: '3 frames in real time' });
    await camera.close();
    const after = camera.framesWritten;
    // What is under test: nothing is written during 150 ms (3 frame periods at 20 fps) after close().
    await new Promise((r) => setTimeout(r, 150));
    expect(camera.framesWritten).toBe(after);
    await camera.done();
    const pngs = (await readdir(out)).filter((f) => f.endsWith('.png'));
    expect(pngs).toHaveLength(after);
  });

  it('rejects bad options with the value and what to do', () => {
    expect(() => new FrameCamera({ out: '/tmp/x', fps: 0 })).toThrow(/fps must be in \(0, 1000\], got 0/);
    expect(() => new FrameCamera({ out: '/tmp/x', faults: 2 })).toThrow(/faults is a fraction .* got 2/);
    expect(() => new FrameCamera({ out: '/tmp/x', camera: 'a/b' })).toThrow(/camera id .* got "a\/b"/);
  });
});

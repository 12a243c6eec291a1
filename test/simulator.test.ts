/**
 * Simulator crops and datasets: reproducible bytes, real 8-bit gray PNGs, labels that match
 * their folders, the layouts and splits users bring.
 */
import { describe, expect, it, afterAll } from 'vitest';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import sharp from 'sharp';
import { generateDataset, parseSplit, renderCrop } from '../simulator/index.js';

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cw-sim-'));
  temps.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function listFiles(root: string): Promise<string[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(root.length + 1))
    .sort();
}

describe('renderCrop', () => {
  it('gives the same PNG bytes for the same seed and different bytes for another', async () => {
    for (const label of ['cex', 'pg'] as const) {
      const a = await renderCrop({ label, seed: 42 });
      const b = await renderCrop({ label, seed: 42 });
      const c = await renderCrop({ label, seed: 43 });
      expect(a.png.equals(b.png)).toBe(true);
      expect(a.png.equals(c.png)).toBe(false);
    }
  });

  it('writes 8-bit single-channel PNGs of the size it reports, 130–230 px, not always square', async () => {
    const shapes = new Set<string>();
    for (let seed = 0; seed < 20; seed++) {
      const label = seed % 2 === 0 ? 'pg' : 'cex';
      const crop = await renderCrop({ label, seed });
      const meta = await sharp(crop.png).metadata();
      expect(meta.format).toBe('png');
      expect(meta.channels).toBe(1);
      expect(meta.depth).toBe('uchar');
      expect([meta.width, meta.height]).toEqual([crop.width, crop.height]);
      expect(crop.label).toBe(label);
      for (const side of [crop.width, crop.height]) {
        expect(side).toBeGreaterThanOrEqual(130);
        expect(side).toBeLessThanOrEqual(230);
      }
      shapes.add(crop.width === crop.height ? 'square' : 'oblong');
    }
    expect(shapes).toEqual(new Set(['square', 'oblong']));
  });

  it('honours an explicit size', async () => {
    const crop = await renderCrop({ label: 'pg', seed: 1, width: 224, height: 160 });
    const meta = await sharp(crop.png).metadata();
    expect([crop.width, crop.height, meta.width, meta.height]).toEqual([224, 160, 224, 160]);
  });

  it('rejects bad options with a message that names the value', async () => {
    await expect(renderCrop({ label: 'PG' as never, seed: 1 })).rejects.toThrow(/label must be "cex" or "pg", got "PG"/);
    await expect(renderCrop({ label: 'cex', seed: 1, width: 10.5 })).rejects.toThrow(/width .* got 10.5/);
  });
});

describe('generateDataset', () => {
  it('writes half of each class (the odd one PG) into cex/ and pg/, labels matching folders', async () => {
    const out = await tempDir();
    const progress: number[] = [];
    const { files } = await generateDataset({ out, count: 11, seed: 7, onProgress: (done) => progress.push(done) });
    expect(files).toHaveLength(11);
    expect(files.filter((f) => f.label === 'pg')).toHaveLength(6);
    expect(files.filter((f) => f.label === 'cex')).toHaveLength(5);
    for (const f of files) expect(f.path.split('/')[0]).toBe(f.label);
    expect(await listFiles(out)).toEqual(files.map((f) => f.path).sort());
    expect(progress.at(-1)).toBe(11);
  });

  it('uses 0/ for CEX and 1/ for PG in the binary layout', async () => {
    const out = await tempDir();
    const { files } = await generateDataset({ out, count: 6, seed: 1, layout: 'binary' });
    for (const f of files) expect(f.path.split('/')[0]).toBe(f.label === 'pg' ? '1' : '0');
    expect((await readdir(out)).sort()).toEqual(['0', '1']);
  });

  it('splits each class 70/25/5 into train/ valid/ test/ with every folder present', async () => {
    const out = await tempDir();
    const { files } = await generateDataset({ out, count: 40, seed: 3, split: parseSplit('70/25/5') });
    const count = (split: string, label: string): number => files.filter((f) => f.split === split && f.label === label).length;
    for (const label of ['cex', 'pg']) {
      expect([count('train', label), count('valid', label), count('test', label)]).toEqual([14, 5, 1]);
    }
    for (const f of files) expect(f.path.split('/').slice(0, 2)).toEqual([f.split, f.label]);
    for (const split of ['train', 'valid', 'test']) expect((await readdir(join(out, split))).sort()).toEqual(['cex', 'pg']);
  });

  it('writes the same bytes for the same seed', async () => {
    const [a, b] = [await tempDir(), await tempDir()];
    const first = await generateDataset({ out: a, count: 6, seed: 99, split: [70, 25, 5] });
    const second = await generateDataset({ out: b, count: 6, seed: 99, split: [70, 25, 5] });
    expect(second.files).toEqual(first.files);
    for (const f of first.files) expect((await readFile(join(a, f.path))).equals(await readFile(join(b, f.path)))).toBe(true);
  });

  it('parses splits and rejects nonsense', () => {
    expect(parseSplit('70/25/5')).toEqual([70, 25, 5]);
    expect(parseSplit('0.8,0.1,0.1')).toEqual([0.8, 0.1, 0.1]);
    expect(() => parseSplit('70/30')).toThrow(/three non-negative numbers.*"70\/30"/);
  });
});

// The compiled CLI exists after `npm run build` (npm test's pretest).
const cli = join(process.cwd(), 'bin', 'crystalwatch.js');
const built = existsSync(join(process.cwd(), 'dist', 'simulator', 'command.js'));

describe.skipIf(!built)('crystalwatch simulate dataset (compiled CLI)', () => {
  it('writes the binary split layout and reports files as JSON', async () => {
    const out = await tempDir();
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [
      cli,
      'simulate',
      'dataset',
      '--out',
      out,
      '--count',
      '9',
      '--seed',
      '5',
      '--layout',
      'binary',
      '--split',
      '70/25/5',
      '--json',
    ]);
    const report = JSON.parse(stdout) as { count: number; files: { path: string; label: string }[] };
    expect(report.count).toBe(9);
    expect(report.files.filter((f) => f.label === 'pg')).toHaveLength(5);
    expect(stderr).toMatch(/simulate dataset 9\/9/);
    const written = await listFiles(out);
    expect(written).toEqual(report.files.map((f) => f.path).sort());
    for (const f of report.files) expect(f.path).toMatch(f.label === 'pg' ? /^(train|valid|test)\/1\// : /^(train|valid|test)\/0\//);
  });
});

describe.skipIf(!built)('RenderPool (compiled worker threads)', () => {
  it('renders the same bytes on worker threads as on this thread, and closes idempotently', async () => {
    // The worker module only exists compiled; import the compiled pool so it can find it.
    const { RenderPool } = (await import(join(process.cwd(), 'dist', 'simulator', 'pool.js'))) as typeof import('../simulator/pool.js');
    const { renderFrame } = await import('../simulator/index.js');
    const pool = new RenderPool(2);
    try {
      expect(pool.threads).toBe(2);
      const crops = await Promise.all([0, 1, 2, 3].map((seed) => pool.crop({ label: seed % 2 ? 'cex' : 'pg', seed })));
      for (const [seed, crop] of crops.entries()) {
        const local = await renderCrop({ label: seed % 2 ? 'cex' : 'pg', seed });
        expect(crop.png.equals(local.png)).toBe(true);
        expect([crop.width, crop.height, crop.label]).toEqual([local.width, local.height, local.label]);
      }
      const options = { seed: 3, frameIndex: 5, tSeconds: 80, pgOnsetS: 20, width: 320, height: 240, capturedAt: new Date('2026-02-03T04:05:06.007Z') };
      const remote = await pool.frame(options);
      const local = await renderFrame(options);
      expect(remote.png.equals(local.png)).toBe(true);
      expect(remote.truth).toEqual(local.truth);
    } finally {
      await pool.close();
      await pool.close();
    }
    await expect(pool.crop({ label: 'pg', seed: 1 })).rejects.toThrow(/after close/);
  });
});

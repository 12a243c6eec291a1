/** `crystalwatch predict` as a user runs it: a real child process on simulator crops. Needs `npm run build`. */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { writeTinyModelDir } from '../src/classify/fixtures.js';
import { renderCrop } from '../simulator/index.js';

const CLI = resolve(import.meta.dirname, '../bin/crystalwatch.js');
let root: string;
let modelDir: string;

function predict(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [CLI, 'predict', ...args], { env: { ...process.env, CRYSTALWATCH_ORT_THREADS: '1' } }, (err, stdout, stderr) => {
      done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cw-predict-'));
  // P(PG) = sigmoid(12·mean grey − 3): bright PG plates score higher than dark needle fields.
  modelDir = await writeTinyModelDir(
    join(root, 'model'),
    { layout: 'NHWC', width: 64, height: 64, channels: 1, kind: 'sigmoid', weights: [12], bias: [-3] },
    {
      input: { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' },
      output: { kind: 'sigmoid' },
    },
    { tfjs: false },
  );
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('crystalwatch predict', () => {
  it('--json: one object per file, in order; errors for unreadable and undecodable files; exit code 1', async () => {
    const files: string[] = [];
    for (const [i, label] of (['cex', 'pg', 'cex'] as const).entries()) {
      const crop = await renderCrop({ label, seed: 200 + i });
      const file = join(root, `${i}-${label}.png`);
      await writeFile(file, crop.png);
      files.push(file);
    }
    const garbage = join(root, 'garbage.png');
    await writeFile(garbage, 'not a png');
    const black = join(root, 'black.png');
    await writeFile(
      black,
      await sharp({ create: { width: 150, height: 150, channels: 3, background: { r: 0, g: 0, b: 0 } } })
        .png()
        .toBuffer(),
    );
    const missing = join(root, 'missing.png');

    const { code, stdout, stderr } = await predict(['--model', modelDir, '--json', files[0]!, garbage, files[1]!, missing, black, files[2]!]);
    expect(code).toBe(1);
    expect(stderr).toContain('2 of 6 file(s) could not be classified');
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; predicted: string; pPG: number | null; reason?: string });
    expect(lines.map((l) => l.file)).toEqual([files[0], garbage, files[1], missing, black, files[2]]);
    expect(lines.map((l) => l.predicted)).toEqual([
      expect.stringMatching(/^(cex|pg)$/),
      'error',
      expect.stringMatching(/^(cex|pg)$/),
      'error',
      'unusable',
      expect.stringMatching(/^(cex|pg)$/),
    ]);
    expect(lines[1]!.reason).toMatch(/cannot decode image/);
    expect(lines[3]!.reason).toMatch(/cannot read file \(ENOENT\)/);
    expect(lines[4]).toMatchObject({ pPG: null, reason: 'black' });
    for (const i of [0, 2, 5]) {
      expect(lines[i]!.pPG).toBeGreaterThan(0);
      expect(lines[i]!.pPG).toBeLessThan(1);
      expect(lines[i]!.predicted).toBe(lines[i]!.pPG! >= 0.5 ? 'pg' : 'cex');
      expect(Object.keys(lines[i]!).sort()).toEqual(['file', 'pPG', 'predicted']);
    }
  });

  it('exits 0 with a human-readable line per file when all files classify', async () => {
    const file = join(root, 'ok.png');
    await writeFile(file, (await renderCrop({ label: 'pg', seed: 300 })).png);
    const { code, stdout } = await predict(['--model', modelDir, file]);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: (cex|pg)  P\\(PG\\)=0\\.\\d{4}\\n$`));
  });

  it('names the missing model folder', async () => {
    const { code, stderr } = await predict(['--model', join(root, 'nope'), 'x.png']);
    expect(code).toBe(1);
    expect(stderr).toContain(`model card ${join(root, 'nope', 'card.json')}: not found`);
  });
});

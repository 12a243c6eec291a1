import { beforeAll, describe, expect, it } from 'vitest';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { renderCrop } from '../simulator/index.js';
import { loadModelCard, modelFile, type ModelCard } from '../src/model/card.js';
import { decodeCrop } from '../src/model/preprocess.js';
import { oodScore, type OodStats } from '../src/model/ood.js';
import { Classifier } from '../src/classify/index.js';

const MODEL_DIR = join(import.meta.dirname, '..', 'models', 'default');
let card: ModelCard;
let onnxPath: string;

beforeAll(async () => {
  ({ card } = await loadModelCard(MODEL_DIR));
  onnxPath = modelFile(card, MODEL_DIR, 'onnx')!;
});

async function score(session: ort.InferenceSession, images: Buffer[]): Promise<{ pPG: Float32Array; embedding: Float32Array }> {
  const side = card.input.width;
  const batch = new Float32Array(images.length * side * side);
  for (let k = 0; k < images.length; k++) {
    const { input } = await decodeCrop(images[k]!, side);
    for (let i = 0; i < input.length; i++) batch[k * input.length + i] = input[i]! / 255;
  }
  const r = await session.run({ [card.input.name!]: new ort.Tensor('float32', batch, [images.length, side, side, 1]) });
  return { pPG: r[card.output.name!]!.data as Float32Array, embedding: r[card.output.embeddingName!]!.data as Float32Array };
}

describe('shipped default model (models/default)', () => {
  it('has a valid card that documents what classify needs, and is at most 5 MB', async () => {
    expect(card.input).toEqual({
      layout: 'NHWC',
      width: 64,
      height: 64,
      channels: 1,
      colorOrder: 'gray',
      resize: 'squash',
      normalization: 'unit',
      name: 'input',
    });
    expect(card.output).toEqual({ kind: 'sigmoid', name: 'p_pg', embeddingName: 'embedding' });
    expect(card.provenance?.seed).toEqual(expect.any(Number));
    expect(card.provenance?.command).toMatch(/crystalwatch train/);
    expect(card.architecture?.flopsPerImage).toBeLessThanOrEqual(30e6);
    let total = 0;
    for (const f of await readdir(MODEL_DIR, { recursive: true })) {
      const s = await stat(join(MODEL_DIR, f));
      if (s.isFile()) total += s.size;
    }
    expect(total).toBeLessThanOrEqual(5 * 1024 * 1024);
    for (const f of ['report/report.md', 'report/report.json', 'report/confusion.png', 'report/roc.png'])
      expect((await stat(join(MODEL_DIR, f))).size).toBeGreaterThan(100);
    execFileSync('/usr/bin/python3', ['-c', `import onnx; onnx.checker.check_model(onnx.load(${JSON.stringify(onnxPath)}), full_check=True)`]);
  });

  it('is right on ≥ 99 % of simulator crops from seeds it never saw (onnxruntime)', async () => {
    const session = await ort.InferenceSession.create(onnxPath);
    try {
      const labels: number[] = [];
      const pngs: Buffer[] = [];
      for (let k = 0; k < 200; k++) {
        const label = k % 2 === 0 ? 'pg' : 'cex';
        pngs.push((await renderCrop({ label, seed: 9_100_000 + k })).png);
        labels.push(label === 'pg' ? 1 : 0);
      }
      let right = 0;
      for (let start = 0; start < pngs.length; start += 50) {
        const { pPG } = await score(session, pngs.slice(start, start + 50));
        pPG.forEach((p, i) => {
          if ((p >= card.threshold ? 1 : 0) === labels[start + i]) right++;
        });
      }
      expect(right / pngs.length).toBeGreaterThanOrEqual(0.99);
    } finally {
      await session.release();
    }
  });

  it('scores probe crops in distribution; the two gates together refuse noise, flat grey and a checkerboard', async () => {
    const stats = card.ood as unknown as OodStats;
    expect(card.calibration?.status).toBe('uncalibrated');
    const session = await ort.InferenceSession.create(onnxPath);
    try {
      const crops = await Promise.all(
        Array.from({ length: 20 }, (_, k) => renderCrop({ label: k % 2 ? 'cex' : 'pg', seed: 9_200_000 + k }).then((c) => c.png)),
      );
      const inDist = await score(session, crops);
      const d = stats.dimensions;
      const inside = Array.from({ length: crops.length }, (_, k) => oodScore(inDist.embedding.subarray(k * d, (k + 1) * d), stats)).filter(
        (s) => s <= stats.threshold,
      ).length;
      expect(inside).toBeGreaterThanOrEqual(18);
    } finally {
      await session.release();
    }
    // The uncalibrated statistics are permissive on purpose (unseen cameras must pass), so the
    // model-free gate is what refuses pictures that are not probe images.
    const side = 200;
    const noise = Buffer.from(Array.from({ length: side * side }, (_, i) => (Math.imul(i + 1, 2654435761) >>> 24) & 255));
    const raw = (pixels: Buffer) =>
      sharp(pixels, { raw: { width: side, height: side, channels: 1 } })
        .png()
        .toBuffer();
    const strange = await Promise.all([
      raw(noise),
      raw(Buffer.alloc(side * side, 128)),
      raw(Buffer.from(Array.from({ length: side * side }, (_, i) => ((Math.floor(i / side / 25) + Math.floor((i % side) / 25)) % 2 ? 255 : 0)))),
    ]);
    const classifier = await Classifier.load(MODEL_DIR, { worker: false });
    try {
      const results = await classifier.classify(strange);
      expect(results.map((r) => [r.predicted, r.reason])).toEqual([
        ['unusable', 'not-probe'],
        ['unusable', 'blank'],
        ['unusable', 'not-probe'],
      ]);
    } finally {
      await classifier.close();
    }
  });
});

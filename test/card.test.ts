import { describe, it, expect, afterAll } from 'vitest';
import { mkdtemp, writeFile, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModelCard, parseModelCard, modelFile, type ModelCardInput } from '../src/model/card.js';

const georgia: ModelCardInput = {
  name: 'georgia-resnet101',
  version: '1.0.0',
  format: 'onnx',
  file: 'model.onnx',
  input: { layout: 'NHWC', width: 224, height: 224, channels: 3, colorOrder: 'bgr', resize: 'squash', normalization: 'caffe' },
  output: { kind: 'sigmoid' },
  classNames: ['cex', 'pg'],
};

const dirs: string[] = [];
async function cardDir(card: unknown, raw?: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cw-card-'));
  dirs.push(dir);
  await writeFile(join(dir, 'card.json'), raw ?? JSON.stringify(card));
  return dir;
}
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

describe('model card', () => {
  it('loads a valid card, fills defaults and resolves the model path', async () => {
    const dir = await cardDir(georgia);
    const { card, modelPath } = await loadModelCard(dir);
    expect(card.threshold).toBe(0.5);
    expect(card.input.normalization).toBe('caffe');
    expect(modelPath).toBe(join(dir, 'model.onnx'));
  });

  it('names file, field and value for a bad layout', async () => {
    const dir = await cardDir({ ...georgia, input: { ...georgia.input, layout: 'HWC' } });
    await expect(loadModelCard(dir)).rejects.toThrow(`model card ${join(dir, 'card.json')}: input.layout must be "NHWC" or "NCHW", got "HWC"`);
  });

  it('lists every problem, including missing fields and bad normalisation', () => {
    const bad = { ...georgia, version: undefined, input: { ...georgia.input, normalization: 'imagenet', channels: 4 } };
    let message = '';
    try {
      parseModelCard(bad, 'models/x/card.json');
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^model card models\/x\/card\.json: /);
    expect(message).toContain('version is required');
    expect(message).toContain('input.normalization must be "unit", "tf", "caffe", "torch" or');
    expect(message).toContain('got "imagenet"');
    expect(message).toContain('input.channels must be 1 or 3, got 4');
  });

  it('accepts an explicit normalisation and checks its length against channels', () => {
    const ok = parseModelCard({
      ...georgia,
      input: { ...georgia.input, colorOrder: 'rgb', normalization: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], scale: 1 / 255 } },
    });
    expect(ok.input.normalization).toEqual({ mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25], scale: 1 / 255 });
    expect(() => parseModelCard({ ...georgia, input: { ...georgia.input, normalization: { mean: [1, 2], std: [1], scale: 1 } } })).toThrow(
      'input.normalization.mean must have 1 or 3 (input.channels) values, got 2',
    );
  });

  it('requires pgIndex for softmax and checks it against classNames', () => {
    expect(() => parseModelCard({ ...georgia, output: { kind: 'softmax' } })).toThrow('output.pgIndex is required');
    expect(() => parseModelCard({ ...georgia, output: { kind: 'softmax', pgIndex: 2 } })).toThrow('output.pgIndex must be below classNames.length (2), got 2');
    expect(parseModelCard({ ...georgia, output: { kind: 'softmax', pgIndex: 1 } }).output.pgIndex).toBe(1);
  });

  it('checks gray vs channels and keeps ood statistics as given', () => {
    expect(() => parseModelCard({ ...georgia, input: { ...georgia.input, channels: 1 } })).toThrow(
      'input.colorOrder must be "gray" when input.channels is 1, got "bgr"',
    );
    const withEmbedding = { ...georgia, output: { kind: 'sigmoid' as const, embeddingName: 'features' } };
    const card = parseModelCard({ ...withEmbedding, ood: { threshold: 3, mean: [0, 1], var: [1, 1] } });
    expect(card.ood).toEqual({ threshold: 3, mean: [0, 1], var: [1, 1] });
  });

  it('refuses at load time an ood block the scorer cannot read, naming the field', async () => {
    const withEmbedding = { ...georgia, output: { kind: 'sigmoid' as const, embeddingName: 'features' } };
    const d = 64;
    const good = {
      method: 'mahalanobis-full-nearest-class',
      threshold: 1.5,
      percentile: 99.5,
      dimensions: d,
      classes: [{ name: 'cex', mean: new Array(d).fill(0), cholesky: new Array((d * (d + 1)) / 2).fill(0.5) }],
    };
    expect(parseModelCard({ ...withEmbedding, ood: good }).ood).toEqual(good);
    const short = await cardDir({ ...withEmbedding, ood: { ...good, classes: [{ ...good.classes[0], cholesky: new Array(12).fill(1) }] } });
    await expect(loadModelCard(short)).rejects.toThrow(`model card ${join(short, 'card.json')}: ood.classes[0].cholesky must have 2080 numbers`);
    await expect(loadModelCard(short)).rejects.toThrow('got 12 values');
    // What the shipped card looked like to the old reader: full statistics, no per-class var. Now read, not refused.
    const noVar = await cardDir({ ...withEmbedding, ood: good });
    await expect(loadModelCard(noVar)).resolves.toMatchObject({ card: { ood: { method: 'mahalanobis-full-nearest-class' } } });
    expect(() => parseModelCard({ ...withEmbedding, ood: { ...good, method: 'cosine' } })).toThrow(
      'ood.method must be "mahalanobis-full-nearest-class" or "mahalanobis-diag-nearest-class", got "cosine"',
    );
    expect(() => parseModelCard({ ...withEmbedding, ood: { threshold: 2, mean: [0, 1], var: [1, 0] } })).toThrow('ood.var[1] must be > 0, got 0');
    expect(() => parseModelCard({ ...withEmbedding, ood: { threshold: 2 } })).toThrow(
      'ood needs "classes" (as crystalwatch train writes it) or "mean" and "var" (or "std") arrays',
    );
    const singular = { ...good, classes: [{ ...good.classes[0], cholesky: new Array((d * (d + 1)) / 2).fill(0) }] };
    expect(() => parseModelCard({ ...withEmbedding, ood: singular })).toThrow('ood.classes[0].cholesky diagonal entry 0 must be > 0');
    // Statistics of an embedding the model does not output cannot be used.
    expect(() => parseModelCard({ ...georgia, ood: good })).toThrow('ood statistics need output.embeddingName');
  });

  it('carries the calibration status, and refuses an unknown one', () => {
    const note = "fitted on simulator profiles; run crystalwatch calibrate on this camera's clean frames";
    expect(parseModelCard({ ...georgia, calibration: { status: 'uncalibrated', note } }).calibration).toEqual({ status: 'uncalibrated', note });
    expect(() => parseModelCard({ ...georgia, calibration: { status: 'maybe' } })).toThrow(
      'calibration.status must be "uncalibrated" or "calibrated", got "maybe"',
    );
  });

  it('refuses a model file outside the card folder, and bad JSON, and a missing card', async () => {
    const escape = await cardDir({ ...georgia, file: '../elsewhere/model.onnx' });
    await expect(loadModelCard(escape)).rejects.toThrow('file must stay inside the card\'s folder, got "../elsewhere/model.onnx"');
    const broken = await cardDir(null, '{ "name": ');
    await expect(loadModelCard(broken)).rejects.toThrow(/card\.json: not valid JSON/);
    const empty = await mkdtemp(join(tmpdir(), 'cw-card-'));
    dirs.push(empty);
    await mkdir(join(empty, 'sub'));
    await expect(loadModelCard(join(empty, 'sub'))).rejects.toThrow(/not found; pass --model/);
  });

  it('resolves per-format files when both formats ship', async () => {
    const dir = await cardDir({ ...georgia, files: { onnx: 'model.onnx', tfjs: 'tfjs/model.json' } });
    const { card } = await loadModelCard(dir);
    expect(modelFile(card, dir, 'tfjs')).toBe(join(dir, 'tfjs', 'model.json'));
    expect(modelFile(card, dir, 'onnx')).toBe(join(dir, 'model.onnx'));
  });
});

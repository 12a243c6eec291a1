/**
 * Feature-map inference for tiled frames on the shipped model: the graph split finds the
 * trunk and head; trunk + JS head over a whole 64×64 input is the full model (the identity);
 * on simulator frames the feature-map path agrees with per-tile inference where it matters
 * (frame class, most tiles); models without the pattern and backends without a trunk keep tiles.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createRequire } from 'node:module';
import * as ort from 'onnxruntime-node';
import type { onnx as OnnxNamespace } from 'onnx-proto';
import { Classifier } from '../src/classify/index.js';
import { openBackend, type InferenceBackend } from '../src/classify/backends/index.js';
import { deriveTrunk, type TrunkModel } from '../src/classify/feature-map.js';
import { applyHead, poolWindows, windowStart } from '../src/classify/feature-pool.js';
import { channelTransform, cropAndResize, decodeImage, writeTensor } from '../src/classify/preprocess.js';
import { writeTinyModelDir } from '../src/classify/fixtures.js';
import { loadModelCard } from '../src/model/card.js';
import { renderCrop, renderFrame } from '../simulator/index.js';

const { onnx } = createRequire(import.meta.url)('onnx-proto') as { onnx: typeof OnnxNamespace };
const MODEL = resolve('models/default');
let root: string;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cw-feature-map-'));
});
afterAll(async () => {
  await Promise.all(open.map((c) => c.close()));
  await rm(root, { recursive: true, force: true });
});

async function load(dir: string, options: Parameters<typeof Classifier.load>[1] = {}): Promise<Classifier> {
  const c = await Classifier.load(dir, options);
  open.push(c);
  return c;
}

describe('deriveTrunk on the shipped model', () => {
  it('finds GlobalAveragePool → Flatten → Gemm → Sigmoid and cuts the trunk at res2_relu_out', async () => {
    const derived = deriveTrunk(await readFile(join(MODEL, 'model.onnx')), { layout: 'NHWC', outputName: 'p_pg', embeddingName: 'embedding' });
    if ('reason' in derived) throw new Error(`no trunk: ${derived.reason}`);
    expect(derived.featureName).toBe('res2_relu_out');
    expect(derived.head).toMatchObject({ inputs: 64, outputs: 1, activation: 'sigmoid' });
    const trunk = onnx.ModelProto.decode(derived.trunk).graph as OnnxNamespace.GraphProto;
    expect(trunk.output.map((o) => o.name)).toEqual(['res2_relu_out']);
    expect(trunk.node.map((n) => n.opType)).not.toContain('GlobalAveragePool');
    expect(trunk.node.map((n) => n.opType)).not.toContain('Gemm');
    expect(trunk.initializer.map((t) => t.name)).not.toContain('p_pg_W');
    const dims = trunk.input[0]!.type!.tensorType!.shape!.dim!.map((d) => d.dimParam || Number(d.dimValue));
    expect(dims).toEqual(['batch', 'height', 'width', 1]);
    expect(trunk.valueInfo).toEqual([]);
  });

  it('refuses a graph without the pattern, saying what it found', () => {
    const derived = deriveTrunk(buildGraph({ pattern: false }), { layout: 'NHWC', outputName: 'output' });
    expect(derived).toEqual({ reason: expect.stringContaining('not a Gemm') });
  });
});

/**
 * A small NCHW model with the pattern and the less common Gemm options: Relu → GAP → Flatten →
 * Gemm(alpha 0.5, transB 1) → Softmax; or (pattern false) the shape of onnx-graph.ts's tiny
 * models, ReduceMean → MatMul → Add → Sigmoid, which has no GlobalAveragePool or Gemm.
 */
function buildGraph({ pattern }: { pattern: boolean }): Uint8Array {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const vi = (name: string, dims: (number | string)[]) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
  const graph: OnnxNamespace.IGraphProto = pattern
    ? {
        name: 'pattern',
        node: [
          { opType: 'Relu', input: ['x'], output: ['features'] },
          { opType: 'GlobalAveragePool', input: ['features'], output: ['pooled'] },
          { opType: 'Flatten', input: ['pooled'], output: ['emb'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
          {
            opType: 'Gemm',
            input: ['emb', 'W', 'b'],
            output: ['logits'],
            attribute: [
              { name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 },
              { name: 'alpha', type: onnx.AttributeProto.AttributeType.FLOAT, f: 0.5 },
            ],
          },
          { opType: 'Softmax', input: ['logits'], output: ['probs'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
        ],
        initializer: [
          { name: 'W', dataType: FLOAT, dims: [2, 3], floatData: [1, -2, 0.5, -1, 3, 0.25] },
          { name: 'b', dataType: FLOAT, dims: [2], floatData: [0.1, -0.3] },
        ],
        input: [vi('x', ['N', 3, 6, 6])],
        output: [vi('probs', ['N', 2]), vi('emb', ['N', 3])],
      }
    : {
        name: 'tiny',
        node: [
          {
            opType: 'ReduceMean',
            input: ['x'],
            output: ['emb'],
            attribute: [
              { name: 'axes', type: onnx.AttributeProto.AttributeType.INTS, ints: [1, 2] },
              { name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 },
            ],
          },
          { opType: 'MatMul', input: ['emb', 'W'], output: ['projected'] },
          { opType: 'Add', input: ['projected', 'b'], output: ['logits'] },
          { opType: 'Sigmoid', input: ['logits'], output: ['output'] },
        ],
        initializer: [
          { name: 'W', dataType: FLOAT, dims: [1, 1], floatData: [1] },
          { name: 'b', dataType: FLOAT, dims: [1], floatData: [0] },
        ],
        input: [vi('x', ['N', 8, 8, 1])],
        output: [vi('output', ['N', 1])],
      };
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 7, opsetImport: [{ domain: '', version: 13 }], graph })).finish();
}

describe('feature-map arithmetic', () => {
  it('a Gemm with transB and alpha and a Softmax head: trunk + JS head equals the whole graph', async () => {
    const bytes = buildGraph({ pattern: true });
    const derived = deriveTrunk(bytes, { layout: 'NCHW', outputName: 'probs', embeddingName: 'emb' }) as TrunkModel;
    expect(derived.head).toMatchObject({ inputs: 3, outputs: 2, activation: 'softmax' });
    // W as the head holds it: row o = output o, alpha applied.
    expect(Array.from(derived.head.weights)).toEqual([0.5, -1, 0.25, -0.5, 1.5, 0.125]);
    const full = await ort.InferenceSession.create(bytes);
    const trunk = await ort.InferenceSession.create(derived.trunk);
    const x = Float32Array.from({ length: 2 * 3 * 6 * 6 }, (_, i) => Math.sin(i * 1.7) * 2);
    const want = await full.run({ x: new ort.Tensor('float32', x, [2, 3, 6, 6]) });
    const map = (await trunk.run({ x: new ort.Tensor('float32', x, [2, 3, 6, 6]) }))[derived.featureName]!;
    const fm = { data: map.data as Float32Array, dims: map.dims as [number, number, number, number] };
    for (let k = 0; k < 2; k++) {
      const emb = poolWindows(fm, k, [{ cx: 0, cy: 0 }], { width: 6, height: 6 });
      const probs = applyHead(derived.head, emb, 1);
      for (let c = 0; c < 3; c++) expect(emb[c]).toBeCloseTo((want.emb!.data as Float32Array)[k * 3 + c]!, 5);
      for (let o = 0; o < 2; o++) expect(probs[o]).toBeCloseTo((want.probs!.data as Float32Array)[k * 2 + o]!, 5);
    }
    // The trunk takes any spatial size: the point of it.
    const wide = await trunk.run({ x: new ort.Tensor('float32', new Float32Array(3 * 10 * 14), [1, 3, 10, 14]) });
    expect(wide[derived.featureName]!.dims).toEqual([1, 3, 10, 14]);
    await full.release();
    await trunk.release();
  });

  it('windows start at the nearest cell and stay inside the map', () => {
    expect(windowStart(0, 8, 8, 53)).toBe(0);
    expect(windowStart(37, 8, 8, 53)).toBe(5); // 4.6 cells → 5
    expect(windowStart(35, 8, 8, 53)).toBe(4); // 4.4 → 4
    expect(windowStart(363, 8, 8, 53)).toBe(45);
    expect(windowStart(420, 8, 8, 53)).toBe(45); // clamped: 53 − 8
  });
});

describe('the shipped model: trunk + JS head over a whole 64×64 input is the full model', () => {
  let backend: InferenceBackend;
  beforeAll(async () => {
    const { card, dir } = await loadModelCard(MODEL);
    backend = await openBackend({ modelDir: dir, card, backend: 'onnx', maxBatchSize: 8, threads: 1, featureMap: true });
    open.push(backend);
  });

  it('reproduces p_pg and the embedding within 1e-4 on CEX and PG crops', async () => {
    const { card } = await loadModelCard(MODEL);
    expect(backend.featureMap).toMatchObject({ supported: true });
    const head = (backend.featureMap as { head: TrunkModel['head'] }).head;
    const transform = channelTransform(card.input);
    const perImage = 64 * 64;
    for (const [label, seed] of [
      ['cex', 1],
      ['cex', 2],
      ['pg', 3],
      ['pg', 4],
    ] as const) {
      const crop = await renderCrop({ label, seed });
      const image = await decodeImage(crop.png, undefined, { grey: true });
      const pixels = await cropAndResize(image, { x: 0, y: 0, width: image.width, height: image.height }, card.input);
      const tensor = (): Float32Array => {
        const t = new Float32Array(perImage);
        writeTensor(pixels, card.input, transform, t, 0);
        return t;
      };
      const whole = await backend.run(tensor(), 1);
      const map = await backend.runFeatureMap!(tensor(), 1, 64, 64);
      expect(map.dims).toEqual([1, 64, 8, 8]);
      const embedding = poolWindows(map, 0, [{ cx: 0, cy: 0 }], { width: 8, height: 8 });
      const pPG = applyHead(head, embedding, 1)[0]!;
      expect(Math.abs(pPG - whole.pPG[0]!), `${label} seed ${seed}: P(PG)`).toBeLessThan(1e-4);
      const worst = Math.max(...Array.from(embedding, (v, c) => Math.abs(v - whole.embedding![c]!)));
      expect(worst, `${label} seed ${seed}: embedding`).toBeLessThan(1e-4);
    }
  });
});

describe('Classifier on 1280×960 simulator frames: feature-map vs per tile', () => {
  let featureMap: Classifier;
  let tiles: Classifier;
  const frames: { png: Buffer; label: 'cex' | 'pg' }[] = [];
  beforeAll(async () => {
    featureMap = await load(MODEL, { frameInference: 'feature-map' });
    tiles = await load(MODEL, { frameInference: 'tiles' });
    for (const [seed, pg] of [
      [11, false],
      [12, false],
      [13, true],
      [14, true],
    ] as const) {
      const f = await renderFrame({ seed, frameIndex: seed, tSeconds: 900, pgOnsetS: pg ? 300 : null, width: 1280, height: 960 });
      frames.push({ png: f.png, label: f.truth.label });
    }
  }, 60_000);

  it('says which path it runs', () => {
    expect(featureMap.info.frameInference).toBe('feature-map');
    expect(tiles.info.frameInference).toBe('tiles');
  });

  it('gives every tile an embedding and P(PG), with the frame classes of per-tile inference and most tiles close', async () => {
    const diffs: number[] = [];
    let tileFlips = 0;
    for (const { png, label } of frames) {
      const [a] = await featureMap.embed([png]);
      const [b] = await tiles.embed([png]);
      expect(a).toHaveLength(88); // 11 × 8 tiles of 192 px every 112
      expect(b).toHaveLength(88);
      expect(a![0]!.embedding).toHaveLength(64);
      const maxA = Math.max(...a!.map((t) => t.pPG));
      const maxB = Math.max(...b!.map((t) => t.pPG));
      expect(maxA >= 0.5, `${label} frame: feature-map max tile ${maxA}`).toBe(label === 'pg');
      expect(maxA >= 0.5, `${label} frame: per-tile max ${maxB}, feature-map ${maxA}`).toBe(maxB >= 0.5);
      a!.forEach((t, k) => {
        diffs.push(Math.abs(t.pPG - b![k]!.pPG));
        if (t.pPG >= 0.5 !== b![k]!.pPG >= 0.5) tileFlips += 1;
      });
    }
    diffs.sort((x, y) => x - y);
    // Measured (bench/feature-map.ts, 16 frames): median |ΔP(PG)| 0.0002, 3 % of tiles change class —
    // the trunk sees past a tile's edges, and origins round to 8-px cells. A misplaced window does far worse.
    expect(diffs[Math.floor(diffs.length / 2)]!).toBeLessThan(0.01);
    expect(tileFlips / diffs.length).toBeLessThan(0.1);
  });

  it('classify() answers as before: P(PG) of the max tile, the tiles at or above the threshold, a mean OOD score', async () => {
    const { png } = frames[2]!;
    const [result] = await featureMap.classify([png]);
    const [embedded] = await featureMap.embed([png]);
    const best = Math.max(...embedded!.map((t) => t.pPG));
    expect(result!.ood).toBeGreaterThan(0);
    expect(result!.tiles!.length).toBe(embedded!.filter((t) => t.pPG >= 0.5).length);
    for (const tile of result!.tiles!) expect(tile).toMatchObject({ width: 192, height: 192, pPG: expect.any(Number) });
    // The shipped card's OOD statistics were fitted per tile, so this frame may be judged out of
    // distribution; when it is judged, P(PG) is the max tile's.
    if (result!.predicted === 'pg' || result!.predicted === 'cex') expect(result!.pPG).toBeCloseTo(best, 5);
    else expect(result).toMatchObject({ predicted: 'unusable', reason: 'out-of-distribution' });
  });
});

/**
 * A model whose trunk is an 8×8 average pool (stride 8, no padding): the trunk has no context
 * effects, so where a tile's origin falls on a cell boundary its feature-map embedding must equal
 * its per-tile embedding, and elsewhere differ by at most the ≤ 4 px origin rounding. A window
 * one cell off breaks both. Head: sigmoid(4·mean − 2).
 */
function buildBlockMeanModel(): Uint8Array {
  const FLOAT = onnx.TensorProto.DataType.FLOAT;
  const INTS = onnx.AttributeProto.AttributeType.INTS;
  const vi = (name: string, dims: (number | string)[]) => ({
    name,
    type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
  });
  const graph: OnnxNamespace.IGraphProto = {
    name: 'block-mean',
    node: [
      { opType: 'Transpose', input: ['input'], output: ['nchw'], attribute: [{ name: 'perm', type: INTS, ints: [0, 3, 1, 2] }] },
      {
        opType: 'AveragePool',
        input: ['nchw'],
        output: ['cells'],
        attribute: [
          { name: 'kernel_shape', type: INTS, ints: [8, 8] },
          { name: 'strides', type: INTS, ints: [8, 8] },
        ],
      },
      { opType: 'GlobalAveragePool', input: ['cells'], output: ['pooled'] },
      { opType: 'Flatten', input: ['pooled'], output: ['embedding'] },
      { opType: 'Gemm', input: ['embedding', 'W', 'b'], output: ['logit'] },
      { opType: 'Sigmoid', input: ['logit'], output: ['p'] },
    ],
    initializer: [
      { name: 'W', dataType: FLOAT, dims: [1, 1], floatData: [4] },
      { name: 'b', dataType: FLOAT, dims: [1], floatData: [-2] },
    ],
    input: [vi('input', ['batch', 64, 64, 1])],
    output: [vi('p', ['batch', 1]), vi('embedding', ['batch', 1])],
  };
  return onnx.ModelProto.encode(onnx.ModelProto.create({ irVersion: 8, opsetImport: [{ domain: '', version: 17 }], graph })).finish();
}

describe('tile windows on the feature map (a block-mean model, no ood statistics)', () => {
  it('cell-aligned tiles match per-tile inference exactly, the others within the origin rounding', async () => {
    const dir = join(root, 'block-mean');
    await writeTinyModelDir(
      dir,
      { layout: 'NHWC', width: 64, height: 64, channels: 1, kind: 'sigmoid', weights: [1], bias: [0] },
      {
        input: { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit', name: 'input' },
        output: { kind: 'sigmoid', name: 'p', embeddingName: 'embedding' },
        tiling: { tile: 192, stride: 112 },
      },
      { tfjs: false },
    );
    await writeFile(join(dir, 'model.onnx'), buildBlockMeanModel());
    const options = { probe: false as const, quality: { minLaplacianVariance: 0 } };
    const auto = await load(dir, options);
    const tiles = await load(dir, { ...options, frameInference: 'tiles' });
    expect(auto.info.frameInference).toBe('feature-map'); // no statistics to contradict it
    // Grey levels rise 150 across and 60 down a 1280×960 frame: per resized pixel (×3), in unit values.
    const [sx, sy] = [(150 / 1280) * 3, (60 / 960) * 3].map((v) => v / 255) as [number, number];
    const raw = Buffer.alloc(1280 * 960);
    for (let y = 0; y < 960; y++) for (let x = 0; x < 1280; x++) raw[y * 1280 + x] = Math.round(40 + (150 * x) / 1280 + (60 * y) / 960);
    const png = await sharp(raw, { raw: { width: 1280, height: 960, channels: 1 } })
      .png()
      .toBuffer();
    const [a] = await auto.embed([png]);
    const [b] = await tiles.embed([png]);
    const [result] = await auto.classify([png]);
    expect(result!.predicted).not.toBe('unusable');
    expect(a).toHaveLength(88);
    let aligned = 0;
    a!.forEach((tile, k) => {
      // Tile k's origin in the 427×320 resized frame (tiles run row by row, 11 × 8), and its window's.
      const col = k % 11;
      const row = Math.floor(k / 11);
      const x = Math.min(427 - 64, Math.round((Math.min(col * 112, 1280 - 192) * 64) / 192));
      const y = Math.min(320 - 64, Math.round((Math.min(row * 112, 960 - 192) * 64) / 192));
      const dx = Math.abs(x - 8 * Math.min(53 - 8, Math.round(x / 8)));
      const dy = Math.abs(y - 8 * Math.min(40 - 8, Math.round(y / 8)));
      const delta = Math.abs(tile.embedding[0]! - b![k]!.embedding[0]!);
      if (dx === 0 && dy === 0) {
        aligned += 1;
        expect(delta, `tile ${k} at (${x}, ${y}) px of the resized frame: cell-aligned`).toBeLessThan(1e-5);
      } else {
        expect(delta, `tile ${k} at (${x}, ${y}): origin moved by (${dx}, ${dy}) px`).toBeLessThan(dx * sx + dy * sy + 1e-3);
      }
      expect(tile.pPG).toBeCloseTo(1 / (1 + Math.exp(-(4 * tile.embedding[0]! - 2))), 5);
    });
    expect(aligned).toBeGreaterThanOrEqual(4);
  });
});

describe('choosing the path', () => {
  it('auto keeps tiles for a card whose OOD statistics were fitted per tile (the shipped card), and says so', async () => {
    const logs: string[] = [];
    const c = await load(MODEL, { log: (m) => logs.push(m) });
    expect(c.info.frameInference).toBe('tiles');
    expect(logs.filter((m) => m.includes('per tile'))).toEqual([expect.stringContaining('ood statistics were fitted on per-tile embeddings')]);
  });

  it('auto takes the feature map when the card says its statistics were fitted on it', async () => {
    const dir = join(root, 'fitted-on-feature-map');
    await cp(MODEL, dir, { recursive: true });
    const card = JSON.parse(await readFile(join(dir, 'card.json'), 'utf8')) as { ood: Record<string, unknown> };
    card.ood.frameInference = 'feature-map';
    await writeFile(join(dir, 'card.json'), JSON.stringify(card));
    const c = await load(dir);
    expect(c.info.frameInference).toBe('feature-map');
  });

  it('a model without the pattern runs per tile under auto (one log line why) and refuses an explicit feature-map', async () => {
    const dir = await writeTinyModelDir(
      join(root, 'tiny'),
      { layout: 'NHWC', width: 32, height: 32, channels: 1, kind: 'sigmoid', weights: [4], bias: [-2] },
      {
        input: { layout: 'NHWC', width: 32, height: 32, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' },
        tiling: { tile: 96, stride: 96 },
      },
    );
    const logs: string[] = [];
    const c = await load(dir, { probe: false, log: (m) => logs.push(m) });
    expect(c.info.frameInference).toBe('tiles');
    expect(logs.filter((m) => m.includes('feature-map'))).toEqual([expect.stringContaining('is not a Gemm')]);
    const frame = (await renderFrame({ seed: 5, frameIndex: 0, tSeconds: 600, pgOnsetS: null, width: 640, height: 480 })).png;
    const [r] = await c.classify([frame]);
    expect(r!.tiles).toBeDefined(); // tiled, per tile, as before
    await expect(Classifier.load(dir, { frameInference: 'feature-map' })).rejects.toThrow(/frameInference "feature-map" is not possible: .*not a Gemm/);
  });

  it('the TF.js backend has no trunk: an explicit feature-map is refused, naming the backend', async () => {
    await expect(Classifier.load(MODEL, { backend: 'tfjs', frameInference: 'feature-map' })).rejects.toThrow(/tfjs backend runs whole models only/);
  });
});

/**
 * The WebAssembly SIMD kernels (src/classify/simd): the committed module is the .wat's, they load
 * here, and turned off (a runtime without SIMD, CRYSTALWATCH_SIMD=0) the JavaScript paths give
 * the same bytes. Their numbers are held to the reference code, on both paths, by
 * test/classify-preprocess-exact.test.ts. Needs `npm run build` (one test runs dist/ in a child).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { renderCrop } from '../simulator/index.js';
import { cropAndResize, decodeImage } from '../src/classify/preprocess.js';
import { gateStats } from '../src/classify/gates.js';
import { setSimdEnabled, simdKernels, simdStatus } from '../src/classify/simd/index.js';
import { Classifier } from '../src/classify/classifier.js';
import { defaultModelDir } from '../src/classify/command.js';
import type { ModelInput } from '../src/model/card.js';

const run = promisify(execFile);
const input: ModelInput = { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' };

describe('WebAssembly SIMD kernels', () => {
  afterEach(() => setSimdEnabled(true));

  it('kernels-wasm.ts is kernels.wat compiled (scripts/build-wasm.mjs --check)', async () => {
    const { stderr } = await run(process.execPath, ['scripts/build-wasm.mjs', '--check']);
    expect(stderr).toBe('');
  });

  it('load on this runtime (Node 20 has WebAssembly SIMD)', () => {
    expect(simdKernels()).toBeDefined();
    expect(simdStatus()).toBe('WebAssembly SIMD');
  });

  it('turned off, give a crop the same model input and gate statistics in JavaScript', async () => {
    const { png } = await renderCrop({ label: 'pg', seed: 31 });
    const image = await decodeImage(png, undefined, { grey: true });
    const region = { x: 0, y: 0, width: image.width, height: image.height };
    const simd = { pixels: await cropAndResize(image, region, input), stats: gateStats(image) };
    setSimdEnabled(false);
    expect(simdStatus()).toBe('JavaScript (turned off by a test)');
    const js = { pixels: await cropAndResize(image, region, input), stats: gateStats(image) };
    expect(js.pixels.length).toBe(64 * 64);
    expect(js.pixels.equals(simd.pixels)).toBe(true);
    expect(js.stats).toEqual(simd.stats);
  });

  it('turned off, a classifier says so when it loads (the stage, predict and calibrate log it); on, it says nothing of it', async () => {
    const said = async () => {
      const lines: string[] = [];
      const classifier = await Classifier.load(defaultModelDir(), { worker: false, log: (m) => lines.push(m) });
      await classifier.close();
      return lines.filter((l) => l.includes('crop resizing and gate statistics'));
    };
    expect(await said()).toEqual([]);
    setSimdEnabled(false);
    expect(await said()).toEqual([expect.stringContaining('run in JavaScript (turned off by a test): the same numbers')]);
  });

  it('CRYSTALWATCH_SIMD=0 turns them off for a process, and the status says so', async () => {
    const script = `import('./dist/src/classify/simd/index.js').then((m) => process.stdout.write(m.simdStatus()))`;
    const { CRYSTALWATCH_SIMD: _, ...env } = process.env;
    const on = await run(process.execPath, ['-e', script], { env });
    const off = await run(process.execPath, ['-e', script], { env: { ...process.env, CRYSTALWATCH_SIMD: '0' } });
    expect([on.stdout, off.stdout]).toEqual(['WebAssembly SIMD', 'JavaScript (turned off by CRYSTALWATCH_SIMD=0)']);
  });
});

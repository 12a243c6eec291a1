/**
 * The WebAssembly SIMD kernels (src/classify/simd): the committed module is the .wat's, and with
 * them off (a runtime without SIMD, CRYSTALWATCH_SIMD=0) crops still get resized, by sharp. Their
 * numbers are held to the reference code by test/classify-preprocess-exact.test.ts.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { renderCrop } from '../simulator/index.js';
import { cropAndResize, decodeImage } from '../src/classify/preprocess.js';
import { canResizeGrey, resizeGrey } from '../src/classify/resample.js';
import { setSimdEnabled, simdKernels } from '../src/classify/simd/index.js';
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
    expect(canResizeGrey()).toBe(true);
  });

  it('turned off, leave grey crops to sharp, within 2 grey levels of the kernel', async () => {
    const { png } = await renderCrop({ label: 'pg', seed: 31 });
    const image = await decodeImage(png, undefined, { grey: true });
    const region = { x: 0, y: 0, width: image.width, height: image.height };
    const simd = await cropAndResize(image, region, input);
    expect(simd.equals(resizeGrey(image.pixels, image.width, region, 64, 64))).toBe(true);

    setSimdEnabled(false);
    expect(canResizeGrey()).toBe(false);
    expect(() => resizeGrey(image.pixels, image.width, region, 64, 64)).toThrow(/no WebAssembly SIMD/);
    const bySharp = await cropAndResize(image, region, input);
    expect(bySharp.length).toBe(64 * 64);
    let worst = 0;
    for (let i = 0; i < bySharp.length; i++) worst = Math.max(worst, Math.abs(bySharp[i]! - simd[i]!));
    expect(worst).toBeLessThanOrEqual(2);
    expect(bySharp.equals(simd)).toBe(false); // sharp's own arithmetic: it did run
  });

  it('CRYSTALWATCH_SIMD=0 turns them off for a process', async () => {
    const script = `import('./dist/src/classify/simd/index.js').then((m) => process.stdout.write(String(m.simdKernels() !== undefined)))`;
    const on = await run(process.execPath, ['-e', script]);
    const off = await run(process.execPath, ['-e', script], { env: { ...process.env, CRYSTALWATCH_SIMD: '0' } });
    expect([on.stdout, off.stdout]).toEqual(['true', 'false']);
  });
});

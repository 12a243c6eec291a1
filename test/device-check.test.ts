import { describe, expect, it } from 'vitest';
import { icdManifests, parseNvidiaSmiList, vulkanLoadersFromLdconfig } from '../bench/device-detect.js';
import { bestFigure, callsFor, frameSettingName } from '../bench/device-check.js';

describe('device check: what it reads off the machine', () => {
  it('parses nvidia-smi -L, with and without a UUID, and ignores other lines', () => {
    const text = 'GPU 0: NVIDIA H200 (UUID: GPU-3f1c2a9e-0000-1111-2222-333344445555)\n  MIG 1g.18gb Device 0: (UUID: MIG-x)\nGPU 1: Tesla T4\n';
    expect(parseNvidiaSmiList(text)).toEqual([
      { index: 0, name: 'NVIDIA H200', uuid: 'GPU-3f1c2a9e-0000-1111-2222-333344445555' },
      { index: 1, name: 'Tesla T4' },
    ]);
    expect(parseNvidiaSmiList('No devices were found\n')).toEqual([]);
  });

  it('finds the Vulkan loader in ldconfig -p, and only libvulkan.so.1', () => {
    const text = [
      "512 libs found in cache `/etc/ld.so.cache'",
      '\tlibvulkan.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libvulkan.so.1',
      '\tlibvulkan_lvp.so (libc6,x86-64) => /lib/x86_64-linux-gnu/libvulkan_lvp.so',
      '\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1',
    ].join('\n');
    expect(vulkanLoadersFromLdconfig(text)).toEqual(['/lib/x86_64-linux-gnu/libvulkan.so.1']);
    expect(vulkanLoadersFromLdconfig('\tlibz.so.1 (libc6,x86-64) => /lib/libz.so.1\n')).toEqual([]);
  });

  it('takes ICD manifests from VK_DRIVER_FILES over the search directories', () => {
    const dirs = (dir: string) => (dir === '/usr/share/vulkan/icd.d' ? ['nvidia_icd.json', 'README'] : []);
    expect(icdManifests({}, dirs)).toEqual({ source: 'search directories', files: ['/usr/share/vulkan/icd.d/nvidia_icd.json'] });
    expect(icdManifests({ VK_DRIVER_FILES: '/a.json:/b.json', VK_ICD_FILENAMES: '/old.json' }, dirs)).toEqual({
      source: 'VK_DRIVER_FILES',
      files: ['/a.json', '/b.json'],
    });
    expect(icdManifests({ VK_ICD_FILENAMES: '/old.json' }, dirs)).toEqual({ source: 'VK_ICD_FILENAMES', files: ['/old.json'] });
  });
});

describe('device check: how it sizes and reads its measurements', () => {
  it('times enough calls for the wanted seconds, within bounds', () => {
    expect(callsFor(3, 0.01, 400)).toBe(300);
    expect(callsFor(3, 0.0001, 400)).toBe(400);
    expect(callsFor(3, 10, 400)).toBe(2);
    expect(callsFor(3, 0, 50)).toBe(50);
  });

  it('names frame settings as bench/classify.ts does for one frame per call', () => {
    expect(frameSettingName({ framesPerCall: 1, tileBatch: 64 })).toBe('tile_batch_64');
    expect(frameSettingName({ framesPerCall: 8, tileBatch: 1024 })).toBe('frames_8_per_call.tile_batch_1024');
  });

  it('picks the best GPU figure and leaves CPU engines out of the target', () => {
    const figures = {
      'classify.onnx.cpu.crops.batch_256.frames_per_s': 9000,
      'classify.tfjs.webgpu.crops.batch_64.frames_per_s': 4000,
      'classify.tfjs.webgpu.crops.batch_1024.frames_per_s': 25000,
      'classify.tfjs.webgpu.crops.batch_1024.latency_p50_ms': 90000,
      'classify.tfjs.wasm.crops.batch_64.frames_per_s': 99999,
    };
    const crops = /\.crops\.batch_\d+\.frames_per_s$/;
    expect(bestFigure(figures, crops, true)).toEqual({ figure: 'classify.tfjs.webgpu.crops.batch_1024.frames_per_s', value: 25000 });
    expect(bestFigure(figures, crops, false)?.value).toBe(99999);
    expect(bestFigure({ 'classify.onnx.cpu.crops.batch_64.frames_per_s': 1 }, crops, true)).toBeUndefined();
  });
});

/**
 * Simulator throughput: crops and full 1280×960 frames per second, on one thread and on the
 * worker pool, a whole dataset written to disk, and the camera writing a drop folder.
 * Aims (2-core machine): 200 crops/s, 20 frames/s.
 *
 *   node dist/bench/simulator.js [--quick]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderCrop, renderFrame, generateDataset, FrameCamera } from '../simulator/index.js';
import { RenderPool } from '../simulator/pool.js';
import { grainTexture, TEXTURE_GRAIN_SCALES } from '../simulator/texture.js';

const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

/** Rate per second of `n` jobs run with `concurrency` in flight. */
async function rate(n: number, concurrency: number, job: (i: number) => Promise<unknown>): Promise<{ perS: number; cpuMsPerJob: number }> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await job(next++);
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { perS: n / seconds, cpuMsPerJob: (cpu.user + cpu.system) / 1000 / n };
}

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  const q = options.quick;
  const out: Record<string, number | string> = {
    'simulator.machine.cpus': availableParallelism(),
    // Other processes on the machine slow every figure down; the load says how busy it was.
    'simulator.machine.load_avg_1m_at_start': round(loadavg()[0]!, 2),
  };

  process.stderr.write('bench simulator: texture tiles…\n');
  let t0 = performance.now();
  for (const s of TEXTURE_GRAIN_SCALES) grainTexture(s);
  out['simulator.texture_tiles.setup_ms'] = Math.round(performance.now() - t0);

  process.stderr.write('bench simulator: crops on one thread…\n');
  const nCrops = q ? 60 : 400;
  const crop1 = await rate(nCrops, 2, (i) => renderCrop({ label: i % 2 ? 'cex' : 'pg', seed: i }));
  out['simulator.crop.one_thread.crops_per_s'] = round(crop1.perS);
  out['simulator.crop.one_thread.cpu_ms_per_crop'] = round(crop1.cpuMsPerJob, 2);
  let bytes = 0;
  for (let i = 0; i < 20; i++) bytes += (await renderCrop({ label: i % 2 ? 'cex' : 'pg', seed: i })).png.length;
  out['simulator.crop.png_bytes_mean'] = Math.round(bytes / 20);

  const pool = new RenderPool();
  out['simulator.pool.threads'] = pool.threads;
  try {
    if (pool.threads > 0) {
      process.stderr.write(`bench simulator: crops on ${pool.threads} worker threads…\n`);
      // Warm-up: each worker builds its texture tiles once.
      await Promise.all(Array.from({ length: pool.threads * 4 }, (_, i) => pool.crop({ label: 'pg', seed: 1_000_000 + i })));
      const cropN = await rate(nCrops * 2, pool.threads * 3, (i) => pool.crop({ label: i % 2 ? 'cex' : 'pg', seed: i }));
      out['simulator.crop.pool.crops_per_s'] = round(cropN.perS);
    }

    process.stderr.write('bench simulator: 1280×960 frames on one thread…\n');
    const nFrames = q ? 6 : 40;
    const frame = (i: number) => renderFrame({ seed: 1, frameIndex: i, tSeconds: 300 + i, pgOnsetS: 240 });
    const frame1 = await rate(nFrames, 2, frame);
    out['simulator.frame_1280x960.one_thread.frames_per_s'] = round(frame1.perS, 2);
    out['simulator.frame_1280x960.one_thread.cpu_ms_per_frame'] = round(frame1.cpuMsPerJob);
    out['simulator.frame_1280x960.png_bytes'] = (await frame(0)).png.length;

    if (pool.threads > 0) {
      process.stderr.write(`bench simulator: frames on ${pool.threads} worker threads…\n`);
      const poolFrame = (i: number) => pool.frame({ seed: 1, frameIndex: i, tSeconds: 300 + i, pgOnsetS: 240 });
      await Promise.all(Array.from({ length: pool.threads }, (_, i) => poolFrame(1000 + i)));
      const frameN = await rate(nFrames * 2, pool.threads * 2, poolFrame);
      out['simulator.frame_1280x960.pool.frames_per_s'] = round(frameN.perS, 2);
    }
  } finally {
    await pool.close();
  }

  const dir = await mkdtemp(join(tmpdir(), 'cw-bench-sim-'));
  try {
    process.stderr.write('bench simulator: generateDataset to disk…\n');
    const count = q ? 120 : 1000;
    t0 = performance.now();
    await generateDataset({ out: join(dir, 'dataset'), count, seed: 1, split: [70, 25, 5] });
    out['simulator.dataset.crops_per_s'] = round(count / ((performance.now() - t0) / 1000));

    process.stderr.write('bench simulator: FrameCamera as fast as it can…\n');
    const fps = 20;
    const durationS = q ? 0.6 : 3;
    const camera = new FrameCamera({ out: join(dir, 'frames'), fps, durationS, pgOnsetS: 0.2, seed: 2, realTime: false, workers: 2 });
    t0 = performance.now();
    await camera.start();
    await camera.done();
    await camera.close();
    out['simulator.camera_1280x960.frames_per_s'] = round(camera.framesWritten / ((performance.now() - t0) / 1000), 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  out['simulator.machine.load_avg_1m_at_end'] = round(loadavg()[0]!, 2);
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await bench({ quick: process.argv.includes('--quick') });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

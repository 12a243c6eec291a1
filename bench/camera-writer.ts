/**
 * Camera software for the byte-path benchmark (ingest-bytes.ts), in a child process of its
 * own so the CPU it spends writing files is not counted as crystalwatch's. Each camera
 * writes, at a steady rate, a sidecar and then the frame as a temporary file renamed into
 * place (as the simulator's camera does), replaying frames rendered before the clock starts.
 *
 *   node dist/bench/camera-writer.js '<json: {cameras: [{dir}], pool: [paths], fps, seconds}>'
 *
 * Prints `{"written": N}` on stdout when done.
 */
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

interface WriterPlan {
  cameras: Array<{ id: string; dir: string }>;
  pool: string[];
  fps: number;
  seconds: number;
}

const plan = JSON.parse(process.argv[2] ?? '{}') as WriterPlan;
const pool = plan.pool.map((path) => readFileSync(path));
const count = Math.round(plan.fps * plan.seconds);
const intervalMs = 1000 / plan.fps;
const started = performance.now();

async function camera(index: number, camera: { id: string; dir: string }): Promise<number> {
  // Cameras are spread over one frame interval, as independent cameras would be.
  const offset = (index * intervalMs) / plan.cameras.length;
  for (let i = 0; i < count; i += 1) {
    const wait = started + offset + i * intervalMs - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const name = `f${String(i).padStart(6, '0')}`;
    const sidecar = { camera: camera.id, capturedAt: new Date().toISOString(), label: 'cex', frameIndex: i };
    await writeFile(join(camera.dir, `${name}.json`), JSON.stringify(sidecar));
    await writeFile(join(camera.dir, `${name}.png.tmp`), pool[(i + index) % pool.length]!);
    await rename(join(camera.dir, `${name}.png.tmp`), join(camera.dir, `${name}.png`));
  }
  return count;
}

const written = (await Promise.all(plan.cameras.map((c, i) => camera(i, c)))).reduce((a, b) => a + b, 0);
process.stdout.write(JSON.stringify({ written }) + '\n');

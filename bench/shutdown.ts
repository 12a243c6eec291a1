/**
 * SIGTERM → exit of the real processes, under load: `crystalwatch demo` (two simulated
 * cameras writing full frames) and `crystalwatch run` (one camera folder fed by
 * `crystalwatch simulate frames`). Each is started, left to classify frames, sent SIGTERM,
 * and timed until it has exited. docker stop and Kubernetes send SIGKILL after 10 s; the
 * aim is under 3 s. Figures: p50 and max over the runs, and each run's exit code.
 *
 *   node dist/bench/shutdown.js [--quick]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { sleep } from './support.js';

const cli = path.resolve(import.meta.dirname, '..', '..', 'bin', 'crystalwatch.js');

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Resolves with the first stdout/stderr line that `test` accepts; rejects at the deadline or exit. */
function waitForLine(child: ChildProcess, test: (line: string) => boolean, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const streams = [child.stdout!, child.stderr!].map((s) => createInterface({ input: s }));
    const finish = (err?: Error) => {
      clearTimeout(timer);
      child.off('exit', onExit);
      for (const s of streams) s.close();
      if (err) reject(err);
      else resolve();
    };
    const onExit = (code: number | null) => finish(new Error(`${what}: process exited (${code}) first`));
    const timer = setTimeout(() => finish(new Error(`${what}: no such line within ${ms} ms`)), ms);
    child.once('exit', onExit);
    for (const s of streams) s.on('line', (line) => test(line) && finish());
  });
}

/** SIGTERM, then the milliseconds until the exit and the exit code. */
function terminate(child: ChildProcess): Promise<{ ms: number; code: number | null }> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const kill = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('exit', (code) => {
      clearTimeout(kill);
      resolve({ ms: performance.now() - t0, code });
    });
    child.kill('SIGTERM');
  });
}

async function demoOnce(dir: string, loadS: number): Promise<{ ms: number; code: number | null; startMs?: number }> {
  const spawned = performance.now();
  const child = spawn(process.execPath, [cli, 'demo', '--json', '--port', '0', '--data-dir', dir, '--fps', '4', '--onset', '2'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // A status line with frames counted on both cameras means the whole pipeline is busy.
  let seen = 0;
  // Start-up: spawn → the first prediction (node's own start, the broker, the model, the first frame).
  await waitForLine(child, (line) => line.includes('"event":"first-prediction"'), 120_000, 'demo first prediction');
  const startMs = performance.now() - spawned;
  await waitForLine(child, (line) => line.includes('"event":"status"') && (seen += 1) > loadS && /"frames":[1-9]/.test(line), 120_000, 'demo');
  return { ...(await terminate(child)), startMs };
}

async function runOnce(dir: string, loadS: number): Promise<{ ms: number; code: number | null }> {
  const watch = path.join(dir, 'cam-1');
  await mkdir(watch, { recursive: true });
  const config = path.join(dir, 'plant.json');
  await writeFile(
    config,
    JSON.stringify({ dataDir: path.join(dir, 'data'), cameras: [{ id: 'cam-1', watch, runId: 'bench' }], web: { port: 0 }, log: { level: 'info' } }),
  );
  const camera = spawn(process.execPath, [cli, 'simulate', 'frames', '--out', watch, '--fps', '4', '--seed', '3'], { stdio: 'ignore' });
  try {
    const child = spawn(process.execPath, [cli, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForLine(child, (line) => line.includes('crystalwatch running'), 120_000, 'run');
    // Load: the camera keeps writing while the pipeline runs for loadS seconds.
    await sleep(loadS * 1000);
    return await terminate(child);
  } finally {
    camera.kill('SIGTERM');
  }
}

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  const runs = options.quick ? 2 : 5;
  const loadS = options.quick ? 3 : 6;
  const figures: Record<string, number | string> = {};
  for (const [name, once] of [
    ['demo', demoOnce],
    ['run', runOnce],
  ] as const) {
    const times: number[] = [];
    const starts: number[] = [];
    const codes: (number | null)[] = [];
    for (let i = 0; i < runs; i++) {
      const dir = await mkdtemp(path.join(os.tmpdir(), `cw-bench-shutdown-${name}-`));
      try {
        const { ms, code, startMs } = (await once(dir, loadS)) as { ms: number; code: number | null; startMs?: number };
        times.push(ms);
        if (startMs !== undefined) starts.push(startMs);
        codes.push(code);
        process.stderr.write(`bench shutdown: ${name} run ${i + 1}/${runs}: ${(ms / 1000).toFixed(2)} s, exit ${code}\n`);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }
    times.sort((a, b) => a - b);
    figures[`shutdown_${name}_sigterm_p50_seconds`] = Math.round(percentile(times, 50)) / 1000;
    figures[`shutdown_${name}_sigterm_max_seconds`] = Math.round(times[times.length - 1]!) / 1000;
    figures[`shutdown_${name}_exit_codes`] = codes.join(',');
    if (starts.length) {
      starts.sort((a, b) => a - b);
      figures[`startup_${name}_first_prediction_p50_seconds`] = Math.round(percentile(starts, 50)) / 1000;
      figures[`startup_${name}_first_prediction_max_seconds`] = Math.round(starts[starts.length - 1]!) / 1000;
    }
  }
  figures.shutdown_loadavg_1m = Math.round(os.loadavg()[0]! * 100) / 100;
  return figures;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const figures = await bench({ quick: process.argv.includes('--quick') });
  process.stdout.write(`${JSON.stringify(figures, null, 2)}\n`);
}

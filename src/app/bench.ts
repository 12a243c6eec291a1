/**
 * `npm run bench`: runs every area's benchmark (bench/<area>.ts, each exporting
 * `bench({ quick })`) one after the other — they share two cores, so never at once — each in a
 * process of its own, and returns one JSON document with stable figure names and the machine
 * they ran on.
 */
import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { packageRoot } from '../config/paths.js';

export const BENCH_AREAS = [
  'broker',
  'simulator',
  'ingest',
  'classify',
  'feature-map',
  'trust',
  'calibrate',
  'alert',
  'web',
  'train',
  'e2e',
  'shutdown',
] as const;

export interface BenchDocument {
  machine: Record<string, string | number>;
  quick: boolean;
  startedAt: string;
  figures: Record<string, number | string>;
  seconds: Record<string, number>;
  errors: Record<string, string>;
}

export async function runBenchmarks(options: { quick: boolean; only?: string[]; out?: string }): Promise<BenchDocument> {
  const cpus = os.cpus();
  const doc: BenchDocument = {
    machine: {
      cores: cpus.length,
      cpuModel: cpus[0]?.model ?? 'unknown',
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
      platform: `${os.platform()} ${os.arch()}`,
    },
    quick: options.quick,
    startedAt: new Date().toISOString(),
    figures: {},
    seconds: {},
    errors: {},
  };
  const areas = options.only ?? [...BENCH_AREAS];
  const distBench = path.join(packageRoot(), 'dist', 'bench');
  for (const area of areas) {
    const file = path.join(distBench, `${area}.js`);
    if (!existsSync(file)) {
      doc.errors[area] = `no benchmark at ${file} (run npm run build)`;
      continue;
    }
    const started = performance.now();
    process.stderr.write(`bench: ${area}…\n`);
    try {
      Object.assign(doc.figures, await runArea(file, options.quick));
    } catch (err) {
      doc.errors[area] = (err as Error).stack ?? String(err);
    }
    doc.seconds[area] = Math.round((performance.now() - started) / 100) / 10;
  }
  if (options.out) await writeFile(options.out, `${JSON.stringify(doc, null, 2)}\n`);
  return doc;
}

/**
 * One area in a process of its own, so its figures (peak RSS above all: the allocator keeps what
 * an earlier area used) and its threads are its own: bench-area.ts imports the area's module,
 * runs `bench()` and writes the figures as JSON on stdout; its stderr (progress) passes through.
 */
function runArea(file: string, quick: boolean): Promise<Record<string, number | string>> {
  return new Promise((resolve, reject) => {
    const runner = path.join(import.meta.dirname, 'bench-area.js');
    // The parent's V8 heap flags (npm run bench: the one `npm start` runs with) hold for each area; not --inspect and the like.
    const heapFlags = process.execArgv.filter((flag) => /^--(initial|max)-(old|semi)-space-size=/.test(flag));
    const child = spawn(process.execPath, [...heapFlags, runner, file, ...(quick ? ['--quick'] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    const out: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code !== 0) return reject(new Error(`bench area ${file} exited with ${signal ?? code}`));
      try {
        resolve(JSON.parse(Buffer.concat(out).toString('utf8')) as Record<string, number | string>);
      } catch (err) {
        reject(new Error(`bench area ${file} printed no JSON figures (${(err as Error).message})`));
      }
    });
  });
}

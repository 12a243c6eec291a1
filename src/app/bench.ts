/**
 * `npm run bench`: runs every area's benchmark (bench/<area>.ts, each exporting
 * `bench({ quick })`) one after the other — they share two cores, so never at once —
 * and returns one JSON document with stable figure names and the machine they ran on.
 */
import os from 'node:os';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
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

type BenchFn = (options: { quick: boolean }) => Promise<Record<string, number | string>>;

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
      const mod = (await import(pathToFileURL(file).href)) as { bench?: BenchFn };
      if (typeof mod.bench !== 'function') throw new Error(`${file} does not export bench()`);
      Object.assign(doc.figures, await mod.bench({ quick: options.quick }));
    } catch (err) {
      doc.errors[area] = (err as Error).stack ?? String(err);
    }
    doc.seconds[area] = Math.round((performance.now() - started) / 100) / 10;
  }
  if (options.out) await writeFile(options.out, `${JSON.stringify(doc, null, 2)}\n`);
  return doc;
}

/**
 * One benchmark area in a process of its own (src/app/bench.ts starts it):
 * `node dist/src/app/bench-area.js <dist/bench/area.js> [--quick]` imports the area's module,
 * runs `bench()` and writes its figures as one JSON document on stdout.
 */
import { pathToFileURL } from 'node:url';
import { exitPastStragglers } from './lifecycle.js';

type BenchFn = (options: { quick: boolean }) => Promise<Record<string, number | string>>;

const file = process.argv[2];
try {
  if (!file) throw new Error('bench-area: give the area module, e.g. dist/bench/e2e.js');
  const mod = (await import(pathToFileURL(file).href)) as { bench?: BenchFn };
  if (typeof mod.bench !== 'function') throw new Error(`${file} does not export bench()`);
  process.stdout.write(JSON.stringify(await mod.bench({ quick: process.argv.includes('--quick') })));
} catch (err) {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exitCode = 1;
}
// As the CLI does after closing: a straggler still holding the event loop a second after the area
// is done is named, and not waited for.
exitPastStragglers((resources) =>
  process.stderr.write(`bench-area: still running 1 s after ${file ?? 'the area'} finished (${resources.join(', ')}); exiting\n`),
);

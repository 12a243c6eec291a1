#!/usr/bin/env -S node --initial-old-space-size=64
// The compiled CLI lives in dist/ (built by `npm ci` through the `prepare` script).
// --initial-old-space-size=64: V8 starts the old generation small and, at the ~15 MB this
// process holds, ran a full collection every few MB of frames (50 per 3,000 crops at batch 1,
// 98 in 8 s of 8 × 10 fps ingest); starting it at 64 MB cuts those to a handful, batch-1 p99
// 6–7 → 4 ms, ingest 16–18 → 14 ms of CPU a frame (README, "Benchmarks"). A V8 heap flag
// works only on the command line (Node refuses it in NODE_OPTIONS), so it lives here, once: the
// `crystalwatch` command, `npm start` and `npm run bench` all run this file by its shebang.
// `env -S` needs coreutils 8.30+ (Debian 10+, Ubuntu 19.04+), not BusyBox.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('crystalwatch: dist/ is missing; run `npm ci` (or `npm run build`) in the project folder first.');
  process.exit(1);
}
await import(cli.href);

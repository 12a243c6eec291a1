#!/usr/bin/env node
// The compiled CLI lives in dist/ (built by `npm ci` through the `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/src/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('crystalwatch: dist/ is missing; run `npm ci` (or `npm run build`) in the project folder first.');
  process.exit(1);
}
await import(cli.href);

#!/usr/bin/env node
// Takes the README's screenshot of the live page from a real `crystalwatch demo` run:
// starts the demo, waits for the PG alert, lets the page fill, and saves docs/live-page.png.
// Needs Debian's chromium (`npm test`'s pretest installs it). Usage: node scripts/screenshot-demo.mjs [out.png]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const root = path.resolve(import.meta.dirname, '..');
const out = path.resolve(process.argv[2] ?? path.join(root, 'docs', 'live-page.png'));
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'cw-shot-'));
const demo = spawn(process.execPath, [path.join(root, 'bin', 'crystalwatch.js'), 'demo', '--json', '--port', '0', '--data-dir', dataDir, '--onset', '25'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const events = createInterface({ input: demo.stdout });
let url = '';
let alertAt = 0;
for await (const line of events) {
  const event = JSON.parse(line);
  if (event.event === 'ready') {
    url = event.url;
    console.error(`demo ready at ${url}; waiting for the PG alert`);
  }
  if (event.event === 'alert' && event.alert.state === 'firing') {
    alertAt = Date.now();
    break;
  }
}
const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(`${url}/`);
  // Let a few frames, the trend and the evidence thumbnails arrive over the WebSocket.
  await page.waitForTimeout(Math.max(0, 8000 - (Date.now() - alertAt)));
  await page.screenshot({ path: out });
  console.error(`saved ${out}`);
} finally {
  await browser.close();
  demo.kill('SIGTERM');
  await new Promise((resolve) => demo.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
}

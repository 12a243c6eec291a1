/**
 * What several benches need, written once: a loopback port for a server a bench starts
 * later, a pause while load runs (benches measure over time; tests never sleep), a synthetic
 * grey camera frame and a latency percentile.
 */
import { createServer } from 'node:net';
import sharp from 'sharp';
import { xorshift32 } from '../src/model/rng.js';

/** A loopback TCP port that was free a moment ago (the OS picked it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      probe.close(() => resolve(port));
    });
  });
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A grey frame with needles and 5 bits of noise, so PNG sizes are realistic (1280×960: ~1 MB, like the cameras'). */
export async function syntheticFrame(width: number, height: number, seed: number): Promise<Buffer> {
  const raw = Buffer.alloc(width * height);
  let s = seed >>> 0 || 1;
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) {
      s = xorshift32(s);
      const needle = (x + 3 * y + seed) % 37 < 2 ? 140 : 0;
      raw[y * width + x] = Math.min(255, 30 + needle + (s & 0x1f));
    }
  }
  return sharp(raw, { raw: { width, height, channels: 1 } })
    .png()
    .toBuffer();
}

/** The p-th percentile (nearest rank) of ascending `sorted`; NaN when empty. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

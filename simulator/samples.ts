/**
 * Sample grids of each class for simulator/README.md:
 *   node dist/simulator/samples.js [--out simulator] [--cols 6] [--rows 3] [--seed 1] [--scale 0.6]
 * (sensor noise does not compress: 6 × 3 at 0.6 keeps each grid under 300 KB)
 * Crops keep their own size inside equal cells, so the grid also shows the size spread.
 */
import sharp, { type OverlayOptions } from 'sharp';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderCrop, type CrystalClass } from './crop.js';
import { mixSeed } from './random.js';

export async function sampleGrid(o: { label: CrystalClass; cols: number; rows: number; seed: number; scale?: number }): Promise<Buffer> {
  const cell = 236;
  const gap = 4;
  const composites: OverlayOptions[] = [];
  for (let r = 0; r < o.rows; r++) {
    for (let c = 0; c < o.cols; c++) {
      const crop = await renderCrop({ label: o.label, seed: mixSeed(o.seed, r * o.cols + c) });
      composites.push({
        input: crop.png,
        left: gap + c * (cell + gap) + Math.floor((cell - crop.width) / 2),
        top: gap + r * (cell + gap) + Math.floor((cell - crop.height) / 2),
      });
    }
  }
  const width = gap + o.cols * (cell + gap);
  const height = gap + o.rows * (cell + gap);
  const grid = await sharp({ create: { width, height, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(composites)
    .toColourspace('b-w')
    .png()
    .toBuffer();
  const scale = o.scale ?? 1;
  if (scale === 1) return grid;
  return sharp(grid)
    .resize(Math.round(width * scale))
    .toColourspace('b-w')
    .png({ compressionLevel: 9 })
    .toBuffer();
}

async function main(argv: string[]): Promise<void> {
  const arg = (name: string, fallback: string): string => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 && argv[i + 1] !== undefined ? argv[i + 1]! : fallback;
  };
  const out = arg('out', 'simulator');
  const cols = Number(arg('cols', '6'));
  const rows = Number(arg('rows', '3'));
  const seed = Number(arg('seed', '1'));
  const scale = Number(arg('scale', '0.6'));
  for (const label of ['cex', 'pg'] as const) {
    const png = await sampleGrid({ label, cols, rows, seed, scale });
    const path = join(out, `samples-${label}.png`);
    await sharp(png).toFile(path);
    console.error(`wrote ${path} (${(png.length / 1024).toFixed(0)} KiB)`);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  await main(process.argv.slice(2));
}

/**
 * Rasterise a SceneSpec: @napi-rs/canvas (Skia) draws the needles and grains and does the
 * defocus blur (layers with a large blur are drawn at reduced resolution and upsampled, which
 * is what defocus throws away anyway); one pass in JS converts to 8-bit gray and adds sensor
 * noise; sharp encodes the PNG.
 */
import { createCanvas, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import sharp from 'sharp';
import { Rng } from './random.js';
import type { AgglomerateSpec, NeedleSpec, SceneSpec } from './scene.js';

const GRAY: string[] = Array.from({ length: 256 }, (_, v) => `rgb(${v},${v},${v})`);
const gray = (v: number): string => GRAY[v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v)];

/** Draw one needle: a translucent body, bright edges; thin ones are just a bright line. */
function drawNeedle(ctx: SKRSContext2D, n: NeedleSpec): void {
  const c = Math.cos(n.angle);
  const s = Math.sin(n.angle);
  const hl = n.length / 2;
  const hw = n.width / 2;
  if (n.width < 2.2) {
    ctx.globalAlpha = 1;
    ctx.strokeStyle = gray(n.edgeGray);
    ctx.lineWidth = n.width;
    ctx.beginPath();
    ctx.moveTo(n.x - c * hl, n.y - s * hl);
    ctx.lineTo(n.x + c * hl, n.y + s * hl);
    ctx.stroke();
    return;
  }
  const tip = n.pointed ? Math.min(n.width * 1.5, n.length * 0.2) : 0;
  // Outline in the needle's own frame (u along, v across), then rotated into the image.
  const pts: [number, number][] = n.pointed
    ? [[-hl, 0], [-hl + tip, -hw], [hl - tip, -hw], [hl, 0], [hl - tip, hw], [-hl + tip, hw]]
    : [[-hl, -hw], [hl, -hw], [hl, hw], [-hl, hw]];
  ctx.beginPath();
  for (let i = 0; i < pts.length; i++) {
    const [pu, pv] = pts[i];
    const x = n.x + c * pu - s * pv;
    const y = n.y + s * pu + c * pv;
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.closePath();
  ctx.globalAlpha = n.coreAlpha;
  ctx.fillStyle = gray(n.coreGray);
  ctx.fill();
  ctx.globalAlpha = 1;
  ctx.strokeStyle = gray(n.edgeGray);
  ctx.lineWidth = Math.min(2, Math.max(0.8, n.width * 0.22));
  ctx.stroke();
}

/** Outline radius at angle t (unit mean), lobes plus fine roughness. */
function outlineRadii(agg: AgglomerateSpec, rng: Rng, points: number): number[] {
  // Roughness: random values smoothed along the outline, so edges are ragged, not spiky.
  const raw = Array.from({ length: points }, () => rng.normal());
  const radii: number[] = [];
  for (let i = 0; i < points; i++) {
    const t = (2 * Math.PI * i) / points;
    let r = 1;
    for (const lobe of agg.lobes) r += lobe.amplitude * Math.cos(lobe.k * t + lobe.phase);
    const rough = (raw[(i + points - 1) % points] + 2 * raw[i] + raw[(i + 1) % points]) / 4;
    radii.push(Math.max(0.5, r + agg.roughness * rough));
  }
  return radii;
}

/**
 * Draw a PG agglomerate centred at (ox, oy) of `ctx`: a body filled with overlapping small
 * grains, each lit from one side ("cauliflower"), clipped to a lobed outline, plus grains that
 * stick out of it so the edge is ragged. Gray levels relative to `backgroundGray`.
 */
function drawAgglomerate(ctx: SKRSContext2D, agg: AgglomerateSpec, ox: number, oy: number, backgroundGray: number): void {
  const rng = new Rng(agg.seed);
  const points = 96;
  const radii = outlineRadii(agg, rng, points);
  const rx = agg.radius * Math.sqrt(agg.aspect);
  const ry = agg.radius / Math.sqrt(agg.aspect);
  const ca = Math.cos(agg.angle);
  const sa = Math.sin(agg.angle);
  const toImage = (t: number, rel: number): [number, number] => {
    const ex = Math.cos(t) * rx * rel;
    const ey = Math.sin(t) * ry * rel;
    return [ox + ca * ex - sa * ey, oy + sa * ex + ca * ey];
  };
  const radiusAt = (t: number): number => {
    const f = ((t / (2 * Math.PI)) * points) % points;
    const i = Math.floor(f < 0 ? f + points : f);
    return radii[i];
  };

  const b = agg.brightness;
  const bodyGray = backgroundGray + (8 + 197 * b * b * 0.6 + 197 * b * 0.4) * 1;
  const grainSd = 10 + 50 * b;
  const body = Math.min(255, bodyGray);

  ctx.save();
  ctx.beginPath();
  for (let i = 0; i < points; i++) {
    const [x, y] = toImage((2 * Math.PI * i) / points, radii[i]);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.closePath();
  // Faint agglomerates are thin, partly transparent layers over the slurry.
  ctx.globalAlpha = 0.55 + 0.45 * Math.min(1, b * 2);
  ctx.fillStyle = gray(body);
  ctx.fill();
  ctx.clip();

  const area = Math.PI * rx * ry;
  const nGrains = Math.min(6000, Math.round((agg.grainCoverage * area) / (Math.PI * agg.grainRadius * agg.grainRadius)));
  const lx = Math.cos(agg.lightAngle);
  const ly = Math.sin(agg.lightAngle);
  const drawGrain = (t: number, rel: number, edge: boolean): void => {
    const [x, y] = toImage(t, rel);
    const r = agg.grainRadius * rng.logNormal(1, 1.35);
    // Shading over the agglomerate: brighter centre (shading > 0) or brighter rim (< 0).
    const shade = 1 + agg.shading * (1 - 2 * rel * rel);
    const g = body * shade + grainSd * rng.normal() - (edge ? grainSd * 0.5 : 0);
    ctx.globalAlpha = edge ? 0.8 : 0.9;
    ctx.fillStyle = gray(g);
    ctx.beginPath();
    ctx.arc(x, y, r, 0, 2 * Math.PI);
    ctx.fill();
    // A highlight on the lit side of coarse grains makes the granular texture read as 3-D.
    if (r > 1.6) {
      ctx.fillStyle = gray(g + grainSd * 0.9 + 20);
      ctx.beginPath();
      ctx.arc(x + lx * r * 0.35, y + ly * r * 0.35, r * 0.45, 0, 2 * Math.PI);
      ctx.fill();
    }
  };
  for (let i = 0; i < nGrains; i++) {
    const t = rng.uniform(0, 2 * Math.PI);
    drawGrain(t, Math.sqrt(rng.next()) * radiusAt(t), false);
  }
  ctx.restore();

  // Ragged rim: grains straddling the outline.
  const perimeter = Math.PI * (rx + ry);
  const nRim = Math.round((perimeter / agg.grainRadius) * 0.9);
  for (let i = 0; i < nRim; i++) {
    const t = rng.uniform(0, 2 * Math.PI);
    drawGrain(t, radiusAt(t) * rng.uniform(0.93, 1.05), true);
  }
  ctx.globalAlpha = 1;
}

/** Blur `src` by sigma (px of src) into a new canvas of the same size. */
function blurred(src: Canvas, sigma: number): Canvas {
  if (sigma < 0.25) return src;
  const dst = createCanvas(src.width, src.height);
  const ctx = dst.getContext('2d');
  ctx.filter = `blur(${sigma.toFixed(3)}px)`;
  ctx.drawImage(src, 0, 0);
  return dst;
}

/** Downsampling factor for a layer with this blur: defocus removes the detail anyway. */
function layerScale(blurPx: number): number {
  if (blurPx >= 6) return 3;
  if (blurPx >= 3) return 2;
  return 1;
}

/** Draw the scene into an RGBA canvas (gray in every channel). */
export function drawScene(scene: SceneSpec): Canvas {
  const { width, height } = scene;
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = gray(scene.backgroundGray);
  ctx.fillRect(0, 0, width, height);

  for (const h of scene.haze) {
    const g = ctx.createRadialGradient(h.x, h.y, 0, h.x, h.y, h.radius);
    g.addColorStop(0, gray(h.gray));
    g.addColorStop(1, `rgba(${Math.round(h.gray)},${Math.round(h.gray)},${Math.round(h.gray)},0)`);
    ctx.fillStyle = g;
    ctx.fillRect(h.x - h.radius, h.y - h.radius, 2 * h.radius, 2 * h.radius);
  }

  for (const layer of scene.layers) {
    if (layer.needles.length > 0) {
      const scale = layerScale(layer.blurPx);
      const lw = Math.ceil(width / scale) + 1;
      const lh = Math.ceil(height / scale) + 1;
      const layerCanvas = createCanvas(lw, lh);
      const lctx = layerCanvas.getContext('2d');
      lctx.setTransform(1 / scale, 0, 0, 1 / scale, 0, 0);
      lctx.lineCap = 'butt';
      lctx.lineJoin = 'miter';
      for (const needle of layer.needles) drawNeedle(lctx, needle);
      const soft = blurred(layerCanvas, layer.blurPx / scale);
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = 'high';
      ctx.drawImage(soft, 0, 0, lw * scale, lh * scale);
    }
    for (const agg of layer.agglomerates) {
      // Each agglomerate is drawn on its own small canvas so its own defocus can be applied.
      const extent = Math.ceil(agg.radius * Math.sqrt(agg.aspect) * 1.35 + 3 * agg.blurPx + 4);
      const size = 2 * extent;
      const aggCanvas = createCanvas(size, size);
      drawAgglomerate(aggCanvas.getContext('2d'), agg, extent, extent, scene.backgroundGray);
      ctx.drawImage(blurred(aggCanvas, agg.blurPx), Math.round(agg.x) - extent, Math.round(agg.y) - extent);
    }
  }

  // Uneven illumination: multiply by the smooth gain field (coarse grid, upsampled).
  const { cols, rows, gains } = scene.illumination;
  const field = createCanvas(cols, rows);
  const fctx = field.getContext('2d');
  const img = fctx.createImageData(cols, rows);
  for (let i = 0; i < gains.length; i++) {
    const v = Math.round(255 * gains[i]);
    img.data[4 * i] = v;
    img.data[4 * i + 1] = v;
    img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  fctx.putImageData(img, 0, 0);
  ctx.globalCompositeOperation = 'multiply';
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  // Half-cell inset: grid points sit on the image corners, not half a cell outside them.
  const cw = width / (cols - 1);
  const ch = height / (rows - 1);
  ctx.drawImage(field, -cw / 2, -ch / 2, width + cw, height + ch);
  ctx.globalCompositeOperation = 'source-over';
  return canvas;
}

// Standard normals shared by every image; each image indexes them from its own noise seed.
const NORMALS = (() => {
  const rng = new Rng(0x5eed);
  const table = new Float32Array(1 << 16);
  for (let i = 0; i < table.length; i++) table[i] = rng.normal();
  return table;
})();

/** RGBA → 8-bit gray plus sensor noise: variance = read² + gain × signal. */
export function toNoisyGray(rgba: Uint8Array | Buffer, scene: SceneSpec): Buffer {
  const n = scene.width * scene.height;
  const out = Buffer.allocUnsafe(n);
  const sd = new Float32Array(256);
  const { readNoiseSd, shotNoiseGain } = scene.sensor;
  for (let v = 0; v < 256; v++) sd[v] = Math.sqrt(readNoiseSd * readNoiseSd + shotNoiseGain * v);
  let state = scene.sensor.noiseSeed | 1;
  for (let i = 0; i < n; i++) {
    // xorshift32: cheap, good enough to index a table of normals.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    const v = rgba[4 * i];
    const noisy = v + sd[v] * NORMALS[state & 0xffff] + 0.5;
    out[i] = noisy <= 0 ? 0 : noisy >= 255 ? 255 : noisy | 0;
  }
  return out;
}

/** Render a scene to an 8-bit grayscale PNG. */
export async function renderScenePng(scene: SceneSpec, compressionLevel: number): Promise<Buffer> {
  const canvas = drawScene(scene);
  const grayPixels = toNoisyGray(canvas.data(), scene);
  return sharp(grayPixels, { raw: { width: scene.width, height: scene.height, channels: 1 } })
    .png({ compressionLevel, adaptiveFiltering: false })
    .toBuffer();
}

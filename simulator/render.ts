/**
 * Rasterise a SceneSpec: @napi-rs/canvas (Skia) draws the needles and grains and does the
 * defocus blur (layers with a large blur are drawn at reduced resolution and upsampled, which
 * is what defocus throws away anyway); one pass in JS converts to 8-bit gray and adds sensor
 * noise; sharp encodes the PNG.
 */
import { createCanvas, type Canvas, type SKRSContext2D } from '@napi-rs/canvas';
import sharp from 'sharp';
import { PG } from './physics.js';
import { Rng, xorshift32 } from './random.js';
import { grainTexture, TEXTURE_TILE_PX } from './texture.js';
import type { AgglomerateSpec, NeedleSpec, SceneSpec } from './scene.js';

const GRAY: string[] = Array.from({ length: 256 }, (_, v) => `rgb(${v},${v},${v})`);
const gray = (v: number): string => GRAY[v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v)]!;

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
  const tip = n.pointed ? Math.min(n.width * 0.8, n.length * 0.1) : 0;
  // Outline in the needle's own frame (u along, v across), then rotated into the image.
  const pts: [number, number][] = n.pointed
    ? [
        [-hl, 0],
        [-hl + tip, -hw],
        [hl - tip, -hw],
        [hl, 0],
        [hl - tip, hw],
        [-hl + tip, hw],
      ]
    : [
        [-hl, -hw],
        [hl, -hw],
        [hl, hw],
        [-hl, hw],
      ];
  ctx.beginPath();
  for (let i = 0; i < pts.length; i++) {
    const [pu, pv] = pts[i]!;
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
  ctx.lineWidth = Math.min(1.8, Math.max(0.7, n.width * 0.18));
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
    const rough = (raw[(i + points - 1) % points]! + 2 * raw[i]! + raw[(i + 1) % points]!) / 4;
    radii.push(Math.max(0.5, r + agg.roughness * rough));
  }
  return radii;
}

/**
 * The outline of an agglomerate: radii at `points` angles around an ellipse (rx, ry), and the
 * map from (angle, relative radius) to offsets from its centre. Also returns the generator, which
 * the drawing goes on using for the grains (so the outline is the same wherever it is computed).
 */
export function agglomerateOutline(agg: AgglomerateSpec): {
  rng: Rng;
  rx: number;
  ry: number;
  points: number;
  radii: number[];
  toImage: (t: number, rel: number) => [number, number];
} {
  const rng = new Rng(agg.seed);
  const rx = agg.radius * Math.sqrt(agg.aspect);
  const ry = agg.radius / Math.sqrt(agg.aspect);
  // One outline point per grain or so along the perimeter: roughness at the grain scale.
  const points = Math.max(48, Math.min(480, Math.round((Math.PI * (rx + ry)) / agg.grainRadius)));
  const radii = outlineRadii(agg, rng, points);
  const ca = Math.cos(agg.angle);
  const sa = Math.sin(agg.angle);
  const toImage = (t: number, rel: number): [number, number] => {
    const ex = Math.cos(t) * rx * rel;
    const ey = Math.sin(t) * ry * rel;
    return [ca * ex - sa * ey, sa * ex + ca * ey];
  };
  return { rng, rx, ry, points, radii, toImage };
}

/**
 * Draw a PG agglomerate centred at (ox, oy) of `ctx`: a lobed, ragged outline filled with the
 * body gray, the granular texture blended over it ("overlay": grains brighten, gaps darken,
 * saturated bodies stay white), volume shading, and grains straddling the outline so the edge is
 * ragged. Gray levels are relative to `backgroundGray`.
 */
function drawAgglomerate(ctx: SKRSContext2D, agg: AgglomerateSpec, ox: number, oy: number, backgroundGray: number): void {
  const { rng, rx, ry, points, radii, toImage: toLocal } = agglomerateOutline(agg);
  const toImage = (t: number, rel: number): [number, number] => {
    const [x, y] = toLocal(t, rel);
    return [ox + x, oy + y];
  };
  const radiusAt = (t: number): number => {
    const f = (t / (2 * Math.PI)) * points;
    return radii[((Math.floor(f) % points) + points) % points]!;
  };

  const b = agg.brightness;
  const [gainLo, gainHi] = PG.bodyGain;
  // Brightness is convex in β: most agglomerates are mid-gray, a tail saturates.
  const body = Math.min(255, backgroundGray + gainLo + (gainHi - gainLo) * (0.55 * b * b + 0.45 * b));
  const [cLo, cHi] = PG.grainContrast;
  const grainSd = cLo + (cHi - cLo) * b;

  ctx.save();
  ctx.beginPath();
  for (let i = 0; i < points; i++) {
    const [x, y] = toImage((2 * Math.PI * i) / points, radii[i]!);
    if (i === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.closePath();
  // Faint agglomerates are thin, partly transparent layers over the slurry.
  ctx.globalAlpha = 0.75 + 0.25 * Math.min(1, b * 2.5);
  ctx.fillStyle = gray(body);
  ctx.fill();
  ctx.clip();

  // Texture: rotation = where the light comes from; strength grows with the grain contrast.
  const { tile, scale } = grainTexture(agg.grainRadius);
  ctx.globalCompositeOperation = 'overlay';
  ctx.globalAlpha = Math.min(1, 0.45 + agg.textureStrength * 0.55);
  ctx.translate(ox, oy);
  ctx.rotate(agg.lightAngle);
  ctx.scale(scale, scale);
  const half = TEXTURE_TILE_PX / 2;
  ctx.drawImage(tile, -half + rng.uniform(-30, 30), -half + rng.uniform(-30, 30));
  ctx.setTransform(1, 0, 0, 1, 0, 0);

  // Volume: brighter centre (shading > 0) or brighter rim (< 0), only over the body.
  ctx.globalCompositeOperation = 'source-atop';
  const rMax = Math.max(rx, ry) * 1.1;
  const glow = ctx.createRadialGradient(ox, oy, 0, ox, oy, rMax);
  const a = Math.min(0.6, Math.abs(agg.shading));
  if (agg.shading > 0) {
    glow.addColorStop(0, `rgba(255,255,255,${a.toFixed(3)})`);
    glow.addColorStop(0.7, 'rgba(255,255,255,0)');
    glow.addColorStop(1, `rgba(0,0,0,${(a * 0.8).toFixed(3)})`);
  } else {
    glow.addColorStop(0, `rgba(0,0,0,${(a * 0.7).toFixed(3)})`);
    glow.addColorStop(0.55, 'rgba(0,0,0,0)');
    glow.addColorStop(1, `rgba(255,255,255,${a.toFixed(3)})`);
  }
  ctx.globalAlpha = 1;
  ctx.fillStyle = glow;
  ctx.fillRect(ox - rMax, oy - rMax, 2 * rMax, 2 * rMax);
  ctx.restore();

  // Ragged rim: grains straddling the outline, a little darker than the body on average.
  const perimeter = Math.PI * (rx + ry);
  const nRim = Math.min(160, Math.round(perimeter / (2.2 * agg.grainRadius)));
  ctx.globalAlpha = 0.7;
  for (let i = 0; i < nRim; i++) {
    const t = rng.uniform(0, 2 * Math.PI);
    const [x, y] = toImage(t, radiusAt(t) * rng.uniform(0.96, 1.04));
    ctx.fillStyle = gray(body + grainSd * rng.normal(-0.3, 0.8));
    ctx.beginPath();
    ctx.arc(x, y, agg.grainRadius * rng.logNormal(1, 1.3), 0, 2 * Math.PI);
    ctx.fill();
  }
  ctx.globalAlpha = 1;
}

/**
 * Canvases are reused within a thread: a fresh 1280×960 canvas costs an allocation, page faults
 * and a clear, several times per frame. Acquired canvases come back cleared, with a reset state.
 */
const freeCanvases = new Map<string, Canvas[]>();
const MAX_FREE_PER_SIZE = 4;

function acquireCanvas(width: number, height: number): Canvas {
  const free = freeCanvases.get(`${width}x${height}`);
  const canvas = free?.pop();
  if (!canvas) return createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  ctx.reset();
  return canvas;
}

function releaseCanvas(canvas: Canvas): void {
  const key = `${canvas.width}x${canvas.height}`;
  let free = freeCanvases.get(key);
  if (!free) {
    free = [];
    freeCanvases.set(key, free);
  }
  if (free.length < MAX_FREE_PER_SIZE) free.push(canvas);
}

/** Blur `src` by sigma (px of src) into another canvas of the same size (or `src` itself). */
function blurred(src: Canvas, sigma: number): Canvas {
  if (sigma < 0.25) return src;
  const dst = acquireCanvas(src.width, src.height);
  const ctx = dst.getContext('2d');
  ctx.filter = `blur(${sigma.toFixed(3)}px)`;
  ctx.drawImage(src, 0, 0);
  return dst;
}

/** Downsampling factor for a layer with this blur: defocus removes the detail anyway. */
function layerScale(blurPx: number): number {
  // Drawn at 1/s size, a layer blurred by σ keeps σ/s ≥ 0.45 px there: nothing is lost that
  // the blur would not remove anyway, and the blur pass (the costliest step) shrinks by s².
  if (blurPx >= 6) return 4;
  if (blurPx >= 2) return 3;
  if (blurPx >= 0.9) return 2;
  return 1;
}

/** Draw the scene into an RGBA canvas (gray in every channel). */
export function drawScene(scene: SceneSpec): Canvas {
  const { width, height } = scene;
  const scales = scene.layers.map((l) => layerScale(l.blurPx));

  // Back to front, each layer is drawn onto a running backdrop at that layer's reduced size, and
  // the backdrop is upsampled once per change of size: one full-size upsampling per image instead
  // of one per layer. What lies behind gets a little more blur from each upsampling, as defocus
  // would give it anyway.
  let backdrop: Canvas | null = null;
  let backdropScale = Infinity;
  const sizeAt = (scale: number): [number, number] => (scale === 1 ? [width, height] : [Math.ceil(width / scale) + 1, Math.ceil(height / scale) + 1]);
  const backdropAt = (scale: number): SKRSContext2D => {
    if (backdrop && scale >= backdropScale) return backdrop.getContext('2d');
    const [w, h] = sizeAt(scale);
    const next = acquireCanvas(w, h);
    const ctx = next.getContext('2d');
    if (backdrop) {
      // Bilinear is enough to upsample what the blur has already smoothed.
      ctx.imageSmoothingEnabled = true;
      ctx.imageSmoothingQuality = 'low';
      ctx.drawImage(backdrop, 0, 0, (backdrop.width * backdropScale) / scale, (backdrop.height * backdropScale) / scale);
      releaseCanvas(backdrop);
    } else {
      ctx.fillStyle = gray(scene.backgroundGray);
      ctx.fillRect(0, 0, w, h);
      ctx.setTransform(1 / scale, 0, 0, 1 / scale, 0, 0);
      for (const haze of scene.haze) {
        const g = ctx.createRadialGradient(haze.x, haze.y, 0, haze.x, haze.y, haze.radius);
        const v = Math.round(haze.gray);
        g.addColorStop(0, gray(v));
        g.addColorStop(1, `rgba(${v},${v},${v},0)`);
        ctx.fillStyle = g;
        ctx.fillRect(haze.x - haze.radius, haze.y - haze.radius, 2 * haze.radius, 2 * haze.radius);
      }
      ctx.setTransform(1, 0, 0, 1, 0, 0);
    }
    backdrop = next;
    backdropScale = scale;
    return ctx;
  };

  scene.layers.forEach((layer, i) => {
    if (layer.needles.length > 0) {
      const ctx = backdropAt(scales[i]!);
      const scale = backdropScale;
      // Drawing at 1/s size and upsampling bilinearly already blurs by about 0.4·s px (σ);
      // the filter adds only the rest, in quadrature (small blurs are the slowest to filter).
      const inherent = scale > 1 ? 0.4 * scale : 0;
      const residual = Math.sqrt(Math.max(0, layer.blurPx * layer.blurPx - inherent * inherent)) / scale;
      if (residual < 0.3) {
        // In focus (or blurred enough by the size): straight onto the backdrop.
        ctx.setTransform(1 / scale, 0, 0, 1 / scale, 0, 0);
        ctx.lineCap = 'butt';
        ctx.lineJoin = 'miter';
        for (const needle of layer.needles) drawNeedle(ctx, needle);
        ctx.globalAlpha = 1;
        ctx.setTransform(1, 0, 0, 1, 0, 0);
      } else {
        const [lw, lh] = sizeAt(scale);
        const layerCanvas = acquireCanvas(lw, lh);
        const lctx = layerCanvas.getContext('2d');
        lctx.setTransform(1 / scale, 0, 0, 1 / scale, 0, 0);
        lctx.lineCap = 'butt';
        lctx.lineJoin = 'miter';
        for (const needle of layer.needles) drawNeedle(lctx, needle);
        const soft = blurred(layerCanvas, residual);
        ctx.drawImage(soft, 0, 0);
        if (soft !== layerCanvas) releaseCanvas(soft);
        releaseCanvas(layerCanvas);
      }
    }
    if (layer.agglomerates.length > 0) {
      // Agglomerates sit between this layer and the next: drawn at the next layer's size.
      const ctx = backdropAt(scales[i + 1] ?? 1);
      const scale = backdropScale;
      for (const agg of layer.agglomerates) {
        // Each agglomerate is drawn on its own full-size canvas so its own defocus can be applied.
        const extent = Math.ceil(agg.radius * Math.sqrt(agg.aspect) * 1.35 + 3 * agg.blurPx + 4);
        const size = 2 * extent;
        const aggCanvas = acquireCanvas(size, size);
        drawAgglomerate(aggCanvas.getContext('2d'), agg, extent, extent, scene.backgroundGray);
        const soft = blurred(aggCanvas, agg.blurPx);
        ctx.imageSmoothingEnabled = true;
        ctx.imageSmoothingQuality = 'low';
        ctx.drawImage(soft, (Math.round(agg.x) - extent) / scale, (Math.round(agg.y) - extent) / scale, size / scale, size / scale);
        if (soft !== aggCanvas) releaseCanvas(soft);
        releaseCanvas(aggCanvas);
      }
    }
  });

  backdropAt(1);
  return backdrop!;
}

// Standard normals shared by every image; each image indexes them from its own noise seed.
const NORMALS = (() => {
  const rng = new Rng(0x5eed);
  const table = new Float32Array(1 << 16);
  for (let i = 0; i < table.length; i++) table[i] = rng.normal();
  return table;
})();

/** Catmull-Rom weights for a fraction f ∈ [0, 1) between grid points 1 and 2 of 0..3. */
function catmullRom(f: number): [number, number, number, number] {
  const f2 = f * f;
  const f3 = f2 * f;
  return [(-f3 + 2 * f2 - f) / 2, (3 * f3 - 5 * f2 + 2) / 2, (-3 * f3 + 4 * f2 + f) / 2, (f3 - f2) / 2];
}

/** Per-pixel sample positions on a coarse grid axis of `points` points spanning `size` pixels. */
function axisWeights(size: number, points: number): { index: Int32Array; weights: Float32Array } {
  const index = new Int32Array(size * 4);
  const weights = new Float32Array(size * 4);
  for (let x = 0; x < size; x++) {
    const u = (x / Math.max(1, size - 1)) * (points - 1);
    const i = Math.min(points - 2, Math.floor(u));
    const w = catmullRom(u - i);
    for (let k = 0; k < 4; k++) {
      index[4 * x + k] = Math.min(points - 1, Math.max(0, i - 1 + k));
      weights[4 * x + k] = w[k]!;
    }
  }
  return { index, weights };
}

/**
 * RGBA → 8-bit gray: times the illumination field (Catmull-Rom upsampled from its coarse grid),
 * blurred by the optics (a separable 3-tap kernel [a, 1 − 2a, a] with variance 2a = σ²), plus
 * sensor noise with variance read² + gain × signal, through the camera's tone curve.
 */
export function toNoisyGray(rgba: Uint8Array | Buffer, scene: SceneSpec): Buffer {
  const { width, height } = scene;
  const n = width * height;
  const { cols, rows, gains } = scene.illumination;
  const cx = axisWeights(width, cols);
  const cy = axisWeights(height, rows);
  const rowGain = new Float32Array(cols);
  const lineGain = new Float32Array(width);
  const lit = new Float32Array(n);
  for (let y = 0; y < height; y++) {
    // The field varies over hundreds of pixels: recomputing it every 4th row is plenty.
    if (y % 4 === 0) {
      for (let c = 0; c < cols; c++) {
        let g = 0;
        for (let k = 0; k < 4; k++) g += cy.weights[4 * y + k]! * gains[cy.index[4 * y + k]! * cols + c]!;
        rowGain[c] = g;
      }
      for (let x = 0; x < width; x++) {
        const j = 4 * x;
        lineGain[x] =
          cx.weights[j]! * rowGain[cx.index[j]!]! +
          cx.weights[j + 1]! * rowGain[cx.index[j + 1]!]! +
          cx.weights[j + 2]! * rowGain[cx.index[j + 2]!]! +
          cx.weights[j + 3]! * rowGain[cx.index[j + 3]!]!;
      }
    }
    const base = y * width;
    for (let x = 0; x < width; x++) lit[base + x] = rgba[4 * (base + x)]! * lineGain[x]!;
  }

  // Optical blur, horizontal pass into `across`, vertical pass fused with the noise below.
  const sigma = scene.sensor.opticalBlurPx;
  const a = Math.min(0.25, (sigma * sigma) / 2);
  const b = 1 - 2 * a;
  const across = new Float32Array(n);
  for (let y = 0; y < height; y++) {
    const base = y * width;
    across[base] = (b + a) * lit[base]! + a * lit[base + 1]!;
    for (let x = 1; x < width - 1; x++) across[base + x] = b * lit[base + x]! + a * (lit[base + x - 1]! + lit[base + x + 1]!);
    across[base + width - 1] = (b + a) * lit[base + width - 1]! + a * lit[base + width - 2]!;
  }

  const out = Buffer.allocUnsafe(n);
  const sd = new Float32Array(256);
  const { readNoiseSd, shotNoiseGain } = scene.sensor;
  for (let v = 0; v < 256; v++) sd[v] = Math.sqrt(readNoiseSd * readNoiseSd + shotNoiseGain * v);
  // Tone curve as a lookup table on the noisy 8-bit value.
  const tone = new Uint8Array(256);
  for (let v = 0; v < 256; v++) tone[v] = Math.round(255 * Math.pow(v / 255, scene.sensor.gamma));
  let state = scene.sensor.noiseSeed | 1;
  for (let y = 0; y < height; y++) {
    const base = y * width;
    const up = y > 0 ? base - width : base;
    const down = y < height - 1 ? base + width : base;
    for (let x = 0; x < width; x++) {
      const signal = b * across[base + x]! + a * (across[up + x]! + across[down + x]!);
      // xorshift32: cheap, good enough to index a table of normals.
      state = xorshift32(state);
      const v = signal >= 255 ? 255 : signal | 0;
      const noisy = signal + sd[v]! * NORMALS[state & 0xffff]! + 0.5;
      out[base + x] = tone[noisy <= 0 ? 0 : noisy >= 255 ? 255 : noisy | 0]!;
    }
  }
  return out;
}

/** Render a scene to an 8-bit grayscale PNG. */
export async function renderScenePng(scene: SceneSpec, compressionLevel: number): Promise<Buffer> {
  const canvas = drawScene(scene);
  const grayPixels = toNoisyGray(canvas.data(), scene);
  releaseCanvas(canvas);
  return sharp(grayPixels, { raw: { width: scene.width, height: scene.height, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel, adaptiveFiltering: false })
    .toBuffer();
}

/**
 * Pictures that are not probe images, for testing the gate that refuses them: what lands in a
 * camera's drop folder by mistake or on purpose — a phone photo of a crystal on a bench, a
 * scanned document, a screenshot, a test gradient, a colourful photo, sensor noise from an
 * unplugged camera, and black, blank or blown-out frames. Seeded: same kind and seed, same bytes.
 */
import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas';
import sharp from 'sharp';
import { Rng, mixSeed } from './random.js';

export const NON_PROBE_KINDS = [
  'object-on-bright',
  'document',
  'screenshot',
  'gradient',
  'photo-texture',
  'noise-uniform',
  'noise-gaussian',
  'black',
  'blank',
  'saturated',
] as const;
export type NonProbeKind = (typeof NON_PROBE_KINDS)[number];

export interface NonProbeOptions {
  kind: NonProbeKind;
  seed: number;
  width: number;
  height: number;
}

export interface NonProbeImage {
  kind: NonProbeKind;
  bytes: Buffer;
  width: number;
  height: number;
  /** Whether the picture has colour (else R = G = B or a grey file). */
  colour: boolean;
}

type Rgb = [number, number, number];
const css = ([r, g, b]: Rgb, a = 1) => `rgba(${Math.round(r)},${Math.round(g)},${Math.round(b)},${a})`;
const greyOf = (v: number): Rgb => [v, v, v];
const hue = (rng: Rng, lightness: [number, number], saturation: number): Rgb => {
  const l = rng.uniform(lightness[0], lightness[1]);
  return [0, 1, 2].map(() => Math.max(0, Math.min(255, l + rng.normal(0, saturation)))) as Rgb;
};

const WORDS =
  'the batch reactor sample crystal purity report lot temperature seed filtration yield cephalexin phenylglycine assay result page total method'.split(' ');
const FONTS = ['DejaVu Sans', 'DejaVu Serif', 'DejaVu Sans Mono'];

function sentence(rng: Rng, words: number): string {
  return Array.from({ length: words }, () => WORDS[rng.int(0, WORDS.length - 1)]).join(' ');
}

/** A phone photo of things on a bench: a light surface under a lamp, objects with shading. */
function objectOnBright(ctx: SKRSContext2D, rng: Rng, w: number, h: number, colour: boolean): void {
  const surface = colour ? hue(rng, [190, 245], 12) : greyOf(rng.uniform(190, 245));
  const light = ctx.createLinearGradient(rng.uniform(0, w), 0, rng.uniform(0, w), h);
  light.addColorStop(0, css(surface.map((c) => Math.min(255, c + 10)) as Rgb));
  light.addColorStop(1, css(surface.map((c) => c - rng.uniform(5, 35)) as Rgb));
  ctx.fillStyle = light;
  ctx.fillRect(0, 0, w, h);
  const n = rng.int(1, 4);
  for (let i = 0; i < n; i++) {
    const cx = rng.uniform(0.2, 0.8) * w;
    const cy = rng.uniform(0.2, 0.8) * h;
    const r = rng.uniform(0.06, 0.22) * Math.min(w, h);
    // A soft shadow, then the object: an ellipse, a box, or a faceted "crystal".
    ctx.fillStyle = 'rgba(0,0,0,0.18)';
    ctx.beginPath();
    ctx.ellipse(cx + r * 0.15, cy + r * 0.2, r, r * 0.8, 0, 0, 2 * Math.PI);
    ctx.fill();
    const body = colour ? hue(rng, [40, 200], 60) : greyOf(rng.uniform(30, 200));
    const g = ctx.createLinearGradient(cx - r, cy - r, cx + r, cy + r);
    g.addColorStop(0, css(body.map((c) => Math.min(255, c + 50)) as Rgb));
    g.addColorStop(1, css(body.map((c) => Math.max(0, c - 40)) as Rgb));
    ctx.fillStyle = g;
    ctx.beginPath();
    const shape = rng.int(0, 2);
    if (shape === 0) ctx.ellipse(cx, cy, r, r * rng.uniform(0.5, 1), rng.uniform(0, Math.PI), 0, 2 * Math.PI);
    else if (shape === 1) ctx.rect(cx - r, cy - r * 0.6, 2 * r, 1.2 * r);
    else {
      const k = rng.int(5, 8);
      for (let j = 0; j < k; j++) {
        const t = (2 * Math.PI * j) / k + rng.uniform(-0.2, 0.2);
        const rr = r * rng.uniform(0.6, 1.1);
        if (j === 0) ctx.moveTo(cx + rr * Math.cos(t), cy + rr * Math.sin(t));
        else ctx.lineTo(cx + rr * Math.cos(t), cy + rr * Math.sin(t));
      }
      ctx.closePath();
    }
    ctx.fill();
  }
}

function textLines(ctx: SKRSContext2D, rng: Rng, x0: number, y0: number, x1: number, y1: number, size: number, ink: Rgb): void {
  ctx.fillStyle = css(ink);
  ctx.font = `${Math.round(size)}px "${FONTS[rng.int(0, FONTS.length - 1)]}"`;
  for (let y = y0 + size; y < y1; y += size * rng.uniform(1.3, 1.8)) {
    if (rng.chance(0.12)) continue; // paragraph break
    ctx.fillText(sentence(rng, rng.int(3, 14)), x0, y, x1 - x0);
  }
}

/** A page of text: a light page, dark ink, a heading, sometimes a table. */
function documentPage(ctx: SKRSContext2D, rng: Rng, w: number, h: number, colour: boolean): void {
  ctx.fillStyle = css(colour ? hue(rng, [225, 252], 5) : greyOf(rng.uniform(225, 252)));
  ctx.fillRect(0, 0, w, h);
  const ink = colour && rng.chance(0.3) ? ([20, 30, 120] as Rgb) : greyOf(rng.uniform(0, 60));
  const margin = rng.uniform(0.05, 0.12) * w;
  const size = Math.max(7, rng.uniform(0.012, 0.03) * Math.max(w, h));
  ctx.fillStyle = css(ink);
  ctx.font = `bold ${Math.round(size * 1.8)}px "DejaVu Sans"`;
  ctx.fillText(sentence(rng, 3).toUpperCase(), margin, margin + size * 1.8, w - 2 * margin);
  const top = margin + size * 3;
  if (rng.chance(0.4)) {
    ctx.strokeStyle = css(ink);
    ctx.lineWidth = 1;
    const rows = rng.int(3, 8);
    const cols = rng.int(2, 5);
    const th = Math.min(h * 0.35, rows * size * 1.8);
    for (let r = 0; r <= rows; r++) ctx.strokeRect(margin, top + (r * th) / rows, w - 2 * margin, 0);
    for (let c = 0; c <= cols; c++) ctx.strokeRect(margin + (c * (w - 2 * margin)) / cols, top, 0, th);
    textLines(ctx, rng, margin, top + th + size, w - margin, h - margin, size, ink);
  } else {
    textLines(ctx, rng, margin, top, w - margin, h - margin, size, ink);
  }
}

/** A screenshot: flat panels, bars, buttons and labels, light or dark theme. */
function screenshot(ctx: SKRSContext2D, rng: Rng, w: number, h: number, colour: boolean): void {
  const dark = rng.chance(0.4);
  const pick = (l: [number, number]) => (colour ? hue(rng, l, 25) : greyOf(rng.uniform(l[0], l[1])));
  ctx.fillStyle = css(pick(dark ? [20, 50] : [230, 250]));
  ctx.fillRect(0, 0, w, h);
  const bar = h * rng.uniform(0.05, 0.1);
  ctx.fillStyle = css(pick(dark ? [40, 80] : [180, 220]));
  ctx.fillRect(0, 0, w, bar);
  const side = w * rng.uniform(0.12, 0.25);
  ctx.fillStyle = css(pick(dark ? [30, 60] : [205, 235]));
  ctx.fillRect(0, bar, side, h - bar);
  const ink = greyOf(dark ? 220 : 30);
  const size = Math.max(7, h * rng.uniform(0.015, 0.03));
  textLines(ctx, rng, 8, bar, side - 8, h, size, ink);
  const panels = rng.int(2, 6);
  for (let i = 0; i < panels; i++) {
    const x = side + rng.uniform(0.02, 0.5) * (w - side);
    const y = bar + rng.uniform(0.02, 0.6) * (h - bar);
    const pw = rng.uniform(0.2, 0.5) * (w - side);
    const ph = rng.uniform(0.1, 0.35) * (h - bar);
    ctx.fillStyle = css(pick(dark ? [35, 90] : [200, 255]));
    ctx.fillRect(x, y, pw, ph);
    ctx.fillStyle = css(colour ? hue(rng, [60, 200], 70) : greyOf(rng.uniform(60, 200)));
    ctx.fillRect(x + 8, y + ph - size * 2.2, Math.min(pw - 16, size * 8), size * 1.6);
    textLines(ctx, rng, x + 8, y, x + pw - 8, y + ph - size * 2.5, size, ink);
  }
}

function gradient(ctx: SKRSContext2D, rng: Rng, w: number, h: number, colour: boolean): void {
  const stop = () => css(colour ? hue(rng, [0, 255], 60) : greyOf(rng.uniform(0, 255)));
  const g = rng.chance(0.5)
    ? ctx.createLinearGradient(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0, h))
    : ctx.createRadialGradient(rng.uniform(0, w), rng.uniform(0, h), 0, w / 2, h / 2, Math.max(w, h) * rng.uniform(0.4, 1));
  const stops = rng.int(2, 4);
  for (let i = 0; i < stops; i++) g.addColorStop(i / (stops - 1), stop());
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, w, h);
}

/** Colourful smooth texture: sums of soft coloured blobs at several scales (foliage, sky, fabric). */
function photoTexture(ctx: SKRSContext2D, rng: Rng, w: number, h: number): void {
  ctx.fillStyle = css(hue(rng, [40, 200], 60));
  ctx.fillRect(0, 0, w, h);
  for (let scale = 0.5; scale > 0.02; scale /= 2) {
    const n = Math.round(6 / scale);
    for (let i = 0; i < n; i++) {
      const x = rng.uniform(0, w);
      const y = rng.uniform(0, h);
      const r = scale * Math.max(w, h) * rng.uniform(0.3, 1);
      const g = ctx.createRadialGradient(x, y, 0, x, y, r);
      g.addColorStop(0, css(hue(rng, [20, 235], 70), 0.6));
      g.addColorStop(1, css([0, 0, 0], 0));
      ctx.fillStyle = g;
      ctx.fillRect(x - r, y - r, 2 * r, 2 * r);
    }
  }
}

/** Pixels of one kind, RGB, before camera noise. */
function drawKind(kind: NonProbeKind, rng: Rng, w: number, h: number, colour: boolean): Buffer {
  const canvas = createCanvas(w, h);
  const ctx = canvas.getContext('2d');
  if (kind === 'object-on-bright') objectOnBright(ctx, rng, w, h, colour);
  else if (kind === 'document') documentPage(ctx, rng, w, h, colour);
  else if (kind === 'screenshot') screenshot(ctx, rng, w, h, colour);
  else if (kind === 'gradient') gradient(ctx, rng, w, h, colour);
  else if (kind === 'photo-texture') photoTexture(ctx, rng, w, h);
  const rgba = canvas.data();
  const rgb = Buffer.alloc(w * h * 3);
  for (let i = 0, j = 0; j < rgb.length; i += 4, j += 3) {
    rgb[j] = rgba[i]!;
    rgb[j + 1] = rgba[i + 1]!;
    rgb[j + 2] = rgba[i + 2]!;
  }
  return rgb;
}

/** Per-pixel values for the synthetic kinds (noise, black, blank, saturated). */
function fillSynthetic(kind: NonProbeKind, rng: Rng, rgb: Buffer, colour: boolean): void {
  const level = rng.uniform(20, 230);
  const mean = rng.uniform(60, 190);
  const sd = rng.uniform(10, 60);
  for (let p = 0; p < rgb.length; p += 3) {
    for (let c = 0; c < 3; c++) {
      if (c > 0 && !colour) {
        rgb[p + c] = rgb[p]!;
        continue;
      }
      let v: number;
      if (kind === 'noise-uniform') v = rng.next() * 256;
      else if (kind === 'noise-gaussian') v = rng.normal(mean, sd);
      else if (kind === 'black') v = rng.next() * 4;
      else if (kind === 'blank') v = level + rng.normal(0, 0.6);
      else v = rng.chance(0.85) ? 255 : rng.uniform(150, 255); // saturated: blown out
      rgb[p + c] = Math.max(0, Math.min(255, Math.round(v)));
    }
  }
}

/** Camera-ish noise on drawn pictures (a phone or scanner is not noise-free). */
function addNoise(rgb: Buffer, rng: Rng, sd: number): void {
  if (sd <= 0) return;
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.max(0, Math.min(255, Math.round(rgb[i]! + rng.normal(0, sd))));
}

const DRAWN: ReadonlySet<NonProbeKind> = new Set(['object-on-bright', 'document', 'screenshot', 'gradient', 'photo-texture']);

/** One non-probe picture. Same options → same bytes. */
export async function renderNonProbe(o: NonProbeOptions): Promise<NonProbeImage> {
  const { kind, width: w, height: h } = o;
  if (!NON_PROBE_KINDS.includes(kind)) throw new Error(`renderNonProbe: kind must be one of ${NON_PROBE_KINDS.join(', ')}, got ${JSON.stringify(kind)}`);
  const rng = new Rng(mixSeed(o.seed, 0x4e0b, NON_PROBE_KINDS.indexOf(kind)));
  const colour = kind === 'photo-texture' || (kind !== 'black' && kind !== 'blank' && rng.chance(0.6));
  let rgb: Buffer;
  if (DRAWN.has(kind)) {
    rgb = drawKind(kind, rng, w, h, colour);
    // Photos and scans carry sensor noise; screenshots and rendered gradients usually do not
    // (half the gradients are a camera looking at a smooth, unevenly lit surface).
    const photo = kind === 'object-on-bright' || kind === 'photo-texture' || ((kind === 'document' || kind === 'gradient') && rng.chance(0.5));
    addNoise(rgb, rng, photo ? rng.uniform(1, 4) : rng.chance(0.3) ? rng.uniform(0.5, 2) : 0);
  } else {
    rgb = Buffer.alloc(w * h * 3);
    fillSynthetic(kind, rng, rgb, colour);
  }
  let img = sharp(rgb, { raw: { width: w, height: h, channels: 3 } });
  if (!colour && rng.chance(0.5)) img = img.toColourspace('b-w');
  const jpeg = kind === 'object-on-bright' || kind === 'photo-texture' ? rng.chance(0.7) : rng.chance(0.2);
  const bytes = await (jpeg ? img.jpeg({ quality: rng.int(70, 95) }) : img.png({ compressionLevel: 1 })).toBuffer();
  return { kind, bytes, width: w, height: h, colour };
}

/** A test set: `perKind` pictures of every kind, alternating crop-sized and frame-sized. */
export async function nonProbeSet(o: {
  seed: number;
  perKind: number;
  kinds?: readonly NonProbeKind[];
  frameSize?: { width: number; height: number };
}): Promise<NonProbeImage[]> {
  const out: NonProbeImage[] = [];
  const frame = o.frameSize ?? { width: 1280, height: 960 };
  for (const kind of o.kinds ?? NON_PROBE_KINDS) {
    for (let i = 0; i < o.perKind; i++) {
      const rng = new Rng(mixSeed(o.seed, 0x5e7, i, NON_PROBE_KINDS.indexOf(kind)));
      const size =
        i % 2 === 0 ? { width: rng.int(130, 230), height: rng.int(130, 230) } : i % 4 === 1 ? frame : { width: rng.int(400, 900), height: rng.int(300, 700) };
      out.push(await renderNonProbe({ kind, seed: mixSeed(o.seed, i), ...size }));
    }
  }
  return out;
}

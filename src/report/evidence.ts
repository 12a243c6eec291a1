/**
 * The pictures of an alert's evidence: which frames (a bounded choice), and each one as a small
 * JPEG with the PG tiles the classifier found outlined, ready to inline as a data URI.
 */
import sharp from 'sharp';
import type { Tile } from '../bus/messages.js';
import type { AlertSummary } from './alerts.js';

/** Evidence frames shown per alert, and per report (every picture is ~10–30 kB inline). */
export const MAX_EVIDENCE_PER_ALERT = 12;
export const MAX_EVIDENCE_FRAMES = 60;
export const EVIDENCE_WIDTH = 320;
/** libvips refuses inputs beyond this: a hostile header cannot make it allocate gigabytes. */
const PIXEL_LIMIT = 64 * 1024 * 1024;

export interface EvidencePicture {
  frameId: string;
  /** `data:image/jpeg;base64,...` */
  dataUri: string;
  width: number;
  height: number;
  tiles: number;
}

/**
 * The evidence frames to show for each alert, oldest first: all of them when few, otherwise the
 * alert's first PG frame, the frame that tripped it (the last) and the most confident ones.
 */
export function chooseEvidence(alerts: AlertSummary[], perAlert = MAX_EVIDENCE_PER_ALERT, total = MAX_EVIDENCE_FRAMES): Map<string, string[]> {
  const chosen = new Map<string, string[]>();
  let budget = total;
  for (const alert of alerts) {
    const frames = alert.evidence.frames;
    const room = Math.min(perAlert, budget);
    if (room <= 0 || frames.length === 0) {
      chosen.set(alert.id, []);
      continue;
    }
    let keep: typeof frames;
    if (frames.length <= room) keep = frames;
    else {
      const must = new Set([frames.find((f) => f.frameId === alert.evidence.firstPgFrameId) ?? frames[0], frames[frames.length - 1]]);
      const rest = frames.filter((f) => !must.has(f)).sort((a, b) => b.pPG - a.pPG);
      const picked = new Set([...must, ...rest.slice(0, Math.max(0, room - must.size))]);
      keep = frames.filter((f) => picked.has(f));
    }
    const ids = [...new Set(keep.map((f) => f.frameId))];
    budget -= ids.length;
    chosen.set(alert.id, ids);
  }
  return chosen;
}

function outline(tiles: Tile[], scale: number, width: number, height: number): Buffer {
  const rects = tiles
    .map((t) => {
      const stroke = t.pPG >= 0.9 ? '#ff2020' : t.pPG >= 0.5 ? '#ff8c00' : '#ffd000';
      return `<rect x="${(t.x * scale).toFixed(1)}" y="${(t.y * scale).toFixed(1)}" width="${(t.width * scale).toFixed(1)}" height="${(t.height * scale).toFixed(1)}" fill="none" stroke="${stroke}" stroke-width="2"/>`;
    })
    .join('');
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${rects}</svg>`);
}

/** The frame, `width` px wide at most, as JPEG, with `tiles` (frame pixel coordinates) outlined. */
export async function evidencePicture(frameId: string, image: Buffer, tiles: Tile[] = [], width = EVIDENCE_WIDTH): Promise<EvidencePicture> {
  const input = sharp(image, { limitInputPixels: PIXEL_LIMIT, failOn: 'error' });
  const meta = await input.metadata();
  if (!meta.width || !meta.height) throw new Error(`evidence frame ${frameId}: image has no dimensions (format ${meta.format ?? 'unknown'})`);
  const resized = await input
    .resize({ width, withoutEnlargement: true })
    .toColourspace('srgb')
    .removeAlpha()
    .png({ compressionLevel: 1 })
    .toBuffer({ resolveWithObject: true });
  const { width: w, height: h } = resized.info;
  const scale = w / meta.width;
  const jpeg = await sharp(resized.data)
    .composite(tiles.length ? [{ input: outline(tiles, scale, w, h), top: 0, left: 0 }] : [])
    .jpeg({ quality: 72 })
    .toBuffer();
  return { frameId, dataUri: `data:image/jpeg;base64,${jpeg.toString('base64')}`, width: w, height: h, tiles: tiles.length };
}

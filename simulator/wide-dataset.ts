/**
 * A labelled crop folder drawn across camera profiles (profiles.ts): the widened domain the
 * default model is trained on, and held-out sets of single profiles to evaluate it.
 *
 *   npm run build && node dist/simulator/wide-dataset.js --out DIR [--count 6000] [--seed 2028] \
 *     [--profiles seen | unseen | <name>,<name>…]
 *
 * Crops come in pairs, one of each class: crop i is PG when i is odd and comes from profile
 * ⌊i / 2⌋ mod P, so every profile gets the same share of both classes (within one pair) whatever
 * P's parity; it is drawn from `mixSeed(seed, i)`: the same options
 * give the same bytes. Files are `<cex|pg>/<profile>-<index 6 digits>.<png|jpg>` (the file format
 * is the profile's camera's), ready for `crystalwatch train --data DIR` or `crystalwatch evaluate`.
 * Plant B (plant-b.ts) is not a profile here and UNSEEN_PROFILES are only drawn when asked for
 * by name or as `unseen`: both stay held out of training.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderProfiledCrop } from './profile-render.js';
import { profileByName, SEEN_PROFILES, UNSEEN_PROFILES, type CameraProfile } from './profiles.js';
import { mixSeed } from './random.js';

export interface WideDatasetOptions {
  out: string;
  count: number;
  seed: number;
  profiles?: readonly CameraProfile[];
  progress?: (done: number, total: number) => void;
}

export interface WideDatasetResult {
  files: number;
  perProfile: Record<string, { cex: number; pg: number }>;
}

/** `seen`, `unseen`, or a comma-separated list of profile names. */
export function parseProfiles(text: string): readonly CameraProfile[] {
  if (text === 'seen') return SEEN_PROFILES;
  if (text === 'unseen') return UNSEEN_PROFILES;
  const names = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new Error(`--profiles must be "seen", "unseen" or profile names separated by commas, got "${text}"`);
  return names.map(profileByName);
}

export async function generateWideDataset(o: WideDatasetOptions): Promise<WideDatasetResult> {
  if (!Number.isInteger(o.count) || o.count < 2) throw new Error(`count must be an integer ≥ 2 (one crop of each class), got ${o.count}`);
  const profiles = o.profiles ?? SEEN_PROFILES;
  if (profiles.length === 0) throw new Error('profiles must name at least one camera profile');
  await mkdir(join(o.out, 'cex'), { recursive: true });
  await mkdir(join(o.out, 'pg'), { recursive: true });
  const perProfile: WideDatasetResult['perProfile'] = Object.fromEntries(profiles.map((p) => [p.name, { cex: 0, pg: 0 }]));
  for (let i = 0; i < o.count; i++) {
    const profile = profiles[Math.floor(i / 2) % profiles.length]!;
    const label = i % 2 ? 'pg' : 'cex';
    const crop = await renderProfiledCrop({ label, seed: mixSeed(o.seed, i), profile });
    const ext = profile.file.format === 'jpeg' ? 'jpg' : 'png';
    await writeFile(join(o.out, label, `${profile.name}-${String(i).padStart(6, '0')}.${ext}`), crop.bytes);
    perProfile[profile.name]![label]++;
    o.progress?.(i + 1, o.count);
  }
  return { files: o.count, perProfile };
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  if (i < 0) return undefined;
  const v = process.argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

function integer(name: string, fallback: number): number {
  const text = option(name);
  if (text === undefined) return fallback;
  const v = Number(text);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer, got "${text}"`);
  return v;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = option('--out');
  if (!out) throw new Error('--out is required: the folder to write cex/ and pg/ into, e.g. --out /tmp/ds_wide');
  const profiles = parseProfiles(option('--profiles') ?? 'seen');
  const count = integer('--count', 6000);
  const seed = integer('--seed', 2028);
  const t0 = performance.now();
  let last = 0;
  const result = await generateWideDataset({
    out,
    count,
    seed,
    profiles,
    progress: (done, total) => {
      if (done === total || performance.now() - last > 5000) {
        last = performance.now();
        process.stderr.write(`wide-dataset: ${done}/${total} crops (${((performance.now() - t0) / 1000).toFixed(0)} s)\n`);
      }
    },
  });
  const seconds = Math.round((performance.now() - t0) / 100) / 10;
  process.stdout.write(`${JSON.stringify({ out, count, seed, profiles: profiles.map((p) => p.name), seconds, ...result }, null, 2)}\n`);
}

/**
 * The state of one camera-run as the stage writes it to its state topic (key `<camera>/<run>`,
 * latest record wins; a null value forgets the run). With the `alerts` topic it is all a
 * restarted stage needs to carry on where it stopped: the detector's statistic and the frames
 * of its current excursion (so a replayed onset gets the same alert id), the clean-frame count
 * of a firing alert, when the camera was last heard from, and the last `predictions` record
 * applied (a redelivered record at or below it is not counted twice).
 *
 * Records stay small whatever the run holds: the excursion frames carry no tiles (the firing
 * alert has them; resuming needs ids and P(PG)), and `encodeRunSnapshot` bounds the rest.
 */
import { z } from 'zod';
import { TileSchema } from '../bus/messages.js';
import type { DetectorState } from './detector.js';

const DetectorStateSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('cusum'), s: z.number().min(0), excursion: z.number().int().min(0) }),
  z.object({ kind: z.literal('k-of-n'), ring: z.string().regex(/^[01]*$/), next: z.number().int().min(0), filled: z.number().int().min(0) }),
]);

export const EvidenceFrameSchema = z.object({ frameId: z.string(), capturedAt: z.string(), pPG: z.number(), tiles: z.array(TileSchema).optional() });
export type EvidenceFrame = z.infer<typeof EvidenceFrameSchema>;

export const RunSnapshotSchema = z.object({
  v: z.literal(1),
  camera: z.string().min(1),
  runId: z.string().min(1),
  /** The detector's `description`: a snapshot taken under another configuration is not resumed. */
  detector: z.string(),
  state: DetectorStateSchema,
  /** The frames of the current excursion, oldest first (empty when the detector is at rest), without their tiles. */
  recent: z.array(EvidenceFrameSchema),
  firingId: z.string().optional(),
  silentId: z.string().optional(),
  clean: z.number().int().min(0),
  /** When the stage last received a prediction of this run (ms since the epoch). */
  lastSeenMs: z.number().optional(),
  lastFrameId: z.string().optional(),
  /** The last `predictions` record applied to this run. */
  applied: z.object({ partition: z.number().int().min(0), offset: z.string().regex(/^\d+$/) }).optional(),
  writtenAtMs: z.number(),
});
export type RunSnapshot = z.infer<typeof RunSnapshotSchema> & { state: DetectorState };

export function runKey(camera: string, runId: string): string {
  return `${camera}/${runId}`;
}

/** A state-topic record: the snapshot, or `null` to forget the run. */
export interface StateRecord {
  key: string;
  snapshot: RunSnapshot | null;
}

export function decodeRunSnapshot(bytes: Buffer): { ok: true; value: RunSnapshot } | { ok: false; reason: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `alert state: not JSON (${(err as Error).message})` };
  }
  const result = RunSnapshotSchema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { ok: false, reason: `alert state: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, value: result.data as RunSnapshot };
}

/** Largest state record written, far under any cluster's limit (a stock Kafka takes 1 MB). */
export const MAX_SNAPSHOT_BYTES = 64 * 1024;

/**
 * The record value of a snapshot. One over `maxBytes` (a k-of-n ring of a huge n, frame ids at
 * their longest) loses its oldest excursion frames until it fits: a resumed onset may then name
 * a later first PG frame, which beats a record Kafka refuses.
 */
export function encodeRunSnapshot(snapshot: RunSnapshot, maxBytes = MAX_SNAPSHOT_BYTES): string {
  let json = JSON.stringify(snapshot);
  let recent = snapshot.recent;
  while (Buffer.byteLength(json) > maxBytes && recent.length > 0) {
    recent = recent.slice(Math.ceil(recent.length / 2));
    json = JSON.stringify({ ...snapshot, recent });
  }
  return json;
}

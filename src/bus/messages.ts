/**
 * The message contracts of DESIGN.md, one zod schema each. Decoders never throw:
 * they return `{ ok: false, reason }` so a consumer can route the message to `dead-letter`.
 */
import { z } from 'zod';

export const Label = z.enum(['cex', 'pg']);
export type Label = z.infer<typeof Label>;

/** Headers of a `frames` record (all strings on the wire). */
export const FrameHeadersSchema = z.object({
  'frame-id': z.string().min(1),
  camera: z.string().min(1),
  'captured-at': z.string().datetime({ offset: true }),
  'content-type': z.string().min(1),
  'run-id': z.string().min(1),
  label: Label.optional(),
  /** When ingest saw the file complete, ms since the epoch (for file-to-prediction latency). */
  'completed-at': z.string().regex(/^\d+$/).optional(),
});
export type FrameHeaders = z.infer<typeof FrameHeadersSchema>;

export const TileSchema = z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number(), pPG: z.number() });
export type Tile = z.infer<typeof TileSchema>;

export const PredictionSchema = z.object({
  frameId: z.string().min(1),
  camera: z.string().min(1),
  runId: z.string().min(1),
  capturedAt: z.string(),
  /** P(PG) in [0,1]; null when the frame was unusable. */
  pPG: z.number().min(0).max(1).nullable(),
  predicted: z.enum(['cex', 'pg', 'unusable']),
  /** Why a frame is unusable (quality gate or out-of-distribution). */
  reason: z.string().optional(),
  /** Out-of-distribution score of the frame's embedding (larger = further from training data). */
  ood: z.number().optional(),
  tiles: z.array(TileSchema).optional(),
  /** Ground truth that travelled with the frame (header `label`), when known. */
  label: Label.optional(),
  model: z.string(),
  backend: z.string(),
  device: z.string(),
  latencyMs: z.number(),
  /** When the file was complete at ingest (ms since epoch), for file-to-prediction latency. */
  ingestedAt: z.number().optional(),
});
export type Prediction = z.infer<typeof PredictionSchema>;

export const FrameLabelSchema = z.object({ frameId: z.string().min(1), label: Label });
export const SpanLabelSchema = z.object({ camera: z.string().min(1), from: z.string().datetime({ offset: true }), to: z.string().datetime({ offset: true }), label: Label });
export const LabelMessageSchema = z.union([FrameLabelSchema, SpanLabelSchema]);
export type FrameLabel = z.infer<typeof FrameLabelSchema>;
export type SpanLabel = z.infer<typeof SpanLabelSchema>;
export type LabelMessage = z.infer<typeof LabelMessageSchema>;

export const AlertEvidenceSchema = z.object({
  firstPgFrameId: z.string(),
  frames: z.array(z.object({ frameId: z.string(), capturedAt: z.string(), pPG: z.number(), tiles: z.array(TileSchema).optional() })),
  statistic: z.number().optional(),
  detector: z.string().optional(),
});
export const AlertSchema = z.object({
  id: z.string().min(1),
  camera: z.string().min(1),
  runId: z.string().min(1),
  state: z.enum(['firing', 'resolved']),
  startsAt: z.string(),
  endsAt: z.string().optional(),
  acknowledgedAt: z.string().optional(),
  acknowledgedBy: z.string().optional(),
  evidence: AlertEvidenceSchema,
  action: z.literal('stop-batch'),
});
export type AlertEvidence = z.infer<typeof AlertEvidenceSchema>;
export type Alert = z.infer<typeof AlertSchema>;

export const DeadLetterSchema = z.object({
  sourceTopic: z.string(),
  partition: z.number().optional(),
  offset: z.string().optional(),
  reason: z.string(),
  stage: z.string(),
  at: z.string(),
});
export type DeadLetter = z.infer<typeof DeadLetterSchema>;

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: string };

function decodeJson<T>(schema: z.ZodType<T>, bytes: Buffer | null | undefined, what: string): Decoded<T> {
  if (!bytes || bytes.length === 0) return { ok: false, reason: `${what}: empty value` };
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    return { ok: false, reason: `${what}: not JSON (${(err as Error).message})` };
  }
  const result = schema.safeParse(parsed);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { ok: false, reason: `${what}: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, value: result.data };
}

export const encodeJson = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
export const decodePrediction = (bytes: Buffer | null | undefined) => decodeJson(PredictionSchema, bytes, 'prediction');
export const decodeLabel = (bytes: Buffer | null | undefined) => decodeJson(LabelMessageSchema, bytes, 'label');
export const decodeAlert = (bytes: Buffer | null | undefined) => decodeJson(AlertSchema, bytes, 'alert');

/** kafkajs gives header values as Buffer | string | (Buffer|string)[] | undefined. */
export type RawHeaders = Record<string, Buffer | string | (Buffer | string)[] | undefined> | undefined;

export function headerString(headers: RawHeaders, name: string): string | undefined {
  const value = headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}

export function decodeFrameHeaders(headers: RawHeaders): Decoded<FrameHeaders> {
  const plain: Record<string, string> = {};
  for (const name of ['frame-id', 'camera', 'captured-at', 'content-type', 'run-id', 'label', 'completed-at']) {
    const value = headerString(headers, name);
    if (value !== undefined) plain[name] = value;
  }
  const result = FrameHeadersSchema.safeParse(plain);
  if (!result.success) {
    const issue = result.error.issues[0];
    return { ok: false, reason: `frame headers: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` };
  }
  return { ok: true, value: result.data };
}

export function encodeFrameHeaders(headers: FrameHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = v;
  return out;
}

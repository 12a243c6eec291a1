/**
 * The message contracts of DESIGN.md, one zod schema each. Decoders never throw:
 * they return `{ ok: false, reason }` so a consumer can route the message to `dead-letter`.
 */
import { z } from 'zod';
import { CameraIdSchema, RunIdSchema } from '../config/identity.js';
import { shown } from '../config/shown.js';

export const Label = z.enum(['cex', 'pg']);
export type Label = z.infer<typeof Label>;

// The id rule and the value formatter belong to src/config (which may not import the bus);
// the contracts re-export them so a consumer of messages finds everything here.
export { IDENTITY_PATTERN, IDENTITY_RULE, CameraIdSchema, RunIdSchema, identityProblem } from '../config/identity.js';
export { shown } from '../config/shown.js';

/** An ISO 8601 date-time with a zone (`Z` or `+01:00`), which must name a real instant. */
export const TimestampSchema = z.string().datetime({ offset: true });
/** Frame ids are `<camera>-<capture time>-<hash>` from ingest; bounded because they are kept in memory. */
const FrameIdSchema = z.string().min(1).max(256);
/** Free-text fields (model name, backend, reasons): bounded so one record cannot carry megabytes in them. */
const ShortText = z.string().max(512);

/** Headers of a `frames` record (all strings on the wire). */
export const FrameHeadersSchema = z.object({
  'frame-id': FrameIdSchema,
  camera: CameraIdSchema,
  'captured-at': TimestampSchema,
  'content-type': z.string().min(1).max(128),
  'run-id': RunIdSchema,
  label: Label.optional(),
  /** When ingest saw the file complete, ms since the epoch (for file-to-prediction latency). */
  'completed-at': z.string().regex(/^\d+$/).optional(),
});
export type FrameHeaders = z.infer<typeof FrameHeadersSchema>;

export const TileSchema = z.object({ x: z.number(), y: z.number(), width: z.number(), height: z.number(), pPG: z.number() });
export type Tile = z.infer<typeof TileSchema>;

export const PredictionSchema = z.object({
  frameId: FrameIdSchema,
  camera: CameraIdSchema,
  runId: RunIdSchema,
  capturedAt: TimestampSchema,
  /** P(PG) in [0,1]; null when the frame was unusable. */
  pPG: z.number().min(0).max(1).nullable(),
  predicted: z.enum(['cex', 'pg', 'unusable']),
  /** Why a frame is unusable (quality gate or out-of-distribution). */
  reason: ShortText.optional(),
  /** Out-of-distribution score of the frame's embedding (larger = further from training data). */
  ood: z.number().optional(),
  tiles: z.array(TileSchema).max(10_000).optional(),
  /** Ground truth that travelled with the frame (header `label`), when known. */
  label: Label.optional(),
  model: ShortText,
  /** Whether the model was calibrated on this camera (`crystalwatch calibrate`) or ships uncalibrated. */
  calibration: z
    .object({ status: z.enum(['uncalibrated', 'calibrated']), camera: ShortText.optional(), calibratedAt: ShortText.optional(), note: ShortText.optional() })
    .optional(),
  backend: ShortText,
  device: ShortText,
  latencyMs: z.number(),
  /** When the file was complete at ingest (ms since epoch), for file-to-prediction latency. */
  ingestedAt: z.number().optional(),
  /**
   * Classified after newer frames of its camera, in a catch-up pass under overload (classify.overload
   * newest-first). Out of capture order: it must not move live state (alerts, the latest P(PG)).
   */
  late: z.literal(true).optional(),
});
export type Prediction = z.infer<typeof PredictionSchema>;

export const FrameLabelSchema = z.object({ frameId: FrameIdSchema, label: Label });
export const SpanLabelSchema = z.object({ camera: CameraIdSchema, from: TimestampSchema, to: TimestampSchema, label: Label });
export const LabelMessageSchema = z.union([FrameLabelSchema, SpanLabelSchema]);
export type FrameLabel = z.infer<typeof FrameLabelSchema>;
export type SpanLabel = z.infer<typeof SpanLabelSchema>;
export type LabelMessage = z.infer<typeof LabelMessageSchema>;

export const AlertEvidenceSchema = z.object({
  /** PG onset: the first frame of the excursion with P(PG) ≥ 0.5 (absent on camera-silent alerts). */
  firstPgFrameId: FrameIdSchema.optional(),
  frames: z
    .array(z.object({ frameId: FrameIdSchema, capturedAt: TimestampSchema, pPG: z.number(), tiles: z.array(TileSchema).max(10_000).optional() }))
    .max(1000),
  statistic: z.number().optional(),
  detector: ShortText.optional(),
  /** camera-silent: the last frame received before the silence, when, and the silence that raised the alert. */
  lastFrameId: FrameIdSchema.optional(),
  lastSeenAt: TimestampSchema.optional(),
  silentSeconds: z.number().optional(),
});
/**
 * Why an alert fired. Absent on records written before camera-silent alerts existed: those are
 * PG onsets. Consumers that act on `stop-batch` must check `action`, not only `state`.
 */
export const AlertReasonSchema = z.enum(['pg-onset', 'camera-silent']);
export const AlertSchema = z.object({
  id: z.string().min(1).max(128),
  camera: CameraIdSchema,
  runId: RunIdSchema,
  state: z.enum(['firing', 'resolved']),
  startsAt: TimestampSchema,
  endsAt: TimestampSchema.optional(),
  acknowledgedAt: TimestampSchema.optional(),
  acknowledgedBy: ShortText.optional(),
  /** What the person who acknowledged wrote (the page, OPC UA), kept in the audit trail and the batch report. */
  acknowledgedComment: ShortText.optional(),
  evidence: AlertEvidenceSchema,
  reason: AlertReasonSchema.optional(),
  /** pg-onset: stop-batch; camera-silent: check-camera. */
  action: z.enum(['stop-batch', 'check-camera']),
});
export type AlertEvidence = z.infer<typeof AlertEvidenceSchema>;
export type Alert = z.infer<typeof AlertSchema>;

/**
 * One camera's rolling quality over one window, as the quality stage emits it in-process and the
 * web stage forwards it to the live page (stages never import each other, so the shape is here);
 * null where a figure is undefined (e.g. no PG in the window).
 */
export interface QualityEvent {
  camera: string;
  /** "500f" (last 500 labelled frames) or "300s" (labelled in the last 300 s). */
  window: string;
  precision: number | null;
  recall: number | null;
  f1: number | null;
  accuracy: number | null;
  support: number;
}

/**
 * A `runs` record: a batch starts or ends on one camera (or, without `camera`, on every camera).
 * Key = the camera id, or `*`. Written by the web API, the `run-control` CLI, OPC UA and at
 * shutdown; read by every process that stamps, watches or reports runs.
 */
export const RunEventSchema = z.object({
  runId: RunIdSchema,
  camera: CameraIdSchema.optional(),
  state: z.enum(['started', 'ended']),
  at: TimestampSchema,
  /** Who asked: a user name, `opcua:<user>`, `config`, `shutdown`. */
  by: ShortText,
  source: z.enum(['api', 'cli', 'opcua', 'config', 'shutdown']),
});
export type RunEvent = z.infer<typeof RunEventSchema>;

/**
 * Bytes of the record that was dead-lettered (its key, value or a header): whole when small,
 * otherwise a digest, the size and the first bytes, so the letter always fits the topic.
 */
export const DeadLetterBytesSchema = z.object({
  bytes: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  /** The bytes in base64: all of them, or the first ones when `truncated`. */
  base64: z.string(),
  truncated: z.boolean(),
});
export type DeadLetterBytes = z.infer<typeof DeadLetterBytesSchema>;

/** A `dead-letter` record's value (JSON); built by `deadLetterRecord` in src/bus/dead-letter.ts. */
export const DeadLetterSchema = z.object({
  sourceTopic: z.string(),
  partition: z.number().optional(),
  offset: z.string().optional(),
  reason: z.string(),
  stage: z.string(),
  at: TimestampSchema,
  key: DeadLetterBytesSchema.nullable(),
  value: DeadLetterBytesSchema.nullable(),
  headers: z.array(z.object({ name: z.string(), value: DeadLetterBytesSchema })),
  /** Headers left out beyond the first ones (a record may carry any number). */
  headersOmitted: z.number().int().min(0).optional(),
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
  return check(schema, parsed, what);
}

/** Validates `input`; the reason names the first wrong field, what was wrong and the value (shortened). */
function check<T>(schema: z.ZodType<T>, input: unknown, what: string): Decoded<T> {
  const result = schema.safeParse(input);
  if (result.success) return { ok: true, value: result.data };
  const issue = result.error.issues[0];
  const at = issue?.path ?? [];
  const value = at.reduce<unknown>(
    (node, key) => (node !== null && typeof node === 'object' ? (node as Record<PropertyKey, unknown>)[key as PropertyKey] : undefined),
    input,
  );
  const got = value === undefined || at.length === 0 ? '' : `, got ${shown(value)}`;
  return { ok: false, reason: `${what}: ${at.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}${got}` };
}

export const encodeJson = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));
export const decodePrediction = (bytes: Buffer | null | undefined) => decodeJson(PredictionSchema, bytes, 'prediction');
export const decodeLabel = (bytes: Buffer | null | undefined) => decodeJson(LabelMessageSchema, bytes, 'label');
export const decodeAlert = (bytes: Buffer | null | undefined) => decodeJson(AlertSchema, bytes, 'alert');
export const decodeDeadLetter = (bytes: Buffer | null | undefined) => decodeJson(DeadLetterSchema, bytes, 'dead letter');
export const decodeRunEvent = (bytes: Buffer | null | undefined) => decodeJson(RunEventSchema, bytes, 'run event');
/** Validates a run event given as a plain value (an HTTP body, an OPC UA call). */
export const checkRunEvent = (input: unknown) => check(RunEventSchema, input, 'run event');

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
  return check(FrameHeadersSchema, plain, 'frame headers');
}

export function encodeFrameHeaders(headers: FrameHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = v;
  return out;
}

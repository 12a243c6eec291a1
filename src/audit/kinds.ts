/**
 * What the audit trail records: a closed set of kinds, each with the data a quality unit asks
 * for. The fields named here are required (or typed when optional); a caller may add more
 * context (evidence frame ids, a sink's response code), which is kept and hashed with the rest.
 */
import { z } from 'zod';
import { HEX_DIGEST } from './canonical.js';

const Id = z.string().min(1).max(256);
const Text = z.string().max(4096);
const Instant = z.iso.datetime({ offset: true });
const Digest = z.string().regex(HEX_DIGEST, 'must be a lowercase hex sha256 digest (64 characters)');

const AlertRef = { alertId: Id, camera: Id, runId: Id };

export const AUDIT_DATA = {
  /** The detector raised an alert (it is on the `alerts` topic). */
  'alert.fired': z.looseObject({ ...AlertRef, startsAt: Instant, statistic: z.number().optional(), firstPgFrameId: Id.optional() }),
  /** One sink took the alert (webhook answered 2xx, Alertmanager accepted, action ran). */
  'alert.delivered': z.looseObject({ alertId: Id, sink: Id, state: z.enum(['firing', 'resolved']).optional(), attempts: z.number().int().min(1).optional() }),
  /** A person acknowledged the alert: who (required), when, and what they said. */
  'alert.acknowledged': z.looseObject({
    alertId: Id,
    who: z.string().min(1).max(256),
    when: Instant,
    comment: Text.optional(),
    via: z.enum(['web', 'opcua', 'cli', 'api']).optional(),
  }),
  'alert.resolved': z.looseObject({ ...AlertRef, endsAt: Instant }),
  /** A sink could not take the alert by its deadline; the alert went to `dead-letter`. */
  'alert.dead-lettered': z.looseObject({ alertId: Id, sink: Id, reason: Text }),
  'run.started': z.looseObject({ runId: Id, camera: Id.optional(), source: z.enum(['api', 'cli', 'opcua', 'config', 'sidecar']).optional() }),
  'run.ended': z.looseObject({ runId: Id, camera: Id.optional(), reason: Text.optional() }),
  /** At each start: digests of the effective configuration and of the model card in force. */
  'config.loaded': z.looseObject({ configSha256: Digest, modelCardSha256: Digest, modelName: Id, modelVersion: Id, calibrated: z.boolean().optional() }),
  /** `crystalwatch calibrate` wrote a new card version. */
  'calibration.written': z.looseObject({
    camera: Id.optional(),
    modelName: Id,
    modelVersion: Id,
    modelCardSha256: Digest,
    frames: z.number().int().min(0).optional(),
  }),
  /**
   * Written by the trail itself when it reopens a file that did not end where it should
   * (see README "Recovery"); never by callers.
   */
  'audit.recovered': z.looseObject({
    reason: z.enum(['torn-tail', 'head-mismatch', 'head-missing']),
    message: Text,
    /** The last intact record in the file when it was reopened. */
    fileLastSeq: z.number().int().min(0),
    /** What audit.head said (head-mismatch): the file should have reached this record. */
    headSeq: z.number().int().min(0).optional(),
    headHash: Digest.optional(),
    /** torn-tail: the bytes cut off, kept in `recoveredTo`. */
    tornBytes: z.number().int().min(1).optional(),
    tornSha256: Digest.optional(),
    recoveredTo: z.string().optional(),
  }),
} as const;

export type AuditKind = keyof typeof AUDIT_DATA;
export const AUDIT_KINDS = Object.keys(AUDIT_DATA) as AuditKind[];
/** Kinds an application appends; `audit.recovered` belongs to the trail. */
export type AppendableKind = Exclude<AuditKind, 'audit.recovered'>;
export type AuditData<K extends AuditKind> = z.input<(typeof AUDIT_DATA)[K]>;

export function isAuditKind(kind: unknown): kind is AuditKind {
  return typeof kind === 'string' && Object.hasOwn(AUDIT_DATA, kind);
}

/** Why `data` is not valid for `kind` (every issue, with its path), or undefined when it is. */
export function auditDataProblem(kind: AuditKind, data: unknown): string | undefined {
  const result = AUDIT_DATA[kind].safeParse(data);
  if (result.success) return undefined;
  return result.error.issues.map((issue) => `${issue.path.length > 0 ? `data.${issue.path.join('.')}` : 'data'}: ${issue.message}`).join('; ');
}

/** The audit trail: see README.md. */
export { AuditTrail, type AuditTrailOptions, type AuditPage, type ReadOptions } from './trail.js';
export { verifyAuditTrail, checkTrail, type AuditVerification, type AuditProblem, type AuditProblemKind } from './verify.js';
export { auditApi, AUDIT_API_DEFAULT_LIMIT, AUDIT_API_MAX_LIMIT, type AuditApiAnswer } from './api.js';
export { kafkaAuditMirror } from './kafka.js';
export type { MirrorSend, MirrorOptions } from './mirror.js';
export { AUDIT_KINDS, type AuditKind, type AppendableKind, type AuditData } from './kinds.js';
export { type AuditRecord, recordHash } from './record.js';
export { canonicalJson, sha256Hex, GENESIS_HASH } from './canonical.js';
export { auditPaths } from './paths.js';
export { AuditTrailClosedError, AuditTrailFailedError, AuditRecordError } from './errors.js';

/**
 * One audit record and its hash chain:
 *
 *   record = {seq, at, kind, actor?, data, prev, hash}
 *   hash   = sha256(canonicalJson({seq, at, kind, actor?, data, prev}))   (lowercase hex)
 *   prev   = the previous record's hash; 64 zeros for the first record
 *   line   = canonicalJson(record) + "\n"                                 (one per record in audit.jsonl)
 *
 * So a record's own bytes (without `hash`) are what its digest covers, and each record vouches
 * for the one before it: changing, removing or moving any record breaks a link.
 */
import { canonicalJson, HEX_DIGEST, sha256Hex } from './canonical.js';
import { isAuditKind, type AuditKind } from './kinds.js';

export interface AuditRecord {
  /** 1, 2, 3, … in the order appended. */
  seq: number;
  /** ISO 8601 instant, UTC. */
  at: string;
  kind: AuditKind;
  /** Who caused it (an operator's name, "opcua:client-7"), when known. */
  actor?: string;
  data: Record<string, unknown>;
  prev: string;
  hash: string;
}

export type UnsealedRecord = Omit<AuditRecord, 'hash'>;

export function recordHash(record: UnsealedRecord): string {
  const { seq, at, kind, actor, data, prev } = record;
  return sha256Hex(canonicalJson({ seq, at, kind, actor, data, prev }));
}

/** The sealed record exactly as it will read back from disk (data through canonical JSON). */
export function sealRecord(unsealed: UnsealedRecord): { record: AuditRecord; line: string } {
  const data = JSON.parse(canonicalJson(unsealed.data, 'data')) as Record<string, unknown>;
  const record: AuditRecord = { ...unsealed, data, hash: '' };
  if (record.actor === undefined) delete record.actor;
  record.hash = recordHash(record);
  return { record, line: `${canonicalJson(record)}\n` };
}

export type ParsedLine = { ok: true; record: AuditRecord; canonical: boolean } | { ok: false; reason: string };

/** Reads one line of audit.jsonl (without its newline): the record, or why it is not one. */
export function parseRecordLine(line: string): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    return { ok: false, reason: `not JSON (${(err as Error).message})` };
  }
  const reason = shapeProblem(value);
  if (reason) return { ok: false, reason };
  const record = value as AuditRecord;
  let canonical = false;
  try {
    canonical = canonicalJson(record) === line;
  } catch {
    // JSON.parse cannot produce what canonicalJson refuses; keep canonical = false regardless.
  }
  return { ok: true, record, canonical };
}

const FIELDS = new Set(['seq', 'at', 'kind', 'actor', 'data', 'prev', 'hash']);

function shapeProblem(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const r = value as Record<string, unknown>;
  const extra = Object.keys(r).filter((key) => !FIELDS.has(key));
  if (extra.length > 0) return `unexpected field(s) ${extra.map((k) => JSON.stringify(k)).join(', ')}`;
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 1) return `seq must be a positive integer, got ${JSON.stringify(r.seq)}`;
  if (typeof r.at !== 'string' || Number.isNaN(Date.parse(r.at))) return `at must be an ISO 8601 instant, got ${JSON.stringify(r.at)}`;
  if (!isAuditKind(r.kind)) return `kind ${JSON.stringify(r.kind)} is not an audit kind`;
  if (r.actor !== undefined && typeof r.actor !== 'string') return `actor must be a string, got ${JSON.stringify(r.actor)}`;
  if (typeof r.data !== 'object' || r.data === null || Array.isArray(r.data)) return 'data must be a JSON object';
  if (typeof r.prev !== 'string' || !HEX_DIGEST.test(r.prev)) return `prev must be a hex sha256 digest, got ${JSON.stringify(r.prev)}`;
  if (typeof r.hash !== 'string' || !HEX_DIGEST.test(r.hash)) return `hash must be a hex sha256 digest, got ${JSON.stringify(r.hash)}`;
  return undefined;
}

/**
 * What a reopen does with a file that does not end where it should (README "Recovery").
 * Pure: the scanned file and audit.head in, the plan out; trail.ts carries it out.
 *
 * - Bytes after the last newline (torn tail): a write no caller was told is durable. They are
 *   cut off (and kept under recovered/), and an `audit.recovered` record appended after the
 *   file's last record says so.
 * - audit.head ahead of the file, or naming a different record at its seq: records were cut or
 *   replaced while no writer was looking. The chain continues from the file's last record, but
 *   seq skips past what the head promised (a seq is never reused), and an `audit.recovered`
 *   record keeps the evidence that overwriting the head would otherwise destroy.
 * - audit.head missing or damaged while the file holds records: the same, as far as can be told.
 * Damage inside the file (edited, moved, missing records) stays where it is, for `verify` to
 * report; the writer logs it and appends after it without touching it.
 */
import { GENESIS_HASH, sha256Hex } from './canonical.js';
import type { Head, HeadState } from './head.js';
import type { AuditData } from './kinds.js';
import type { ScannedFile } from './scan.js';

export type RecoveryData = AuditData<'audit.recovered'>;

export interface RecoveryPlan {
  /** The record the chain continues from: the highest seq in the file (GENESIS when empty). */
  tail: Head;
  /** seq of the first record appended (a recovery record, or the caller's first). */
  nextSeq: number;
  /** `audit.recovered` data to append before anything else, in order. */
  recoveries: RecoveryData[];
}

export function planRecovery(scanned: ScannedFile, head: HeadState): RecoveryPlan {
  const bySeq = new Map<number, string>();
  let tail: Head = { seq: 0, hash: GENESIS_HASH };
  for (const { parsed } of scanned.lines) {
    if (!parsed.ok || bySeq.has(parsed.record.seq)) continue;
    bySeq.set(parsed.record.seq, parsed.record.hash);
    if (parsed.record.seq > tail.seq) tail = { seq: parsed.record.seq, hash: parsed.record.hash };
  }
  const recoveries: RecoveryData[] = [];
  if (scanned.tornTail) {
    recoveries.push({
      reason: 'torn-tail',
      message: `audit.jsonl ended in ${scanned.tornTail.length} bytes without a newline after record ${tail.seq} (a write interrupted by a crash, never acknowledged); they were cut off`,
      fileLastSeq: tail.seq,
      tornBytes: scanned.tornTail.length,
      tornSha256: sha256Hex(scanned.tornTail),
    });
  }
  let nextSeq = tail.seq + 1;
  if (head.state === 'ok') {
    const { seq, hash } = head.head;
    const atHead = bySeq.get(seq);
    if (seq > tail.seq) {
      recoveries.push({
        reason: 'head-mismatch',
        message: `audit.head said the trail reached record ${seq}, but audit.jsonl stops at ${tail.seq}: records ${tail.seq + 1}–${seq} were removed from the end`,
        fileLastSeq: tail.seq,
        headSeq: seq,
        headHash: hash,
      });
      nextSeq = seq + 1;
    } else if (seq > 0 && atHead !== undefined && atHead !== hash) {
      recoveries.push({
        reason: 'head-mismatch',
        message: `audit.head recorded record ${seq} with hash ${hash}, but audit.jsonl's record ${seq} has ${atHead}: the end of the trail was rewritten`,
        fileLastSeq: tail.seq,
        headSeq: seq,
        headHash: hash,
      });
    }
  } else if (tail.seq > 0) {
    const why = head.state === 'missing' ? 'audit.head was missing' : `audit.head was damaged (${head.reason})`;
    recoveries.push({
      reason: 'head-missing',
      message: `${why} while audit.jsonl holds records up to ${tail.seq}: whether records were removed from the end cannot be told`,
      fileLastSeq: tail.seq,
    });
  }
  return { tail, nextSeq, recoveries };
}

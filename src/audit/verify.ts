/**
 * Verifies a trail: every record's own digest, every link to the record before it (looked up by
 * seq, so a moved record is told apart from a changed one), the order of the lines, the seqs
 * that are missing, and the end of the file against audit.head.
 *
 * `checkTrail` is pure (scanned file + head in, findings out); `verifyAuditTrail(dir)` reads them.
 */
import { GENESIS_HASH } from './canonical.js';
import { readHead, type HeadState } from './head.js';
import { auditPaths } from './paths.js';
import { recordHash, type AuditRecord } from './record.js';
import { scanAuditFile, type ScannedFile } from './scan.js';

export type AuditProblemKind = 'altered' | 'removed' | 'reordered' | 'truncated' | 'malformed';

export interface AuditProblem {
  kind: AuditProblemKind;
  /** The record concerned (the first one of a range). */
  seq?: number;
  /** The last seq of a range of missing records. */
  toSeq?: number;
  /** 1-based line of audit.jsonl. */
  line?: number;
  message: string;
}

export interface AuditVerification {
  ok: boolean;
  /** Records that parse (intact or not). */
  records: number;
  /** The highest seq in the file and its hash: what to anchor elsewhere (a batch report, a ticket). */
  lastSeq: number;
  lastHash: string;
  problems: AuditProblem[];
  /** Facts that are not problems: a torn tail cut off at a reopen, an unterminated last line. */
  notes: string[];
}

interface Entry {
  line: number;
  record: AuditRecord;
  hashOk: boolean;
}

const short = (hash: string) => `${hash.slice(0, 12)}…`;
const range = (from: number, to: number) => (from === to ? `record ${from}` : `records ${from}–${to}`);

/** `head` null: check the file alone (the writer does this at open, before it reconciles the head). */
export function checkTrail(scanned: ScannedFile, head: HeadState | null): AuditVerification {
  const problems: AuditProblem[] = [];
  const notes: string[] = [];
  const entries: Entry[] = [];
  for (const { line, parsed } of scanned.lines) {
    if (!parsed.ok) {
      problems.push({ kind: 'malformed', line, message: `line ${line} is not an audit record: ${parsed.reason}` });
      continue;
    }
    const { record } = parsed;
    const computed = recordHash(record);
    const hashOk = computed === record.hash;
    if (!hashOk) {
      problems.push({
        kind: 'altered',
        seq: record.seq,
        line,
        message: `record ${record.seq} (line ${line}) was edited: its content hashes to ${short(computed)}, not to its hash ${short(record.hash)}`,
      });
    } else if (!parsed.canonical) {
      problems.push({
        kind: 'altered',
        seq: record.seq,
        line,
        message: `record ${record.seq} (line ${line}) was edited: its bytes are not the canonical form the writer wrote (the content still matches its hash)`,
      });
    }
    entries.push({ line, record, hashOk });
  }
  if (scanned.tornTail) {
    notes.push(
      `the file ends in ${scanned.tornTail.length} bytes without a newline after line ${scanned.lines.length}: a write in progress, or one a crash interrupted (never acknowledged); the next open cuts it off and records audit.recovered`,
    );
  }

  const bySeq = new Map<number, Entry>();
  const unique: Entry[] = [];
  for (const entry of entries) {
    const first = bySeq.get(entry.record.seq);
    if (first) {
      problems.push({
        kind: 'reordered',
        seq: entry.record.seq,
        line: entry.line,
        message: `record ${entry.record.seq} appears again at line ${entry.line} (first at line ${first.line}): a copy was inserted`,
      });
      continue;
    }
    bySeq.set(entry.record.seq, entry);
    unique.push(entry);
  }

  for (let i = 0; i < unique.length; i += 1) {
    const { record, line } = unique[i]!;
    const before = unique[i - 1]?.record.seq;
    const after = unique[i + 1]?.record.seq;
    if (before !== undefined && record.seq < before) {
      problems.push({
        kind: 'reordered',
        seq: record.seq,
        line,
        message: `record ${record.seq} (line ${line}) comes after record ${before} (line ${unique[i - 1]!.line})`,
      });
    } else if (after !== undefined && record.seq > after) {
      problems.push({
        kind: 'reordered',
        seq: record.seq,
        line,
        message: `record ${record.seq} (line ${line}) comes before record ${after} (line ${unique[i + 1]!.line})`,
      });
    }
  }

  const explained = explainedByRecovery(unique, problems, notes);
  const lastSeq = unique.reduce((max, e) => Math.max(max, e.record.seq), 0);
  for (let seq = 1; seq <= lastSeq; seq += 1) {
    if (bySeq.has(seq) || explained.has(seq)) continue;
    let to = seq;
    while (to + 1 <= lastSeq && !bySeq.has(to + 1) && !explained.has(to + 1)) to += 1;
    const next = bySeq.get(to + 1);
    problems.push({
      kind: 'removed',
      seq,
      toSeq: to,
      ...(next ? { line: next.line } : {}),
      message: `${range(seq, to)} ${seq === to ? 'is' : 'are'} missing${next ? ` (before line ${next.line}, record ${to + 1})` : ''}`,
    });
    seq = to;
  }

  for (const { record, line, hashOk } of unique) {
    if (!hashOk) continue; // its own problem is reported; its prev cannot be trusted
    if (record.seq === 1) {
      if (record.prev !== GENESIS_HASH)
        problems.push({
          kind: 'altered',
          seq: 1,
          line,
          message: `record 1 (line ${line}) must have prev = 64 zeros, got ${short(record.prev)}: it is not the start of this trail`,
        });
      continue;
    }
    const predecessor = bySeq.get(record.seq - 1);
    if (!predecessor || !predecessor.hashOk || predecessor.record.hash === record.prev) continue;
    problems.push({
      kind: 'altered',
      seq: predecessor.record.seq,
      line: predecessor.line,
      message: `record ${predecessor.record.seq} (line ${predecessor.line}) was replaced: record ${record.seq} (line ${line}) was chained to ${short(record.prev)}, but record ${predecessor.record.seq} hashes to ${short(predecessor.record.hash)}`,
    });
  }

  if (head) checkHead(head, bySeq, lastSeq, unique.length, problems);
  problems.sort((a, b) => (a.seq ?? a.line ?? 0) - (b.seq ?? b.line ?? 0));
  const last = bySeq.get(lastSeq);
  return { ok: problems.length === 0, records: entries.length, lastSeq, lastHash: last?.record.hash ?? GENESIS_HASH, problems, notes };
}

/**
 * audit.recovered records written at a reopen: a torn tail is a note; a head that disagreed with
 * the file is a problem for good (the lost or replaced records stay lost), reported once here
 * instead of as a seq gap. Returns the seqs it accounts for.
 */
function explainedByRecovery(unique: Entry[], problems: AuditProblem[], notes: string[]): Set<number> {
  const explained = new Set<number>();
  for (const { record, line, hashOk } of unique) {
    if (record.kind !== 'audit.recovered' || !hashOk) continue;
    const d = record.data as { reason?: string; fileLastSeq?: number; headSeq?: number; headHash?: string; tornBytes?: number; recoveredTo?: string };
    const fileLastSeq = d.fileLastSeq ?? 0;
    if (d.reason === 'torn-tail') {
      notes.push(
        `record ${record.seq} (line ${line}, ${record.at}): a torn tail of ${d.tornBytes ?? '?'} bytes after record ${fileLastSeq} was cut off at a reopen${d.recoveredTo ? `, kept in ${d.recoveredTo}` : ''}`,
      );
    } else if (d.reason === 'head-missing') {
      problems.push({
        kind: 'truncated',
        seq: fileLastSeq + 1,
        line,
        message: `at a reopen (record ${record.seq}, ${record.at}) audit.head was missing: records after ${fileLastSeq} may have been removed`,
      });
    } else if (d.reason === 'head-mismatch' && d.headSeq !== undefined && d.headSeq > fileLastSeq) {
      for (let seq = fileLastSeq + 1; seq <= d.headSeq; seq += 1) explained.add(seq);
      problems.push({
        kind: 'truncated',
        seq: fileLastSeq + 1,
        toSeq: d.headSeq,
        line,
        message: `${range(fileLastSeq + 1, d.headSeq)} were cut from the end before a reopen (recorded by record ${record.seq}, ${record.at}): audit.head said the trail reached ${d.headSeq}, the file stopped at ${fileLastSeq}`,
      });
    } else if (d.reason === 'head-mismatch') {
      problems.push({
        kind: 'altered',
        seq: d.headSeq,
        line,
        message: `before a reopen (recorded by record ${record.seq}, ${record.at}) record ${d.headSeq} was replaced: audit.head recorded hash ${short(d.headHash ?? '')}`,
      });
    }
  }
  return explained;
}

function checkHead(head: HeadState, bySeq: Map<number, Entry>, lastSeq: number, records: number, problems: AuditProblem[]): void {
  if (head.state === 'damaged') {
    problems.push({ kind: 'malformed', message: `audit.head is damaged (${head.reason}): the end of the trail cannot be checked` });
    return;
  }
  if (head.state === 'missing') {
    if (records > 0)
      problems.push({ kind: 'truncated', seq: lastSeq + 1, message: `audit.head is missing: whether records after ${lastSeq} were removed cannot be told` });
    return;
  }
  const { seq, hash } = head.head;
  // The head is written after the records, so a live writer's file may be ahead of it; never behind.
  if (seq > lastSeq) {
    problems.push({
      kind: 'truncated',
      seq: lastSeq + 1,
      toSeq: seq,
      message: `${range(lastSeq + 1, seq)} ${seq === lastSeq + 1 ? 'was' : 'were'} removed from the end: audit.head says the trail reaches record ${seq} (${short(hash)}), the file stops at ${lastSeq}`,
    });
    return;
  }
  const entry = bySeq.get(seq);
  if (seq > 0 && entry && entry.record.hash !== hash) {
    problems.push({
      kind: 'altered',
      seq,
      line: entry.line,
      message: `record ${seq} (line ${entry.line}) is not the one audit.head recorded (${short(hash)}, file has ${short(entry.record.hash)}): the end of the trail was rewritten`,
    });
  }
}

/** Reads `<dataDir>/audit/` and checks it. Throws only when there is no trail there at all. */
export async function verifyAuditTrail(dataDir: string): Promise<AuditVerification> {
  const paths = auditPaths(dataDir);
  // Head first: a writer appending meanwhile can only put the file further ahead of it.
  const head = await readHead(paths.head);
  const scanned = await scanAuditFile(paths.log);
  if (!scanned && head.state === 'missing') {
    throw new Error(
      `no audit trail in ${paths.folder} (neither audit.jsonl nor audit.head): check --data-dir (the default config uses ./data, the demo ./data/demo)`,
    );
  }
  return checkTrail(scanned ?? { lines: [], completeBytes: 0 }, head);
}

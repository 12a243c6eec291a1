/**
 * Reads audit.jsonl into lines (with their byte offsets), the parsed record of each, and the
 * torn tail: bytes after the last newline. Every append writes a whole line ending in "\n" and
 * resolves only after fsync, so bytes without a newline are a write that never completed
 * (a crash mid-write, or a writer still writing) — never a record anyone was told is durable.
 */
import { readFile } from 'node:fs/promises';
import { parseRecordLine, type AuditRecord, type ParsedLine } from './record.js';

export interface ScannedLine {
  /** 1-based line number in the file. */
  line: number;
  /** Byte offset of the line's first byte. */
  offset: number;
  /** Bytes of the line without its newline. */
  bytes: number;
  parsed: ParsedLine;
}

export interface ScannedFile {
  lines: ScannedLine[];
  /** Size up to and including the last newline: where intact content ends. */
  completeBytes: number;
  /** Bytes after the last newline, if any. */
  tornTail?: Buffer;
}

export async function scanAuditFile(path: string): Promise<ScannedFile | undefined> {
  let buffer: Buffer;
  try {
    buffer = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`audit trail ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check its permissions`);
  }
  return scanAuditBuffer(buffer);
}

export function scanAuditBuffer(buffer: Buffer): ScannedFile {
  const lines: ScannedLine[] = [];
  let start = 0;
  for (;;) {
    const end = buffer.indexOf(0x0a, start);
    if (end < 0) break;
    const text = buffer.toString('utf8', start, end);
    lines.push({
      line: lines.length + 1,
      offset: start,
      bytes: end - start,
      parsed: text === '' ? { ok: false, reason: 'empty line' } : parseRecordLine(text),
    });
    start = end + 1;
  }
  const scanned: ScannedFile = { lines, completeBytes: start };
  if (start < buffer.length) scanned.tornTail = buffer.subarray(start);
  return scanned;
}

/**
 * A page of records read straight from the file, without taking the writer's lock (the CLI's
 * `audit list`, while a process may be appending). Lines that are not records are skipped; `verify` reports them.
 */
export async function readAuditPage(path: string, options: { after?: number; limit: number }): Promise<{ records: AuditRecord[]; next?: number }> {
  const scanned = await scanAuditFile(path);
  if (!scanned) throw new Error(`no audit trail at ${path}: check --data-dir (the default config uses ./data, the demo ./data/demo)`);
  const records: AuditRecord[] = [];
  let more = false;
  for (const { parsed } of scanned.lines) {
    if (!parsed.ok || parsed.record.seq <= (options.after ?? 0)) continue;
    if (records.length === options.limit) {
      more = true;
      break;
    }
    records.push(parsed.record);
  }
  return more ? { records, next: records[records.length - 1]!.seq } : { records };
}

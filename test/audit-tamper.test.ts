import { afterEach, describe, expect, it } from 'vitest';
import { appendFile, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readHead } from '../src/audit/head.js';
import { AuditTrail, canonicalJson, recordHash, verifyAuditTrail, type AuditRecord } from '../src/audit/index.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A closed trail of `count` records (alert.fired for alert-1, alert-2, …) in a fresh data dir. */
async function trailOf(count: number): Promise<{ dir: string; log: string; records: AuditRecord[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'audit-tamper-'));
  dirs.push(dir);
  const trail = await AuditTrail.open({ dir });
  const records: AuditRecord[] = [];
  for (let i = 1; i <= count; i += 1)
    records.push(await trail.append('alert.fired', { alertId: `alert-${i}`, camera: 'cam-1', runId: 'run-7', startsAt: '2026-03-01T10:00:00.000Z' }));
  await trail.close();
  return { dir, log: join(dir, 'audit', 'audit.jsonl'), records };
}

async function editLines(log: string, edit: (lines: string[]) => (string | undefined)[]): Promise<void> {
  const lines = (await readFile(log, 'utf8')).split('\n').slice(0, -1);
  const edited = edit(lines);
  if (edited.includes(undefined)) throw new Error(`editLines: the edit read past the ${lines.length} lines of ${log}`);
  await writeFile(log, edited.map((l) => `${l}\n`).join(''));
}

const kinds = (problems: readonly { kind: string; seq?: number }[]) => problems.map((p) => [p.kind, p.seq]);

describe('verifyAuditTrail finds what was done to the file', () => {
  it('an edited record: altered, by seq and line', async () => {
    const { dir, log } = await trailOf(5);
    await editLines(log, (lines) => lines.map((l, i) => (i === 2 ? l.replace('"alert-3"', '"alert-9"') : l)));
    const result = await verifyAuditTrail(dir);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'altered', seq: 3, line: 3 })]);
    expect(result.problems[0]!.message).toMatch(/record 3 \(line 3\) was edited/);
  });

  it('an edited record whose own hash was recomputed: the next record names it', async () => {
    const { dir, log } = await trailOf(5);
    await editLines(log, (lines) =>
      lines.map((l, i) => {
        if (i !== 2) return l;
        const record = JSON.parse(l) as AuditRecord;
        record.data.camera = 'cam-2';
        record.hash = recordHash(record);
        return canonicalJson(record);
      }),
    );
    const result = await verifyAuditTrail(dir);
    expect(kinds(result.problems)).toEqual([['altered', 3]]);
    expect(result.problems[0]!.message).toMatch(/record 3 \(line 3\) was replaced: record 4 \(line 4\) was chained to/);
  });

  it('a one-byte edit that keeps the content (a space): altered', async () => {
    const { dir, log } = await trailOf(3);
    await editLines(log, (lines) => lines.map((l, i) => (i === 1 ? l.replace('"seq":2', '"seq": 2') : l)));
    const result = await verifyAuditTrail(dir);
    expect(kinds(result.problems)).toEqual([['altered', 2]]);
    expect(result.problems[0]!.message).toMatch(/not the canonical form/);
  });

  it('a deleted line in the middle: removed', async () => {
    const { dir, log } = await trailOf(5);
    await editLines(log, (lines) => lines.filter((_, i) => i !== 2));
    const result = await verifyAuditTrail(dir);
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'removed', seq: 3, toSeq: 3, line: 3 })]);
    expect(result.problems[0]!.message).toBe('record 3 is missing (before line 3, record 4)');
  });

  it('a swapped pair: reordered, both named', async () => {
    const { dir, log } = await trailOf(5);
    await editLines(log, ([a, b, c, d, e]) => [a, b, d, c, e]);
    const result = await verifyAuditTrail(dir);
    expect(kinds(result.problems)).toEqual([
      ['reordered', 3],
      ['reordered', 4],
    ]);
    expect(result.problems.map((p) => p.line)).toEqual([4, 3]);
  });

  it('a duplicated record: reordered (a copy was inserted)', async () => {
    const { dir, log } = await trailOf(3);
    await editLines(log, ([a, b, c]) => [a, b, c, b]);
    const result = await verifyAuditTrail(dir);
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'reordered', seq: 2, line: 4 })]);
  });

  it('the last record dropped: truncated, through audit.head', async () => {
    const { dir, log } = await trailOf(5);
    await editLines(log, (lines) => lines.slice(0, -1));
    const result = await verifyAuditTrail(dir);
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'truncated', seq: 5, toSeq: 5 })]);
    expect(result.problems[0]!.message).toMatch(/record 5 was removed from the end: audit.head says the trail reaches record 5/);
  });

  it('a line that is not a record: malformed, by line', async () => {
    const { dir, log } = await trailOf(3);
    await editLines(log, ([a, b, c]) => [a, '{"seq":', b, c]);
    const result = await verifyAuditTrail(dir);
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'malformed', line: 2 })]);
  });

  it('audit.head deleted: truncation can no longer be ruled out', async () => {
    const { dir } = await trailOf(3);
    await unlink(join(dir, 'audit', 'audit.head'));
    expect(kinds((await verifyAuditTrail(dir)).problems)).toEqual([['truncated', 4]]);
  });

  it('no trail at all: says where it looked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-none-'));
    dirs.push(dir);
    await expect(verifyAuditTrail(dir)).rejects.toThrow(/no audit trail in .*audit \(neither audit.jsonl nor audit.head\): check --data-dir/);
  });
});

describe('reopening a trail that does not end where it should', () => {
  it('a torn last line (crash mid-write) is cut off, kept, and recorded as audit.recovered; the chain goes on intact', async () => {
    const { dir, log, records } = await trailOf(3);
    const torn = canonicalJson({ ...records[2], seq: 4 }).slice(0, 70); // half a line, no newline
    await appendFile(log, torn);
    const before = await verifyAuditTrail(dir);
    expect(before.ok).toBe(true); // never acknowledged, so nothing committed is missing …
    expect(before.notes[0]).toMatch(/ends in 70 bytes without a newline after line 3/); // … but it is reported

    const trail = await AuditTrail.open({ dir });
    expect(trail.recoveredAtOpen).toHaveLength(1);
    const recovered = trail.recoveredAtOpen[0]!;
    expect(recovered).toMatchObject({ seq: 4, kind: 'audit.recovered', prev: records[2]!.hash, data: { reason: 'torn-tail', fileLastSeq: 3, tornBytes: 70 } });
    const kept = await readdir(join(dir, 'audit', 'recovered'));
    expect(kept).toHaveLength(1);
    expect(await readFile(join(dir, 'audit', 'recovered', kept[0]!), 'utf8')).toBe(torn);
    const next = await trail.append('run.ended', { runId: 'run-7' });
    expect(next).toMatchObject({ seq: 5, prev: recovered.hash });
    await trail.close();

    const after = await verifyAuditTrail(dir);
    expect(after).toMatchObject({ ok: true, records: 5, problems: [] });
    expect(after.notes[0]).toMatch(/record 4 .*a torn tail of 70 bytes after record 3 was cut off at a reopen, kept in/);
  });

  it('a truncated tail is recorded at the reopen, seq skips the lost records, and verify keeps reporting it', async () => {
    const { dir, log, records } = await trailOf(5);
    await editLines(log, (lines) => lines.slice(0, 3));
    const trail = await AuditTrail.open({ dir });
    expect(trail.recoveredAtOpen.map((r) => r.data)).toEqual([
      expect.objectContaining({ reason: 'head-mismatch', fileLastSeq: 3, headSeq: 5, headHash: records[4]!.hash }),
    ]);
    expect(trail.recoveredAtOpen[0]).toMatchObject({ seq: 6, prev: records[2]!.hash });
    expect((await trail.append('run.ended', { runId: 'run-7' })).seq).toBe(7);
    await trail.close();

    const result = await verifyAuditTrail(dir);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([expect.objectContaining({ kind: 'truncated', seq: 4, toSeq: 5, line: 4 })]);
    expect(result.problems[0]!.message).toMatch(/records 4–5 were cut from the end before a reopen \(recorded by record 6/);
  });

  it('damage inside the file is reported at open and left for verify; appends go on after it', async () => {
    const { dir, log, records } = await trailOf(5);
    await editLines(log, (lines) => lines.map((l, i) => (i === 2 ? l.replace('"cam-1"', '"cam-9"') : l)));
    const trail = await AuditTrail.open({ dir });
    expect(kinds(trail.problemsAtOpen)).toEqual([['altered', 3]]);
    expect(trail.recoveredAtOpen).toEqual([]);
    expect(await trail.append('run.ended', { runId: 'run-7' })).toMatchObject({ seq: 6, prev: records[4]!.hash });
    await trail.close();
    expect(kinds((await verifyAuditTrail(dir)).problems)).toEqual([['altered', 3]]);
  });

  it('a crash between the record and the head update (head one behind, its newest slot torn) needs no recovery', async () => {
    const { dir, records } = await trailOf(3);
    const head = join(dir, 'audit', 'audit.head');
    const slots = await readFile(head, 'utf8');
    await writeFile(
      head,
      slots
        .split('\n')
        .map((slot) => (slot.includes('"seq":3') ? ' '.repeat(slot.length) : slot))
        .join('\n'),
    );
    expect(await readHead(head)).toEqual({ state: 'ok', head: { seq: 2, hash: records[1]!.hash } });
    expect((await verifyAuditTrail(dir)).ok).toBe(true);
    const trail = await AuditTrail.open({ dir });
    expect(trail.recoveredAtOpen).toEqual([]);
    expect(trail.last.seq).toBe(3);
    await trail.close();
  });
});

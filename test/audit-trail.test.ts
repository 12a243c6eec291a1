import { afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AuditRecordError,
  AuditTrail,
  AuditTrailClosedError,
  GENESIS_HASH,
  auditApi,
  canonicalJson,
  recordHash,
  sha256Hex,
  verifyAuditTrail,
  type AuditRecord,
} from '../src/audit/index.js';
import { waitFor } from './helpers/wait.js';

const dirs: string[] = [];
const trails: AuditTrail[] = [];
afterEach(async () => {
  for (const t of trails.splice(0)) await t.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'audit-'));
  dirs.push(dir);
  return dir;
}

async function openTrail(options: Parameters<typeof AuditTrail.open>[0]): Promise<AuditTrail> {
  const trail = await AuditTrail.open(options);
  trails.push(trail);
  return trail;
}

const fired = (n: number) => ({ alertId: `alert-${n}`, camera: 'cam-1', runId: 'run-7', startsAt: '2026-03-01T10:00:00.000Z', statistic: 12.5 });

async function fileLines(dir: string): Promise<string[]> {
  return (await readFile(join(dir, 'audit', 'audit.jsonl'), 'utf8')).split('\n').filter((l) => l !== '');
}

describe('canonical JSON', () => {
  it('sorts keys at every depth, leaves out undefined properties, and refuses what JSON cannot hold', () => {
    expect(canonicalJson({ b: 1, a: { d: [1, 'x', null, true], c: undefined, b: 0.1 } })).toBe('{"a":{"b":0.1,"d":[1,"x",null,true]},"b":1}');
    expect(canonicalJson({ at: new Date('2026-03-01T10:00:00Z') })).toBe('{"at":"2026-03-01T10:00:00.000Z"}');
    expect(() => canonicalJson({ x: Number.NaN })).toThrow(/\$\.x is NaN/);
    expect(() => canonicalJson({ x: [1, undefined] })).toThrow(/\$\.x\[1\] is undefined/);
    expect(() => canonicalJson({ x: 1n })).toThrow(/\$\.x is a bigint/);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(() => canonicalJson(cycle)).toThrow(/cycle/);
  });
});

describe('AuditTrail', () => {
  it('appends hash-chained records that verify, one canonical line each', async () => {
    const dir = await tempDir();
    const trail = await openTrail({ dir });
    const first = await trail.append('run.started', { runId: 'run-7', camera: 'cam-1', source: 'api' }, 'operator-7');
    const second = await trail.append('alert.fired', fired(1));
    const ack = await trail.append(
      'alert.acknowledged',
      { alertId: 'alert-1', who: 'operator-7', when: '2026-03-01T10:01:00.000Z', comment: 'batch stopped' },
      'operator-7',
    );
    expect(first).toMatchObject({ seq: 1, kind: 'run.started', actor: 'operator-7', prev: GENESIS_HASH });
    expect(second.prev).toBe(first.hash);
    expect(ack.prev).toBe(second.hash);
    expect(ack.hash).toBe(recordHash(ack));
    expect(trail.last).toEqual({ seq: 3, hash: ack.hash });

    const lines = await fileLines(dir);
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe(canonicalJson(ack));
    // The digest is sha256 over the canonical bytes of the record without its hash.
    const { hash, ...unsealed } = JSON.parse(lines[2]!) as AuditRecord;
    expect(sha256Hex(canonicalJson(unsealed))).toBe(hash);

    await trail.close();
    await trail.close(); // idempotent
    const result = await verifyAuditTrail(dir);
    expect(result).toMatchObject({ ok: true, records: 3, lastSeq: 3, lastHash: ack.hash, problems: [] });
  });

  it('refuses records that are not valid for their kind, and writes nothing for them', async () => {
    const dir = await tempDir();
    const trail = await openTrail({ dir });
    await expect(trail.append('alert.acknowledged', { alertId: 'a', when: '2026-03-01T10:00:00Z' } as never)).rejects.toThrow(/data\.who/);
    await expect(
      trail.append('config.loaded', { configSha256: 'abc', modelCardSha256: 'f'.repeat(64), modelName: 'default', modelVersion: '3' }),
    ).rejects.toThrow(/data\.configSha256: must be a lowercase hex sha256/);
    await expect(trail.append('alert.sent' as never, {} as never)).rejects.toThrow(AuditRecordError);
    await expect(trail.append('audit.recovered' as never, {} as never)).rejects.toThrow(/appendable kinds/);
    await expect(trail.append('alert.delivered', { alertId: 'a', sink: 'webhook', latency: Number.POSITIVE_INFINITY })).rejects.toThrow(
      /data\.latency is Infinity/,
    );
    const ok = await trail.append('alert.delivered', { alertId: 'a', sink: 'webhook', attempts: 2 });
    expect(ok.seq).toBe(1); // the refused ones took no seq
    await trail.close();
    await expect(trail.append('alert.delivered', { alertId: 'a', sink: 'webhook' })).rejects.toThrow(AuditTrailClosedError);
    expect(await fileLines(dir)).toHaveLength(1);
  });

  it('continues the chain after a restart', async () => {
    const dir = await tempDir();
    const a = await openTrail({ dir });
    await a.append('config.loaded', { configSha256: sha256Hex('config'), modelCardSha256: sha256Hex('card'), modelName: 'default', modelVersion: '1' });
    const last = await a.append('run.started', { runId: 'run-1' });
    await a.close();

    const b = await openTrail({ dir });
    expect(b.last).toEqual({ seq: 2, hash: last.hash });
    expect(b.recoveredAtOpen).toEqual([]);
    const next = await b.append('run.ended', { runId: 'run-1', reason: 'operator' });
    expect(next).toMatchObject({ seq: 3, prev: last.hash });
    await b.close();
    expect(await verifyAuditTrail(dir)).toMatchObject({ ok: true, records: 3, lastSeq: 3 });
  });

  it('one writer per data dir', async () => {
    const dir = await tempDir();
    await openTrail({ dir });
    await expect(AuditTrail.open({ dir })).rejects.toThrow(/in use by this process/);
  });

  it('keeps concurrent appends chained in call order', async () => {
    const dir = await tempDir();
    const trail = await openTrail({ dir });
    const records = await Promise.all(
      Array.from({ length: 300 }, (_, i) => trail.append('alert.delivered', { alertId: `alert-${i}`, sink: i % 2 === 0 ? 'webhook' : 'alertmanager' })),
    );
    expect(records.map((r) => r.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    expect(records.map((r) => r.data.alertId)).toEqual(Array.from({ length: 300 }, (_, i) => `alert-${i}`));
    for (let i = 1; i < records.length; i += 1) expect(records[i]!.prev).toBe(records[i - 1]!.hash);
    await trail.close();
    expect(await verifyAuditTrail(dir)).toMatchObject({ ok: true, records: 300, problems: [] });
  });

  it('reads pages in order, each record as it is on disk', async () => {
    const dir = await tempDir();
    const trail = await openTrail({ dir });
    const written = await Promise.all(Array.from({ length: 25 }, (_, i) => trail.append('alert.fired', fired(i))));
    const seen: AuditRecord[] = [];
    let after: number | undefined = 0;
    let pages = 0;
    while (after !== undefined) {
      const page: Awaited<ReturnType<AuditTrail['read']>> = await trail.read({ after, limit: 10 });
      seen.push(...page.records);
      after = page.next;
      pages += 1;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(written.map((r) => JSON.parse(canonicalJson(r))));
    expect(await trail.read({ after: 25, limit: 10 })).toEqual({ records: [] });
    await expect(trail.read({ limit: 0 })).rejects.toThrow(/limit must be an integer 1\.\.10000, got 0/);
  });
});

describe('GET /api/audit (auditApi)', () => {
  it('pages with after and limit (default 100, at most 1000) and says what was wrong', async () => {
    const dir = await tempDir();
    const trail = await openTrail({ dir });
    await Promise.all(Array.from({ length: 120 }, (_, i) => trail.append('alert.delivered', { alertId: `a-${i}`, sink: 'webhook' })));
    const api = auditApi(trail);
    const first = await api(new URL('http://127.0.0.1/api/audit'));
    expect(first.status).toBe(200);
    const body = first.body as { records: AuditRecord[]; next?: number; last: { seq: number } };
    expect(body.records).toHaveLength(100);
    expect(body.next).toBe(100);
    expect(body.last.seq).toBe(120);
    const second = (await api(new URL('http://127.0.0.1/api/audit?after=100&limit=50'))).body as { records: AuditRecord[]; next?: number };
    expect(second.records.map((r) => r.seq)).toEqual(Array.from({ length: 20 }, (_, i) => 101 + i));
    expect(second.next).toBeUndefined();
    expect(await api(new URL('http://127.0.0.1/api/audit?limit=1001'))).toEqual({
      status: 400,
      body: { error: 'limit must be an integer 1..1000, got "1001"' },
    });
    expect((await api(new URL('http://127.0.0.1/api/audit?after=-1'))).status).toBe(400);
  });
});

describe('audit mirror', () => {
  it('retries a failing mirror without losing the local record, and resumes from its cursor after a restart', async () => {
    const dir = await tempDir();
    const sent: number[] = [];
    let failuresLeft = 3;
    const flaky = async (record: AuditRecord) => {
      if (failuresLeft > 0) {
        failuresLeft -= 1;
        throw new Error('broker not available');
      }
      sent.push(record.seq);
    };
    const a = await openTrail({ dir, mirror: flaky, mirrorOptions: { retryMinMs: 5, retryMaxMs: 20 } });
    for (let i = 0; i < 5; i += 1) await a.append('alert.fired', fired(i)); // each resolves whatever the mirror does
    await waitFor(() => sent.length === 5, { timeout: 10_000, message: 'the mirror to send all 5 records after 3 failures' });
    expect(sent).toEqual([1, 2, 3, 4, 5]);
    await a.close();

    // Down for good: appends still succeed, close does not hang, the backlog waits in the file.
    const down = await openTrail({ dir, mirror: () => Promise.reject(new Error('down')), mirrorOptions: { retryMinMs: 5, retryMaxMs: 10 } });
    await down.append('run.ended', { runId: 'run-7' });
    await down.append('run.started', { runId: 'run-8' });
    await down.close();

    const c = await openTrail({ dir, mirror: flaky });
    await waitFor(() => sent.length === 7, { timeout: 10_000, message: 'the records appended while the mirror was down to be sent after the restart' });
    expect(sent).toEqual([1, 2, 3, 4, 5, 6, 7]);
    await c.close();
  });
});

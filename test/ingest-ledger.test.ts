import { afterEach, describe, expect, it, vi } from 'vitest';
import { appendFile, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ledger, type SendRecord } from '../src/ingest/ledger.js';
import { withDeadline } from './helpers/wait.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** The prototype every FileHandle shares (Node exports no FileHandle class), to spy on the ledger's fsyncs. */
async function fileHandlePrototype(dir: string): Promise<{ datasync: () => Promise<void> }> {
  const probe = await open(join(dir, 'probe'), 'w');
  await probe.close();
  return Object.getPrototypeOf(probe) as { datasync: () => Promise<void> };
}

const send = (path: string, frameId: string): SendRecord => ({ t: 'send', camera: 'cam1', path, size: 10, mtimeMs: 1, sha256: 'ab', frameId, at: '' });

describe('ingest ledger', () => {
  it('survives a reopen, a torn last line, and tells sent from acknowledged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    const path = join(dir, 'ledger.jsonl');
    const a = new Ledger(path);
    await a.open();
    await a.append([send('a.png', 'f-a'), send('b.png', 'f-b'), send('c.png', 'f-c')]);
    await a.append([
      { t: 'ack', frameId: 'f-a', partition: 0, offset: '41', at: '' },
      { t: 'ack', frameId: 'f-b', partition: 0, offset: '42', at: '' },
    ]);
    await a.close();
    await a.close(); // idempotent
    await appendFile(path, '{"t":"ack","frameId":"f-c","parti'); // crash mid-write

    const b = new Ledger(path);
    await b.open();
    expect(b.get('cam1', 'a.png')).toMatchObject({ acked: true, partition: 0, offset: '41' });
    expect(b.get('cam1', 'c.png')).toMatchObject({ acked: false });
    expect(b.unacknowledged().map((e) => e.frameId)).toEqual(['f-c']);
    expect(b.lastAckedOffsets().get(0)).toBe(42n);
    expect(b.get('cam2', 'a.png')).toBeUndefined();
    await b.close();
    // Compacted on open: the offsets, one send + one ack per acked file, one send for the unacked one.
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(6);
    expect(JSON.parse(lines[0]!)).toEqual({ t: 'offsets', partitions: { 0: '42' } });
  });

  it('a file replaced by new content gets the new frame id', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    const l = new Ledger(join(dir, 'l.jsonl'));
    await l.open();
    await l.append([send('a.png', 'old'), { t: 'ack', frameId: 'old', partition: 1, offset: '0', at: '' }]);
    await l.append([send('a.png', 'new')]);
    expect(l.get('cam1', 'a.png')).toMatchObject({ frameId: 'new', acked: false });
    expect(l.byFrame('old')).toBeUndefined();
    await l.close();
  });
});

describe('ingest ledger group commit', () => {
  it('writes concurrent appends together, in call order, with fewer fsyncs than appends, all durable', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    const path = join(dir, 'ledger.jsonl');
    // Every FileHandle shares one prototype: count the ledger's fsyncs there.
    const datasync = vi.spyOn(await fileHandlePrototype(dir), 'datasync');
    const l = new Ledger(path);
    try {
      await l.open();
      datasync.mockClear();
      // Eight cameras each acknowledging a frame at once, and "done" notes (no fsync asked) among them.
      const writes = Array.from({ length: 40 }, (_, i) =>
        i % 5 === 4
          ? l.note([{ t: 'done', camera: 'cam1', path: `none-${i}.png` }])
          : l.append([send(`f${i}.png`, `f-${i}`), { t: 'ack', frameId: `f-${i}`, partition: i % 3, offset: String(i), at: '' }]),
      );
      await Promise.all(writes);
      expect(datasync.mock.calls.length).toBeGreaterThanOrEqual(1);
      expect(datasync.mock.calls.length).toBeLessThan(writes.length / 4);
      expect(l.get('cam1', 'f38.png')).toMatchObject({ acked: true, offset: '38' });
    } finally {
      datasync.mockRestore();
      await l.close();
    }
    const lines = (await readFile(path, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { t: string; frameId?: string; path?: string });
    // Call order kept: every send right before its ack, the notes where they were asked for.
    const expected = Array.from({ length: 40 }, (_, i) => (i % 5 === 4 ? [`done none-${i}.png`] : [`send f-${i}`, `ack f-${i}`])).flat();
    expect(lines.map((r) => (r.t === 'done' ? `done ${r.path}` : `${r.t} ${r.frameId}`))).toEqual(expected);
    const reopened = new Ledger(path);
    await reopened.open();
    expect(reopened.unacknowledged()).toEqual([]);
    expect(reopened.lastAckedOffsets()).toEqual(
      new Map([
        [0, 36n],
        [1, 37n],
        [2, 38n],
      ]),
    );
    await reopened.close();
  });

  it('writes after close fail with a clear error, every one of them, and leave the file as it was', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    const path = join(dir, 'l.jsonl');
    const l = new Ledger(path);
    await l.open();
    await l.append([send('a.png', 'f-a')]);
    await l.close();
    const before = await readFile(path, 'utf8');
    for (const write of [l.append([send('b.png', 'f-b')]), l.note([send('c.png', 'f-c')]), l.append([send('d.png', 'f-d')])]) {
      await expect(withDeadline(write, { timeout: 2_000, message: 'a write after close to settle' })).rejects.toThrow(/ingest ledger .* is closed/);
    }
    expect(await readFile(path, 'utf8')).toBe(before);
  });

  it('a failed fsync fails exactly its batch, leaves no trace of it in the file, and the next append works', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    const path = join(dir, 'l.jsonl');
    const proto = await fileHandlePrototype(dir);
    const l = new Ledger(path);
    await l.open();
    await l.append([send('a.png', 'f-a')]);
    const datasync = vi.spyOn(proto, 'datasync').mockRejectedValueOnce(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    try {
      await expect(l.append([send('b.png', 'f-b')])).rejects.toThrow(/EIO/);
      expect(l.get('cam1', 'b.png')).toBeUndefined();
      await l.append([send('c.png', 'f-c'), { t: 'ack', frameId: 'f-c', partition: 0, offset: '7', at: '' }]);
    } finally {
      datasync.mockRestore();
      await l.close();
    }
    const frames = (await readFile(path, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { frameId?: string }).frameId);
    expect(frames).toEqual(['f-a', 'f-c', 'f-c']);
  });
});

describe('ingest ledger compaction', () => {
  it('drops files that left the folder, keeps the acknowledged offsets, and stays small', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    const path = join(dir, 'l.jsonl');
    const l = new Ledger(path);
    await l.open();
    for (let b = 0; b < 20; b += 1) {
      const sends = Array.from({ length: 300 }, (_, i) => send(`f${b}-${i}.png`, `id-${b}-${i}`));
      await l.append(sends);
      await l.append(sends.map((s, i) => ({ t: 'ack' as const, frameId: s.frameId, partition: 2, offset: String(b * 300 + i), at: '' })));
      await l.note(sends.map((s) => ({ t: 'done' as const, camera: 'cam1', path: s.path })));
    }
    await l.append([send('last.png', 'id-last')]); // sent, never acknowledged
    expect(l.size).toBe(1);
    expect(l.lastAckedOffsets().get(2)).toBe(5999n);
    await l.close();
    // 18,001 records were written; online compaction kept the file to a few lines.
    expect((await readFile(path, 'utf8')).trim().split('\n').length).toBeLessThan(10_100);

    const again = new Ledger(path);
    await again.open();
    expect(again.lastAckedOffsets().get(2)).toBe(5999n);
    expect(again.unacknowledged().map((e) => e.frameId)).toEqual(['id-last']);
    expect(again.get('cam1', 'f0-0.png')).toBeUndefined();
    await again.close();
    expect((await readFile(path, 'utf8')).trim().split('\n')).toHaveLength(2); // offsets + the unacked send
  });
});

describe('ingest ledger lock', () => {
  it('refuses a second owner while the first is open, and takes over a stale lock', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    const path = join(dir, 'l.jsonl');
    const a = new Ledger(path);
    await a.open();
    await a.close();
    // Another process's lock: pid 1 is always alive.
    await writeFile(`${path}.lock`, '1');
    await expect(new Ledger(path).open()).rejects.toThrow(/in use by process 1; run one ingest per ledger/);
    // A lock left by a process that no longer exists is taken over.
    await writeFile(`${path}.lock`, '999999');
    const b = new Ledger(path);
    await b.open();
    await b.close();
  });
});

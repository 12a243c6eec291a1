import { afterEach, describe, expect, it } from 'vitest';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ledger, type SendRecord } from '../src/ingest/ledger.js';

const dirs: string[] = [];
afterEach(async () => { for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true }); });

const send = (path: string, frameId: string): SendRecord => ({ t: 'send', camera: 'cam1', path, size: 10, mtimeMs: 1, sha256: 'ab', frameId, at: '' });

describe('ingest ledger', () => {
  it('survives a reopen, a torn last line, and tells sent from acknowledged', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ledger-'));
    dirs.push(dir);
    const path = join(dir, 'ledger.jsonl');
    const a = new Ledger(path);
    await a.open();
    await a.append([send('a.png', 'f-a'), send('b.png', 'f-b'), send('c.png', 'f-c')]);
    await a.append([{ t: 'ack', frameId: 'f-a', partition: 0, offset: '41', at: '' }, { t: 'ack', frameId: 'f-b', partition: 0, offset: '42', at: '' }]);
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
    // Compacted on open: one send + one ack per acked file, one send for the unacked one.
    const lines = (await readFile(path, 'utf8')).trim().split('\n');
    expect(lines).toHaveLength(5);
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

import { afterEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { framePathIn, isFramePath, isIgnoredName, labelFromPath, readSidecar, sidecarPathFor, walk } from '../src/ingest/files.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('ingest file conventions', () => {
  it('ground truth from folder names: cex/pg and 0/1, deepest wins', () => {
    expect(labelFromPath('cex/a.png')).toBe('cex');
    expect(labelFromPath('run-7/PG/a.png')).toBe('pg');
    expect(labelFromPath('0/a.png')).toBe('cex');
    expect(labelFromPath('1/a.png')).toBe('pg');
    expect(labelFromPath('pg/cex/a.png')).toBe('cex');
    expect(labelFromPath('a.png')).toBeUndefined();
    expect(labelFromPath('10/a.png')).toBeUndefined();
    expect(labelFromPath('pg.png')).toBeUndefined(); // a file name is not a folder
  });

  it('ignores temporary names, dot files and sidecars', () => {
    for (const name of ['a.png.tmp', '.a.png.tmp', 'a.part', 'a.png.partial', 'a.crdownload', 'a.png~', '.ingest-ledger.jsonl', 'a.json'])
      expect(isIgnoredName(name), name).toBe(true);
    for (const name of ['a.png', 'a.jpg', 'a.tif', 'frame-0001.PNG', 'notes.txt']) expect(isIgnoredName(name), name).toBe(false);
  });

  it('one test of "is this path ours": hidden, own folders, temporary names and sidecars are not frames', () => {
    for (const rel of ['a.png', 'cex/a.png', 'run-7/pg/frame-0001.PNG', 'notes.txt']) expect(isFramePath(rel), rel).toBe(true);
    for (const rel of ['.archive/a.png', '.quarantine/cex/a.png', '.ingest-ledger.jsonl', 'cex/.a.png', 'cex/a.png.tmp', 'a.json', '.hidden/pg/a.png'])
      expect(isFramePath(rel), rel).toBe(false);

    const watch = join('/data', 'cam-1');
    const own = [join(watch, 'done'), join('/elsewhere', 'quarantine', 'cam-1')];
    expect(framePathIn(watch, own, join(watch, 'pg', 'a.png'))).toBe('pg/a.png');
    expect(framePathIn(watch, own, watch)).toBeUndefined(); // the folder itself
    expect(framePathIn(watch, own, join('/data', 'cam-2', 'a.png'))).toBeUndefined(); // another camera
    expect(framePathIn(watch, own, join(watch, '..', 'a.png'))).toBeUndefined();
    expect(framePathIn(watch, own, join(watch, 'done'))).toBeUndefined(); // a configured archive inside the folder
    expect(framePathIn(watch, own, join(watch, 'done', 'a.png'))).toBeUndefined();
    expect(framePathIn(watch, own, join(watch, 'donee', 'a.png'))).toBe('donee/a.png');
    expect(framePathIn(watch, own, join(watch, '.archive', 'a.png'))).toBeUndefined();
    expect(framePathIn(watch, own, join(watch, 'cex', 'a.png.part'))).toBeUndefined();
  });

  it('the scan lists what the same test keeps, in name order', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'walk-'));
    dirs.push(dir);
    for (const sub of ['pg', '.archive', '.quarantine', 'done']) await mkdir(join(dir, sub));
    const files = ['b.png', 'a.png', 'pg/c.png', 'a.json', 'b.png.tmp', '.ingest-ledger.jsonl', '.archive/x.png', '.quarantine/y.png', 'done/z.png'];
    for (const f of files) await writeFile(join(dir, f), 'x');
    expect(await walk(dir, [join(dir, 'done')])).toEqual(['a.png', 'b.png', 'pg/c.png']);
  });

  it('reads sidecars and says what is wrong with bad ones', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sidecar-'));
    dirs.push(dir);
    const image = join(dir, 'cam-1-20261122T100000000-000001.png');
    expect(sidecarPathFor(image)).toBe(join(dir, 'cam-1-20261122T100000000-000001.json'));
    expect(await readSidecar(sidecarPathFor(image))).toEqual({ state: 'absent' });
    await writeFile(
      sidecarPathFor(image),
      JSON.stringify({
        camera: 'cam-1',
        capturedAt: '2026-11-22T10:00:00.000Z',
        label: 'pg',
        pgBoxes: [{ x: 1, y: 2, width: 3, height: 4 }],
        frameIndex: 1,
        fault: 'corrupt',
      }),
    );
    expect(await readSidecar(sidecarPathFor(image))).toMatchObject({
      state: 'ok',
      sidecar: { label: 'pg', capturedAt: '2026-11-22T10:00:00.000Z', frameIndex: 1 },
    });
    await writeFile(sidecarPathFor(image), '{"label": "pg",');
    expect(await readSidecar(sidecarPathFor(image))).toMatchObject({ state: 'invalid', detail: expect.stringMatching(/is not JSON/) });
    await writeFile(sidecarPathFor(image), '{"label": "impurity"}');
    expect(await readSidecar(sidecarPathFor(image))).toMatchObject({ state: 'invalid', detail: expect.stringMatching(/label/) });
  });
});

/**
 * The epoch is chosen on validation crops and the report is on test crops; neither may be the
 * other, nor training crops. A dataset with train/ and test/ but no valid/ gets a validation
 * split carved from train/ (stratified, duplicate groups whole), and its report is still on
 * test/ alone.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDataset } from '../simulator/index.js';
import { chooseSplits } from '../src/model/splits.js';
import { train } from '../src/model/train.js';
import { loadModelCard } from '../src/model/card.js';
import type { SplitName } from '../src/model/dataset.js';

function dataset(splitOf: SplitName[], groupOf?: number[]) {
  const labels = Uint8Array.from(splitOf, (_, i) => i % 2);
  return { root: '/data', splitOf, labels, duplicates: { groupOf: Int32Array.from(groupOf ?? splitOf.map((_, i) => i)) } } as unknown as Parameters<
    typeof chooseSplits
  >[0];
}

describe('chooseSplits', () => {
  it('carves a validation split from train when there is no valid/, keeping test as given', () => {
    const given: SplitName[] = [...Array(40).fill('train'), ...Array(10).fill('test')];
    const s = chooseSplits(dataset(given), undefined, 3, true);
    expect(s.test).toEqual(Array.from({ length: 10 }, (_, i) => 40 + i));
    expect(s.valid.length).toBeGreaterThanOrEqual(8); // 25/(70+25) of 40 ≈ 10.5
    expect(s.valid.length).toBeLessThanOrEqual(12);
    expect(s.carved).toEqual({ valid: s.valid.length });
    // Disjoint, and every crop somewhere.
    expect(new Set([...s.train, ...s.valid, ...s.test]).size).toBe(50);
    for (const i of s.valid) expect(given[i]).toBe('train');
    // Stratified: both classes in the carved split.
    expect(new Set(s.valid.map((i) => i % 2))).toEqual(new Set([0, 1]));
  });

  it('never cuts a duplicate group between train and the carved split', () => {
    const given: SplitName[] = [...Array(40).fill('train'), ...Array(6).fill('test')];
    // Crops 2k and 2k+2 are rotations of one another (same class: both even or both odd).
    const groups = given.map((_, i) => (i < 40 ? Math.floor(i / 4) * 4 + (i % 2) : i));
    const s = chooseSplits(dataset(given, groups), undefined, 5, true);
    const where = new Map<number, SplitName>();
    s.splitOf.forEach((split, i) => {
      const g = groups[i]!;
      if (where.has(g)) expect(split).toBe(where.get(g));
      where.set(g, split);
    });
  });

  it('carves a test split too when only train/ and valid/ are given, and keeps given splits otherwise', () => {
    const onlyValid = chooseSplits(dataset([...Array(60).fill('train'), ...Array(20).fill('valid')]), undefined, 1, true);
    expect(onlyValid.carved.test).toBeGreaterThan(0);
    expect(onlyValid.valid).toEqual(Array.from({ length: 20 }, (_, i) => 60 + i));
    const all = chooseSplits(dataset(['train', 'train', 'valid', 'valid', 'test', 'test']), undefined, 1, true);
    expect(all.carved).toEqual({});
    expect([all.train, all.valid, all.test]).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
  });

  it('refuses shares that leave no validation or test split, and a train/ too small to carve from', () => {
    expect(() => chooseSplits(dataset(Array(20).fill('train')), [80, 20, 0], 1, false)).toThrow('--split 80/20/0 leaves the test split empty');
    expect(() => chooseSplits(dataset(Array(20).fill('train')), [80, 0, 20], 1, false)).toThrow('leaves the validation split empty');
    expect(() => chooseSplits(dataset(['train', 'test']), undefined, 1, true)).toThrow(/has no valid split and its train split \(1 crop\) is too small/);
  });
});

describe('train on train/ + test/ without valid/', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cw-model-splits-'));
    await generateDataset({ out: join(dir, 'data'), count: 60, seed: 21, layout: 'opencrystaldata', split: [70, 0, 30] });
    await rm(join(dir, 'data', 'valid'), { recursive: true, force: true });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('selects the epoch on crops carved from train/ and reports on test/ only', async () => {
    expect((await readdir(join(dir, 'data'))).sort()).toEqual(['test', 'train']);
    const lines: string[] = [];
    const out = join(dir, 'model');
    const result = await train({ data: join(dir, 'data'), out, epochs: 1, batchSize: 16, seed: 2, backend: 'wasm', progress: (l) => lines.push(l) });
    const { card } = await loadModelCard(out);
    const splits = card.provenance?.splits as Record<SplitName, { total: number }>;
    const testGiven = (await readdir(join(dir, 'data', 'test', 'cex'))).length + (await readdir(join(dir, 'data', 'test', 'pg'))).length;
    expect(splits.test.total).toBe(testGiven);
    expect(splits.valid.total).toBeGreaterThan(0);
    expect(splits.train.total + splits.valid.total + splits.test.total).toBe(60);
    expect(card.provenance?.carvedFromTrain).toEqual({ valid: splits.valid.total });
    expect(result.test).toMatchObject({ split: 'test', support: testGiven });
    expect(lines.some((l) => new RegExp(`no valid/ folder: ${splits.valid.total} crops of train/ set aside as the valid split`).test(l))).toBe(true);
    expect(lines.some((l) => new RegExp(`^held-out test \\(${testGiven} crops\\)`).test(l))).toBe(true);
  }, 240_000);
});

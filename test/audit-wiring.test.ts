/**
 * What the monitor process writes to the audit trail at start (src/app/audit-wiring.ts), with
 * the shipped model and a calibrated copy of it: the configuration and card in force every
 * time, and a calibration once, when a calibrated card first comes into force.
 */
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { openAudit } from '../src/app/audit-wiring.js';
import { validateConfig } from '../src/config/index.js';
import { loadModelCard } from '../src/model/card.js';
import { silentLogger } from '../src/config/logger.js';
import { root } from './helpers/demo.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('audit records at start', () => {
  it('records the config and card at each start, and a calibrated card once', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-audit-wiring-'));
    dirs.push(dir);
    const model = path.join(dir, 'model');
    await cp(path.join(root, 'models', 'default'), model, { recursive: true });
    const config = validateConfig({ dataDir: dir, audit: { fsync: false } });
    const open = async () => {
      const audit = await openAudit({ config, dataDir: dir, model: await loadModelCard(model), kafka: {} as Kafka, logger: silentLogger });
      const { records } = await audit.trail.read({ limit: 100 });
      await audit.close();
      return records.map((r) => r.kind);
    };
    expect(await open()).toEqual(['config.loaded']);
    const card = JSON.parse(await readFile(path.join(model, 'card.json'), 'utf8')) as Record<string, unknown>;
    await writeFile(
      path.join(model, 'card.json'),
      JSON.stringify({ ...card, version: '1.1.0', calibration: { status: 'calibrated', camera: 'cam-1', calibratedAt: '2026-12-01T10:00:00Z' } }),
    );
    expect(await open()).toEqual(['config.loaded', 'calibration.written', 'config.loaded']);
    expect(await open()).toEqual(['config.loaded', 'calibration.written', 'config.loaded', 'config.loaded']);
  });
});

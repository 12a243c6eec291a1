/**
 * The two trust gates on what ships: models/default, through the real `crystalwatch predict
 * --json` (a child process) and through the classify stage over the embedded broker. Non-probe
 * pictures (photos of things on a bench, documents, screenshots, gradients, colour textures,
 * noise, black, blank, saturated; crop-sized and 1280×960) must be refused; probe crops and
 * full frames from simulator camera profiles the statistics never saw must pass.
 * Needs `npm run build` (the CLI and the inference worker run from dist/).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Registry } from 'prom-client';
import type { Producer } from 'kafkajs';
import { createKafka, createProducer, ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { ClassifyStage, UNUSABLE_REASONS } from '../src/classify/index.js';
import { loadModelCard } from '../src/model/card.js';
import { nonProbeSet, type NonProbeImage } from '../simulator/nonprobe.js';
import { UNSEEN_PROFILES } from '../simulator/profiles.js';
import { renderProfiledCrop, renderProfiledFrame } from '../simulator/profile-render.js';
import { mixSeed } from '../simulator/random.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { collectPredictions, frameHeaders } from './helpers/predictions.js';
import { waitFor } from './helpers/wait.js';

const CLI = resolve(import.meta.dirname, '../bin/crystalwatch.js');
const SHIPPED = resolve(import.meta.dirname, '../models/default');

interface Picture {
  name: string;
  bytes: Buffer;
}

let root: string;
let nonProbe: (Picture & { kind: NonProbeImage['kind'] })[];
let unseen: (Picture & { label: 'cex' | 'pg' })[];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'cw-trust-'));
  // 4 of each of the 10 kinds: crop-sized, 1280×960 and in between.
  nonProbe = (await nonProbeSet({ seed: 0x7e5, perKind: 4 })).map((p, i) => ({
    name: `np-${i}-${p.kind}-${p.width}x${p.height}`,
    bytes: p.bytes,
    kind: p.kind,
  }));
  unseen = [];
  for (const [p, profile] of UNSEEN_PROFILES.entries()) {
    const crops = p === 0 ? 12 : 11;
    for (let i = 0; i < crops; i++) {
      const c = await renderProfiledCrop({ label: i % 2 ? 'pg' : 'cex', seed: mixSeed(0x7e5, p, i), profile });
      unseen.push({ name: `${profile.name}-crop-${i}`, bytes: c.bytes, label: c.label });
    }
    for (let i = 0; i < 2; i++) {
      const f = await renderProfiledFrame({ seed: mixSeed(0x7e5, p, 0xf, i), frameIndex: i, tSeconds: 240, pgOnsetS: i ? 60 : null, profile });
      unseen.push({ name: `${profile.name}-frame-${i}`, bytes: f.bytes, label: f.label });
    }
  }
}, 120_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const counted = (predicted: string) => predicted === 'cex' || predicted === 'pg';
const list = (items: { name: string; predicted: string; reason?: string }[]) =>
  items.map((i) => `${i.name}: ${i.predicted}${i.reason ? ` (${i.reason})` : ''}`).join('; ');

function expectTargets(results: { name: string; predicted: string; reason?: string }[]): void {
  const np = results.filter((r) => r.name.startsWith('np-'));
  const cams = results.filter((r) => !r.name.startsWith('np-'));
  expect(np).toHaveLength(40);
  expect(cams).toHaveLength(40);
  const passedNonProbe = np.filter((r) => r.predicted !== 'unusable');
  // ≥ 99 % of 40 is all 40.
  expect(passedNonProbe, `non-probe pictures that got through: ${list(passedNonProbe)}`).toEqual([]);
  for (const r of np) expect(UNUSABLE_REASONS).toContain(r.reason);
  const refusedProbe = cams.filter((r) => !counted(r.predicted));
  // ≥ 95 % of 40: at most 2 refused.
  expect(refusedProbe.length, `unseen-camera probe images refused: ${list(refusedProbe)}`).toBeLessThanOrEqual(2);
}

describe('trust gates on models/default', () => {
  it('ships uncalibrated statistics the scorer reads, and says so', async () => {
    const { card } = await loadModelCard(SHIPPED);
    expect(card.calibration).toMatchObject({ status: 'uncalibrated', note: expect.stringMatching(/simulator.*crystalwatch calibrate/) });
    expect(card.ood).toMatchObject({ method: 'mahalanobis-full-nearest-class', dimensions: 64 });
  });

  it('crystalwatch predict --json refuses non-probe pictures and passes unseen cameras', async () => {
    const files: string[] = [];
    for (const p of [...nonProbe, ...unseen]) {
      const file = join(root, `${p.name}${p.bytes[0] === 0xff ? '.jpg' : '.png'}`);
      await writeFile(file, p.bytes);
      files.push(file);
    }
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((done) => {
      execFile(
        process.execPath,
        [CLI, 'predict', '--json', ...files],
        { env: { ...process.env, CRYSTALWATCH_ORT_THREADS: '1' }, maxBuffer: 16 << 20 },
        (err, out, errOut) => {
          done({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout: out, stderr: errOut });
        },
      );
    });
    expect(stderr).not.toMatch(/OOD scoring is off/);
    expect(code, stderr).toBe(0);
    const lines = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; predicted: string; reason?: string });
    expect(lines.map((l) => l.file)).toEqual(files);
    expectTargets(lines.map((l, i) => ({ ...l, name: [...nonProbe, ...unseen][i]!.name })));
  }, 240_000);

  describe('through the classify stage', () => {
    let broker: TestBroker;
    beforeAll(async () => {
      broker = await startTestBroker();
    });
    afterAll(async () => {
      await broker?.close();
    });

    it('refuses non-probe pictures and passes unseen cameras, with reasons from the fixed set in metrics', async () => {
      const kafka = createKafka({ brokers: [broker.address], clientId: 'trust-test' });
      const topics = topicNames('trust.');
      await ensureTopics(kafka, topics, 2);
      const registry = new Registry();
      const stage = new ClassifyStage({ kafka, topics, modelDir: SHIPPED, registry, maxBatchSize: 16, maxBatchWaitMs: 5 });
      const out = await collectPredictions(kafka, topics, 'trust-reader');
      const producer: Producer = createProducer(kafka);
      await producer.connect();
      try {
        await stage.start();
        // What the page and /metrics show: the statistics are the uncalibrated default.
        expect(stage.card?.calibration?.status).toBe('uncalibrated');
        const all = [...nonProbe, ...unseen];
        // Four cameras; no two pictures are alike, so none is frozen.
        // A few at a time: 1280×960 noise pictures are megabytes each.
        for (let i = 0; i < all.length; i += 4) {
          await producer.send({
            topic: topics.frames,
            messages: all
              .slice(i, i + 4)
              .map((p, k) => ({ key: `cam-${(i + k) % 4}`, value: p.bytes, headers: frameHeaders(p.name, `cam-${(i + k) % 4}`, i + k, p.bytes) })),
          });
        }
        await waitFor(() => out.predictions.length >= 80, {
          timeout: 180_000,
          message: '80 predictions',
          detail: () => `${out.predictions.length} so far, ${out.deadLetters.length} dead letters`,
        });
        expect(out.deadLetters).toEqual([]);
        const byName = new Map(out.predictions.map((p) => [p.frameId, p]));
        expectTargets(all.map((p) => ({ name: p.name, predicted: byName.get(p.name)!.predicted, reason: byName.get(p.name)!.reason })));
        const metrics = await registry.metrics();
        const reasons = [...metrics.matchAll(/crystalwatch_frames_unusable_total\{camera="[^"]+",reason="([^"]+)"\}/g)].map((m) => m[1]);
        expect(reasons.length).toBeGreaterThan(0);
        for (const r of reasons) expect(UNUSABLE_REASONS).toContain(r);
        // The shipped model says, wherever it is shown, that it is not calibrated to this camera.
        expect(new Set(out.predictions.map((p) => p.calibration?.status))).toEqual(new Set(['uncalibrated']));
        expect(metrics).toMatch(/crystalwatch_model_info\{model="crystalwatch-default",version="[^"]+",calibration="uncalibrated"\} 1/);
      } finally {
        await stage.close();
        await producer.disconnect();
        await out.close();
      }
    }, 240_000);
  });
});

/**
 * The classify stage against the embedded broker through kafkajs: predictions and dead
 * letters for real frames, then two `crystalwatch classify` processes in one group with one
 * killed (SIGKILL) mid-stream: every frame still gets exactly one prediction after dedup.
 * Needs `npm run build` (the worker thread and the CLI run from dist/).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import sharp from 'sharp';
import { Registry } from 'prom-client';
import type { Producer } from 'kafkajs';
import { createKafka, createProducer, ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { ClassifyStage } from '../src/classify/index.js';
import { writeTinyModelDir } from '../src/classify/fixtures.js';
import { renderCrop } from '../simulator/index.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { collectPredictions } from './helpers/predictions.js';
import { waitFor, waitForExit } from './helpers/wait.js';

const CLI = resolve(import.meta.dirname, '../bin/crystalwatch.js');

let broker: TestBroker;
let root: string;
let modelDir: string;

beforeAll(async () => {
  broker = await startTestBroker();
  root = await mkdtemp(join(tmpdir(), 'cw-classify-stage-'));
  // Grey crops: P(PG) = sigmoid(12·mean - 3), mean in [0,1]; PG crops (bright plates) score higher.
  modelDir = await writeTinyModelDir(
    join(root, 'model'),
    { layout: 'NHWC', width: 64, height: 64, channels: 1, kind: 'sigmoid', weights: [12], bias: [-3] },
    {
      name: 'stage-tiny',
      input: { layout: 'NHWC', width: 64, height: 64, channels: 1, colorOrder: 'gray', resize: 'squash', normalization: 'unit' },
      output: { kind: 'sigmoid' },
      tiling: { tile: 64, stride: 64 },
    },
    { tfjs: false },
  );
});

afterAll(async () => {
  await broker?.close();
  await rm(root, { recursive: true, force: true });
});

function frameHeaders(frameId: string, camera: string, label?: 'cex' | 'pg'): Record<string, string> {
  return {
    'frame-id': frameId,
    camera,
    'captured-at': new Date(Date.UTC(2026, 10, 22, 12, 0, 0) + Number(frameId.split('-').pop()) * 1000).toISOString(),
    'content-type': 'image/png',
    'run-id': 'run-1',
    'completed-at': '1790000000000',
    ...(label ? { label } : {}),
  };
}

describe('ClassifyStage (in process)', () => {
  it('predicts good frames, gates bad ones, dead-letters broken ones, and commits', async () => {
    const kafka = createKafka({ brokers: [broker.address], clientId: 'stage-test' });
    const topics = topicNames('t1.');
    await ensureTopics(kafka, topics, 2);
    const registry = new Registry();
    const stage = new ClassifyStage({ kafka, topics, modelDir, registry, maxBatchSize: 8, maxBatchWaitMs: 5 });
    const out = await collectPredictions(kafka, topics, 't1-reader');
    const producer: Producer = createProducer(kafka);
    await producer.connect();
    try {
      await stage.start();
      expect(stage.info).toEqual({ backend: 'onnx', device: 'cpu', model: 'stage-tiny@0.0.1', frameInference: 'tiles' });
      const crops = await Promise.all([1, 2, 3, 4, 5, 6].map((seed) => renderCrop({ label: seed % 2 ? 'cex' : 'pg', seed })));
      const black = await sharp({ create: { width: 120, height: 120, channels: 3, background: { r: 0, g: 0, b: 0 } } })
        .png()
        .toBuffer();
      // A 320×320 frame: tiled (over 2× the 64-px tile), so its prediction carries tiles.
      const big = await sharp((await renderCrop({ label: 'pg', seed: 40, width: 320, height: 320 })).png)
        .png()
        .toBuffer();
      await producer.send({
        topic: topics.frames,
        messages: [
          ...crops.map((c, i) => ({ key: 'cam-1', value: c.png, headers: frameHeaders(`cam-1-${i}`, 'cam-1', c.label) })),
          { key: 'cam-1', value: black, headers: frameHeaders('cam-1-6', 'cam-1') },
          { key: 'cam-1', value: Buffer.from('this is not a PNG'), headers: frameHeaders('cam-1-7', 'cam-1') },
          { key: 'cam-1', value: crops[0]!.png, headers: { camera: 'cam-1' } }, // no frame-id etc.
          { key: 'cam-2', value: big, headers: frameHeaders('cam-2-8', 'cam-2') },
        ],
      });
      await waitFor(() => out.predictions.length >= 8 && out.deadLetters.length >= 2, { timeout: 90_000, message: '8 predictions and 2 dead letters' });
      const byId = new Map(out.predictions.map((p) => [p.frameId, p]));
      expect([...byId.keys()].sort()).toEqual(['cam-1-0', 'cam-1-1', 'cam-1-2', 'cam-1-3', 'cam-1-4', 'cam-1-5', 'cam-1-6', 'cam-2-8']);
      for (let i = 0; i < 6; i++) {
        const p = byId.get(`cam-1-${i}`)!;
        expect(p).toMatchObject({
          camera: 'cam-1',
          runId: 'run-1',
          model: 'stage-tiny@0.0.1',
          backend: 'onnx',
          device: 'cpu',
          label: crops[i]!.label,
          ingestedAt: 1790000000000,
        });
        expect(p.pPG).toBeGreaterThanOrEqual(0);
        expect(p.predicted).toBe(p.pPG! >= 0.5 ? 'pg' : 'cex');
      }
      expect(byId.get('cam-1-6')).toMatchObject({ predicted: 'unusable', reason: 'black', pPG: null });
      const tiled = byId.get('cam-2-8')!;
      expect(Array.isArray(tiled.tiles)).toBe(true);
      for (const t of tiled.tiles!) expect(t.pPG).toBeGreaterThanOrEqual(0.5);
      expect(out.deadLetters.map((d) => d.stage)).toEqual(['classify', 'classify']);
      expect(out.deadLetters.some((d) => /cannot decode image/.test(d.reason))).toBe(true);
      expect(out.deadLetters.some((d) => /frame headers: frame-id/.test(d.reason))).toBe(true);

      const metrics = await registry.metrics();
      expect(metrics).toContain('crystalwatch_backend_info{backend="onnx",device="cpu"} 1');
      expect(metrics).toContain('crystalwatch_frames_unusable_total{camera="cam-1",reason="black"} 1');
      expect(metrics).toContain('crystalwatch_dead_letter_total{stage="classify",reason="undecodable"} 1');
      expect(metrics).toContain('crystalwatch_dead_letter_total{stage="classify",reason="bad-headers"} 1');
      expect(metrics).toMatch(/crystalwatch_consumer_lag_messages\{group="crystalwatch-classify",topic="t1\.frames"\} 0/);
      expect(metrics).toMatch(/crystalwatch_inference_seconds_count\{backend="onnx",device="cpu"\} [1-9]/);

      // Committed: the group's offsets cover every frame (a restart would not redo them).
      const admin = kafka.admin();
      await admin.connect();
      const offsets = await admin.fetchOffsets({ groupId: 'crystalwatch-classify', topics: [topics.frames] });
      await admin.disconnect();
      const committed = offsets[0]!.partitions.reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0); // -1 = nothing committed
      expect(committed).toBe(10);
    } finally {
      await stage.close();
      await stage.close(); // idempotent
      await producer.disconnect();
      await out.close();
    }
  });
});

class ClassifyProcess {
  child: ChildProcess;
  assigned: number[] = [];
  stderr = '';

  constructor(brokers: string, model: string, prefix: string) {
    this.child = spawn(
      process.execPath,
      // in-order: the promise under test is every frame predicted through a SIGKILL, in order (newest-first's
      // re-delivery of skipped frames after a restart is tested in classify-overload.test.ts).
      [
        CLI,
        'classify',
        '--brokers',
        brokers,
        '--model',
        model,
        '--topic-prefix',
        prefix,
        '--partitions',
        '4',
        '--max-batch-size',
        '8',
        '--overload',
        'in-order',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CRYSTALWATCH_LOG_PRETTY: '0', CRYSTALWATCH_ORT_THREADS: '1' },
      },
    );
    this.child.stderr!.on('data', (c: Buffer) => {
      this.stderr = (this.stderr + c.toString()).slice(-10_000);
    });
    // Logs are JSON lines on stderr (stdout is kept for machine output).
    createInterface({ input: this.child.stderr! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as { msg?: string; assignment?: Record<string, number[]> };
        if (entry.msg === 'classify: partitions assigned' && entry.assignment) this.assigned = Object.values(entry.assignment).flat();
      } catch {
        /* not a log line */
      }
    });
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await waitForExit(this.child, { timeout: 30_000, message: `classify to exit after ${signal}`, detail: () => this.stderr.slice(-3000) });
  }
}

describe('two classify processes in one group, one killed with SIGKILL', () => {
  it('splits the partitions, and every frame gets exactly one prediction after dedup', async () => {
    const kafka = createKafka({ brokers: [broker.address], clientId: 'kill-test' });
    const prefix = 't2.';
    const topics = topicNames(prefix);
    await ensureTopics(kafka, topics, 4);
    const out = await collectPredictions(kafka, topics, 't2-reader');
    const a = new ClassifyProcess(broker.address, modelDir, prefix);
    const b = new ClassifyProcess(broker.address, modelDir, prefix);
    const producer = createProducer(kafka);
    await producer.connect();
    try {
      await waitFor(() => a.assigned.length > 0 && b.assigned.length > 0 && a.assigned.length + b.assigned.length === 4, {
        timeout: 90_000,
        message: 'both processes to hold partitions',
        detail: () => `A assigned ${JSON.stringify(a.assigned)}, stderr: ${a.stderr}; B assigned ${JSON.stringify(b.assigned)}, stderr: ${b.stderr}`,
      });
      expect([...a.assigned, ...b.assigned].sort()).toEqual([0, 1, 2, 3]);

      const crops = await Promise.all(Array.from({ length: 8 }, (_, i) => renderCrop({ label: i % 2 ? 'pg' : 'cex', seed: 100 + i })));
      const total = 160;
      const ids = Array.from({ length: total }, (_, i) => `cam-${i % 4}-${i}`);
      const send = async (from: number, to: number) => {
        await producer.send({
          topic: topics.frames,
          // Partition by frame so all four partitions (both processes) get work.
          messages: ids.slice(from, to).map((id, k) => ({
            partition: (from + k) % 4,
            key: id.split('-').slice(0, 2).join('-'),
            value: crops[(from + k) % 8]!.png,
            headers: frameHeaders(id, id.split('-').slice(0, 2).join('-')),
          })),
        });
      };
      await send(0, 60);
      await waitFor(() => out.predictions.length >= 20, { timeout: 90_000, message: 'some predictions' });
      await a.kill('SIGKILL');
      await send(60, total);
      await waitFor(() => new Set(out.predictions.map((p) => p.frameId)).size >= total, { timeout: 110_000, message: 'a prediction for every frame' });

      const seen = new Set(out.predictions.map((p) => p.frameId));
      expect([...seen].sort()).toEqual([...ids].sort());
      // At least once: duplicates are allowed (frames in flight when A died), losses are not.
      expect(out.predictions.length).toBeGreaterThanOrEqual(total);
      expect(out.deadLetters).toEqual([]);
      // B took over A's partitions.
      await waitFor(() => b.assigned.length === 4, { timeout: 90_000, message: 'B to hold all four partitions' });
    } finally {
      await a.kill('SIGKILL');
      await b.kill('SIGTERM');
      await producer.disconnect();
      await out.close();
    }
  });
});

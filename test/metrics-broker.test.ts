/**
 * QualityStage and AlertStage on the embedded broker: redelivered predictions count once,
 * malformed records go to dead-letter with a reason, and a late lab result (span label)
 * completes the waiting predictions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import type { Consumer, Producer } from 'kafkajs';
import { startBroker, type Broker } from '../src/broker/index.js';
import { createKafka } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { DeadLetterSchema, type Alert, type Prediction } from '../src/bus/messages.js';
import { QualityStage, type QualityEvent } from '../src/quality/index.js';
import { AlertStage } from '../src/alert/index.js';
import { prediction as buildPrediction } from './helpers/messages.js';
import { waitFor, waitForQuiet } from './helpers/wait.js';

let dir: string;
let broker: Broker;
let producer: Producer;
let reader: Consumer;
let metrics: QualityStage;
let alerts: AlertStage;
const registry = new Registry();
const topics = topicNames(`mb${process.pid}.`);
const deadLetters: Record<string, unknown>[] = [];
const quality: QualityEvent[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cw-metrics-'));
  broker = await startBroker({ port: 0, dataDir: dir, defaultPartitions: 2, fsync: 'never' });
  const kafka = createKafka({ brokers: [broker.address], clientId: 'metrics-broker-test' });
  producer = kafka.producer();
  await producer.connect();
  // Create the topics before anyone subscribes (a valid record on each; the dead-letter reader skips its marker).
  await producer.send({ topic: topics.predictions, messages: [{ key: 'cam-z', value: JSON.stringify(prediction('cam-z', 0, 0.01)) }] });
  for (const topic of [topics.labels, topics.deadLetter])
    await producer.send({ topic, messages: [{ key: 'x', value: JSON.stringify({ frameId: 'marker', label: 'cex' }) }] });
  metrics = new QualityStage({ kafka, topics, registry, groupId: 'mb-metrics', windows: { frames: 100, seconds: 600 } });
  alerts = new AlertStage({ kafka, topics, registry, groupId: 'mb-alert', sinks: { topic: false } });
  metrics.on('quality', (q: QualityEvent) => quality.push(q));
  reader = kafka.consumer({ groupId: 'mb-dead-letter-reader' });
  await Promise.all([metrics.start(), alerts.start()]);
  await reader.connect();
  await reader.subscribe({ topic: topics.deadLetter, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message }) => {
      const letter = JSON.parse(message.value!.toString()) as Record<string, unknown>;
      if (letter.stage) deadLetters.push(letter);
    },
  });
});

afterAll(async () => {
  await reader?.disconnect().catch(() => {});
  await producer?.disconnect().catch(() => {});
  await alerts?.close();
  await metrics?.close();
  await broker?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const T0 = Date.parse('2026-03-01T08:00:00Z');
const prediction = (camera: string, i: number, pPG: number): Prediction =>
  buildPrediction({ frameId: `${camera}/${i}`, camera, runId: 'r1', capturedAt: new Date(T0 + i * 100).toISOString(), pPG });

describe('metrics and alert stages on the broker', () => {
  it('counts redelivered predictions once, dead-letters malformed ones, and joins a late lab result', async () => {
    // cam-a: 40 frames, PG from frame 30 on; every record is sent twice (at-least-once redelivery).
    const frames = Array.from({ length: 40 }, (_, i) => prediction('cam-a', i, i >= 30 ? 0.96 : 0.04));
    const records = frames.map((p) => ({ key: p.camera, value: JSON.stringify(p) }));
    await producer.send({ topic: topics.predictions, messages: records });
    await producer.send({ topic: topics.predictions, messages: records });
    await producer.send({
      topic: topics.predictions,
      messages: [
        { key: 'cam-a', value: '{"frameId": 42}' },
        { key: 'cam-a', value: 'not json' },
      ],
    });
    await producer.send({ topic: topics.labels, messages: [{ value: JSON.stringify({ camera: 'cam-a', label: 'pg' }) }] });

    // The lab reports later: frames 0–29 (capture time) were CEX, 30–39 PG; frame 5 is relabelled by id first.
    // (Same key as the spans: one partition, so the stage sees this label first.)
    await producer.send({ topic: topics.labels, messages: [{ key: 'cam-a', value: JSON.stringify({ frameId: 'cam-a/5', label: 'pg' }) }] });
    const at = (i: number) => new Date(T0 + i * 100).toISOString();
    await producer.send({
      topic: topics.labels,
      messages: [
        { key: 'cam-a', value: JSON.stringify({ camera: 'cam-a', from: at(0), to: at(29), label: 'cex' }) },
        { key: 'cam-a', value: JSON.stringify({ camera: 'cam-a', from: at(30), to: at(39), label: 'pg' }) },
      ],
    });

    const snap = await waitFor(
      () => {
        const s = metrics.snapshot().find((x) => x.camera === 'cam-a' && x.window === '100f');
        return s && s.support === 40 ? s : undefined;
      },
      { timeout: 30_000, message: '40 labelled frames' },
    );
    // frame 5 (pPG 0.04, labelled PG by id before the span) is the one miss: the first label wins.
    expect(snap).toMatchObject({ tp: 10, fp: 0, fn: 1, tn: 29, precision: 1 });
    expect(snap.recall).toBeCloseTo(10 / 11, 12);
    expect(quality.at(-1)).toMatchObject({ camera: 'cam-a', support: 40 });

    const text = await waitFor(
      async () => {
        const t = await registry.metrics();
        return t.includes('crystalwatch_duplicate_predictions_total{stage="metrics"} 40') &&
          t.includes('crystalwatch_duplicate_predictions_total{stage="alert"} 40')
          ? t
          : undefined;
      },
      { timeout: 30_000, message: 'every redelivery counted by both stages' },
    );
    expect(text).toContain('crystalwatch_labels_joined_total{source="span"} 39');
    expect(text).toContain('crystalwatch_labels_joined_total{source="frame"} 1');
    expect(text).toContain('crystalwatch_confusion_total{camera="cam-a",actual="pg",predicted="pg"} 10');
    expect(text).toContain('crystalwatch_alarm{camera="cam-a"} 1');
    expect(text).toContain('crystalwatch_alerts_total{camera="cam-a"} 1');

    const fired: Alert[] = alerts.list();
    expect(fired).toHaveLength(1);
    expect(fired[0]!.evidence.firstPgFrameId).toBe('cam-a/30');

    // 2 malformed predictions seen by both stages + 1 malformed label → 5 dead letters, each with its reason.
    // Five letters, then quiet: a sixth (a letter written twice) would show up in that time.
    await waitForQuiet(() => deadLetters.length, { atLeast: 5, quietMs: 500, timeout: 30_000, message: '5 dead letters' });
    const reasons = deadLetters.map((d) => `${String(d.stage)}: ${String(d.reason)}`).sort();
    // Every letter follows the one contract, whichever stage wrote it.
    for (const letter of deadLetters) expect(DeadLetterSchema.safeParse(letter).success, JSON.stringify(letter)).toBe(true);
    expect(reasons).toEqual([
      'alert: prediction: frameId: Invalid input: expected string, received number, got 42',
      'alert: prediction: not JSON (Unexpected token \'o\', "not json" is not valid JSON)',
      'metrics: label: (root): Invalid input',
      'metrics: prediction: frameId: Invalid input: expected string, received number, got 42',
      'metrics: prediction: not JSON (Unexpected token \'o\', "not json" is not valid JSON)',
    ]);
  });
});

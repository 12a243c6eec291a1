/**
 * End to end with the real binaries: predictions go through the embedded broker into the
 * QualityStage and AlertStage; a real Prometheus scrapes their registry with the shipped rules;
 * a simulated PG onset makes PGOnset appear in a real Alertmanager and reach a webhook receiver.
 */
import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import type { Consumer, Producer } from 'kafkajs';
import { startBroker, type Broker } from '../src/broker/index.js';
import { createKafka } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import type { Alert, Prediction } from '../src/bus/messages.js';
import { QualityStage } from '../src/quality/index.js';
import { AlertStage } from '../src/alert/index.js';
import { predictionSequence } from './helpers/messages.js';
import { startAlertmanager, startPrometheus, type Alertmanager, type Prometheus, type PromVector } from './helpers/prometheus.js';
import { waitFor } from './helpers/wait.js';

/** Waits with the logs of both daemons in the error at the deadline. */
const until = <T>(message: string, probe: () => Promise<T | undefined>, timeout = 60_000): Promise<T> =>
  waitFor(probe, { timeout, interval: 250, message, detail: () => `${prometheus?.log() ?? ''}\n${alertmanager?.log() ?? ''}` });

let dir: string;
let broker: Broker;
let metrics: QualityStage;
let alerts: AlertStage;
let producer: Producer;
let alertConsumer: Consumer;
let exporter: Server;
let receiver: Server;
const notifications: { alerts: { labels: Record<string, string>; status: string }[] }[] = [];
const onTopic: Alert[] = [];
let prometheus: Prometheus | undefined;
let alertmanager: Alertmanager | undefined;
const topics = topicNames(`it${process.pid}.`);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cw-prom-'));
  broker = await startBroker({ port: 0, dataDir: join(dir, 'broker'), defaultPartitions: 1, fsync: 'never' });
  const kafka = createKafka({ brokers: [broker.address], clientId: 'prometheus-it' });
  const registry = new Registry();

  // The process's /metrics, as the web server will serve it.
  exporter = createServer((req, res) => {
    void registry.metrics().then((text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text));
  });
  await new Promise<void>((r) => exporter.listen(0, '127.0.0.1', r));
  const exporterPort = (exporter.address() as AddressInfo).port;

  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      notifications.push(JSON.parse(body));
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const receiverPort = (receiver.address() as AddressInfo).port;

  alertmanager = await startAlertmanager({ dir, webhookUrl: `http://127.0.0.1:${receiverPort}/early-stop` });
  prometheus = await startPrometheus({
    dir,
    targets: [`127.0.0.1:${exporterPort}`],
    alertmanager: alertmanager.address,
    ruleFiles: ['deploy/prometheus/rules/quality.yml', 'deploy/prometheus/rules/alerts.yml'],
  });

  metrics = new QualityStage({ kafka, topics, registry, groupId: 'it-metrics' });
  alerts = new AlertStage({ kafka, topics, registry, groupId: 'it-alert', sinks: { topic: true, alertmanagerUrl: alertmanager.url } });
  producer = kafka.producer();
  alertConsumer = kafka.consumer({ groupId: 'it-alert-reader' });
  await producer.connect();
  // Create the topics before the consumers subscribe, so none starts on a missing topic.
  await producer.send({ topic: topics.labels, messages: [{ value: JSON.stringify({ frameId: 'none', label: 'cex' }) }] });
  await producer.send({ topic: topics.alerts, messages: [{ value: 'not an alert: skipped by the reader' }] });
  await Promise.all([metrics.start(), alerts.start()]);
  await alertConsumer.connect();
  await alertConsumer.subscribe({ topic: topics.alerts, fromBeginning: true });
  await alertConsumer.run({
    eachMessage: async ({ message }) => {
      try {
        onTopic.push(JSON.parse(message.value!.toString()));
      } catch {
        /* the marker record */
      }
    },
  });
});

afterAll(async () => {
  await alertConsumer?.disconnect().catch(() => {});
  await producer?.disconnect().catch(() => {});
  await alerts?.close();
  await metrics?.close();
  await broker?.close();
  await prometheus?.close();
  await alertmanager?.close();
  for (const s of [exporter, receiver]) if (s) await new Promise((r) => s.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

const send = (ps: Prediction[]) => producer.send({ topic: topics.predictions, messages: ps.map((p) => ({ key: p.camera, value: JSON.stringify(p) })) });

const query = (expr: string): Promise<PromVector[]> => prometheus!.query(expr);

describe('Prometheus + Alertmanager on the stages, through the broker', () => {
  it('computes precision/recall from the confusion counters and delivers PGOnset to the webhook', async () => {
    const nextFrame = predictionSequence({
      camera: 'cam-1',
      runId: 'run-7',
      startMs: Date.now() - 1000,
      stepMs: 1,
      frameId: (n) => `cam-1/run-7/${n}`,
      defaults: { model: 'it', latencyMs: 3 },
    });
    const prediction = (pPG: number, label: 'cex' | 'pg', predicted: 'cex' | 'pg'): Prediction =>
      nextFrame(pPG, { label, predicted, ingestedAt: Date.now() - 50 });
    // Phase 1: the camera appears (every confusion cell starts at 0) and Prometheus sees it.
    await send([prediction(0.02, 'cex', 'cex')]);
    await until('the first scrape of cam-1', async () =>
      (await query('crystalwatch_confusion_total{camera="cam-1",actual="pg",predicted="pg"}')).length === 1 ? true : undefined,
    );
    expect((await query('crystalwatch_alarm{camera="cam-1"}'))[0]!.value[1]).toBe('0');

    // Phase 2: 29 clean CEX frames, one CEX frame wrongly called PG, two PG frames missed, then PG onset.
    const batch = [
      ...Array.from({ length: 29 }, () => prediction(0.02, 'cex', 'cex')),
      prediction(0.62, 'cex', 'pg'),
      prediction(0.3, 'pg', 'cex'),
      prediction(0.2, 'pg', 'cex'),
      ...Array.from({ length: 10 }, () => prediction(0.97, 'pg', 'pg')),
    ];
    await send(batch);

    // tp 10, fp 1, fn 2 → precision 10/11, recall 10/12 (the same extrapolation scales every cell).
    const precision = await until('crystalwatch:precision:rate5m', async () => {
      const r = await query('crystalwatch:precision:rate5m{camera="cam-1"}');
      const recall = await query('crystalwatch:recall:rate5m{camera="cam-1"}');
      const support = await query('crystalwatch:pg_support:increase5m{camera="cam-1"}');
      // wait until the scrape after the whole batch is in the window (the ratios settle)
      if (r.length !== 1 || recall.length !== 1 || Math.abs(Number(recall[0]!.value[1]) - 10 / 12) > 1e-9) return undefined;
      return { precision: Number(r[0]!.value[1]), recall: Number(recall[0]!.value[1]), support: Number(support[0]!.value[1]) };
    });
    expect(precision.precision).toBeCloseTo(10 / 11, 9);
    expect(precision.recall).toBeCloseTo(10 / 12, 9);
    expect(precision.support).toBeGreaterThanOrEqual(12);

    // In-process windows agree, exactly.
    const frames = metrics.snapshot().find((s) => s.window === '500f')!;
    expect(frames).toMatchObject({ camera: 'cam-1', tp: 10, fp: 1, fn: 2, tn: 30, support: 43 });
    expect(frames.precision).toBeCloseTo(10 / 11, 12);

    // The stage fired one alert; it is on the alerts topic.
    const [alert] = alerts.list();
    assert(alert, 'the alert in the stage');
    expect(alert).toMatchObject({ camera: 'cam-1', runId: 'run-7', state: 'firing' });
    expect(alert.evidence.firstPgFrameId).toBe(batch[29]!.frameId); // the false positive at 0.62 started the excursion
    await until('the alert on the alerts topic', async () => (onTopic.some((a) => a.id === alert.id) ? true : undefined));

    // Prometheus: the alarm gauge → PGOnset → Alertmanager → the webhook receiver.
    const amAlerts = await until('PGOnset from Prometheus in Alertmanager', async () => {
      const r = await fetch(`${alertmanager!.url}/api/v2/alerts?filter=alertname%3D%22PGOnset%22`);
      const list = (await r.json()) as { labels: Record<string, string>; status: { state: string } }[];
      return list.some((a) => a.labels.run_id === undefined) ? list : undefined;
    });
    // The rule aggregates by camera, so Prometheus' alert has no run_id (and no job/instance).
    const viaPrometheus = amAlerts.find((a) => a.labels.run_id === undefined)!;
    expect(viaPrometheus.labels).toEqual({ alertname: 'PGOnset', camera: 'cam-1', severity: 'critical', action: 'stop-batch' });
    // The stage's own Alertmanager sink posted the same onset with its run id.
    const direct = amAlerts.find((a) => a.labels.run_id === 'run-7');
    expect(direct?.labels).toMatchObject({ alertname: 'PGOnset', camera: 'cam-1', severity: 'critical', action: 'stop-batch' });
    expect(direct?.status.state).toBe('active');

    const delivered = await until('the webhook notification', async () => {
      const all = notifications.flatMap((n) => n.alerts);
      return all.some((a) => a.labels.alertname === 'PGOnset' && a.labels.run_id === undefined) ? all : undefined;
    });
    expect(delivered.filter((a) => a.labels.alertname === 'PGOnset').every((a) => a.labels.camera === 'cam-1' && a.status === 'firing')).toBe(true);

    const outcomes = Object.fromEntries(
      (await query('crystalwatch_alert_deliveries_total')).map((r) => [`${r.metric.sink}/${r.metric.outcome}`, Number(r.value[1])]),
    );
    expect(outcomes['alertmanager/delivered']).toBeGreaterThanOrEqual(1);
  });
});

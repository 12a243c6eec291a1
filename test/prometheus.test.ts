/**
 * End to end with the real binaries: predictions go through the embedded broker into the
 * MetricsStage and AlertStage; a real Prometheus scrapes their registry with the shipped rules;
 * a simulated PG onset makes PGOnset appear in a real Alertmanager and reach a webhook receiver.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import type { Consumer, Producer } from 'kafkajs';
import { startBroker, type Broker } from '../src/broker/index.js';
import { createKafka } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import type { Alert, Prediction } from '../src/bus/messages.js';
import { MetricsStage } from '../src/metrics/index.js';
import { AlertStage } from '../src/alert/index.js';

const root = fileURLToPath(new URL('..', import.meta.url));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}\n${logs()}`);
}

const children: { name: string; child: ChildProcess; output: string[] }[] = [];
function launch(name: string, cmd: string, args: string[]) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { name, child, output: [] as string[] };
  child.stdout?.on('data', (c: Buffer) => entry.output.push(c.toString()));
  child.stderr?.on('data', (c: Buffer) => entry.output.push(c.toString()));
  children.push(entry);
  return entry;
}
const logs = () => children.map((c) => `--- ${c.name} (exit ${c.child.exitCode}) ---\n${c.output.join('').slice(-3000)}`).join('\n');

let dir: string;
let broker: Broker;
let metrics: MetricsStage;
let alerts: AlertStage;
let producer: Producer;
let alertConsumer: Consumer;
let exporter: Server;
let receiver: Server;
const notifications: { alerts: { labels: Record<string, string>; status: string }[] }[] = [];
const onTopic: Alert[] = [];
let promUrl: string;
let amUrl: string;
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

  const amPort = await freePort();
  amUrl = `http://127.0.0.1:${amPort}`;
  await writeFile(join(dir, 'alertmanager.yml'), [
    'route:',
    '  receiver: early-stop',
    '  group_by: [alertname, camera]',
    '  group_wait: 0s',
    '  group_interval: 1s',
    '  repeat_interval: 1h',
    'receivers:',
    '  - name: early-stop',
    '    webhook_configs:',
    `      - url: http://127.0.0.1:${receiverPort}/early-stop`,
    '',
  ].join('\n'));
  launch('alertmanager', 'prometheus-alertmanager', [
    `--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'am')}`,
    `--web.listen-address=127.0.0.1:${amPort}`, '--cluster.listen-address=', '--log.level=warn',
  ]);

  const promPort = await freePort();
  promUrl = `http://127.0.0.1:${promPort}`;
  await writeFile(join(dir, 'prometheus.yml'), [
    'global: { scrape_interval: 1s, evaluation_interval: 1s }',
    'rule_files:',
    `  - ${join(root, 'deploy/prometheus/rules/quality.yml')}`,
    `  - ${join(root, 'deploy/prometheus/rules/alerts.yml')}`,
    'alerting:',
    `  alertmanagers: [{ static_configs: [{ targets: ['127.0.0.1:${amPort}'] }] }]`,
    'scrape_configs:',
    `  - { job_name: crystalwatch, static_configs: [{ targets: ['127.0.0.1:${exporterPort}'] }] }`,
    '',
  ].join('\n'));
  launch('prometheus', 'prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'tsdb')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ]);

  metrics = new MetricsStage({ kafka, topics, registry, groupId: 'it-metrics' });
  alerts = new AlertStage({ kafka, topics, registry, groupId: 'it-alert', sinks: { topic: true, alertmanagerUrl: amUrl } });
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
  await until('Prometheus and Alertmanager ready', async () => {
    const [p, a] = await Promise.all([fetch(`${promUrl}/-/ready`), fetch(`${amUrl}/-/ready`)]);
    return p.ok && a.ok ? true : undefined;
  });
});

afterAll(async () => {
  await alertConsumer?.disconnect().catch(() => {});
  await producer?.disconnect().catch(() => {});
  await alerts?.close();
  await metrics?.close();
  await broker?.close();
  for (const { child } of children) {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }
  for (const s of [exporter, receiver]) if (s) await new Promise((r) => s.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

let seq = 0;
function prediction(pPG: number, label: 'cex' | 'pg', predicted: 'cex' | 'pg'): Prediction {
  seq += 1;
  return {
    frameId: `cam-1/run-7/${seq}`, camera: 'cam-1', runId: 'run-7', capturedAt: new Date(Date.now() - 1000 + seq).toISOString(),
    pPG, predicted, label, model: 'it', backend: 'none', device: 'cpu', latencyMs: 3, ingestedAt: Date.now() - 50,
  };
}
const send = (ps: Prediction[]) => producer.send({ topic: topics.predictions, messages: ps.map((p) => ({ key: p.camera, value: JSON.stringify(p) })) });

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await r.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  return body.data.result;
}

describe('Prometheus + Alertmanager on the stages, through the broker', () => {
  it('computes precision/recall from the confusion counters and delivers PGOnset to the webhook', async () => {
    // Phase 1: the camera appears (every confusion cell starts at 0) and Prometheus sees it.
    await send([prediction(0.02, 'cex', 'cex')]);
    await until('the first scrape of cam-1', async () => ((await query('crystalwatch_confusion_total{camera="cam-1",actual="pg",predicted="pg"}')).length === 1 ? true : undefined));
    expect((await query('crystalwatch_alarm{camera="cam-1"}'))[0].value[1]).toBe('0');

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
      if (r.length !== 1 || recall.length !== 1 || Math.abs(Number(recall[0].value[1]) - 10 / 12) > 1e-9) return undefined;
      return { precision: Number(r[0].value[1]), recall: Number(recall[0].value[1]), support: Number(support[0].value[1]) };
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
    expect(alert).toMatchObject({ camera: 'cam-1', runId: 'run-7', state: 'firing' });
    expect(alert.evidence.firstPgFrameId).toBe(batch[29].frameId); // the false positive at 0.62 started the excursion
    await until('the alert on the alerts topic', async () => (onTopic.some((a) => a.id === alert.id) ? true : undefined));

    // Prometheus: the alarm gauge → PGOnset → Alertmanager → the webhook receiver.
    const amAlerts = await until('PGOnset from Prometheus in Alertmanager', async () => {
      const r = await fetch(`${amUrl}/api/v2/alerts?filter=alertname%3D%22PGOnset%22`);
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

    const text = await (await fetch(`${promUrl}/api/v1/query?query=crystalwatch_alert_deliveries_total`)).json() as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
    const outcomes = Object.fromEntries(text.data.result.map((r) => [`${r.metric.sink}/${r.metric.outcome}`, Number(r.value[1])]));
    expect(outcomes['alertmanager/delivered']).toBeGreaterThanOrEqual(1);
  });
});

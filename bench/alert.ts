/**
 * Onset detection on synthetic P(PG) streams, CUSUM vs k-of-n, and the alert stage's own latency.
 *
 * The streams imitate what a good CEX/PG classifier emits (and deliberately *not* the detector's
 * own likelihood model, so the figures test robustness, not self-consistency):
 * - CEX-only frame: with probability 0.995, P(PG) = σ(N(−4, 1.2²)) (median 0.018, 93 % below 0.1);
 *   with probability 0.005 a spike, P(PG) ~ U(0.3, 1).
 * - PG-bearing frame: with probability 0.93, P(PG) = σ(N(4, 1.5²)) (median 0.982, 88 % above 0.9);
 *   with probability 0.07 a miss, P(PG) ~ U(0, 0.5).
 * Detection delay counts PG-bearing frames from onset to alarm (seconds at 10 frames/s); every
 * onset follows 200 CEX frames so the detector is in its steady state.
 *
 * Delivery after an outage: the AlertStage on an embedded broker, a webhook down when PG fires
 * and up N s later, default backoff (250 ms doubling to 30 s): the time from the webhook being
 * up to the alert reaching it (`alert.delivery_after_outage_seconds.outage_<N>s`), and how long
 * close() takes with a delivery hanging in flight.
 *
 *   node dist/bench/alert.js [--quick] [--only detectors,stage,webhook,outage]
 */
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import { AlertStage, OnsetDetector, cusumAverageRunLength, type DetectorConfig } from '../src/alert/index.js';
import { startBroker } from '../src/broker/index.js';
import { createKafka } from '../src/bus/kafka.js';
import type { Alert, Prediction } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { mulberry32 } from '../src/model/rng.js';
import { freePort, sleep } from './support.js';

function gaussian(random: () => number): number {
  const u = 1 - random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export function cexFrame(random: () => number): number {
  return random() < 0.005 ? 0.3 + 0.7 * random() : sigmoid(-4 + 1.2 * gaussian(random));
}

export function pgFrame(random: () => number): number {
  return random() < 0.07 ? 0.5 * random() : sigmoid(4 + 1.5 * gaussian(random));
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (x: number, digits = 3) => Number(x.toFixed(digits));

function detectorFigures(name: string, config: DetectorConfig, quick: boolean): Record<string, number | string> {
  const random = mulberry32(name === 'cusum' ? 7 : 11);
  const detector = new OnsetDetector(config);

  // False alarms on CEX-only frames (the detector restarts after each, as after a resolved alert).
  const cexFrames = quick ? 2_000_000 : 20_000_000;
  let falseAlarms = 0;
  for (let i = 0; i < cexFrames; i++) {
    if (detector.update(cexFrame(random)).alarm) {
      falseAlarms += 1;
      detector.reset();
    }
  }

  // Detection delay after onset.
  const trials = quick ? 2000 : 20_000;
  const delays: number[] = [];
  let missedWithin1000 = 0;
  for (let t = 0; t < trials; t++) {
    detector.reset();
    for (let i = 0; i < 200; i++) if (detector.update(cexFrame(random)).alarm) detector.reset();
    let n = 0;
    let alarmed = false;
    while (n < 1000 && !alarmed) {
      n += 1;
      alarmed = detector.update(pgFrame(random)).alarm;
    }
    if (alarmed) delays.push(n);
    else missedWithin1000 += 1;
  }
  delays.sort((a, b) => a - b);
  const mean = delays.reduce((s, d) => s + d, 0) / delays.length;
  const p = `alert.${name}`;
  return {
    [`${p}.detector`]: detector.description,
    [`${p}.false_alarms_per_100k_cex_frames`]: round((falseAlarms / cexFrames) * 100_000, 4),
    [`${p}.false_alarms.count`]: falseAlarms,
    [`${p}.cex_frames`]: cexFrames,
    [`${p}.delay_frames.mean`]: round(mean),
    [`${p}.delay_frames.p50`]: quantile(delays, 0.5),
    [`${p}.delay_frames.p95`]: quantile(delays, 0.95),
    [`${p}.delay_frames.p99`]: quantile(delays, 0.99),
    [`${p}.delay_frames.max`]: delays[delays.length - 1] ?? NaN,
    [`${p}.delay_seconds_at_10fps.mean`]: round(mean / 10),
    [`${p}.delay_seconds_at_10fps.p95`]: round(quantile(delays, 0.95) / 10),
    [`${p}.within_3_frames.ratio`]: round(delays.filter((d) => d <= 3).length / trials, 4),
    [`${p}.onsets`]: trials,
    [`${p}.onsets_undetected_after_1000_frames`]: missedWithin1000,
  };
}

/** The AlertStage end to end in process: prediction handed in → 'alert' emitted, with the WebSocket callback and a topic-like sink. */
async function stageFigures(quick: boolean): Promise<Record<string, number | string>> {
  const random = mulberry32(23);
  let emitted = 0;
  const stage = new AlertStage({
    kafka: {} as Kafka,
    topics: topicNames(),
    registry: new Registry(),
    resolveAfterCleanFrames: 20,
    publish: () => {
      emitted += 1;
    },
  });
  // A sink that takes the alert asynchronously, like the alerts topic would.
  stage.addSink({ name: 'topic', wants: () => true, deliver: () => new Promise((r) => setImmediate(r)) });
  const onsets = quick ? 1000 : 10_000;
  const toAlert: number[] = [];
  const toAlertCpu: number[] = [];
  const perFrame: number[] = [];
  let seq = 0;
  const frame = (runId: string, pPG: number): Prediction => {
    seq += 1;
    return {
      frameId: `cam-1/${seq}`,
      camera: 'cam-1',
      runId,
      capturedAt: new Date(1_767_225_600_000 + seq * 100).toISOString(),
      pPG,
      predicted: pPG >= 0.5 ? 'pg' : 'cex',
      model: 'bench',
      backend: 'none',
      device: 'cpu',
      latencyMs: 1,
    };
  };
  for (let o = 0; o < onsets; o++) {
    const runId = `run-${o}`;
    for (let i = 0; i < 50; i++) {
      const p = frame(runId, cexFrame(random));
      const t0 = performance.now();
      stage.observePrediction(p);
      perFrame.push(performance.now() - t0);
    }
    for (let i = 0; i < 1000; i++) {
      const p = frame(runId, pgFrame(random));
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      const alert = stage.observePrediction(p);
      const dt = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      perFrame.push(dt);
      if (alert?.state === 'firing') {
        toAlert.push(dt);
        // CPU time of the call: the wall-clock tail on a shared 2-core box is mostly preemption.
        toAlertCpu.push((cpu.user + cpu.system) / 1000);
        break;
      }
    }
    if (o % 100 === 99) await stage.idle();
  }
  await stage.idle();
  await stage.close();
  toAlert.sort((a, b) => a - b);
  toAlertCpu.sort((a, b) => a - b);
  perFrame.sort((a, b) => a - b);
  return {
    'alert.stage.prediction_to_alert_ms.p50': round(quantile(toAlert, 0.5), 4),
    'alert.stage.prediction_to_alert_ms.p99': round(quantile(toAlert, 0.99), 4),
    'alert.stage.prediction_to_alert_ms.max': round(toAlert[toAlert.length - 1]!, 4),
    'alert.stage.prediction_to_alert_cpu_ms.p99': round(quantile(toAlertCpu, 0.99), 4),
    'alert.stage.observe_ms.p99': round(quantile(perFrame, 0.99), 4),
    'alert.stage.predictions_per_s': Math.round(perFrame.length / (perFrame.reduce((s, d) => s + d, 0) / 1000)),
    'alert.stage.alerts': toAlert.length,
    'alert.stage.events_published': emitted,
  };
}

/** Prediction handed in → signed webhook POST received by a loopback HTTP server. */
async function webhookFigures(quick: boolean): Promise<Record<string, number | string>> {
  const random = mulberry32(31);
  let received: (() => void) | undefined;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(204).end();
      received?.();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  const stage = new AlertStage({
    kafka: {} as Kafka,
    topics: topicNames(),
    registry: new Registry(),
    resolveAfterCleanFrames: 5,
    sinks: { webhooks: [{ url, secret: 'bench' }] },
  });
  const latencies: number[] = [];
  let seq = 0;
  const onsets = quick ? 200 : 2000;
  try {
    for (let o = 0; o < onsets; o++) {
      const runId = `run-${o}`;
      for (let i = 0; i < 20; i++) {
        seq += 1;
        stage.observePrediction({
          frameId: `w/${seq}`,
          camera: 'cam-w',
          runId,
          capturedAt: new Date(1_767_225_600_000 + seq * 100).toISOString(),
          pPG: cexFrame(random),
          predicted: 'cex',
          model: 'bench',
          backend: 'none',
          device: 'cpu',
          latencyMs: 1,
        });
      }
      await stage.idle(); // resolved/earlier deliveries out of the way
      for (let i = 0; i < 1000; i++) {
        seq += 1;
        const pPG = pgFrame(random);
        const arrived = new Promise<void>((r) => (received = r));
        const t0 = performance.now();
        const alert = stage.observePrediction({
          frameId: `w/${seq}`,
          camera: 'cam-w',
          runId,
          capturedAt: new Date(1_767_225_600_000 + seq * 100).toISOString(),
          pPG,
          predicted: pPG >= 0.5 ? 'pg' : 'cex',
          model: 'bench',
          backend: 'none',
          device: 'cpu',
          latencyMs: 1,
        });
        if (alert?.state === 'firing') {
          await arrived;
          latencies.push(performance.now() - t0);
          break;
        }
      }
      received = undefined;
    }
  } finally {
    await stage.close();
    await new Promise((r) => server.close(r));
  }
  latencies.sort((a, b) => a - b);
  return {
    'alert.webhook.prediction_to_received_ms.p50': round(quantile(latencies, 0.5), 3),
    'alert.webhook.prediction_to_received_ms.p99': round(quantile(latencies, 0.99), 3),
    'alert.webhook.alerts': latencies.length,
  };
}

function listen(port: number, onRequest: Parameters<typeof createServer>[1]): Promise<Server> {
  const server = createServer(onRequest);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** The webhook is down when PG fires and comes up after `outageS`: seconds from up to delivered, with the default backoff. */
async function outageFigures(quick: boolean): Promise<Record<string, number | string>> {
  const outages = quick ? [2, 10] : [2, 10, 45];
  const dir = await mkdtemp(join(tmpdir(), 'cw-bench-alert-'));
  const broker = await startBroker({ port: 0, dataDir: dir, fsync: 'never' });
  const kafka = createKafka({ brokers: [broker.address], clientId: 'bench-alert' });
  const producer = kafka.producer();
  await producer.connect();
  const out: Record<string, number | string> = {};
  const onset = (camera: string): Prediction[] =>
    Array.from({ length: 23 }, (_, i) => ({
      frameId: `${camera}-${i}`,
      camera,
      runId: 'run-1',
      capturedAt: new Date(Date.now() + i).toISOString(),
      pPG: i < 20 ? 0.02 : 0.98,
      predicted: i < 20 ? 'cex' : 'pg',
      model: 'bench',
      backend: 'none',
      device: 'cpu',
      latencyMs: 1,
    }));
  try {
    for (const outageS of outages) {
      const topics = topicNames(`bench-outage-${outageS}.`);
      const port = await freePort();
      const stage = new AlertStage({
        kafka,
        topics,
        registry: new Registry(),
        groupId: `bench-outage-${outageS}`,
        partitions: 1,
        sinks: { webhooks: [{ url: `http://127.0.0.1:${port}/hook` }] },
      });
      await stage.start();
      const fired = new Promise<Alert>((r) => stage.once('alert', r));
      await producer.send({ topic: topics.predictions, messages: onset('cam-1').map((p) => ({ key: p.camera, value: JSON.stringify(p) })) });
      await fired;
      const firedAt = performance.now();
      await sleep(outageS * 1000);
      let delivered!: () => void;
      const arrived = new Promise<void>((r) => (delivered = r));
      const server = await listen(port, (req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(204).end();
          delivered();
        });
      });
      const upAt = performance.now();
      await arrived;
      out[`alert.delivery_after_outage_seconds.outage_${outageS}s`] = round((performance.now() - upAt) / 1000, 3);
      out[`alert.delivery_after_outage_seconds.outage_${outageS}s.since_alert`] = round((performance.now() - firedAt) / 1000, 3);
      await stage.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }

    // close() with a delivery in flight on a receiver that never answers.
    const topics = topicNames('bench-close.');
    let requested!: () => void;
    const hanging = new Promise<void>((r) => (requested = r));
    const port = await freePort();
    const server = await listen(port, () => requested());
    const stage = new AlertStage({
      kafka,
      topics,
      registry: new Registry(),
      groupId: 'bench-close',
      partitions: 1,
      sinks: { webhooks: [{ url: `http://127.0.0.1:${port}/hook` }] },
    });
    await stage.start();
    await producer.send({ topic: topics.predictions, messages: onset('cam-2').map((p) => ({ key: p.camera, value: JSON.stringify(p) })) });
    await hanging;
    const t0 = performance.now();
    await stage.close();
    out['alert.close_ms.delivery_in_flight'] = round(performance.now() - t0, 1);
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  } finally {
    await producer.disconnect();
    await broker.close();
    await rm(dir, { recursive: true, force: true });
  }
  out['alert.delivery_backoff'] = 'default: 250 ms doubling to 30 s, jitter 20 %';
  return out;
}

const PARTS = ['detectors', 'stage', 'webhook', 'outage'] as const;

export async function bench(options: { quick: boolean; only?: readonly string[] }): Promise<Record<string, number | string>> {
  const only = new Set(options.only ?? PARTS);
  const out: Record<string, number | string> = {};
  if (only.has('detectors')) {
    process.stderr.write('bench alert: cusum…\n');
    Object.assign(out, detectorFigures('cusum', { kind: 'cusum' }, options.quick));
    const h = new OnsetDetector({ kind: 'cusum' }).threshold;
    // What the detector's own model predicts (Brook–Evans), next to what the synthetic stream gives.
    out['alert.cusum.model_arl0_frames'] = Math.round(cusumAverageRunLength(h, 'cex'));
    out['alert.cusum.model_arl1_frames'] = round(cusumAverageRunLength(h, 'pg'));
    process.stderr.write('bench alert: k-of-n…\n');
    Object.assign(out, detectorFigures('k_of_n', { kind: 'k-of-n', k: 3, n: 5 }, options.quick));
  }
  if (only.has('stage')) {
    process.stderr.write('bench alert: stage latency…\n');
    Object.assign(out, await stageFigures(options.quick));
  }
  if (only.has('webhook')) {
    process.stderr.write('bench alert: webhook delivery…\n');
    Object.assign(out, await webhookFigures(options.quick));
  }
  if (only.has('outage')) {
    process.stderr.write('bench alert: delivery after an outage…\n');
    Object.assign(out, await outageFigures(options.quick));
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const onlyArg = process.argv.indexOf('--only');
  const only = onlyArg > 0 ? process.argv[onlyArg + 1]?.split(',') : undefined;
  const result = await bench({ quick: process.argv.includes('--quick'), only });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

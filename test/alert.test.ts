import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import type { Alert } from '../src/bus/messages.js';
import { AlertSchema } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { AlertStage, OnsetDetector, cusumAverageRunLength, cusumThresholdForArl, logLikelihoodRatio, webhookSignatureProblem } from '../src/alert/index.js';
import { predictionSequence, T0 } from './helpers/messages.js';
import { withDeadline } from './helpers/wait.js';

/** Each call: the next frame of cam-1 (run-1 unless `over` says otherwise), 100 ms after the last. */
const frame = predictionSequence({ frameId: (n) => `cam-1/${n}` });

describe('OnsetDetector: CUSUM', () => {
  const model = { spikeRate: 0.01, missRate: 0.05, sharpness: 20 };

  it('sets h = ln(ARL0) and bounds the per-frame log-likelihood ratio', () => {
    expect(cusumThresholdForArl(100_000)).toBeCloseTo(11.513, 3);
    expect(new OnsetDetector({ kind: 'cusum' }).threshold).toBeCloseTo(11.513, 3);
    expect(logLikelihoodRatio(1, model)).toBeCloseTo(Math.log((0.95 * 20 + 0.05) / 0.01), 9); // 7.55
    expect(logLikelihoodRatio(0, model)).toBeCloseTo(Math.log(0.05 / (0.99 * 20 + 0.01)), 9); // -5.98
    expect(logLikelihoodRatio(0.03, model)).toBeLessThan(-5);
    expect(() => cusumThresholdForArl(1)).toThrow(/targetArlFrames must be > 1/);
  });

  it('alarms on the 2nd frame at P(PG)=0.97 and the 3rd at 0.9, never on a clean CEX stream with isolated spikes', () => {
    const d = new OnsetDetector({ kind: 'cusum' });
    for (let i = 0; i < 10_000; i++) expect(d.update(i % 500 === 0 ? 0.99 : 0.03).alarm).toBe(false);
    expect(d.update(0.97).alarm).toBe(false);
    const second = d.update(0.97);
    expect(second).toMatchObject({ alarm: true, evidenceFrames: 2 });
    expect(second.statistic).toBeGreaterThan(11.513);
    d.reset();
    expect([0.9, 0.9, 0.9].map((p) => d.update(p).alarm)).toEqual([false, false, true]);
  });

  it("meets its ARL target under its own model: Lorden's bound ARL0 ≥ e^h holds, onset found in about 2 frames", () => {
    const h = cusumThresholdForArl(100_000);
    const arl0 = cusumAverageRunLength(h, 'cex');
    const arl1 = cusumAverageRunLength(h, 'pg');
    expect(arl0).toBeGreaterThan(100_000);
    expect(arl0).toBeLessThan(2_000_000); // the bound is conservative, not absurdly so (Brook–Evans: 5.96e5)
    expect(arl1).toBeGreaterThan(2);
    expect(arl1).toBeLessThan(2.5);
    // a lower threshold trades false alarms for speed, monotonically
    expect(cusumAverageRunLength(8, 'cex')).toBeLessThan(arl0);
    expect(cusumAverageRunLength(8, 'pg')).toBeLessThan(arl1);
  });

  it('skips unusable frames: they move the statistic neither way', () => {
    const d = new OnsetDetector({ kind: 'cusum' });
    d.update(0.97);
    const before = d.statistic;
    expect(d.update(null)).toMatchObject({ used: false, alarm: false, statistic: before });
    expect(d.update(0.97).alarm).toBe(true);
  });
});

describe('OnsetDetector: k-of-n', () => {
  it('alarms when k of the last n usable frames are PG', () => {
    const d = new OnsetDetector({ kind: 'k-of-n', k: 3, n: 5 });
    const alarms = [0.9, 0.1, 0.1, 0.9, 0.1, null, 0.1, 0.9, 0.9].map((p) => d.update(p).alarm);
    // window at the last frame: 0.9(4th) 0.1 0.1 0.9 0.9 → 3 hits (the null is skipped)
    expect(alarms).toEqual([false, false, false, false, false, false, false, false, true]);
    expect(d.statistic).toBe(3);
    expect(() => new OnsetDetector({ kind: 'k-of-n', k: 6, n: 5 })).toThrow(/k must be an integer from 1 to n=5, got 6/);
  });

  it('reports the evidence from the oldest hit in the window', () => {
    const d = new OnsetDetector({ kind: 'k-of-n', k: 2, n: 4 });
    d.update(0.1);
    d.update(0.8);
    d.update(0.1);
    expect(d.update(0.7)).toMatchObject({ alarm: true, evidenceFrames: 3 });
  });
});

// ---------------------------------------------------------------------------------------------

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

const servers: Server[] = [];
const temps: string[] = [];
const stages: AlertStage[] = [];

/** A local HTTP receiver; `fail` answers 500 to the first N requests. */
async function receiver(fail = 0): Promise<{ url: string; got: Received[] }> {
  const got: Received[] = [];
  let failures = fail;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (failures > 0) {
        failures -= 1;
        res.writeHead(500).end('down for maintenance');
        return;
      }
      got.push({ path: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got };
}

async function closedPortUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return `http://127.0.0.1:${port}/hook`;
}

function metricValue(text: string, line: string): number | undefined {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? undefined : Number(found.slice(line.length + 1));
}

afterEach(async () => {
  for (const s of stages.splice(0)) await s.close();
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  for (const t of temps) await rm(t, { recursive: true, force: true });
});

describe('AlertStage', () => {
  function stage(extra: Partial<ConstructorParameters<typeof AlertStage>[0]> = {}) {
    const registry = new Registry();
    const published: Alert[] = [];
    const s = new AlertStage({
      kafka: {} as Kafka, // start() is not called: no Kafka in these tests
      topics: topicNames(),
      registry,
      resolveAfterCleanFrames: 5,
      publish: (a) => published.push(a),
      delivery: { baseDelayMs: 10, maxDelayMs: 20, deadlineMs: 400 },
      now: () => T0 + 10_000,
      ...extra,
    });
    stages.push(s);
    return { s, registry, published };
  }

  it('fires once per camera and run with evidence, ignores duplicates and unusable frames, resolves and is acknowledged', async () => {
    const { s, registry, published } = stage();
    for (let i = 0; i < 20; i++) expect(s.observePrediction(frame(0.02))).toBeUndefined();
    const tiles = [{ x: 0, y: 0, width: 224, height: 224, pPG: 0.98 }];
    const first = frame(0.98, { tiles });
    expect(s.observePrediction(first)).toBeUndefined();
    expect(s.observePrediction(first)).toBeUndefined(); // redelivered: not a second PG frame
    expect(s.observePrediction(frame(null))).toBeUndefined();
    const alert = s.observePrediction(frame(0.96));
    expect(alert).toBeDefined();
    expect(AlertSchema.parse(alert)).toBeTruthy();
    expect(alert).toMatchObject({ camera: 'cam-1', runId: 'run-1', state: 'firing', action: 'stop-batch' });
    expect(alert!.evidence.firstPgFrameId).toBe(first.frameId);
    expect(alert!.evidence.frames.map((f) => f.pPG)).toEqual([0.98, 0.96]);
    expect(alert!.evidence.frames[0]!.tiles).toEqual(tiles);
    expect(alert!.evidence.detector).toMatch(/^cusum h=11.51/);

    // still firing: more PG frames do not fire a second alert
    for (let i = 0; i < 10; i++) expect(s.observePrediction(frame(0.99))).toBeUndefined();
    let text = await registry.metrics();
    expect(metricValue(text, 'crystalwatch_alarm{camera="cam-1"}')).toBe(1);
    expect(metricValue(text, 'crystalwatch_alerts_total{camera="cam-1"}')).toBe(1);
    expect(metricValue(text, 'crystalwatch_duplicate_predictions_total{stage="alert"}')).toBe(1);

    // 4 clean, one PG (resets the count), then 5 clean → resolved on the 5th
    for (let i = 0; i < 4; i++) s.observePrediction(frame(0.01));
    s.observePrediction(frame(0.7));
    const results = [0, 1, 2, 3, 4].map(() => s.observePrediction(frame(0.01)));
    expect(results.slice(0, 4)).toEqual([undefined, undefined, undefined, undefined]);
    expect(results[4]).toMatchObject({ id: alert!.id, state: 'resolved' });
    text = await registry.metrics();
    expect(metricValue(text, 'crystalwatch_alarm{camera="cam-1"}')).toBe(0);

    const acked = await s.acknowledge(alert!.id, 'operator-7');
    expect(acked).toMatchObject({ id: alert!.id, acknowledgedBy: 'operator-7', acknowledgedAt: new Date(T0 + 10_000).toISOString() });
    expect(await s.acknowledge('no-such-alert')).toBeUndefined();
    expect(published.map((a) => a.state + (a.acknowledgedAt ? '+ack' : ''))).toEqual(['firing', 'resolved', 'resolved+ack']);
    expect(s.list()).toHaveLength(1);
  });

  it("a new run on the camera resolves the old run's alert; k-of-n fires within 3 PG frames", () => {
    const { s } = stage({ detector: { kind: 'k-of-n', k: 3, n: 5 } });
    const fired = [0.9, 0.95, 0.92].map((p) => s.observePrediction(frame(p, { runId: 'run-A' })));
    expect(fired[2]).toMatchObject({ state: 'firing', runId: 'run-A' });
    const events: Alert[] = [];
    s.on('alert', (a: Alert) => events.push(a));
    s.observePrediction(frame(0.01, { runId: 'run-B' }));
    expect(events).toMatchObject([{ runId: 'run-A', state: 'resolved' }]);
  });

  it('delivers to webhooks (signed, retried), Alertmanager and the action command; a dead sink blocks nobody and is given up at its deadline', async () => {
    const flaky = await receiver(2); // fails twice, then accepts
    const am = await receiver();
    const dead = await closedPortUrl();
    const dir = await mkdtemp(join(tmpdir(), 'cw-alert-'));
    temps.push(dir);
    const out = join(dir, 'action.json');
    const { s, registry } = stage({
      now: Date.now, // the delivery deadline runs on the real clock
      sinks: {
        webhooks: [{ url: dead }, { url: `${flaky.url}/hook`, secret: 's3cret' }],
        alertmanagerUrl: am.url,
        actionCommand: `cat > ${out}; echo "$CRYSTALWATCH_ACTION $CRYSTALWATCH_CAMERA" > ${out}.env`,
      },
    });
    s.observePrediction(frame(0.99));
    const alert = s.observePrediction(frame(0.99))!;
    expect(alert.state).toBe('firing');
    await s.idle();

    expect(flaky.got).toHaveLength(1);
    const hook = flaky.got[0]!;
    expect(hook.headers['x-crystalwatch-event']).toBe('firing');
    expect(hook.headers['idempotency-key']).toBe(`${alert.id}:firing`);
    expect(webhookSignatureProblem(hook.body, hook.headers, 's3cret')).toBeUndefined();
    expect(webhookSignatureProblem(hook.body.replace('firing', 'resolved'), hook.headers, 's3cret')).toMatch(/does not match/);
    expect(webhookSignatureProblem(hook.body, hook.headers, 'wrong')).toMatch(/does not match/);
    expect(JSON.parse(hook.body)).toMatchObject({ id: alert.id, state: 'firing', reason: 'pg-onset' });

    expect(am.got).toHaveLength(1);
    expect(am.got[0]!.path).toBe('/api/v2/alerts');
    const [amAlert] = JSON.parse(am.got[0]!.body);
    expect(amAlert.labels).toEqual({ alertname: 'PGOnset', camera: 'cam-1', run_id: 'run-1', severity: 'critical', action: 'stop-batch' });
    expect(amAlert.annotations.first_pg_frame).toBe(alert.evidence.firstPgFrameId);

    expect(JSON.parse(await readFile(out, 'utf8'))).toMatchObject({ id: alert.id, action: 'stop-batch' });
    expect((await readFile(`${out}.env`, 'utf8')).trim()).toBe('stop-batch cam-1');

    const text = await registry.metrics();
    const retried = metricValue(text, 'crystalwatch_alert_deliveries_total{sink="webhook",outcome="retried"}')!;
    expect(retried).toBeGreaterThanOrEqual(2 + 2); // flaky twice, dead at least twice within 400 ms
    expect(metricValue(text, 'crystalwatch_alert_deliveries_total{sink="webhook",outcome="dead-lettered"}')).toBe(1); // dead, at its deadline
    expect(metricValue(text, 'crystalwatch_alert_deliveries_total{sink="webhook",outcome="delivered"}')).toBe(1);
    expect(metricValue(text, 'crystalwatch_alert_deliveries_total{sink="alertmanager",outcome="delivered"}')).toBe(1);
    expect(metricValue(text, 'crystalwatch_alert_deliveries_total{sink="action",outcome="delivered"}')).toBe(1);
    expect(metricValue(text, 'crystalwatch_alert_deliveries_total{sink="websocket",outcome="delivered"}')).toBe(1);
  });

  it('close() aborts a delivery stuck on a receiver that never answers', async () => {
    let requestArrived!: () => void;
    const arrived = new Promise<void>((r) => (requestArrived = r));
    let connectionClosed!: () => void;
    const closed = new Promise<void>((r) => (connectionClosed = r));
    const hanging = createServer((req) => {
      req.socket.on('close', () => connectionClosed());
      requestArrived(); // and never answer
    });
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    servers.push(hanging);
    const { s, registry } = stage({ sinks: { webhooks: [{ url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/` }] } });
    s.observePrediction(frame(0.99));
    expect(s.observePrediction(frame(0.99))?.state).toBe('firing');
    await withDeadline(arrived, { timeout: 10_000, message: 'the webhook request to reach the receiver' });
    await s.close();
    await withDeadline(closed, { timeout: 5_000, message: 'the webhook connection to close after close()' }); // the client side hung up: nothing is left waiting on the receiver
    const text = await registry.metrics();
    expect(metricValue(text, 'crystalwatch_alert_deliveries_total{sink="webhook",outcome="delivered"}')).toBeUndefined();
    expect(metricValue(text, 'crystalwatch_alert_deliveries_queued{sink="webhook"}')).toBe(0);
  });
});

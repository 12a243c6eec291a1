/**
 * Delivery outlasts an outage, and a camera that goes quiet is reported: `crystalwatch run` with
 * a webhook that is down for 45 s when PG fires (past the six attempts the stage once gave up
 * after), and a camera that stops sending predictions and comes back.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, assert, describe, expect, it } from 'vitest';
import { webhookSignatureProblem } from '../src/alert/index.js';
import type { Alert } from '../src/bus/messages.js';
import { alertsOnTopic, kafkaAt, producePredictions, Receiver, startRun, writeRunConfig, type RunProcess } from './helpers/alert-run.js';
import { onsetStream } from './helpers/messages.js';
import { freePort } from './helpers/ports.js';
import { waitFor } from './helpers/wait.js';

const temps: string[] = [];
const running: RunProcess[] = [];
const receivers: Receiver[] = [];
const secret = 'plant-secret-2';

afterEach(async () => {
  for (const run of running.splice(0)) await run.kill('SIGKILL');
  for (const r of receivers.splice(0)) await r.down();
});
afterAll(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function start(alert: (hook: Receiver) => Record<string, unknown>, stages?: string[]) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-alert-outage-'));
  temps.push(dir);
  const brokerPort = await freePort();
  const hook = new Receiver(await freePort());
  receivers.push(hook);
  const config = await writeRunConfig(dir, {
    dataDir: path.join(dir, 'data'),
    brokerPort,
    stages,
    alert: { webhooks: [{ url: `${hook.url}/hook`, secret }], ...alert(hook) },
  });
  const run = await startRun(config);
  running.push(run);
  return { run, hook, kafka: kafkaAt(brokerPort) };
}

const bodies = (hook: Receiver) => hook.got.map((r) => ({ ...(JSON.parse(r.body) as Alert), event: r.headers['x-crystalwatch-event'] }));

describe('alert delivery through an outage', () => {
  it('a webhook down for 45 s when PG fires gets the alert once it is up (retried past six attempts, backoff from alert.delivery)', async () => {
    const { run, hook, kafka } = await start(() => ({ silentAfterSeconds: 0, delivery: { baseDelayMs: 100, maxDelayMs: 2000 } }), ['monitor', 'web']);
    const web = await run.waitForLog((l) => l.msg === 'web server listening', 'the web server', 10_000);
    await producePredictions(kafka, onsetStream('cam-1', 'run-1', 20, 3));
    const [fired] = await waitFor(
      async () => {
        const all = await alertsOnTopic(kafka);
        return all.length > 0 ? all : undefined;
      },
      { timeout: 30_000, interval: 250, message: 'the firing alert on the alerts topic' },
    );
    assert(fired, 'the firing alert');
    const firedAt = Date.now();

    // The outage is what is under test, not a synchronisation: the webhook stays down 45 s from
    // the alert (past the six attempts the stage once gave up after), and every attempt fails.
    await new Promise((r) => setTimeout(r, Math.max(0, firedAt + 45_000 - Date.now())));
    const metrics = await (await fetch(`${String(web.url)}/metrics`)).text();
    const retried = Number(/crystalwatch_alert_deliveries_total\{sink="webhook",outcome="retried"\} (\d+)/.exec(metrics)?.[1]);
    expect(retried).toBeGreaterThan(6);
    expect(hook.got).toEqual([]);
    await hook.up();

    await waitFor(() => hook.got.length > 0, { timeout: 15_000, message: 'the alert at the webhook', detail: () => run.stderr().slice(-2000) });
    expect(bodies(hook)).toMatchObject([{ id: fired.alert.id, state: 'firing', event: 'firing' }]);
    expect(webhookSignatureProblem(hook.got[0]!.body, hook.got[0]!.headers, secret)).toBeUndefined();
    expect(await run.kill('SIGTERM')).toEqual({ code: 0, signal: null });
  });

  it('a camera that stops sending predictions raises camera-silent (check-camera) and it resolves when frames return', async () => {
    const { run, hook, kafka } = await start(() => ({ silentAfterSeconds: 1.5, delivery: { baseDelayMs: 100, maxDelayMs: 500 } }));
    await hook.up();
    await producePredictions(kafka, onsetStream('cam-2', 'run-9', 5, 0));
    const silent = await waitFor(() => bodies(hook).find((a) => a.reason === 'camera-silent'), {
      timeout: 20_000,
      message: 'camera-silent at the webhook',
      detail: () => run.stderr().slice(-2000),
    });
    expect(silent).toMatchObject({
      camera: 'cam-2',
      runId: 'run-9',
      state: 'firing',
      action: 'check-camera',
      event: 'firing',
      evidence: { lastFrameId: 'cam-2-run-9-4', silentSeconds: 1.5 },
    });

    await producePredictions(
      kafka,
      onsetStream('cam-2', 'run-9', 1, 0).map((p) => ({ ...p, frameId: 'cam-2-run-9-back' })),
    );
    await waitFor(() => bodies(hook).find((a) => a.id === silent.id && a.state === 'resolved'), {
      timeout: 20_000,
      message: 'camera-silent resolved at the webhook',
      detail: () => run.stderr().slice(-2000),
    });
    const topic = await alertsOnTopic(kafka);
    expect(await run.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(topic.map((r) => `${r.event} ${r.alert.reason}`)).toEqual(['firing camera-silent', 'resolved camera-silent']);
    expect(hook.got.every((r) => webhookSignatureProblem(r.body, r.headers, secret) === undefined)).toBe(true);
  });
});

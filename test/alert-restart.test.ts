/**
 * Alerts survive the process: `crystalwatch run` (monitor stage, embedded broker on a fixed
 * port and data dir) is SIGKILLed while a sink is down, restarted on the same data dir, and the
 * firing alert still reaches the sink when it comes up, under one id; a kill -9 between writing
 * an alert and committing its predictions leaves exactly one alert for the onset.
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

afterEach(async () => {
  for (const run of running.splice(0)) await run.kill('SIGKILL');
  for (const r of receivers.splice(0)) await r.down();
});
afterAll(async () => {
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function setup(alert: (receiver: Receiver) => Record<string, unknown>) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-alert-restart-'));
  temps.push(dir);
  const brokerPort = await freePort();
  const receiver = new Receiver(await freePort());
  receivers.push(receiver);
  const config = await writeRunConfig(dir, {
    dataDir: path.join(dir, 'data'),
    brokerPort,
    alert: { silentAfterSeconds: 0, delivery: { baseDelayMs: 100, maxDelayMs: 500 }, ...alert(receiver) },
  });
  const start = async (env?: Record<string, string>) => {
    const run = await startRun(config, env);
    running.push(run);
    return run;
  };
  return { brokerPort, receiver, start };
}

/** Camera cam-1 films 20 CEX frames, then PG, and stops at the third PG frame (the batch is stopped). */
async function fireAndStopCamera(brokerPort: number): Promise<{ alert: Alert; event: string }> {
  const kafka = kafkaAt(brokerPort);
  await producePredictions(kafka, onsetStream('cam-1', 'run-1', 20, 3));
  const records = await waitFor(
    async () => {
      const all = await alertsOnTopic(kafka);
      return all.some((r) => r.event === 'firing') ? all : undefined;
    },
    { timeout: 30_000, interval: 250, message: 'the firing alert on the alerts topic' },
  );
  expect(records).toHaveLength(1);
  return records[0]!;
}

describe('alerts survive a SIGKILL of crystalwatch run', () => {
  for (const sink of ['webhook', 'alertmanager'] as const) {
    it(`${sink} down when PG fires, SIGKILL after a failed attempt, restart on the same data dir, ${sink} up → the firing alert arrives under one id`, async () => {
      const secret = 'plant-secret-1';
      const { brokerPort, receiver, start } = await setup((r) =>
        sink === 'webhook' ? { webhooks: [{ url: `${r.url}/hook`, secret }] } : { alertmanagerUrl: r.url },
      );
      const first = await start();
      const fired = await fireAndStopCamera(brokerPort);
      expect(fired.alert).toMatchObject({ camera: 'cam-1', runId: 'run-1', state: 'firing', reason: 'pg-onset' });
      await first.waitForLog((l) => l.msg === 'alert delivery failed; will retry' && l.sink === sink, `a failed ${sink} attempt`, 15_000);
      expect(await first.kill('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });

      const second = await start();
      await receiver.up();
      const got = await waitFor(() => (receiver.got.length > 0 ? receiver.got : undefined), {
        timeout: 30_000,
        message: `the firing alert at the ${sink}`,
        detail: () => second.stderr().slice(-2000),
      });
      const records = await alertsOnTopic(kafkaAt(brokerPort));
      expect(await second.kill('SIGTERM')).toEqual({ code: 0, signal: null });

      // No second alert was raised for the onset: the restart restored the firing alert.
      expect(records.map((r) => `${r.event} ${r.alert.id}`)).toEqual([`firing ${fired.alert.id}`]);
      for (const copy of got) {
        if (sink === 'webhook') {
          expect(copy.path).toBe('/hook');
          expect(JSON.parse(copy.body)).toMatchObject({ id: fired.alert.id, state: 'firing' });
          expect(copy.headers['idempotency-key']).toBe(`${fired.alert.id}:firing`);
          expect(webhookSignatureProblem(copy.body, copy.headers, secret)).toBeUndefined();
        } else {
          expect(copy.path).toBe('/api/v2/alerts');
          const [am] = JSON.parse(copy.body) as { labels: Record<string, string>; annotations: Record<string, string> }[];
          assert(am, 'one alert in the Alertmanager request');
          expect(am.labels).toMatchObject({ alertname: 'PGOnset', camera: 'cam-1', run_id: 'run-1' });
          expect(am.annotations.alert_id).toBe(fired.alert.id);
        }
      }
    });
  }

  it('kill -9 between writing the alert and committing its predictions: after the restart the onset has exactly one alert id, and the camera filming on raises none', async () => {
    const { brokerPort, start } = await setup(() => ({}));
    const crashing = await start({ CRYSTALWATCH_ALERT_FAULT: 'kill-after-outbox' });
    const kafka = kafkaAt(brokerPort);
    const onset = onsetStream('cam-1', 'run-1', 20, 3);
    await producePredictions(kafka, onset);
    // The process kills itself right after the outbox write, before the commit.
    expect(await crashing.exited).toEqual({ code: null, signal: 'SIGKILL' });

    const restarted = await start();
    const later = kafkaAt(brokerPort);
    // The uncommitted predictions come again; the camera keeps filming PG.
    await producePredictions(
      later,
      onsetStream('cam-1', 'run-1', 0, 30, Date.now()).map((p, i) => ({ ...p, frameId: `cam-1-run-1-after-${i}` })),
    );
    const admin = later.admin();
    await admin.connect();
    await waitFor(
      async () => {
        const [topic] = await admin.fetchOffsets({ groupId: 'crystalwatch-alert', topics: ['crystalwatch.predictions'] });
        return topic?.partitions.every((p) => Number(p.offset) === onset.length + 30);
      },
      { timeout: 30_000, message: 'the restarted stage to commit every prediction', detail: () => restarted.stderr().slice(-2000) },
    );
    await admin.disconnect();
    const records = await alertsOnTopic(later);
    expect(await restarted.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(records.filter((r) => r.event === 'firing')).toHaveLength(1);
    expect(new Set(records.map((r) => r.alert.id)).size).toBe(1);
    expect(records[0]!.alert.evidence.firstPgFrameId).toBe(onset[20]!.frameId);
  });
});

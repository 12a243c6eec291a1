/**
 * SIGTERM under load, with the real `crystalwatch run`: a camera keeps writing frames, the
 * process is told to stop while frames are in flight, it exits cleanly (code 0, ports
 * released), and at the next start on the same data dir every frame the camera wrote gets
 * its prediction — what was not finished was handed back, not lost. (How long the exit
 * takes is measured by `npm run bench`, area `shutdown`.)
 */
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createKafka } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { cliProcesses, portIsClosed } from './helpers/demo.js';
import { freePort } from './helpers/ports.js';
import { waitFor, waitForExit } from './helpers/wait.js';

const { start, killAll } = cliProcesses();
let dir = '';

afterAll(async () => {
  killAll();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function classifiedFrames(webPort: number): Promise<number> {
  const text = await fetch(`http://127.0.0.1:${webPort}/metrics`).then((r) => r.text());
  return text
    .split('\n')
    .filter((line) => line.startsWith('crystalwatch_frames_classified_total{'))
    .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
}

describe('crystalwatch run on SIGTERM', () => {
  it('exits with 0 while frames are in flight, and the next start predicts every frame', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cw-shutdown-'));
    const watch = path.join(dir, 'cam-1');
    await mkdir(watch, { recursive: true });
    const brokerPort = await freePort();
    const webPort = await freePort();
    const config = path.join(dir, 'plant.json');
    await writeFile(
      config,
      JSON.stringify({
        dataDir: path.join(dir, 'data'),
        broker: { port: brokerPort },
        web: { port: webPort },
        cameras: [{ id: 'cam-1', watch, runId: 'shutdown' }],
        log: { level: 'warn' },
      }),
    );

    const first = start(['run', '--config', config]);
    const camera = start(['simulate', 'frames', '--out', watch, '--fps', '4', '--duration', '6', '--seed', '5']);
    await waitFor(() => classifiedFrames(webPort).then((n) => n >= 3), { timeout: 120_000, message: 'the first run to classify 3 frames' });

    first.kill('SIGTERM');
    expect(await waitForExit(first, { timeout: 10_000, message: 'crystalwatch run to exit after SIGTERM' })).toBe(0);
    expect(await portIsClosed(webPort)).toBe(true);
    expect(await portIsClosed(brokerPort)).toBe(true);

    expect(await waitForExit(camera, { timeout: 60_000, message: 'the simulated camera to finish its 6 s batch' })).toBe(0);
    const written = (await readdir(watch)).filter((f) => f.endsWith('.png')).length;
    expect(written).toBeGreaterThanOrEqual(12);

    const second = start(['run', '--config', config]);
    const kafka = createKafka({ brokers: [`127.0.0.1:${brokerPort}`] });
    await waitFor(() => classifiedFrames(webPort).catch(() => false), { timeout: 120_000, message: 'the second run to serve /metrics' });
    const consumer = kafka.consumer({ groupId: `shutdown-test-${Date.now()}` });
    const frameIds = new Set<string>();
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topicNames().predictions], fromBeginning: true });
      await consumer.run({
        eachMessage: async ({ message }) => {
          const prediction = JSON.parse(message.value!.toString()) as { frameId: string };
          frameIds.add(prediction.frameId);
        },
      });
      await waitFor(() => frameIds.size >= written, {
        timeout: 120_000,
        message: `a prediction for each of the ${written} frames`,
        detail: () => `have ${frameIds.size}`,
      });
    } finally {
      await consumer.disconnect();
    }
    expect(frameIds.size).toBe(written);

    second.kill('SIGTERM');
    expect(await waitForExit(second, { timeout: 10_000, message: 'the second run to exit after SIGTERM' })).toBe(0);
  }, 300_000);
});

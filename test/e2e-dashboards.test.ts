/**
 * The Grafana dashboard against the real pipeline: `crystalwatch demo` on simulated
 * cameras (with a PG onset, a rejected file and a blinded frame), a real Prometheus
 * scraping its /metrics, and every panel's PromQL run against Prometheus's HTTP API.
 * A query that returns nothing is a broken panel.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { panelQueries, substituteVariables } from '../dashboards/queries.js';
import { root, startDemoProcess, type DemoProcess } from './helpers/demo.js';
import { startPrometheus, waitForEveryQuery, type Prometheus } from './helpers/prometheus.js';

let dir = '';
let demo: DemoProcess | undefined;
let prometheus: Prometheus | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cw-e2e-dash-'));
  demo = await startDemoProcess(['--data-dir', path.join(dir, 'demo'), '--onset', '20', '--fps', '2', '--size', '640x480']);

  // A file that is not an image (rejected at ingest) and a black frame (a blinded probe:
  // unusable at classify), so the rejected/unusable panels have something to show.
  const drop = path.join(dir, 'demo', 'cameras', 'cam-2');
  await writeFile(path.join(drop, 'not-an-image.png'), 'this is not a PNG');
  await writeFile(
    path.join(drop, 'blinded.png'),
    await sharp({ create: { width: 640, height: 480, channels: 3, background: '#000' } })
      .png()
      .toBuffer(),
  );

  prometheus = await startPrometheus({ dir, targets: [`127.0.0.1:${demo.port}`] });
});

afterAll(async () => {
  await prometheus?.close();
  if (demo) await demo.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('impurity dashboard on the real pipeline', () => {
  it('every panel query returns data from Prometheus scraping crystalwatch demo', async () => {
    await demo!.waitFor((e) => e.event === 'alert', 150_000);
    const dashboard = JSON.parse(await readFile(path.join(root, 'dashboards', 'impurity.json'), 'utf8'));
    const queries = panelQueries(dashboard);
    expect(queries.length).toBeGreaterThanOrEqual(14);
    const panels = queries.map((q) => ({
      name: `${q.panel} [${q.refId ?? ''}]`,
      expr: substituteVariables(q.expr, { __rate_interval: '30s', __range: '5m', __interval: '5s' }),
    }));
    await waitForEveryQuery(prometheus!, panels, { timeout: 90_000, interval: 2000 });
  });
});

/**
 * The Grafana dashboard against the real pipeline: `crystalwatch demo` on simulated
 * cameras (with a PG onset, a rejected file and a blinded frame), a real Prometheus
 * scraping its /metrics, and every panel's PromQL run against Prometheus's HTTP API.
 * A query that returns nothing is a broken panel.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { panelQueries, substituteVariables } from '../dashboards/queries.js';
import { root, startDemoProcess, type DemoProcess } from './helpers/demo.js';

let dir = '';
let demo: DemoProcess | undefined;
let prometheus: ChildProcess | undefined;
let prometheusUrl = '';
let prometheusLog = '';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cw-e2e-dash-'));
  demo = await startDemoProcess(['--data-dir', path.join(dir, 'demo'), '--onset', '20', '--fps', '2', '--size', '640x480']);

  // A file that is not an image (rejected at ingest) and a black frame (a blinded probe:
  // unusable at classify), so the rejected/unusable panels have something to show.
  const drop = path.join(dir, 'demo', 'cameras', 'cam-2');
  await writeFile(path.join(drop, 'not-an-image.png'), 'this is not a PNG');
  await writeFile(path.join(drop, 'blinded.png'), await sharp({ create: { width: 640, height: 480, channels: 3, background: '#000' } }).png().toBuffer());

  const port = await freePort();
  prometheusUrl = `http://127.0.0.1:${port}`;
  await writeFile(
    path.join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: crystalwatch\n    static_configs:\n      - targets: ['127.0.0.1:${demo.port}']\n`,
  );
  prometheus = spawn('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  prometheus.stderr!.on('data', (d: Buffer) => (prometheusLog = (prometheusLog + d.toString()).slice(-4000)));
  const deadline = Date.now() + 60_000;
  while (!(await fetch(`${prometheusUrl}/-/ready`).then((r) => r.ok).catch(() => false))) {
    if (prometheus.exitCode !== null || Date.now() > deadline) throw new Error(`prometheus did not start: ${prometheusLog}`);
    await new Promise((r) => setTimeout(r, 250));
  }
});

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus!.once('exit', r));
    prometheus.kill('SIGTERM');
    await exited;
  }
  if (demo) await demo.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function instant(expr: string): Promise<unknown[]> {
  const response = await fetch(`${prometheusUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await response.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  if (body.status !== 'success') throw new Error(`prometheus rejected ${expr}: ${body.error}`);
  return body.data?.result ?? [];
}

describe('impurity dashboard on the real pipeline', () => {
  it('every panel query returns data from Prometheus scraping crystalwatch demo', async () => {
    await demo!.waitFor((e) => e.event === 'alert', 150_000);
    const dashboard = JSON.parse(await readFile(path.join(root, 'dashboards', 'impurity.json'), 'utf8'));
    const queries = panelQueries(dashboard);
    expect(queries.length).toBeGreaterThanOrEqual(14);
    const empty = new Map<string, string>();
    const deadline = Date.now() + 90_000;
    for (;;) {
      empty.clear();
      for (const q of queries) {
        const result = await instant(substituteVariables(q.expr, { __rate_interval: '30s', __range: '5m', __interval: '5s' }));
        if (result.length === 0) empty.set(`${q.panel} [${q.refId ?? ''}]`, q.expr);
      }
      if (empty.size === 0 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 2000));
    }
    expect(Object.fromEntries(empty), 'panels whose query returned nothing').toEqual({});
  });
});

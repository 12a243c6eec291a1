/**
 * The main job end to end: `crystalwatch demo` as a real child process (embedded
 * broker, two simulated cameras, ingest, classify, metrics, alerts, web), and
 * `crystalwatch run` refusing a broken config file by naming the field.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cli, portIsClosed, startDemoProcess, type DemoProcess } from './helpers/demo.js';

const temps: string[] = [];
let demo: DemoProcess | undefined;

afterAll(async () => {
  if (demo && demo.child.exitCode === null) demo.child.kill('SIGKILL');
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-app-'));
  temps.push(dir);
  return dir;
}

describe('crystalwatch run', () => {
  it('fails with a message naming the wrong field of the config file', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'plant.json');
    await writeFile(file, JSON.stringify({ cameras: [{ id: 'r1', watch: dir }], classify: { maxBatchSize: -3 } }));
    const result = spawnSync(process.execPath, [cli, 'run', '--config', file], { encoding: 'utf8', timeout: 60_000 });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(file);
    expect(result.stderr).toMatch(/classify\.maxBatchSize: .*got -3/);
  });
});

describe('crystalwatch demo', () => {
  it('fires the PG alert, shows both cameras in /metrics, and leaves nothing behind on SIGTERM', async () => {
    const dir = await tempDir();
    demo = await startDemoProcess(['--data-dir', dir, '--onset', '8', '--fps', '2', '--size', '640x480']);

    const alert = (await demo.waitFor((e) => e.event === 'alert', 150_000)).alert as Record<string, unknown>;
    expect(alert.camera).toBe('cam-1');
    expect(alert.state).toBe('firing');
    expect(alert.action).toBe('stop-batch');
    // No PG in cam-2: its batch is clean, and the detector must not cry wolf there.
    expect(demo.events.filter((e) => e.event === 'alert' && (e.alert as { camera: string }).camera === 'cam-2')).toEqual([]);

    const metrics = await (await fetch(`${demo.url}/metrics`)).text();
    for (const camera of ['cam-1', 'cam-2']) {
      const line = metrics.split('\n').find((l) => l.startsWith('crystalwatch_frames_ingested_total{') && l.includes(`camera="${camera}"`));
      expect(line, `frames ingested for ${camera}`).toBeDefined();
      expect(Number(line!.split(' ').pop())).toBeGreaterThan(0);
    }
    expect(metrics).toMatch(/crystalwatch_alarm\{camera="cam-1"\} 1/);
    // The default config: the demo's own clients reach its embedded broker in memory, none over TCP.
    const connections = (transport: string) =>
      Number(metrics.match(new RegExp(`^crystalwatch_broker_connections\\{transport="${transport}"\\} (\\d+)`, 'm'))?.[1]);
    expect(connections('in-process')).toBeGreaterThan(0);
    expect(connections('tcp')).toBe(0);

    const pid = demo.child.pid!;
    expect(await demo.stop()).toBe(0);
    expect(await portIsClosed(demo.port)).toBe(true);
    // Nothing the demo started may outlive it.
    const leftovers = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).stdout.trim();
    expect(leftovers).toBe('');
  });
});

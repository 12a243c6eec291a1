/**
 * The main job end to end: `crystalwatch demo` as a real child process (embedded
 * broker, two simulated cameras, ingest, classify, metrics, alerts, web), and
 * `crystalwatch run` refusing a broken config file by naming the field.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
const cli = path.join(root, 'bin', 'crystalwatch.js');
const temps: string[] = [];
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  for (const dir of temps) await rm(dir, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-app-'));
  temps.push(dir);
  return dir;
}

function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
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
    const child = spawn(process.execPath, [cli, 'demo', '--json', '--port', '0', '--data-dir', dir, '--onset', '8', '--fps', '2', '--size', '640x480'], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d.toString()));
    const events: Record<string, unknown>[] = [];
    const waiters: { test: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] = [];
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(line);
      } catch {
        return;
      }
      events.push(event);
      for (const w of waiters.splice(0)) (w.test(event) ? w.resolve(event) : waiters.push(w));
    });
    const waitFor = (test: (e: Record<string, unknown>) => boolean, ms: number) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const found = events.find(test);
        if (found) return resolve(found);
        const timer = setTimeout(() => reject(new Error(`timed out; stderr:\n${stderr.slice(-3000)}`)), ms);
        waiters.push({ test, resolve: (e) => (clearTimeout(timer), resolve(e)) });
      });

    const ready = await waitFor((e) => e.event === 'ready', 90_000);
    const url = String(ready.url);
    const port = Number(new URL(url).port);

    const alert = (await waitFor((e) => e.event === 'alert', 120_000)).alert as Record<string, unknown>;
    expect(alert.camera).toBe('cam-1');
    expect(alert.state).toBe('firing');
    expect(alert.action).toBe('stop-batch');

    const metrics = await (await fetch(`${url}/metrics`)).text();
    for (const camera of ['cam-1', 'cam-2']) {
      const line = metrics.split('\n').find((l) => l.startsWith('crystalwatch_frames_ingested_total{') && l.includes(`camera="${camera}"`));
      expect(line, `frames ingested for ${camera}`).toBeDefined();
      expect(Number(line!.split(' ').pop())).toBeGreaterThan(0);
    }
    expect(metrics).toMatch(/crystalwatch_alarm\{camera="cam-1"\} 1/);

    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(await portIsClosed(port)).toBe(true);
    // Nothing the demo started may outlive it.
    const leftovers = spawnSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).stdout.trim();
    expect(leftovers).toBe('');
  });
});

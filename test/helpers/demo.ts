/**
 * `crystalwatch demo --json` as a real child process, with its JSON lines parsed
 * (ready, status, alert events) and a way to wait for one.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { withDeadline } from './wait.js';

export const root = path.resolve(import.meta.dirname, '..', '..');
export const cli = path.join(root, 'bin', 'crystalwatch.js');

export type DemoEvent = Record<string, unknown> & { event?: string };

export interface DemoProcess {
  child: ChildProcess;
  url: string;
  port: number;
  events: DemoEvent[];
  waitFor(test: (e: DemoEvent) => boolean, ms: number): Promise<DemoEvent>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
  stderr(): string;
}

export async function startDemoProcess(args: string[]): Promise<DemoProcess> {
  const child = spawn(process.execPath, [cli, 'demo', '--json', '--port', '0', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr = (stderr + d.toString()).slice(-20_000)));
  const events: DemoEvent[] = [];
  const waiters: { test: (e: DemoEvent) => boolean; resolve: (e: DemoEvent) => void }[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    let event: DemoEvent;
    try {
      event = JSON.parse(line) as DemoEvent;
    } catch {
      return;
    }
    events.push(event);
    for (const w of waiters.splice(0)) {
      if (w.test(event)) w.resolve(event);
      else waiters.push(w);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitFor = (test: (e: DemoEvent) => boolean, ms: number) =>
    new Promise<DemoEvent>((resolve, reject) => {
      const found = events.find(test);
      if (found) return resolve(found);
      const timer = setTimeout(() => reject(new Error(`demo: timed out after ${ms} ms; exit code ${child.exitCode}; stderr:\n${stderr.slice(-3000)}`)), ms);
      waiters.push({ test, resolve: (e) => (clearTimeout(timer), resolve(e)) });
    });
  const ready = await waitFor((e) => e.event === 'ready', 120_000);
  const url = String(ready.url);
  return {
    child,
    url,
    port: Number(new URL(url).port),
    events,
    waitFor,
    stderr: () => stderr,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return withDeadline(exited, { timeout: 30_000, message: 'the demo to exit after SIGTERM', detail: () => stderr.slice(-3000) });
    },
  };
}

/** `crystalwatch <args>` child processes of one test file; `killAll()` (in afterAll) SIGKILLs those still running. */
export function cliProcesses(): { start(args: string[]): ChildProcess; killAll(): void } {
  const children: ChildProcess[] = [];
  return {
    start(args) {
      const child = spawn(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
      child.stderr!.resume();
      children.push(child);
      return child;
    },
    killAll() {
      for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

export function portIsClosed(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

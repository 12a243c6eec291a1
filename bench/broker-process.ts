/**
 * The embedded broker as a child process for the benchmarks, so the broker's CPU is
 * not the benchmark client's. It uses the broker-only entry point (same options as
 * `crystalwatch broker`), so the figures do not depend on other stages loading.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

export interface BrokerProcess {
  address: string;
  stop(): Promise<void>;
}

export async function startBrokerProcess(dataDir: string): Promise<BrokerProcess> {
  const entry = resolve(import.meta.dirname, '../src/broker/main.js');
  const child = spawn(process.execPath, [entry, '--port', '0', '--data-dir', dataDir, '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolvePort, reject) => {
    child.once('exit', (code) => reject(new Error(`broker exited with ${code} before listening`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const event = JSON.parse(line) as { event: string; port: number };
        if (event.event === 'listening') resolvePort(event.port);
      } catch {
        /* not the listening line */
      }
    });
  });
  return {
    address: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((done) => {
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}
